//! The outstanding-probe tables: pure bookkeeping, no I/O, so they are
//! tested without a network. Echo probes resolve into samples, late replies
//! and losses; timestamp probes into clock readings.

use crate::clock;
use migwatch_shared::wire::{Clock, Event, Late, Sample};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The RTT of a reply: the kernel's receive stamp against our send time,
/// unless the wall clock stepped in between (the stamp is then later than
/// the monotonic reading, which it can never be, or far earlier than any
/// scheduling delay explains); then the monotonic clock. The flag says
/// which.
fn measure_rtt(
    kernel_time: Option<SystemTime>,
    mono: Instant,
    sent_real: SystemTime,
    sent_mono: Instant,
) -> (Duration, bool) {
    let by_mono = mono.saturating_duration_since(sent_mono);
    match kernel_time.map(|k| k.duration_since(sent_real)) {
        Some(Ok(k)) if k <= by_mono + Duration::from_micros(50) => (k, false),
        _ => (by_mono, true),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum SlotState {
    #[default]
    Empty,
    Waiting,
    Answered,
    Lost,
    LateAnswered,
}

/// One outstanding (or recently resolved) probe, in 32 bytes: both send
/// times as plain nanosecond counts.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    seq: u64,
    /// Monotonic send time, ns after the table's epoch.
    sent_mono_ns: u64,
    /// Wall-clock send time, ns since the Unix epoch.
    sent_real_ns: i64,
    state: SlotState,
}

/// What a reply meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// In time: a sample with this RTT.
    Answered(Event),
    /// After the probe was declared lost: a `late` event.
    Late(Event),
    /// A second reply to the same probe.
    Duplicate,
    /// For a probe we no longer (or never) had.
    Unknown,
}

/// How long after its send a reply is still recognised (as `late` once
/// its timeout has passed), at least: the outstanding-probe table keeps
/// this many intervals, or 4 timeouts if longer, up to 65 536 intervals
/// (the 16-bit wire seq).
pub const LATE_HORIZON: Duration = Duration::from_secs(30);

/// Slots of the outstanding-probe table for a rate and timeout: a power of
/// two covering [`LATE_HORIZON`] (or 4 timeouts), between 256 and 65 536.
/// At 100 Hz that is 4096 slots (128 KiB), not a fixed 65 536 (2 MiB).
pub fn table_slots(interval: Duration, timeout: Duration) -> usize {
    let horizon = LATE_HORIZON.max(timeout.saturating_mul(4));
    let n = horizon.as_nanos() / interval.as_nanos().max(1) + 1;
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .clamp(256, 1 << 16)
        .next_power_of_two()
}

/// The outstanding-probe table: pure bookkeeping, no I/O, so it is tested
/// without a network. A reply is matched (or reported late) while its slot
/// has not been reused, i.e. for `slots` probe intervals.
pub struct Pending {
    slots: Box<[Slot]>,
    /// `slots.len() - 1` (the length is a power of two).
    mask: u64,
    /// Monotonic origin of the slots' send times.
    epoch: Instant,
    timeout: Duration,
    /// Next seq to be sent.
    next_seq: u64,
    /// Oldest seq whose timeout has not been processed yet.
    next_expiry: u64,
    /// Replies whose kernel timestamp disagreed with the monotonic clock
    /// (a wall-clock step), timed by the monotonic clock instead.
    pub clock_fallbacks: u64,
}

fn unix_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

fn from_unix_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// Whole microseconds, rounded to the nearest: iputils `ping` subtracts
/// two µs-truncated stamps, which is unbiased; truncating the difference
/// would read 0.5 µs low on average.
fn micros_u32(d: Duration) -> u32 {
    u32::try_from(d.as_nanos().saturating_add(500) / 1000).unwrap_or(u32::MAX)
}

impl Pending {
    /// An empty table of `slots` (rounded up to a power of two) for probes
    /// that time out after `timeout`, with send times counted from `epoch`
    /// (no probe may be sent before it).
    pub fn new(timeout: Duration, slots: usize, epoch: Instant) -> Pending {
        let n = slots.max(2).next_power_of_two();
        Pending {
            slots: vec![Slot::default(); n].into_boxed_slice(),
            mask: n as u64 - 1,
            epoch,
            timeout,
            next_seq: 0,
            next_expiry: 0,
            clock_fallbacks: 0,
        }
    }

    fn slot(&self, seq: u64) -> &Slot {
        &self.slots[(seq & self.mask) as usize]
    }

    fn slot_mut(&mut self, seq: u64) -> &mut Slot {
        &mut self.slots[(seq & self.mask) as usize]
    }

    fn mono(&self, s: &Slot) -> Instant {
        self.epoch + Duration::from_nanos(s.sent_mono_ns)
    }

    /// The oldest seq whose timeout has not been processed yet.
    pub fn next_expiry(&self) -> u64 {
        self.next_expiry
    }

    /// Records that probe `seq` (the next one) left now.
    pub fn sent(&mut self, seq: u64, mono: Instant, real: SystemTime) {
        self.next_seq = seq + 1;
        let sent_mono_ns = u64::try_from(mono.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX);
        *self.slot_mut(seq) = Slot {
            seq,
            sent_mono_ns,
            sent_real_ns: unix_ns(real),
            state: SlotState::Waiting,
        };
    }

    /// Skips seqs that were never sent (after a stall).
    pub fn skip_to(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
        self.next_expiry = self.next_expiry.max(self.next_seq);
    }

    /// When the oldest outstanding probe times out, if any is outstanding.
    pub fn next_deadline(&self) -> Option<Instant> {
        (self.next_expiry..self.next_seq).find_map(|q| {
            let s = self.slot(q);
            (s.seq == q && s.state == SlotState::Waiting).then(|| self.mono(s) + self.timeout)
        })
    }

    /// Declares lost every probe whose timeout has passed at `now`,
    /// calling `lost` with each one's sample, in seq order.
    pub fn expire(&mut self, now: Instant, mut lost: impl FnMut(Event)) {
        while self.next_expiry < self.next_seq {
            let q = self.next_expiry;
            let s = *self.slot(q);
            if s.seq == q && s.state == SlotState::Waiting {
                if self.mono(&s) + self.timeout > now {
                    return;
                }
                self.slot_mut(q).state = SlotState::Lost;
                lost(Event::Sample(Sample {
                    seq: q,
                    sent_us: s.sent_real_ns.div_euclid(1000),
                    rtt_us: None,
                }));
            }
            self.next_expiry += 1;
        }
    }

    /// Resolves a verified reply to `seq` that reached the socket at
    /// `kernel_time` (if the kernel stamped it) and was read at `mono`.
    pub fn reply(&mut self, seq: u64, kernel_time: Option<SystemTime>, mono: Instant) -> Outcome {
        if seq >= self.next_seq {
            return Outcome::Unknown;
        }
        let s = *self.slot(seq);
        if s.seq != seq || s.state == SlotState::Empty {
            return Outcome::Unknown;
        }
        let (sent_mono, sent_real) = (self.mono(&s), from_unix_ns(s.sent_real_ns));
        let (rtt, fell_back) = measure_rtt(kernel_time, mono, sent_real, sent_mono);
        self.clock_fallbacks += u64::from(fell_back);
        let rtt_us = micros_u32(rtt);
        let sent_us = s.sent_real_ns.div_euclid(1000);
        let out = match s.state {
            SlotState::Waiting if rtt <= self.timeout => Outcome::Answered(Event::Sample(Sample {
                seq,
                sent_us,
                rtt_us: Some(rtt_us),
            })),
            // Answered after its deadline but before the scheduler got to
            // expire it: report it as lost *and* late, like any other.
            SlotState::Waiting | SlotState::Lost => {
                Outcome::Late(Event::Late(Late { seq, rtt_us }))
            }
            SlotState::Answered | SlotState::LateAnswered => return Outcome::Duplicate,
            SlotState::Empty => return Outcome::Unknown,
        };
        self.slot_mut(seq).state = match out {
            Outcome::Answered(_) => SlotState::Answered,
            _ => SlotState::LateAnswered,
        };
        out
    }

    /// For a reply that came after its deadline while the probe was still
    /// waiting: the `sample` (lost) that must precede its `late` event.
    pub fn lost_sample(&self, seq: u64) -> Event {
        Event::Sample(Sample {
            seq,
            sent_us: self.slot(seq).sent_real_ns.div_euclid(1000),
            rtt_us: None,
        })
    }
}

/// Outstanding ICMP Timestamp probes. They are few (5 per second by
/// default), so a few dozen slots hold far more than a timeout's worth.
pub struct ClockTable {
    slots: Box<[Option<ClockSlot>]>,
    timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
struct ClockSlot {
    seq: u64,
    originate_ms: u32,
    sent_real: SystemTime,
    sent_mono: Instant,
}

impl ClockTable {
    /// An empty table of `slots` (at least 1); replies later than
    /// `timeout` are not used.
    pub fn with_slots(timeout: Duration, slots: usize) -> ClockTable {
        ClockTable {
            slots: vec![None; slots.max(1)].into_boxed_slice(),
            timeout,
        }
    }

    fn index(&self, seq16: u16) -> usize {
        usize::from(seq16) % self.slots.len()
    }

    /// Records timestamp probe `seq`.
    pub fn sent(&mut self, seq: u64, originate_ms: u32, sent_real: SystemTime, sent_mono: Instant) {
        let i = self.index(seq as u16);
        self.slots[i] = Some(ClockSlot {
            seq,
            originate_ms,
            sent_real,
            sent_mono,
        });
    }

    /// Resolves a reply into a `clock` event, if it answers a probe of ours
    /// in time and carries a standard timestamp. Each probe resolves once.
    pub fn reply(
        &mut self,
        r: &clock::Reply,
        kernel_time: Option<SystemTime>,
        mono: Instant,
    ) -> Option<Event> {
        let i = self.index(r.seq16);
        let slot = &mut self.slots[i];
        let s = (*slot).filter(|s| s.seq as u16 == r.seq16 && s.originate_ms == r.originate_ms)?;
        *slot = None;
        let (rtt, _) = measure_rtt(kernel_time, mono, s.sent_real, s.sent_mono);
        if rtt > self.timeout {
            return None;
        }
        let sent_us = unix_us(s.sent_real);
        let rtt_us = micros_u32(rtt);
        let offset_us = clock::offset_us(sent_us, sent_us + i64::from(rtt_us), r)?;
        Some(Event::Clock(Clock {
            seq: s.seq,
            sent_us,
            rtt_us,
            offset_us,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_answers_expires_reports_late_and_duplicates() {
        let t0 = Instant::now();
        let r0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ms = Duration::from_millis;
        let mut p = Pending::new(ms(100), 1024, t0);
        for k in 0..3 {
            p.sent(k, t0 + ms(10 * k), r0 + ms(10 * k));
        }
        // seq 0 answered in 1 ms, by the kernel stamp.
        match p.reply(0, Some(r0 + ms(1)), t0 + ms(2)) {
            Outcome::Answered(Event::Sample(s)) => assert_eq!(s.rtt_us, Some(1000)),
            o => panic!("{o:?}"),
        }
        assert_eq!(p.reply(0, Some(r0 + ms(1)), t0 + ms(2)), Outcome::Duplicate);
        assert_eq!(p.next_deadline(), Some(t0 + ms(110)));
        let mut lost = vec![];
        p.expire(t0 + ms(115), |e| lost.push(e));
        assert_eq!(
            lost,
            vec![Event::Sample(Sample {
                seq: 1,
                sent_us: 1_700_000_000_010_000,
                rtt_us: None
            })]
        );
        // seq 1 answered after its loss was reported: late, with its RTT.
        assert_eq!(
            p.reply(1, Some(r0 + ms(400)), t0 + ms(400)),
            Outcome::Late(Event::Late(Late {
                seq: 1,
                rtt_us: 390_000
            }))
        );
        // Unsent seqs are unknown.
        assert_eq!(p.reply(99, None, t0), Outcome::Unknown);
    }

    #[test]
    fn wall_clock_step_falls_back_to_monotonic() {
        let t0 = Instant::now();
        let r0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut p = Pending::new(Duration::from_secs(1), 1024, t0);
        p.sent(0, t0, r0);
        // The wall clock jumped 5 s ahead between send and receive.
        let out = p.reply(
            0,
            Some(r0 + Duration::from_secs(5)),
            t0 + Duration::from_micros(300),
        );
        match out {
            Outcome::Answered(Event::Sample(s)) => assert_eq!(s.rtt_us, Some(300)),
            o => panic!("{o:?}"),
        }
        assert_eq!(p.clock_fallbacks, 1);
    }
}
