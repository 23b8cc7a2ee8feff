//! The event hub: numbers every event, keeps a bounded ring for resume, and
//! feeds each SSE client through its own bounded queue.
//!
//! Limits, and what happens at each:
//! * **Ring** (`capacity` events, by default 10 minutes at the probe rate):
//!   a client resuming from an id older than the ring gets `event: gap`
//!   saying how many events are gone, then everything the ring holds.
//! * **Per-client queue** (`client_queue` chunks): a client that stops
//!   reading fills it; it then gets `event: overflow` and is disconnected,
//!   and may resume by id. A stalled client costs at most one full queue.
//! * **Batching**: a client's task wakes at most once per `batch_window`
//!   and sends everything new as one chunk, so 1 kHz probing is not 1000
//!   writes per second per client.
//!
//! The prober hands events over through a bounded channel that a plain
//! thread drains into [`Hub::push`]; the ring lock is only ever held for a
//! copy, never across I/O or an await.

use crate::metrics::Metrics;
use bytes::Bytes;
use migwatch_shared::wire::{Event, Gap, Overflow};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Sizes and timings of the stream.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Events kept for resume.
    pub capacity: usize,
    /// Chunks queued per client before it is cut off.
    pub client_queue: usize,
    /// Bytes queued per client before it is cut off: a stalled client
    /// costs at most this much (plus the kernel's fixed send buffer).
    pub client_queue_bytes: usize,
    /// Most events in one chunk.
    pub max_batch: usize,
    /// Shortest time between two chunks to one client.
    pub batch_window: Duration,
    /// A comment line is sent after this long without events, so proxies
    /// and the browser see the connection is alive.
    pub keep_alive: Duration,
    /// The `retry:` reconnect delay the browser is told to use.
    pub retry: Duration,
}

impl HubConfig {
    /// Defaults for a probe interval: 10 minutes of events, at least 1000.
    pub fn for_interval(interval: Duration) -> HubConfig {
        let per_10_min = 600_000_000 / interval.as_micros().max(1);
        HubConfig {
            capacity: per_10_min.clamp(1000, 10_000_000) as usize,
            client_queue: 1024,
            client_queue_bytes: 128 * 1024,
            max_batch: 4096,
            batch_window: Duration::from_millis(10),
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(1),
        }
    }
}

struct Ring {
    events: VecDeque<(u64, Event)>,
    /// The id the next event gets; ids start at 1.
    next_id: u64,
}

/// The event hub. Cheap to share behind an `Arc`.
pub struct Hub {
    ring: Mutex<Ring>,
    latest: watch::Sender<u64>,
    cfg: HubConfig,
}

/// What a client asked to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Only events from now on.
    Live,
    /// Every event after this id (`Last-Event-ID` or `?since=`).
    After(u64),
}

impl Hub {
    /// An empty hub.
    pub fn new(cfg: HubConfig) -> Arc<Hub> {
        Arc::new(Hub {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(cfg.capacity.min(1 << 16)),
                next_id: 1,
            }),
            latest: watch::Sender::new(0),
            cfg,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent (every
        // mutation is a single push/pop), so poisoning is safe to ignore.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers an event, stores it and wakes the clients. Returns its id.
    pub fn push(&self, ev: Event) -> u64 {
        let id = {
            let mut r = self.lock();
            let id = r.next_id;
            r.next_id += 1;
            if r.events.len() >= self.cfg.capacity {
                r.events.pop_front();
            }
            r.events.push_back((id, ev));
            id
        };
        self.latest.send_replace(id);
        id
    }

    /// The id of the newest event, 0 before any.
    pub fn latest_id(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Copies up to `max` events after id `after` into `out`. If events
    /// after `after` have already left the ring, returns the gap.
    fn read_after(&self, after: u64, max: usize, out: &mut Vec<(u64, Event)>) -> Option<Gap> {
        let r = self.lock();
        let first = r.events.front().map_or(r.next_id, |(id, _)| *id);
        let gap = (after + 1 < first).then(|| Gap {
            from_id: after + 1,
            to_id: first - 1,
            missing: first - 1 - after,
        });
        let start =
            usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        out.extend(r.events.iter().skip(start).take(max).copied());
        gap
    }

    /// Opens a client stream: the SSE body, as chunks of text. The client's
    /// task ends, and the body with it, on `shutdown`, on overflow, or when
    /// the client goes away.
    pub fn subscribe(
        self: &Arc<Self>,
        start: Start,
        mut shutdown: watch::Receiver<bool>,
        metrics: Arc<Metrics>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + Sync + 'static {
        let (tx, rx) = mpsc::channel::<Bytes>(self.cfg.client_queue);
        // Bytes handed to the channel and not yet taken by the connection.
        let queued = Arc::new(AtomicUsize::new(0));
        let queued_rx = queued.clone();
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
            let mut batch = Vec::with_capacity(cfg.max_batch.min(1024));
            let mut text = String::new();
            loop {
                // Send everything new, in chunks.
                loop {
                    batch.clear();
                    text.clear();
                    if let Some(gap) = hub.read_after(cursor, cfg.max_batch, &mut batch) {
                        let gap_ev = Event::Gap(gap);
                        gap_ev.write_sse(gap.to_id, &mut text);
                        cursor = gap.to_id;
                    }
                    for (id, ev) in &batch {
                        ev.write_sse(*id, &mut text);
                    }
                    if text.is_empty() {
                        break;
                    }
                    // Keep one slot free for the overflow notice.
                    let backlog = queued.load(Ordering::Relaxed).saturating_add(text.len());
                    if tx.capacity() <= 1 || backlog > cfg.client_queue_bytes {
                        let mut bye = String::new();
                        Event::Overflow(Overflow { last_id: cursor }).write_sse(cursor, &mut bye);
                        queued.fetch_add(bye.len(), Ordering::Relaxed);
                        let _ = tx.try_send(Bytes::from(bye));
                        metrics.overflows.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    // Counted before sending: the connection may take the
                    // chunk (and subtract it) before try_send returns.
                    queued.fetch_add(text.len(), Ordering::Relaxed);
                    if tx.try_send(Bytes::from(std::mem::take(&mut text))).is_err() {
                        return; // the client went away
                    }
                    if let Some((id, _)) = batch.last() {
                        cursor = *id;
                    }
                    if batch.len() < cfg.max_batch {
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
            let queued = queued_rx.clone();
            async move {
                let b = rx.recv().await?;
                queued.fetch_sub(b.len(), Ordering::Relaxed);
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
    use super::*;
    use futures_util::StreamExt;
    use migwatch_shared::wire::Sample;

    fn ev(seq: u64) -> Event {
        Event::Sample(Sample {
            seq,
            sent_us: seq as i64,
            rtt_us: Some(1),
        })
    }

    fn cfg(capacity: usize) -> HubConfig {
        HubConfig {
            capacity,
            client_queue: 4,
            client_queue_bytes: 1 << 20,
            max_batch: 1000,
            batch_window: Duration::from_millis(1),
            keep_alive: Duration::from_secs(60),
            retry: Duration::from_secs(1),
        }
    }

    /// Reads chunks until `pred` holds for the text so far.
    async fn read_until(
        s: &mut (impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Unpin),
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let mut all = String::new();
        while !pred(&all) {
            match tokio::time::timeout(Duration::from_secs(5), s.next()).await {
                Ok(Some(Ok(b))) => all.push_str(std::str::from_utf8(&b).unwrap()),
                other => panic!("stream ended or stalled: {other:?}; got {all:?}"),
            }
        }
        all
    }

    fn ids(text: &str) -> Vec<u64> {
        text.lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|s| s.parse().unwrap())
            .collect()
    }

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
    async fn too_old_id_yields_gap_then_the_ring() {
        let hub = Hub::new(cfg(5));
        for q in 0..20 {
            hub.push(ev(q));
        }
        let (_stop_tx, stop) = watch::channel(false);
        let mut s = Box::pin(hub.subscribe(Start::After(3), stop, Arc::new(Metrics::default())));
        let text = read_until(&mut s, |t| t.contains("id: 20\n")).await;
        assert!(text
            .contains("id: 15\nevent: gap\ndata: {\"from_id\":4,\"to_id\":15,\"missing\":12}\n\n"));
        assert_eq!(ids(&text), vec![15, 16, 17, 18, 19, 20]);
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
