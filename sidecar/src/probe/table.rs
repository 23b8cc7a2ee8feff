//! The outstanding-probe tables: pure bookkeeping, no I/O, so they are
//! tested without a network. Echo probes resolve into samples, late replies
//! and losses; timestamp probes into clock readings.

use super::timebase::{receive_instant, Reading, Timebase};
use crate::clock;
use migwatch_shared::wire::{Clock, Event, Late, Sample};
use std::time::{Duration, Instant};

/// The RTT of a reply sent at `sent` (monotonic): to the kernel's receive
/// stamp `kernel_ns` (wall clock) moved onto the monotonic clock through
/// `read`, both clocks read right after the packet was; to `read.mono` when
/// the stamp is missing or disagrees (a wall-clock step between the stamp
/// and the read, see [`receive_instant`]). The flag says it fell back.
fn measure_rtt(kernel_ns: Option<i64>, read: Reading, sent: Instant) -> (Duration, bool) {
    let (at, fell_back) = receive_instant(kernel_ns, read, sent);
    (
        at.saturating_duration_since(sent),
        fell_back && kernel_ns.is_some(),
    )
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

/// One outstanding (or recently resolved) probe, in 24 bytes: its send
/// time is a monotonic ns count; its Unix time comes from the timebase.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    seq: u64,
    /// Monotonic send time, ns after the table's epoch.
    sent_mono_ns: u64,
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
    /// Turns send times into streamed Unix times.
    tb: Timebase,
    timeout: Duration,
    /// Next seq to be sent.
    next_seq: u64,
    /// Oldest seq whose timeout has not been processed yet.
    next_expiry: u64,
    /// Replies whose kernel timestamp disagreed with the monotonic clock
    /// (a wall-clock step), timed by the monotonic clock instead.
    pub clock_fallbacks: u64,
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
    /// (no probe may be sent before it), streamed as Unix times from `tb`.
    pub fn new(timeout: Duration, slots: usize, epoch: Instant, tb: Timebase) -> Pending {
        let n = slots.max(2).next_power_of_two();
        Pending {
            slots: vec![Slot::default(); n].into_boxed_slice(),
            mask: n as u64 - 1,
            epoch,
            tb,
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

    /// A slot's send time as streamed: µs since the Unix epoch.
    fn sent_us(&self, s: &Slot) -> i64 {
        self.tb.us(self.mono(s))
    }

    /// The oldest seq whose timeout has not been processed yet.
    pub fn next_expiry(&self) -> u64 {
        self.next_expiry
    }

    /// Records that probe `seq` (the next one) left at `mono`.
    pub fn sent(&mut self, seq: u64, mono: Instant) {
        self.next_seq = seq + 1;
        let sent_mono_ns = u64::try_from(mono.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX);
        *self.slot_mut(seq) = Slot {
            seq,
            sent_mono_ns,
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
                    sent_us: self.sent_us(&s),
                    rtt_us: None,
                }));
            }
            self.next_expiry += 1;
        }
    }

    /// Resolves a verified reply to `seq` that reached the socket at
    /// `kernel_ns` (wall clock, if the kernel stamped it) and was read just
    /// before `read`.
    pub fn reply(&mut self, seq: u64, kernel_ns: Option<i64>, read: Reading) -> Outcome {
        if seq >= self.next_seq {
            return Outcome::Unknown;
        }
        let s = *self.slot(seq);
        if s.seq != seq || s.state == SlotState::Empty {
            return Outcome::Unknown;
        }
        let (rtt, fell_back) = measure_rtt(kernel_ns, read, self.mono(&s));
        self.clock_fallbacks += u64::from(fell_back);
        let rtt_us = micros_u32(rtt);
        let sent_us = self.sent_us(&s);
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
            sent_us: self.sent_us(self.slot(seq)),
            rtt_us: None,
        })
    }
}

/// Outstanding ICMP Timestamp probes. They are few (5 per second by
/// default), so a few dozen slots hold far more than a timeout's worth.
pub struct ClockTable {
    slots: Box<[Option<ClockSlot>]>,
    timeout: Duration,
    /// Our side of each reading: the offset is the target's clock against
    /// this one, so a step of our wall clock is not read as the target's.
    tb: Timebase,
}

#[derive(Debug, Clone, Copy)]
struct ClockSlot {
    seq: u64,
    originate_ms: u32,
    sent_mono: Instant,
}

impl ClockTable {
    /// An empty table of `slots` (at least 1); replies later than
    /// `timeout` are not used; our times come from `tb`.
    pub fn with_slots(timeout: Duration, slots: usize, tb: Timebase) -> ClockTable {
        ClockTable {
            slots: vec![None; slots.max(1)].into_boxed_slice(),
            timeout,
            tb,
        }
    }

    fn index(&self, seq16: u16) -> usize {
        usize::from(seq16) % self.slots.len()
    }

    /// Records timestamp probe `seq`, sent at `sent_mono`.
    pub fn sent(&mut self, seq: u64, originate_ms: u32, sent_mono: Instant) {
        let i = self.index(seq as u16);
        self.slots[i] = Some(ClockSlot {
            seq,
            originate_ms,
            sent_mono,
        });
    }

    /// Resolves a reply into a `clock` event, if it answers a probe of ours
    /// in time and carries a standard timestamp. Each probe resolves once.
    pub fn reply(
        &mut self,
        r: &clock::Reply,
        kernel_ns: Option<i64>,
        read: Reading,
    ) -> Option<Event> {
        let i = self.index(r.seq16);
        let slot = &mut self.slots[i];
        let s = (*slot).filter(|s| s.seq as u16 == r.seq16 && s.originate_ms == r.originate_ms)?;
        *slot = None;
        let (rtt, _) = measure_rtt(kernel_ns, read, s.sent_mono);
        if rtt > self.timeout {
            return None;
        }
        let sent_us = self.tb.us(s.sent_mono);
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

    const R0: i64 = 1_700_000_000_000_000_000;

    /// A timebase reading `R0` at `t0`, and a reading of both clocks at
    /// `t0 + after` with the wall clock `step_ns` off the timebase.
    fn clocks(t0: Instant) -> (Timebase, impl Fn(Duration, i64) -> Reading) {
        let tb = Timebase::anchored(Reading {
            mono: t0,
            wall_ns: R0,
        });
        (tb, move |after: Duration, step_ns: i64| Reading {
            mono: t0 + after,
            wall_ns: R0 + after.as_nanos() as i64 + step_ns,
        })
    }

    #[test]
    fn pending_answers_expires_reports_late_and_duplicates() {
        let t0 = Instant::now();
        let (tb, at) = clocks(t0);
        let ms = Duration::from_millis;
        let mut p = Pending::new(ms(100), 1024, t0, tb);
        for k in 0..3 {
            p.sent(k, t0 + ms(10 * k));
        }
        // seq 0 answered in 1 ms by the kernel stamp, read at 2 ms.
        let stamp = at(ms(1), 0).wall_ns;
        match p.reply(0, Some(stamp), at(ms(2), 0)) {
            Outcome::Answered(Event::Sample(s)) => {
                assert_eq!(s.rtt_us, Some(1000));
                assert_eq!(s.sent_us, R0 / 1000);
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(p.reply(0, Some(stamp), at(ms(2), 0)), Outcome::Duplicate);
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
            p.reply(1, Some(at(ms(400), 0).wall_ns), at(ms(400), 0)),
            Outcome::Late(Event::Late(Late {
                seq: 1,
                rtt_us: 390_000
            }))
        );
        // Unsent seqs are unknown.
        assert_eq!(p.reply(99, None, at(ms(0), 0)), Outcome::Unknown);
        assert_eq!(p.clock_fallbacks, 0);
    }

    #[test]
    fn a_wall_clock_step_moves_neither_send_times_nor_rtts() {
        let t0 = Instant::now();
        let (tb, at) = clocks(t0);
        let us = Duration::from_micros;
        let mut p = Pending::new(Duration::from_secs(1), 1024, t0, tb);
        p.sent(0, t0);
        // The wall clock stepped 54 s back after the send, before the
        // reply came: the stamp and the read agree, the RTT is 300 µs.
        let back = -54_000_000_000;
        let stamp = at(us(300), back).wall_ns;
        match p.reply(0, Some(stamp), at(us(320), back)) {
            Outcome::Answered(Event::Sample(s)) => assert_eq!(s.rtt_us, Some(300)),
            o => panic!("{o:?}"),
        }
        assert_eq!(p.clock_fallbacks, 0);
        // A probe sent after the step still reads on the timebase's line.
        p.sent(1, t0 + Duration::from_millis(10));
        // The wall clock jumped 5 s ahead between the stamp and the read:
        // the stamp disagrees, the monotonic read time stands in.
        let stamp = at(Duration::from_millis(10) + us(300), back).wall_ns;
        let read = at(Duration::from_millis(10) + us(310), back + 5_000_000_000);
        match p.reply(1, Some(stamp), read) {
            Outcome::Answered(Event::Sample(s)) => {
                assert_eq!(s.rtt_us, Some(310));
                assert_eq!(s.sent_us, R0 / 1000 + 10_000);
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(p.clock_fallbacks, 1);
    }

    #[test]
    fn a_host_clock_step_is_not_a_target_clock_step() {
        // A target whose clock runs 12 ms ahead of ours; replies take
        // 400 µs; our wall clock steps 54 s back between two readings.
        let t0 = Instant::now();
        let (tb, at) = clocks(t0);
        let mut table = ClockTable::with_slots(Duration::from_secs(1), 8, tb);
        let target_ms = |r: Reading| -> u32 {
            // The target's clock: true (unstepped) time + 12 ms.
            let true_ns = tb.ns(r.mono) + 12_000_000;
            ((true_ns / 1_000_000).rem_euclid(86_400_000)) as u32
        };
        let mut offsets = vec![];
        for (j, step) in [(0u64, 0i64), (1, -54_000_000_000)] {
            let sent = Duration::from_millis(200 * j);
            table.sent(j, 77, t0 + sent);
            let there = at(sent + Duration::from_micros(200), step);
            let reply = clock::Reply {
                seq16: j as u16,
                originate_ms: 77,
                receive_ms: target_ms(there),
                transmit_ms: target_ms(there),
            };
            let stamp = at(sent + Duration::from_micros(400), step).wall_ns;
            let read = at(sent + Duration::from_micros(420), step);
            match table.reply(&reply, Some(stamp), read) {
                Some(Event::Clock(c)) => {
                    assert_eq!(c.rtt_us, 400);
                    assert_eq!(c.sent_us, R0 / 1000 + 200_000 * j as i64);
                    offsets.push(c.offset_us);
                }
                e => panic!("{e:?}"),
            }
        }
        // Within the target's millisecond quantisation of each other, and
        // nowhere near the 54 s step.
        assert!((offsets[0] - offsets[1]).abs() <= 1000, "{offsets:?}");
        assert!((offsets[0] - 12_000).abs() <= 1000, "{offsets:?}");
    }
}
