//! The prober: raw ICMP echo through pnet on an absolute schedule, exact
//! reply matching, and kernel receive timestamps, for every target from
//! one thread and one socket.
//!
//! One thread, `probe`, does everything on the hot path, as `fping` does:
//! * one schedule interleaves every target: target `i`'s probe `k` is due
//!   at `origin_i + k × interval_i` (so a late wake-up never shifts later
//!   probes), with the origins spread evenly over the interval; timestamp
//!   probes, timeouts and quiet-stream ticks are entries of the same
//!   schedule (a binary heap), so a dead target costs what a live one does;
//! * it reads the one raw socket with a non-blocking `recvmsg`: once right
//!   after each send (on a veth or LAN path the reply is often queued
//!   already), and everything queued at each scheduled wake-up. Between
//!   wake-ups at most [`READ_DELAY_MAX`] apart it just sleeps: replies
//!   carry the kernel's receive timestamp (`SO_TIMESTAMPNS`), so reading
//!   them later changes no RTT. For longer waits it sleeps in `ppoll` on the
//!   socket. Each packet goes to the target whose address sent it, and is
//!   checked there against that target's identifier, cookie and seq;
//! * it declares a probe lost at `send + timeout`, from this schedule (its
//!   sleeps are nanosecond hrtimers), never from socket timeouts.
//!
//! One socket for all targets matters: every raw ICMP socket on a host
//! receives every echo reply on it, so N single-target processes do N²
//! receive work (docs/BENCHMARKS.md).
//!
//! Resolved probes leave as [`Event`]s, in batches, through a bounded
//! channel with `try_send`: the prober never waits for the network side.
//! The set of targets changes only through [`Prober::set_targets`] (a
//! targets-file reload); targets it keeps are not disturbed.
//!
//! Every time it streams is read from the [`timebase`] (Unix time that
//! follows the monotonic clock, anchored at start), never from the wall
//! clock, which NTP may step.

pub mod echo;
mod schedule;
pub mod socket;
pub mod table;
pub mod target;
pub mod timebase;

pub use echo::{build_request, match_reply, Matched, Reject, PAYLOAD_LEN};
pub use socket::{idents_in_use, OpenError, RunKeys, Socket};

use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::targets::Target;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Events wait at most this long in the prober before they are handed to
/// the stream, in one batch (about one SSE batch window): at 1 kHz the
/// hub's thread wakes about 100 times a second, not 1000–2000, and at
/// 100 Hz for every other probe.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// A batch this small is stored by the prober itself when the hub is
/// free (rendering it takes a few µs), sparing the pump thread a
/// wake-up; larger ones, and any when the next send is near, go to the
/// pump.
const DIRECT_MAX: usize = 8;
/// ... and only with at least this much time before the next wake-up.
const DIRECT_SPARE: Duration = Duration::from_micros(500);
/// A batch is handed over at once when it reaches this many events.
const MAX_BATCH: usize = 1024;
/// Replies are read at the prober's next scheduled wake-up when that is at
/// most this far off (so a sample reaches the stream at most this much
/// later); for longer waits it watches the socket and wakes on a reply.
const READ_DELAY_MAX: Duration = Duration::from_millis(20);
/// Packets read in one go before the schedule is checked again.
const DRAIN_MAX: usize = 256;
/// The longest wait, so `stop` is noticed within it.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// The handle to the running prober thread.
pub struct Prober {
    thread: JoinHandle<()>,
    set: SyncSender<Vec<Arc<Target>>>,
}

impl Prober {
    /// Replaces the set of targets: new ones start (seq 0, a place of
    /// their own in the schedule), removed ones stop, the others go on as
    /// if nothing happened. Fails only if the prober has stopped.
    pub fn set_targets(&self, targets: Vec<Arc<Target>>) -> Result<(), String> {
        self.set
            .send(targets)
            .map_err(|_| "the prober has stopped".to_string())
    }

    /// Waits for the thread to finish (after `stop` was set).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Starts probing `targets` in one thread, `probe`. Events go to `out` in
/// batches; `stop` ends the thread within about 100 ms.
pub fn start(
    socket: Socket,
    targets: Vec<Arc<Target>>,
    out: Feed,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> io::Result<Prober> {
    // A reload is rare; one waiting is plenty (the next replaces it).
    let (set, sets): (_, Receiver<Vec<Arc<Target>>>) = std::sync::mpsc::sync_channel(4);
    let thread = std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let Socket { tx, rx, .. } = socket;
            let fd = rx.socket.fd;
            // pnet's receiver shares the fd with the sender; keep it alive
            // while the fd is read directly.
            let _rx = rx;
            schedule::run(tx, fd, targets, sets, &out, &metrics, &stop);
        })?;
    Ok(Prober { thread, set })
}
