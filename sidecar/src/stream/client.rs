//! Each SSE client's task: reads what follows its cursor (shared text or
//! its own render from the ring), batches it per window, and feeds its
//! connection through a bounded queue, cutting the client off with
//! `overflow` once the queue has stayed full too long.

use super::sse::ReadOut;
use super::{Hub, Start};
use crate::metrics::Metrics;
use bytes::{BufMut, Bytes, BytesMut};
use migwatch_shared::wire::{Event, Overflow};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Notify};

impl Hub {
    /// Opens a client stream: the SSE body, as chunks of text. The client's
    /// task ends, and the body with it, on `shutdown`, on overflow, or when
    /// the client goes away.
    pub fn subscribe(
        self: &Arc<Self>,
        start: Start,
        shutdown: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + Sync + 'static {
        self.subscribe_with(start, shutdown, metrics, Box::new(|| {}))
    }

    /// [`Hub::subscribe`], calling `on_overflow` when the client is cut
    /// off (the HTTP side logs it and shuts the connection).
    pub fn subscribe_with(
        self: &Arc<Self>,
        start: Start,
        mut shutdown: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
        on_overflow: Box<dyn FnOnce() + Send>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + Sync + 'static {
        let mut on_overflow = Some(on_overflow);
        let (tx, rx) = mpsc::channel::<Bytes>(self.cfg.client_queue.max(2));
        // Bytes handed to the channel and not yet taken by the connection,
        // and a signal each time the connection takes some.
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = Arc::new(Notify::new());
        let (queued_rx, taken_rx) = (queued.clone(), taken.clone());
        let hub = self.clone();
        let mut latest = self.latest.subscribe();
        let mut cursor = match start {
            Start::Live => self.latest_id(),
            // An id from the future (another run) would stall the client:
            // treat it as "from now".
            Start::After(id) if id > self.latest_id() => self.latest_id(),
            Start::After(id) => id,
        };
        let cfg = self.cfg;
        metrics.clients.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let _gauge = ClientGauge(metrics.clone());
            let retry = format!("retry: {}\n\n", cfg.retry.as_millis());
            queued.fetch_add(retry.len(), Ordering::Relaxed);
            if tx.try_send(Bytes::from(retry)).is_err() {
                return;
            }
            let mut read = ReadOut::default();
            let mut own = String::new();
            loop {
                // Send everything new: one chunk, or several (each bounded)
                // while catching up.
                loop {
                    own.clear();
                    if let Some(gap) = hub.read_after(cursor, &mut read) {
                        Event::Gap(gap).write_sse(gap.to_id, &mut own);
                    }
                    for (id, ev) in &read.events {
                        ev.write_sse(*id, &mut own);
                    }
                    let chunk = match (own.is_empty(), read.pieces.as_slice()) {
                        (true, []) => break,
                        // The common case: one shared chunk, no copy.
                        (true, [one]) => one.clone(),
                        _ => {
                            let len = own.len() + read.pieces.iter().map(Bytes::len).sum::<usize>();
                            let mut b = BytesMut::with_capacity(len);
                            b.put_slice(own.as_bytes());
                            for p in &read.pieces {
                                b.put_slice(p);
                            }
                            b.freeze()
                        }
                    };
                    // Room for the chunk, keeping one slot free for the
                    // overflow notice; a full queue gets `overflow_grace`
                    // to drain before the client is cut off.
                    let fits = || {
                        tx.capacity() > 1
                            && queued.load(Ordering::Relaxed).saturating_add(chunk.len())
                                <= cfg.client_queue_bytes
                    };
                    if !fits() {
                        let deadline = tokio::time::Instant::now() + cfg.overflow_grace;
                        while !fits() {
                            tokio::select! {
                                _ = taken.notified() => {}
                                _ = tokio::time::sleep_until(deadline) => break,
                                _ = shutdown.changed() => return,
                                _ = tx.closed() => return,
                            }
                        }
                    }
                    if !fits() {
                        let mut bye = String::new();
                        Event::Overflow(Overflow { last_id: cursor }).write_sse(cursor, &mut bye);
                        queued.fetch_add(bye.len(), Ordering::Relaxed);
                        let _ = tx.try_send(Bytes::from(bye));
                        metrics.overflows.fetch_add(1, Ordering::Relaxed);
                        if let Some(f) = on_overflow.take() {
                            f();
                        }
                        return;
                    }
                    // Counted before sending: the connection may take the
                    // chunk (and subtract it) before try_send returns.
                    queued.fetch_add(chunk.len(), Ordering::Relaxed);
                    if tx.try_send(chunk).is_err() {
                        return; // the client went away
                    }
                    cursor = read.last;
                    // Only a read cut short by a size limit means more is
                    // waiting now; otherwise wait for the next window.
                    if !read.more {
                        break;
                    }
                }
                // Coalesce: wait a batch window, then for news.
                tokio::select! {
                    _ = tokio::time::sleep(cfg.batch_window) => {}
                    _ = shutdown.changed() => return,
                    _ = tx.closed() => return,
                }
                if hub.latest_id() > cursor {
                    continue;
                }
                tokio::select! {
                    r = latest.changed() => if r.is_err() { return },
                    _ = shutdown.changed() => return,
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(cfg.keep_alive) => {
                        const PING: &[u8] = b": keep-alive\n\n";
                        queued.fetch_add(PING.len(), Ordering::Relaxed);
                        if tx.try_send(Bytes::from_static(PING)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        futures_util::stream::unfold(rx, move |mut rx| {
            let (queued, taken) = (queued_rx.clone(), taken_rx.clone());
            async move {
                let b = rx.recv().await?;
                queued.fetch_sub(b.len(), Ordering::Relaxed);
                taken.notify_one();
                Some((Ok(b), rx))
            }
        })
    }
}

/// Decrements the connected-clients gauge when a client's task ends.
struct ClientGauge(Arc<Metrics>);

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::HubConfig;
    use super::*;
    use futures_util::StreamExt;
    use std::time::Duration;

    #[tokio::test]
    async fn resume_after_id_gives_exactly_the_rest() {
        let hub = Hub::new(cfg(100));
        for q in 0..10 {
            hub.push(ev(q));
        }
        let (_stop_tx, stop) = watch::channel(false);
        let m = Arc::new(Metrics::default());
        let mut s = Box::pin(hub.subscribe(Start::After(4), stop, m));
        let text = read_until(&mut s, |t| t.contains("id: 10\n")).await;
        assert!(text.starts_with("retry: 1000\n\n"));
        assert_eq!(ids(&text), (5..=10).collect::<Vec<_>>());
        hub.push(ev(10));
        let more = read_until(&mut s, |t| t.contains("id: 11\n")).await;
        assert_eq!(ids(&more), vec![11]);
    }

    #[tokio::test]
    async fn stalled_client_gets_overflow_and_is_dropped() {
        let hub = Hub::new(cfg(100_000));
        let (_stop_tx, stop) = watch::channel(false);
        let m = Arc::new(Metrics::default());
        let mut s = Box::pin(hub.subscribe(Start::Live, stop, m.clone()));
        // Don't read: push until the client's queue (4 chunks) is full.
        for q in 0..50 {
            hub.push(ev(q));
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let text = read_until(&mut s, |t| t.contains("event: overflow")).await;
        assert!(s.next().await.is_none(), "stream must end after overflow");
        assert_eq!(m.overflows.load(Ordering::Relaxed), 1);
        assert_eq!(m.clients.load(Ordering::Relaxed), 0);
        assert!(text.contains("event: overflow"));
    }

    #[tokio::test]
    async fn a_client_is_cut_off_by_bytes_queued_not_only_chunks() {
        let hub = Hub::new(HubConfig {
            client_queue: 10_000,
            client_queue_bytes: 4_000,
            ..cfg(100_000)
        });
        let (_stop_tx, stop) = watch::channel(false);
        let m = Arc::new(Metrics::default());
        let mut s = Box::pin(hub.subscribe(Start::Live, stop, m.clone()));
        // ~70 bytes an event: 4 000 bytes hold about 57 events.
        for q in 0..200 {
            hub.push(ev(q));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let text = read_until(&mut s, |t| t.contains("event: overflow")).await;
        assert!(text.len() < 4_000 + 200, "queued {} bytes", text.len());
        assert_eq!(m.overflows.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_long_catch_up_is_paced_by_the_reader_not_cut_off() {
        // 5000 events of backlog (about 350 KB) through an 8 KiB queue.
        let hub = Hub::new(HubConfig {
            client_queue_bytes: 8 * 1024,
            max_chunk_bytes: 2 * 1024,
            max_batch: 20,
            shared_text_bytes: 64 * 1024,
            ..cfg(10_000)
        });
        let evs: Vec<Event> = (0..5000).map(ev).collect();
        for batch in evs.chunks(10) {
            hub.push_batch(batch);
        }
        let (_stop_tx, stop) = watch::channel(false);
        let m = Arc::new(Metrics::default());
        let mut s = Box::pin(hub.subscribe(Start::After(0), stop, m.clone()));
        let text = read_until(&mut s, |t| t.contains("id: 5000\n")).await;
        assert_eq!(ids(&text), (1..=5000).collect::<Vec<_>>());
        assert_eq!(m.overflows.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn shutdown_ends_every_stream() {
        let hub = Hub::new(cfg(10));
        let (stop_tx, stop) = watch::channel(false);
        let mut s = Box::pin(hub.subscribe(Start::Live, stop, Arc::new(Metrics::default())));
        let _ = read_until(&mut s, |t| t.contains("retry")).await;
        stop_tx.send_replace(true);
        let end = tokio::time::timeout(Duration::from_secs(1), s.next()).await;
        assert!(matches!(end, Ok(None)));
    }
}
