//! The sidecar's timebase: Unix time that never steps.
//!
//! Every time the sidecar streams (a probe's `sent_us`, a tick's `now_us`,
//! a clock reading's send time, an announce's `at_us`) is read from one
//! [`Timebase`], anchored to the wall clock once, at start:
//! `anchor_wall + (CLOCK_MONOTONIC now − anchor_mono)`.
//!
//! Why not the wall clock: NTP or chrony may *step* `CLOCK_REALTIME` (seen:
//! 54 s back in the middle of a run). A stepped timeline splits or
//! stretches events, an RTT measured across the step is off by the step,
//! and — worst for a migration detector — the target's clock offset (its
//! ICMP timestamps against our time) jumps by the host's step, which reads
//! exactly like the guest's clock stepping: a pause or migration that never
//! happened. `CLOCK_MONOTONIC` (what [`Instant`] reads on Linux) is slewed
//! by NTP at the same rate as the wall clock, so the two agree except for
//! steps, and it is never stepped.
//!
//! The timebase is never re-anchored while the sidecar runs: a re-anchor
//! is itself a step of every stream's timeline, the very thing this avoids.
//! After a wall-clock step the streamed times differ from the wall clock by
//! the step; [`StepWatch`] logs each step once, counts it
//! (`migwatch_wallclock_steps_total`) and exports the difference
//! (`migwatch_timebase_offset_seconds`), so an operator sees it. A restart
//! (a new `run_id`, which clients treat as a new timeline anyway) re-anchors.
//!
//! Kernel receive stamps (`SO_TIMESTAMPNS`) are `CLOCK_REALTIME`: each one
//! is moved onto the monotonic clock through a reading of both clocks taken
//! right after the packet was read ([`receive_instant`]), and used only
//! when it lands between the probe's send and that read; else the read
//! time stands in (counted as a fallback).

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A change of `wall − timebase` larger than this between two checks is a
/// step. The two clocks are slewed together (`adjtimex` frequency and
/// offset corrections apply to both), so only a step (`clock_settime`,
/// `ADJ_SETOFFSET`, a leap second, a suspend of the host) moves their
/// difference; the bound only has to stay clear of the reading jitter of a
/// loaded machine (a preempted pair of reads: ms) and below the smallest
/// step worth telling (ntpd steps from 128 ms on; chrony as Debian ships it,
/// `makestep 1 3`, from 1 s).
pub const STEP_MIN: Duration = Duration::from_millis(100);

/// How often [`StepWatch`] compares the clocks.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A kernel stamp may lie this far after the reading taken once the packet
/// was read (the two clocks are read a few ns apart, the stamp's clock
/// may be coarser) and still count as agreeing.
const STAMP_SLACK: Duration = Duration::from_micros(50);

/// Both clocks, read back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// `CLOCK_MONOTONIC`.
    pub mono: Instant,
    /// `CLOCK_REALTIME`, ns since the Unix epoch.
    pub wall_ns: i64,
}

/// Where readings come from: the system's clocks, or a test's.
pub trait ClockSource {
    /// Reads both clocks.
    fn read(&self) -> Reading;
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClocks;

impl ClockSource for SystemClocks {
    fn read(&self) -> Reading {
        Reading {
            mono: Instant::now(),
            wall_ns: unix_ns(SystemTime::now()),
        }
    }
}

/// ns since the Unix epoch (negative before it; saturating).
pub fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Signed `a − b` in ns (saturating).
fn signed_ns(a: Instant, b: Instant) -> i64 {
    match a.checked_duration_since(b) {
        Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        None => -i64::try_from(b.duration_since(a).as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Unix time from the monotonic clock, anchored once (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timebase {
    anchor: Reading,
}

impl Timebase {
    /// A timebase that reads `anchor.wall_ns` at `anchor.mono`.
    pub fn anchored(anchor: Reading) -> Timebase {
        Timebase { anchor }
    }

    /// Unix time in ns at monotonic instant `mono`.
    pub fn ns(&self, mono: Instant) -> i64 {
        self.anchor
            .wall_ns
            .saturating_add(signed_ns(mono, self.anchor.mono))
    }

    /// Unix time in µs at monotonic instant `mono` (floored).
    pub fn us(&self, mono: Instant) -> i64 {
        self.ns(mono).div_euclid(1000)
    }

    /// Unix time in µs now.
    pub fn now_us(&self) -> i64 {
        self.us(Instant::now())
    }

    /// `timebase − wall` in ns at reading `r`: what the streamed times
    /// differ from the wall clock by (0 until the wall clock steps).
    pub fn offset_ns(&self, r: Reading) -> i64 {
        self.ns(r.mono).saturating_sub(r.wall_ns)
    }
}

/// The process's timebase, anchored at its first use (the prober starts
/// before anything is streamed). Every streamed time comes from it, so
/// samples, ticks, clock readings and announces share one timeline.
pub fn process() -> &'static Timebase {
    static TB: OnceLock<Timebase> = OnceLock::new();
    TB.get_or_init(|| Timebase::anchored(SystemClocks.read()))
}

/// When a reply reached the socket, on the monotonic clock: the kernel's
/// wall-clock stamp `kernel_ns` moved onto it through `read` (both clocks
/// read after the packet was read), if that lands in `[sent, read.mono]`;
/// else `read.mono`. The flag is true for that fallback.
///
/// The stamp's age, `read.wall_ns − kernel_ns`, is the time the reply
/// waited in the socket, unless the wall clock stepped in that wait
/// (between the stamp and the read, at most a scheduling delay, not the
/// whole RTT): a step forward makes the stamp look older than the send,
/// a step back makes it lie in the future, and both fall back. A step in
/// the RTT before the reply arrived changes nothing, unlike comparing the
/// stamp with a wall-clock send time.
pub fn receive_instant(kernel_ns: Option<i64>, read: Reading, sent: Instant) -> (Instant, bool) {
    let Some(k) = kernel_ns else {
        return (read.mono, true);
    };
    let age = read.wall_ns.saturating_sub(k);
    let slack = STAMP_SLACK.as_nanos() as i64;
    if age < -slack {
        return (read.mono, true);
    }
    let at = read
        .mono
        .checked_sub(Duration::from_nanos(age.max(0) as u64));
    match at {
        Some(at) if at >= sent => (at, false),
        _ => (read.mono, true),
    }
}

/// A wall-clock step, as [`StepWatch`] saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// How far the wall clock moved against the timebase, ns (negative:
    /// back).
    pub by_ns: i64,
    /// `timebase − wall` after it, ns.
    pub offset_ns: i64,
}

/// Compares the wall clock with the timebase every [`CHECK_EVERY`] and
/// reports each change of their difference beyond [`STEP_MIN`].
#[derive(Debug, Clone, Copy)]
pub struct StepWatch {
    /// `timebase − wall` at the last check.
    last_offset_ns: i64,
    next_check: Instant,
}

impl StepWatch {
    /// A watch whose first check is due [`CHECK_EVERY`] after `r`.
    pub fn new(tb: &Timebase, r: Reading) -> StepWatch {
        StepWatch {
            last_offset_ns: tb.offset_ns(r),
            next_check: r.mono + CHECK_EVERY,
        }
    }

    /// Whether a check is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_check
    }

    /// Compares the clocks at `r`: `Some` if the wall clock stepped since
    /// the last check. Either way the returned offset is the current one.
    pub fn check(&mut self, tb: &Timebase, r: Reading) -> (i64, Option<Step>) {
        self.next_check = r.mono + CHECK_EVERY;
        let offset_ns = tb.offset_ns(r);
        // The wall clock moved by minus the change of `timebase − wall`.
        let by_ns = self.last_offset_ns.saturating_sub(offset_ns);
        self.last_offset_ns = offset_ns;
        let step = (by_ns.unsigned_abs() > STEP_MIN.as_nanos() as u64)
            .then_some(Step { by_ns, offset_ns });
        (offset_ns, step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A test's clocks: monotonic time advances by `tick`, the wall clock
    /// with it plus whatever step the test applies.
    struct FakeClocks {
        mono: Cell<Instant>,
        wall_ns: Cell<i64>,
    }

    impl FakeClocks {
        fn new() -> FakeClocks {
            FakeClocks {
                mono: Cell::new(Instant::now()),
                wall_ns: Cell::new(1_796_000_000_000_000_000),
            }
        }
        fn advance(&self, d: Duration) {
            self.mono.set(self.mono.get() + d);
            self.wall_ns.set(self.wall_ns.get() + d.as_nanos() as i64);
        }
        fn step_wall(&self, by_ns: i64) {
            self.wall_ns.set(self.wall_ns.get() + by_ns);
        }
    }

    impl ClockSource for FakeClocks {
        fn read(&self) -> Reading {
            Reading {
                mono: self.mono.get(),
                wall_ns: self.wall_ns.get(),
            }
        }
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn the_timebase_follows_the_monotonic_clock_through_a_step() {
        let c = FakeClocks::new();
        let tb = Timebase::anchored(c.read());
        let t0 = tb.ns(c.read().mono);
        assert_eq!(t0, c.read().wall_ns);
        c.advance(Duration::from_secs(1));
        assert_eq!(tb.ns(c.read().mono), t0 + S);
        // NTP steps the wall clock 54 s back: the timebase goes on.
        c.step_wall(-54 * S);
        c.advance(Duration::from_millis(400));
        let after = tb.ns(c.read().mono);
        assert_eq!(after, t0 + S + 400_000_000);
        assert_eq!(tb.offset_ns(c.read()), 54 * S);
        // Instants before the anchor are fine too.
        let before = c.read().mono - Duration::from_secs(10);
        assert!(tb.ns(before) < t0);
        assert_eq!(tb.us(c.read().mono), after / 1000);
    }

    #[test]
    fn a_step_is_reported_once_with_its_size_and_slew_is_not() {
        let c = FakeClocks::new();
        let tb = Timebase::anchored(c.read());
        let mut w = StepWatch::new(&tb, c.read());
        assert!(!w.due(c.read().mono));
        c.advance(CHECK_EVERY);
        assert!(w.due(c.read().mono));
        assert_eq!(w.check(&tb, c.read()), (0, None));
        // A 50 ms correction (below the threshold) moves the offset only.
        c.step_wall(-50_000_000);
        c.advance(CHECK_EVERY);
        assert_eq!(w.check(&tb, c.read()), (50_000_000, None));
        // The 54 s step back: one step, then quiet.
        c.step_wall(-54 * S);
        c.advance(CHECK_EVERY);
        let (off, step) = w.check(&tb, c.read());
        assert_eq!(off, 54 * S + 50_000_000);
        assert_eq!(
            step,
            Some(Step {
                by_ns: -54 * S,
                offset_ns: 54 * S + 50_000_000
            })
        );
        c.advance(CHECK_EVERY);
        assert_eq!(w.check(&tb, c.read()).1, None);
        // A step forward is one too.
        c.step_wall(2 * S);
        c.advance(CHECK_EVERY);
        assert_eq!(w.check(&tb, c.read()).1.map(|s| s.by_ns), Some(2 * S));
    }

    #[test]
    fn kernel_stamps_are_used_when_they_agree_with_the_monotonic_clock() {
        let c = FakeClocks::new();
        let sent = c.read().mono;
        c.advance(Duration::from_micros(300));
        let stamp = c.read().wall_ns;
        // Read 5 ms later: the stamp says when it arrived.
        c.advance(Duration::from_millis(5));
        let (at, fell_back) = receive_instant(Some(stamp), c.read(), sent);
        assert!(!fell_back);
        assert_eq!(at - sent, Duration::from_micros(300));
        // No stamp: the read time.
        assert_eq!(receive_instant(None, c.read(), sent), (c.read().mono, true));
    }

    #[test]
    fn a_step_before_the_reply_arrived_leaves_the_rtt_right() {
        // The old way (stamp minus wall-clock send time) was off by the
        // step here; the stamp's age is not.
        let c = FakeClocks::new();
        let sent = c.read().mono;
        c.advance(Duration::from_micros(100));
        c.step_wall(-54 * S);
        c.advance(Duration::from_micros(200));
        let stamp = c.read().wall_ns;
        c.advance(Duration::from_micros(50));
        let (at, fell_back) = receive_instant(Some(stamp), c.read(), sent);
        assert!(!fell_back);
        assert_eq!(at - sent, Duration::from_micros(300));
    }

    #[test]
    fn a_step_between_the_stamp_and_the_read_falls_back() {
        let c = FakeClocks::new();
        let sent = c.read().mono;
        c.advance(Duration::from_micros(300));
        let stamp = c.read().wall_ns;
        // Back: the stamp lies in the future of the read.
        c.step_wall(-S);
        c.advance(Duration::from_micros(20));
        assert_eq!(
            receive_instant(Some(stamp), c.read(), sent),
            (c.read().mono, true)
        );
        // Forward: the stamp looks older than the send.
        c.step_wall(2 * S);
        assert_eq!(
            receive_instant(Some(stamp), c.read(), sent),
            (c.read().mono, true)
        );
    }

    #[test]
    fn the_process_timebase_is_one_and_never_goes_back() {
        let a = process();
        assert!(std::ptr::eq(a, process()));
        let mut last = a.now_us();
        for _ in 0..1000 {
            let t = a.now_us();
            assert!(t >= last, "{t} < {last}");
            last = t;
        }
    }
}
