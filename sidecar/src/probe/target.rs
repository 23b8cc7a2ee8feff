//! One target as the prober sees it: its keys, its place in the shared
//! schedule, its two outstanding-probe tables and its unflushed events.
//! Pure bookkeeping; the socket is the caller's.

use super::echo::match_reply;
use super::echo::Reject;
use super::socket::RunKeys;
use super::table::{ClockTable, Outcome, Pending};
use super::timebase::{Reading, Timebase};
use crate::clock;
use crate::metrics::TargetMetrics;
use crate::targets::Target;
use migwatch_shared::wire::{Event, Sample, Skip, Tick};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The schedule never bursts more than this far behind: after a longer
/// stall (a suspended process) the missed slots are reported in a `skip`
/// event and not sent, rather than flooded.
pub const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// Slots of a target's timestamp table: 5 probes a second and a timeout of
/// at most 60 s leave far fewer outstanding than this in practice; a slot
/// reused before its reply came only loses that one reading.
const CLOCK_SLOTS: usize = 64;

/// What a verified reply answers.
#[derive(Debug, Clone, Copy)]
pub enum What {
    /// Echo probe with this 64-bit seq.
    Echo(u64),
    /// A timestamp probe.
    Clock(clock::Reply),
}

/// What a packet from `target` is, if it is a reply of ours.
pub fn classify(packet: &[u8], target: Ipv4Addr, keys: RunKeys) -> Option<What> {
    match match_reply(packet, target, keys) {
        Ok(m) => Some(What::Echo(m.seq)),
        Err(Reject::NotEchoReply) => {
            clock::parse_reply(packet, target, keys.ident).map(What::Clock)
        }
        Err(_) => None,
    }
}

/// The timestamp request's originate field for probe `j`: 31 bits keyed by
/// the run's cookie, in place of the time of day (the target only copies
/// it back, and the offset uses our own send time). A reply must echo it,
/// so timestamp replies are matched on identifier, sequence and these 31
/// bits, not on a guessable time in ms.
pub fn originate_key(j: u64, cookie: u64) -> u32 {
    let mut z = j ^ cookie.rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) & 0x7FFF_FFFF) as u32
}

/// A target being probed.
pub struct ProbeTarget {
    /// The shared side: hub, counters, name.
    pub target: Arc<Target>,
    /// Its address.
    pub addr: Ipv4Addr,
    /// What its replies must echo.
    pub keys: RunKeys,
    /// When its seq 0 was (or would have been) due.
    pub origin: Instant,
    interval_ns: u64,
    catch_up_slots: u64,
    /// The next echo seq.
    pub k: u64,
    clock_ns: Option<u64>,
    /// The next timestamp seq.
    pub j: u64,
    /// Outstanding echo probes.
    pub pending: Pending,
    /// Outstanding timestamp probes.
    pub clocks: ClockTable,
    /// Events not yet handed to the hub.
    pub batch: Vec<Event>,
    /// When it last emitted an event (quiet spells get ticks).
    pub last_emit: Instant,
    /// A tick is due after this long without events.
    pub quiet: Duration,
    /// Whether a timeout check is scheduled.
    pub expire_scheduled: bool,
    /// The slot's generation, so stale schedule entries are ignored.
    pub gen: u32,
    /// Where its streamed times come from.
    tb: Timebase,
}

impl ProbeTarget {
    /// A target whose seq 0 is due at `origin`, its times streamed from
    /// `tb`.
    pub fn new(
        target: Arc<Target>,
        keys: RunKeys,
        origin: Instant,
        gen: u32,
        tb: Timebase,
    ) -> ProbeTarget {
        let s = &target.spec;
        let interval_ns = s.interval.as_nanos().max(1) as u64;
        ProbeTarget {
            addr: s.address,
            keys,
            origin,
            interval_ns,
            catch_up_slots: (MAX_CATCH_UP.as_nanos() as u64 / interval_ns).max(1),
            k: 0,
            clock_ns: s.clock_interval.map(|d| d.as_nanos().max(1) as u64),
            j: 0,
            pending: Pending::new(
                s.timeout,
                super::table::table_slots(s.interval, s.timeout),
                origin.min(Instant::now()),
                tb,
            ),
            clocks: ClockTable::with_slots(s.timeout, CLOCK_SLOTS, tb),
            batch: Vec::new(),
            last_emit: Instant::now(),
            quiet: (s.interval * 2).max(Duration::from_millis(20)),
            expire_scheduled: false,
            gen,
            tb,
            target,
        }
    }

    /// When echo probe `k` is due.
    pub fn due(&self, k: u64) -> Instant {
        self.origin + Duration::from_nanos(self.interval_ns.saturating_mul(k))
    }

    /// When timestamp probe `j` is due (half an interval after an echo
    /// probe, so the two interleave, and dithered within 1 ms so the
    /// target's millisecond quantisation averages out).
    pub fn clock_due(&self, j: u64) -> Option<Instant> {
        self.clock_ns.map(|c| {
            self.origin
                + Duration::from_nanos(self.interval_ns / 2)
                + Duration::from_nanos(c.saturating_mul(j))
                + Duration::from_micros(clock::dither_us(j, self.keys.cookie))
        })
    }

    /// Time between timestamp probes, in ns.
    pub fn clock_ns(&self) -> Option<u64> {
        self.clock_ns
    }

    /// Counters of this target.
    pub fn m(&self) -> &TargetMetrics {
        &self.target.metrics
    }

    /// Queues an event for the hub.
    pub fn emit(&mut self, ev: Event, now: Instant) {
        self.last_emit = now;
        self.batch.push(ev);
    }

    /// Before sending seq `k` at `now`: if the schedule is more than
    /// [`MAX_CATCH_UP`] behind, reports the slots it will not send in one
    /// `skip` event and moves past them. Returns how many were skipped.
    pub fn skip_if_far_behind(&mut self, now: Instant) -> u64 {
        let due = self.due(self.k);
        if due > now {
            return 0;
        }
        let behind = (now - due).as_nanos() as u64 / self.interval_ns;
        if behind <= self.catch_up_slots {
            return 0;
        }
        let first = self.k;
        self.k += behind;
        self.pending.skip_to(self.k);
        bump(&self.target.metrics.skipped, behind);
        self.emit(
            Event::Skip(Skip {
                first_seq: first,
                last_seq: self.k - 1,
            }),
            now,
        );
        behind
    }

    /// Declares lost every probe whose timeout has passed at `now`.
    pub fn expire(&mut self, now: Instant) {
        let mut lost = Vec::new();
        self.pending.expire(now, |ev| lost.push(ev));
        bump(&self.target.metrics.lost, lost.len() as u64);
        for ev in lost {
            self.emit(ev, now);
        }
    }

    /// Emits a tick if the stream has been quiet for [`Self::quiet`];
    /// returns when the next check is due.
    pub fn tick_if_quiet(&mut self, now: Instant) -> Instant {
        if now >= self.last_emit + self.quiet {
            let ev = Event::Tick(Tick {
                now_us: self.tb.now_us(),
                next_seq: self.k,
            });
            self.emit(ev, now);
        }
        self.last_emit + self.quiet
    }

    /// Resolves a verified reply stamped `kernel_ns` by the kernel (wall
    /// clock) and read just before `read`.
    pub fn resolve(&mut self, what: What, kernel_ns: Option<i64>, read: Reading) {
        let mono = read.mono;
        let seq = match what {
            What::Echo(seq) => seq,
            What::Clock(r) => {
                match self.clocks.reply(&r, kernel_ns, read) {
                    Some(ev) => {
                        bump(&self.target.metrics.clock_replies, 1);
                        self.emit(ev, mono);
                    }
                    None => bump(&self.target.metrics.foreign, 1),
                }
                return;
            }
        };
        match self.pending.reply(seq, kernel_ns, read) {
            Outcome::Answered(ev) => {
                bump(&self.target.metrics.replies, 1);
                if let Event::Sample(Sample {
                    rtt_us: Some(r), ..
                }) = ev
                {
                    self.target
                        .metrics
                        .rtt
                        .observe(Duration::from_micros(u64::from(r)));
                }
                self.emit(ev, mono);
            }
            Outcome::Late(ev) => {
                // Not yet expired by us: emit its loss first, so every
                // `late` follows the `sample` that reported it lost.
                if seq >= self.pending.next_expiry() {
                    bump(&self.target.metrics.lost, 1);
                    let lost = self.pending.lost_sample(seq);
                    self.emit(lost, mono);
                }
                bump(&self.target.metrics.late, 1);
                self.emit(ev, mono);
            }
            Outcome::Duplicate => bump(&self.target.metrics.duplicates, 1),
            Outcome::Unknown => bump(&self.target.metrics.foreign, 1),
        }
    }
}

fn bump(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originate_keys_differ_per_probe_and_per_run_and_stay_standard() {
        let a: Vec<u32> = (0..1000).map(|j| originate_key(j, 1)).collect();
        let b: Vec<u32> = (0..1000).map(|j| originate_key(j, 2)).collect();
        assert!(a.iter().all(|v| v & 0x8000_0000 == 0));
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), 1000);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y));
    }
}
