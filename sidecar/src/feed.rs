//! The prober's way into the targets' hubs; it never blocks.
//!
//! The prober collects each target's new events and hands them over in one
//! batch at most every 10 ms. A small batch goes straight into the hubs
//! when none of their locks is taken and nothing is queued (saving a
//! thread wake-up per batch at low rates); anything else goes through a
//! bounded channel to [`Pump`], a plain thread, in order. A full channel
//! drops the batch and counts it: the prober never waits for the network
//! side.

use crate::targets::Target;
use migwatch_shared::wire::Event;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

/// Events for several targets, each target's in order.
pub type Batch = Vec<(Arc<Target>, Vec<Event>)>;

/// The prober's end.
pub struct Feed {
    tx: SyncSender<Batch>,
    /// Batches in the channel and not yet pushed: while there are any, a
    /// batch must queue behind them to keep each target's order.
    queued: Arc<AtomicUsize>,
}

/// The thread side of [`Feed`]: pushes queued batches into the hubs.
pub struct Pump {
    rx: Receiver<Batch>,
    queued: Arc<AtomicUsize>,
}

/// A feed whose channel holds up to `bound` batches.
pub fn feed(bound: usize) -> (Feed, Pump) {
    let (tx, rx) = std::sync::mpsc::sync_channel(bound);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Feed {
            tx,
            queued: queued.clone(),
        },
        Pump { rx, queued },
    )
}

impl Feed {
    /// Hands a batch over: straight into the hubs if `direct` (the caller
    /// has time to render it) and every hub is free, else through the
    /// channel. Returns the number of events dropped because the channel
    /// was full (the pump is not keeping up) or closed.
    pub fn send(&self, mut batch: Batch, direct: bool) -> usize {
        if direct && self.queued.load(Ordering::Acquire) == 0 {
            // Each target's events either all go in now or all queue, and
            // nothing is queued, so no target's order can change.
            batch.retain(|(t, evs)| !t.hub.try_push_batch(evs));
            if batch.is_empty() {
                return 0;
            }
        }
        let n = batch.iter().map(|(_, evs)| evs.len()).sum();
        self.queued.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(batch) {
            Ok(()) => 0,
            Err(_) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                n
            }
        }
    }
}

impl Pump {
    /// Pushes batches until the [`Feed`] is gone.
    pub fn run(self) {
        for batch in self.rx {
            for (t, evs) in &batch {
                t.hub.push_batch(evs);
            }
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
