//! Serving: our own accept loop over hyper, so every connection is
//! bounded. A connection that sends nothing, or dribbles a request's
//! headers, is closed after a timeout; at most `max_connections` are open
//! (the one idle the longest makes room for a new one; when none is idle
//! the new one is refused); a connection whose stream overflowed is shut;
//! TLS is terminated here when configured.

use crate::http::front::Front;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use warp::http::Request;
use warp::reply::Response;

/// The connection limits (`--idle-timeout`, `--header-timeout`,
/// `--max-connections`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection with no request in progress that receives nothing for
    /// this long is closed.
    pub idle_timeout: Duration,
    /// A request's headers (and a TLS handshake) must arrive within this
    /// long of their first byte.
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// No partial request: `partial_since` holds this.
const NONE: u64 = u64::MAX;

/// One connection's state, shared by its task, its I/O and its requests.
#[derive(Debug)]
pub struct ConnState {
    /// Unique within this process, for the logs.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the last request ended (or the
    /// connection opened).
    idle_since: AtomicU64,
    /// Milliseconds since `epoch` of the first byte of a request not yet
    /// complete, or [`NONE`].
    partial_since: AtomicU64,
    closing: AtomicBool,
    /// Close now.
    kill: Notify,
    /// Finish the requests in progress, then close (no keep-alive).
    finish: Notify,
    /// A deadline moved earlier (a request started arriving).
    changed: Notify,
}

impl ConnState {
    fn new(id: u64, peer: SocketAddr, epoch: Instant) -> ConnState {
        let c = ConnState {
            id,
            peer,
            epoch,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            partial_since: AtomicU64::new(NONE),
            closing: AtomicBool::new(false),
            kill: Notify::new(),
            finish: Notify::new(),
            changed: Notify::new(),
        };
        c.idle_since.store(c.now_ms(), Ordering::Relaxed);
        c
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Bytes arrived: with no request in progress, a new one has begun.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.partial_since.load(Ordering::Relaxed) == NONE
        {
            self.partial_since.store(self.now_ms(), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.partial_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When it may be idle-evicted: `Some(since)` when no request is in
    /// progress.
    fn idle_at(&self) -> Option<u64> {
        (self.in_flight.load(Ordering::Acquire) == 0).then(|| {
            self.idle_since
                .load(Ordering::Relaxed)
                .min(self.partial_since.load(Ordering::Relaxed))
        })
    }

    fn has_partial(&self) -> bool {
        self.partial_since.load(Ordering::Relaxed) != NONE
    }

    /// When to look again, and why it would close then.
    fn deadline(&self, l: &Limits) -> (Instant, Option<&'static str>) {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Streams are bounded by the hub (overflow), not by time.
            return (Instant::now() + l.idle_timeout, None);
        }
        match self.partial_since.load(Ordering::Relaxed) {
            NONE => (
                self.at(self.idle_since.load(Ordering::Relaxed)) + l.idle_timeout,
                Some("idle timeout"),
            ),
            p => (self.at(p) + l.header_timeout, Some("header timeout")),
        }
    }

    /// Shuts the connection: ends keep-alive now, and closes it after
    /// `grace` whatever the client does (it may have stopped reading).
    pub fn close_after(self: &Arc<Self>, grace: Duration) {
        self.finish.notify_one();
        let c = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            c.kill.notify_one();
        });
    }
}

/// The connection a request came on, as a request extension for the
/// routes (`warp::ext::optional::<ConnHandle>()`).
#[derive(Debug, Clone)]
pub struct ConnHandle(pub Arc<ConnState>);

/// A request in progress; its end starts the idle timer.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.0;
        c.idle_since.store(c.now_ms(), Ordering::Relaxed);
        c.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`InFlight`] until hyper has
/// sent (or dropped) it.
struct Guarded<B> {
    inner: B,
    _guard: InFlight,
}

impl<B: http_body::Body + Unpin> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The TCP stream, noting when bytes arrive.
struct Watched {
    io: TcpStream,
    conn: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            me.conn.on_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What every connection task shares.
struct Ctx<S> {
    routes: S,
    front: Front,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    stop: watch::Receiver<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `routes` on `listener` until `stop` turns true, then asks every
/// connection to finish and returns once all have closed.
pub async fn run<S>(
    listener: TcpListener,
    routes: S,
    front: Front,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) where
    S: tower_service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let ctx = Arc::new(Ctx {
        routes,
        front,
        limits,
        tls,
        conns: Mutex::new(HashMap::new()),
        stop: stop.clone(),
    });
    let epoch = Instant::now();
    let mut next_id = 0u64;
    let mut last_refusal: Option<Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(p) => p,
                Err(e) => {
                    // EMFILE and the like: wait for a connection to close
                    // rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        next_id += 1;
        let conn = Arc::new(ConnState::new(next_id, peer, epoch));
        {
            let mut conns = lock(&ctx.conns);
            if conns.len() >= limits.max_connections {
                // Idle ones that never sent a byte go first, then the
                // longest idle; the older connection on a tie.
                let victim = conns
                    .values()
                    .filter(|c| !c.closing.load(Ordering::Relaxed))
                    .filter_map(|c| c.idle_at().map(|t| ((c.has_partial(), t, c.id), c.clone())))
                    .min_by_key(|(k, _)| *k)
                    .map(|(_, c)| c);
                match victim {
                    Some(v) => {
                        v.closing.store(true, Ordering::Relaxed);
                        v.kill.notify_one();
                        conns.remove(&v.id);
                        tracing::debug!(peer = %v.peer, "closed the longest-idle connection to make room");
                    }
                    None => {
                        drop(conns);
                        if ctx.tls.is_none() {
                            tokio::spawn(refuse(tcp));
                        }
                        if last_refusal.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                            last_refusal = Some(Instant::now());
                            tracing::warn!(
                                max = limits.max_connections,
                                peer = %peer,
                                "refused a connection: all --max-connections are busy with requests"
                            );
                        }
                        continue;
                    }
                }
            }
            conns.insert(conn.id, conn.clone());
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tracing::debug!(peer = %conn.peer, id = conn.id, "connection opened");
            let why = serve_conn(tcp, &conn, &ctx).await;
            lock(&ctx.conns).remove(&conn.id);
            tracing::debug!(peer = %conn.peer, id = conn.id, why, "connection closed");
        });
    }
    drop(listener);
    let open: Vec<Arc<ConnState>> = lock(&ctx.conns).values().cloned().collect();
    for c in open {
        c.finish.notify_one();
    }
    while !lock(&ctx.conns).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Answers 503 and closes: the request is read (briefly) before the close,
/// as closing with it unread would reset the connection and lose the 503.
async fn refuse(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp
        .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 42\r\n\r\ntoo many connections, all busy: try again\n")
        .await;
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn serve_conn<S>(tcp: TcpStream, conn: &Arc<ConnState>, ctx: &Arc<Ctx<S>>) -> &'static str
where
    S: tower_service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let io = Watched {
        io: tcp,
        conn: conn.clone(),
    };
    match &ctx.tls {
        None => drive(TokioIo::new(io), conn, ctx).await,
        Some(acceptor) => {
            let hs = tokio::time::timeout(ctx.limits.header_timeout, acceptor.accept(io));
            tokio::select! {
                r = hs => match r {
                    Ok(Ok(tls)) => drive(TokioIo::new(tls), conn, ctx).await,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed");
                        "TLS handshake failed"
                    }
                    Err(_) => "TLS handshake timeout",
                },
                _ = conn.kill.notified() => "closed by the server",
            }
        }
    }
}

async fn drive<I, S>(io: I, conn: &Arc<ConnState>, ctx: &Arc<Ctx<S>>) -> &'static str
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: tower_service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let svc_ctx = ctx.clone();
    let svc_conn = conn.clone();
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let ctx = svc_ctx.clone();
        let conn = svc_conn.clone();
        async move {
            let guard = conn.begin();
            req.extensions_mut().insert(ConnHandle(conn.clone()));
            let mut routes = ctx.routes.clone();
            let resp = ctx
                .front
                .handle(req, |req| async move {
                    match tower_service::Service::call(&mut routes, req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    }
                })
                .await;
            Ok::<_, Infallible>(resp.map(|inner| Guarded {
                inner,
                _guard: guard,
            }))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Our own timers cover header reads for both protocols.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None);
    let c = builder.serve_connection(io, svc);
    tokio::pin!(c);
    let mut stop = ctx.stop.clone();
    let mut finishing = false;
    loop {
        let (at, why) = conn.deadline(&ctx.limits);
        tokio::select! {
            r = c.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %conn.peer, error = %e, "connection error");
                }
                return "closed";
            }
            _ = conn.kill.notified() => return "closed by the server",
            _ = conn.finish.notified(), if !finishing => {
                c.as_mut().graceful_shutdown();
                finishing = true;
            }
            _ = stop.wait_for(|s| *s), if !finishing => {
                c.as_mut().graceful_shutdown();
                finishing = true;
            }
            _ = conn.changed.notified() => {}
            _ = tokio::time::sleep_until(at) => {
                if let Some(why) = why {
                    if conn.deadline(&ctx.limits).0 <= Instant::now() {
                        return why;
                    }
                }
            }
        }
    }
}

/// The soft limit on open files, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            max_connections: 4,
        }
    }

    #[tokio::test]
    async fn deadlines_follow_the_connection_state() {
        let c = Arc::new(ConnState::new(
            1,
            "127.0.0.1:1".parse().unwrap(),
            Instant::now(),
        ));
        let (at, why) = c.deadline(&limits());
        assert_eq!(why, Some("idle timeout"));
        assert!(at > Instant::now() + Duration::from_secs(59));
        c.on_read();
        let (at, why) = c.deadline(&limits());
        assert_eq!(why, Some("header timeout"));
        assert!(at <= Instant::now() + Duration::from_secs(10));
        let g = c.begin();
        assert_eq!(
            c.deadline(&limits()).1,
            None,
            "a request in progress has no deadline"
        );
        assert_eq!(c.idle_at(), None);
        c.on_read();
        drop(g);
        assert_eq!(c.deadline(&limits()).1, Some("idle timeout"));
        assert!(c.idle_at().is_some());
    }

    #[test]
    fn the_open_files_limit_is_read() {
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
