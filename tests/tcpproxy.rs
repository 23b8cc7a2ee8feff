//! A tiny TCP proxy for the page tests: it sits between the browser and a
//! sidecar so a test can drop every connection mid-stream and come back on
//! the same port, as a flaky network or a restarted reverse proxy would.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running proxy from `127.0.0.1:port` to an upstream address. Stopped
/// (connections cut, port closed) on drop.
pub struct TcpProxy {
    port: u16,
    upstream: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<AtomicU64>,
    accept: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts a proxy to `upstream` (`host:port` or `http://host:port`) on
    /// a free loopback port.
    pub fn start(upstream: &str) -> Result<TcpProxy> {
        let up = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse::<SocketAddr>()
            .with_context(|| format!("proxy upstream {upstream:?} is not ip:port"))?;
        let mut p = TcpProxy {
            port: 0,
            upstream: up,
            stop: Arc::new(AtomicBool::new(false)),
            conns: Arc::default(),
            accepted: Arc::default(),
            accept: None,
        };
        p.listen(0)?;
        Ok(p)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far, over every restart.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    fn listen(&mut self, port: u16) -> Result<()> {
        let l = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("proxy cannot listen on 127.0.0.1:{port}"))?;
        l.set_nonblocking(true)?;
        self.port = l.local_addr()?.port();
        self.stop = Arc::new(AtomicBool::new(false));
        let (stop, conns, accepted, up) = (
            self.stop.clone(),
            self.conns.clone(),
            self.accepted.clone(),
            self.upstream,
        );
        self.accept = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((client, _)) => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(up) {
                            if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                                if let Ok(mut v) = conns.lock() {
                                    v.push(c2);
                                    v.push(s2);
                                }
                            }
                            pipe(&client, &server);
                            pipe(&server, &client);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
        Ok(())
    }

    /// Cuts every connection and closes the port.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        if let Ok(mut v) = self.conns.lock() {
            for s in v.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Listens again on the same port after [`TcpProxy::stop`].
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.listen(self.port)
    }
}

/// Copies `from` → `to` on a thread until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut a), Ok(mut b)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match a.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if b.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = b.shutdown(Shutdown::Write);
    });
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_and_restarts_on_the_same_port() {
        let up = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = up.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in up.incoming().flatten() {
                let mut s = s;
                let mut b = [0u8; 5];
                if s.read_exact(&mut b).is_ok() {
                    let _ = s.write_all(&b);
                }
            }
        });
        let mut p = TcpProxy::start(&addr.to_string()).unwrap();
        let port = p.port;
        for round in 0..2 {
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.write_all(b"hello").unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"hello", "round {round}");
            p.restart().unwrap();
            assert_eq!(p.port, port);
        }
        assert_eq!(p.accepted(), 2);
    }
}
