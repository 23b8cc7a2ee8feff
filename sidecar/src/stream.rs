//! The event hub: numbers every event, keeps a bounded ring for resume,
//! renders each event's SSE text once for every client, and feeds each SSE
//! client through its own bounded queue.
//!
//! Limits, and what happens at each:
//! * **Ring** (`capacity` events, by default 10 minutes at the probe rate,
//!   24 bytes an event): a client resuming from an id older than the ring
//!   gets `event: gap` saying how many events are gone, then everything the
//!   ring holds.
//! * **Shared text**: each batch the prober hands over is rendered to SSE
//!   text once, as one [`Bytes`], and the newest `shared_text_bytes` of it
//!   are kept. A client whose cursor is in that window gets a slice or a
//!   clone of it, with no formatting of its own; only a client further
//!   behind (resuming from the ring) renders its own catch-up text.
//! * **Per-client queue** (`client_queue` chunks and `client_queue_bytes`):
//!   a client that stops reading fills it; once it has stayed full for
//!   `overflow_grace` the client gets `event: overflow` and is
//!   disconnected, and may resume by id. A stalled client costs at most one
//!   full queue. A client catching up from far back gets chunks of at most
//!   `max_batch` events or `max_chunk_bytes`, each sent when its
//!   connection has taken the previous ones.
//! * **Batching**: a client's task wakes at most once per `batch_window`
//!   and sends everything new as one chunk, so 1 kHz probing is not 1000
//!   writes per second per client.
//!
//! The prober hands events over in batches through a
//! [`Feed`](crate::feed::Feed): a bounded channel that a plain thread
//! drains into [`Hub::push_batch`], or, for a small batch when the hub is
//! free, straight in with [`Hub::try_push_batch`] (it never waits). The ring lock is only ever held for a
//! copy or a small render, never across I/O or an await.

use crate::metrics::Metrics;
use bytes::{BufMut, Bytes, BytesMut};
use migwatch_shared::wire::{Clock, Event, Gap, Overflow, Sample};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

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
    /// Most events in one chunk a client renders itself (catching up).
    pub max_batch: usize,
    /// Most bytes of shared text in one chunk: a client catching up sends
    /// several chunks, each well under `client_queue_bytes`.
    pub max_chunk_bytes: usize,
    /// How long a client's queue may stay full before the client is cut
    /// off: one catching up waits for its connection to take data, one
    /// that has stopped reading is gone after this.
    pub overflow_grace: Duration,
    /// Shortest time between two chunks to one client.
    pub batch_window: Duration,
    /// A comment line is sent after this long without events, so proxies
    /// and the browser see the connection is alive.
    pub keep_alive: Duration,
    /// The `retry:` reconnect delay the browser is told to use.
    pub retry: Duration,
    /// Bytes of the newest events' rendered SSE text kept for live clients
    /// to share.
    pub shared_text_bytes: usize,
}

impl HubConfig {
    /// Defaults for a probe interval: 10 minutes of events, at least 1000.
    pub fn for_interval(interval: Duration) -> HubConfig {
        let per_10_min = 600_000_000 / interval.as_micros().max(1);
        HubConfig {
            capacity: per_10_min.clamp(1000, 10_000_000) as usize,
            client_queue: 1024,
            client_queue_bytes: 128 * 1024,
            max_batch: 512,
            max_chunk_bytes: 32 * 1024,
            overflow_grace: Duration::from_secs(1),
            batch_window: Duration::from_millis(10),
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(1),
            shared_text_bytes: 128 * 1024,
        }
    }
}

/// One ring entry in 24 bytes (a `(u64, Event)` pair takes 48): samples,
/// nearly every event, inline; the rarer kinds boxed. Ids are implicit
/// (the ring's ids are consecutive).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A `sample`; `rtt_us` is `u32::MAX` for a lost probe.
    Sample { seq: u64, sent_us: i64, rtt_us: u32 },
    /// A `clock` reading whose seq and offset fit 32 bits (all of them but
    /// a guest hours off or years of readings): 5 a second per target, so
    /// boxing them would cost a fleet's ring more than its samples.
    Clock {
        sent_us: i64,
        seq: u32,
        rtt_us: u32,
        offset_us: i32,
    },
    /// Any other event (a sample with an RTT of `u32::MAX` µs too).
    Other(Box<Event>),
}

impl Entry {
    const LOST: u32 = u32::MAX;

    fn new(ev: &Event) -> Entry {
        match *ev {
            Event::Sample(s) if s.rtt_us != Some(Entry::LOST) => Entry::Sample {
                seq: s.seq,
                sent_us: s.sent_us,
                rtt_us: s.rtt_us.unwrap_or(Entry::LOST),
            },
            Event::Clock(c) => match (u32::try_from(c.seq), i32::try_from(c.offset_us)) {
                (Ok(seq), Ok(offset_us)) => Entry::Clock {
                    sent_us: c.sent_us,
                    seq,
                    rtt_us: c.rtt_us,
                    offset_us,
                },
                _ => Entry::Other(Box::new(*ev)),
            },
            ev => Entry::Other(Box::new(ev)),
        }
    }

    fn event(&self) -> Event {
        match self {
            Entry::Sample {
                seq,
                sent_us,
                rtt_us,
            } => Event::Sample(Sample {
                seq: *seq,
                sent_us: *sent_us,
                rtt_us: (*rtt_us != Entry::LOST).then_some(*rtt_us),
            }),
            Entry::Clock {
                sent_us,
                seq,
                rtt_us,
                offset_us,
            } => Event::Clock(Clock {
                seq: u64::from(*seq),
                sent_us: *sent_us,
                rtt_us: *rtt_us,
                offset_us: i64::from(*offset_us),
            }),
            Entry::Other(ev) => **ev,
        }
    }
}

/// The SSE text of consecutive events, rendered once.
struct Chunk {
    /// Id of the first event in it.
    first_id: u64,
    text: Bytes,
    /// Where each event's text starts.
    starts: Box<[u32]>,
}

impl Chunk {
    /// The id after its last event.
    fn end_id(&self) -> u64 {
        self.first_id + self.starts.len() as u64
    }
}

struct Ring {
    events: VecDeque<Entry>,
    /// The id of `events[0]` (`next_id` when empty).
    first_id: u64,
    /// The id the next event gets; ids start at 1.
    next_id: u64,
    /// The newest events' text, ending at `next_id - 1`.
    chunks: VecDeque<Chunk>,
    chunk_bytes: usize,
    /// Events kept ([`HubConfig::capacity`], or as set since).
    capacity: usize,
}

/// The event hub. Cheap to share behind an `Arc`.
pub struct Hub {
    ring: Mutex<Ring>,
    /// Serialises pushers, so a batch is rendered outside the ring lock
    /// with the ids it will get.
    writer: Mutex<()>,
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

/// What one read for a client found after its cursor.
#[derive(Default)]
struct ReadOut {
    /// Events older than the shared text must be rendered by the client.
    events: Vec<(u64, Event)>,
    /// Shared text, in order (after `events`, which is then empty).
    pieces: Vec<Bytes>,
    /// The id of the last event read.
    last: u64,
    /// Stopped at a size limit: more is waiting now.
    more: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves the data consistent (every
    // mutation is a push/pop), so poisoning is safe to ignore.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// The SSE text of `evs`, numbered from `first`.
fn render(first: u64, evs: &[Event]) -> Chunk {
    let mut text = String::with_capacity(evs.len() * 96);
    let mut starts = Vec::with_capacity(evs.len());
    for (id, ev) in (first..).zip(evs) {
        starts.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        ev.write_sse(id, &mut text);
    }
    Chunk {
        first_id: first,
        text: Bytes::from(text),
        starts: starts.into_boxed_slice(),
    }
}

impl Hub {
    /// An empty hub.
    pub fn new(cfg: HubConfig) -> Arc<Hub> {
        let cfg = HubConfig {
            capacity: cfg.capacity.max(1),
            ..cfg
        };
        Arc::new(Hub {
            ring: Mutex::new(Ring {
                // Reserved, not touched: pages are used as the ring fills.
                events: VecDeque::with_capacity(cfg.capacity.min(1 << 20)),
                first_id: 1,
                next_id: 1,
                chunks: VecDeque::new(),
                chunk_bytes: 0,
                capacity: cfg.capacity,
            }),
            writer: Mutex::new(()),
            latest: watch::Sender::new(0),
            cfg,
        })
    }

    /// Numbers one event, stores it and wakes the clients. Returns its id.
    pub fn push(&self, ev: Event) -> u64 {
        self.push_batch(&[ev])
    }

    /// Numbers a batch of events, stores them, renders their SSE text once
    /// for every client, and wakes the clients. Returns the last id.
    pub fn push_batch(&self, evs: &[Event]) -> u64 {
        if evs.is_empty() {
            return self.latest_id();
        }
        let _writer = lock(&self.writer);
        // Only pushers change `next_id`, and they hold `writer`: render
        // outside the ring lock with the ids the batch will get.
        let first = lock(&self.ring).next_id;
        let chunk = self.live().then(|| render(first, evs));
        let last = self.append(&mut lock(&self.ring), evs, chunk);
        self.latest.send_replace(last);
        last
    }

    /// Like [`Hub::push_batch`], but gives up, storing nothing, rather
    /// than wait for a lock. Renders under the ring lock, so only for
    /// small batches.
    pub fn try_push_batch(&self, evs: &[Event]) -> bool {
        if evs.is_empty() {
            return true;
        }
        let Some(_writer) = try_lock(&self.writer) else {
            return false;
        };
        let Some(mut r) = try_lock(&self.ring) else {
            return false;
        };
        let chunk = self.live().then(|| render(r.next_id, evs));
        let last = self.append(&mut r, evs, chunk);
        drop(r);
        self.latest.send_replace(last);
        true
    }

    /// Whether any client is connected: with none, rendering shared text
    /// is wasted work (a client that connects later renders what it
    /// catches up on from the ring itself).
    fn live(&self) -> bool {
        self.latest.receiver_count() > 0
    }

    /// Stores a batch and its rendered text, if any (without it, the shared
    /// text is dropped: it must stay a contiguous run of the newest
    /// events). Returns the last id.
    fn append(&self, r: &mut Ring, evs: &[Event], chunk: Option<Chunk>) -> u64 {
        for ev in evs {
            if r.events.len() >= r.capacity {
                r.events.pop_front();
                r.first_id += 1;
            }
            r.events.push_back(Entry::new(ev));
        }
        r.next_id += evs.len() as u64;
        if r.events.is_empty() {
            r.first_id = r.next_id;
        }
        let Some(chunk) = chunk else {
            r.chunks.clear();
            r.chunk_bytes = 0;
            return r.next_id - 1;
        };
        r.chunk_bytes += chunk.text.len();
        r.chunks.push_back(chunk);
        while r.chunks.len() > 1 && r.chunk_bytes > self.cfg.shared_text_bytes {
            if let Some(old) = r.chunks.pop_front() {
                r.chunk_bytes -= old.text.len();
            }
        }
        r.next_id - 1
    }

    /// The id of the newest event, 0 before any.
    pub fn latest_id(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Copies up to `max` events after id `after` into `out`, for an
    /// in-process reader (the sidecar's own detector), and returns the id
    /// of the last one copied (`after` if none) and the gap, if events
    /// after `after` already left the ring.
    pub fn events_after(&self, after: u64, max: usize, out: &mut Vec<Event>) -> (u64, Option<Gap>) {
        let r = lock(&self.ring);
        let first = r.first_id;
        let gap = (after + 1 < first).then(|| Gap {
            from_id: after + 1,
            to_id: first - 1,
            missing: first - 1 - after,
        });
        let from = (after + 1).max(first);
        let start = usize::try_from(from - first).unwrap_or(usize::MAX);
        let before = out.len();
        out.extend(r.events.iter().skip(start).take(max).map(Entry::event));
        let n = (out.len() - before) as u64;
        let last = if n > 0 { from + n - 1 } else { from - 1 };
        (last.max(after), gap)
    }

    /// Shrinks (or grows) how many events the ring keeps, dropping the
    /// oldest at once: a reload that adds targets keeps every ring within
    /// the history memory budget.
    pub fn set_capacity(&self, capacity: usize) {
        let mut r = lock(&self.ring);
        let capacity = capacity.max(1);
        while r.events.len() > capacity {
            r.events.pop_front();
            r.first_id += 1;
        }
        r.events.shrink_to(capacity);
        r.capacity = capacity;
    }

    /// Reads what follows id `after` into `out`: the shared text if it
    /// reaches back that far, else up to `max` events from the ring. If
    /// events after `after` have already left the ring, returns the gap.
    fn read_after(&self, after: u64, out: &mut ReadOut) -> Option<Gap> {
        let (max, max_bytes) = (self.cfg.max_batch.max(1), self.cfg.max_chunk_bytes);
        out.events.clear();
        out.pieces.clear();
        out.last = after;
        out.more = false;
        let r = lock(&self.ring);
        let first = r.first_id;
        let gap = (after + 1 < first).then(|| Gap {
            from_id: after + 1,
            to_id: first - 1,
            missing: first - 1 - after,
        });
        let from = (after + 1).max(first);
        if from >= r.next_id {
            if gap.is_some() {
                out.last = first - 1;
            }
            return gap;
        }
        match r.chunks.front() {
            Some(c) if c.first_id <= from => {
                let i = r.chunks.partition_point(|c| c.end_id() <= from);
                let mut bytes = 0;
                for (n, c) in r.chunks.range(i..).enumerate() {
                    if n > 0 && bytes + c.text.len() > max_bytes {
                        out.more = true;
                        break;
                    }
                    let piece = if n == 0 {
                        let off = c.starts[(from - c.first_id) as usize] as usize;
                        c.text.slice(off..)
                    } else {
                        c.text.clone()
                    };
                    bytes += piece.len();
                    out.pieces.push(piece);
                    out.last = c.end_id() - 1;
                }
            }
            _ => {
                let start = usize::try_from(from - first).unwrap_or(usize::MAX);
                out.events.extend(
                    (from..)
                        .zip(r.events.iter().skip(start).take(max))
                        .map(|(id, e)| (id, e.event())),
                );
                out.last = out.events.last().map_or(from - 1, |(id, _)| *id);
                out.more = out.events.len() >= max && out.last + 1 < r.next_id;
            }
        }
        gap
    }

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
            max_chunk_bytes: 1 << 20,
            overflow_grace: Duration::from_millis(50),
            batch_window: Duration::from_millis(1),
            keep_alive: Duration::from_secs(60),
            retry: Duration::from_secs(1),
            shared_text_bytes: 1 << 20,
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
    async fn text_is_rendered_only_while_someone_listens() {
        let hub = Hub::new(cfg(100));
        for q in 0..10 {
            hub.push(ev(q));
        }
        assert!(lock(&hub.ring).chunks.is_empty(), "rendered for nobody");
        let (_stop_tx, stop) = watch::channel(false);
        let mut s = Box::pin(hub.subscribe(Start::After(0), stop, Arc::new(Metrics::default())));
        hub.push_batch(&[ev(10), ev(11)]);
        assert_eq!(lock(&hub.ring).chunks.len(), 1);
        // The client renders the old events itself, then shares the text.
        let text = read_until(&mut s, |t| t.contains("id: 12\n")).await;
        assert_eq!(ids(&text), (1..=12).collect::<Vec<_>>());
        drop(s);
        // Its task notices the client left at its next read.
        hub.push(ev(12));
        tokio::time::timeout(Duration::from_secs(5), async {
            while hub.live() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                hub.push(ev(13));
            }
        })
        .await
        .expect("the client's receiver was never dropped");
        hub.push(ev(14));
        assert!(lock(&hub.ring).chunks.is_empty());
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

    #[test]
    fn a_ring_entry_is_24_bytes_and_round_trips() {
        assert!(std::mem::size_of::<Entry>() <= 24);
        let evs = [
            ev(7),
            Event::Sample(Sample {
                seq: 8,
                sent_us: -3,
                rtt_us: None,
            }),
            Event::Sample(Sample {
                seq: 9,
                sent_us: 1,
                rtt_us: Some(u32::MAX),
            }),
            Event::Tick(migwatch_shared::wire::Tick {
                now_us: 5,
                next_seq: 10,
            }),
        ];
        for e in evs {
            assert_eq!(Entry::new(&e).event(), e);
        }
    }

    /// The text of ids `from..=to` as one client renders it itself.
    fn rendered(evs: &[(u64, Event)]) -> String {
        let mut s = String::new();
        for (id, e) in evs {
            e.write_sse(*id, &mut s);
        }
        s
    }

    #[tokio::test]
    async fn shared_text_serves_any_cursor_with_the_same_bytes() {
        // Shared text for the newest ~10 events only; older ones come from
        // the ring, rendered by the client.
        let hub = Hub::new(HubConfig {
            shared_text_bytes: 600,
            ..cfg(1000)
        });
        let all: Vec<(u64, Event)> = (1..=60).map(|id| (id, ev(id - 1))).collect();
        for batch in all.chunks(7) {
            let evs: Vec<Event> = batch.iter().map(|(_, e)| *e).collect();
            hub.push_batch(&evs);
        }
        assert_eq!(hub.latest_id(), 60);
        for after in [0u64, 10, 49, 52, 55, 59] {
            let (_stop_tx, stop) = watch::channel(false);
            let mut s =
                Box::pin(hub.subscribe(Start::After(after), stop, Arc::new(Metrics::default())));
            let text = read_until(&mut s, |t| {
                t.contains(
                    "id: 60
",
                )
            })
            .await;
            let body = text
                .strip_prefix(
                    "retry: 1000

",
                )
                .unwrap();
            assert_eq!(body, rendered(&all[after as usize..]), "after {after}");
        }
        // A live client gets only what comes next, from the shared text.
        let (_stop_tx, stop) = watch::channel(false);
        let mut s = Box::pin(hub.subscribe(Start::Live, stop, Arc::new(Metrics::default())));
        let _ = read_until(&mut s, |t| t.contains("retry")).await;
        hub.push_batch(&[ev(60), ev(61)]);
        let text = read_until(&mut s, |t| {
            t.contains(
                "id: 62
",
            )
        })
        .await;
        assert_eq!(text, rendered(&[(61, ev(60)), (62, ev(61))]));
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
