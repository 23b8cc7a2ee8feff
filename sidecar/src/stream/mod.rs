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
//!   text once, as one [`Bytes`](bytes::Bytes), and the newest `shared_text_bytes` of it
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
//! free, straight in with [`Hub::try_push_batch`] (it never waits). The
//! ring lock is only ever held for a copy or a small render, never across
//! I/O or an await.
//!
//! This module holds the hub and its pushers; `ring` keeps the events for
//! resume, `sse` renders and shares their text, `client` runs each SSE
//! client's task.

mod client;
mod ring;
mod sse;
#[cfg(test)]
mod testutil;

use migwatch_shared::wire::Event;
use ring::Ring;
use sse::render;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;
use tokio::sync::watch;

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
    /// The id of the newest event, 0 before any.
    pub fn latest_id(&self) -> u64 {
        *self.latest.borrow()
    }
}
