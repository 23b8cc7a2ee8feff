//! A webhook receiver for Alertmanager's notifications: a plain HTTP server
//! on a free loopback port that records every JSON body it is POSTed, with
//! the time it arrived.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// At most this many notifications are kept (a test sees a handful).
const MAX_KEPT: usize = 1000;
/// A notification body larger than this is refused.
const MAX_BODY: usize = 1 << 20;

/// One notification as received.
#[derive(Debug, Clone)]
pub struct Notification {
    /// When its request was read in full.
    pub at: SystemTime,
    /// The request's path (`/migwatch`).
    pub path: String,
    /// The JSON body (Alertmanager's webhook payload, version 4).
    pub body: Value,
}

impl Notification {
    /// Its alerts (each with `status`, `labels`, `annotations`, `startsAt`).
    pub fn alerts(&self) -> Vec<&Value> {
        self.body["alerts"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Notification>>,
    changed: Condvar,
    errors: Mutex<Vec<String>>,
}

/// The receiver. Its thread stops on drop.
pub struct Webhook {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl Webhook {
    /// Listens on a free loopback port.
    pub fn start() -> Result<Webhook> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        // Non-blocking accept, so the thread notices `stop` within 50 ms.
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        if let Err(e) = serve(conn, &s) {
                            if let Ok(mut errs) = s.errors.lock() {
                                errs.push(format!("{e:#}"));
                                errs.truncate(MAX_KEPT);
                            }
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Ok(Webhook { base, shared, stop })
    }

    /// Every notification so far.
    pub fn all(&self) -> Vec<Notification> {
        self.shared
            .got
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Requests it could not read or parse.
    pub fn errors(&self) -> Vec<String> {
        self.shared
            .errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Waits for the first notification for which `pick` returns `Some`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&Notification) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut got = self
            .shared
            .got
            .lock()
            .map_err(|_| anyhow::anyhow!("webhook lock poisoned"))?;
        loop {
            if let Some(t) = got.iter().find_map(&mut pick) {
                return Ok(t);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "timed out after {timeout:?} waiting for {what}; the webhook got {} notification(s): {:?}; errors: {:?}",
                    got.len(),
                    got.iter().map(|n| n.body.to_string()).collect::<Vec<_>>(),
                    self.errors()
                );
            }
            got = self
                .shared
                .changed
                .wait_timeout(got, left)
                .map_err(|_| anyhow::anyhow!("webhook lock poisoned"))?
                .0;
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one HTTP/1.1 request, answers 200 and records its JSON body.
fn serve(conn: TcpStream, shared: &Shared) -> Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed inside the headers of {request_line:?}");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v
                    .trim()
                    .parse()
                    .with_context(|| format!("bad Content-Length {v:?}"))?;
            }
        }
    }
    let mut out = conn;
    if method != "POST" || len > MAX_BODY {
        out.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        bail!("refused {method} {path} with a {len}-byte body");
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let at = SystemTime::now();
    out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let body: Value =
        serde_json::from_slice(&body).with_context(|| format!("{path}: the body is not JSON"))?;
    let mut got = shared
        .got
        .lock()
        .map_err(|_| anyhow::anyhow!("webhook lock poisoned"))?;
    if got.len() < MAX_KEPT {
        got.push(Notification {
            at,
            path: path.to_string(),
            body,
        });
    }
    shared.changed.notify_all();
    Ok(())
}
