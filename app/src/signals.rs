//! The confirming signals of one target, kept beside its samples: the
//! guest clock's offset readings (`clock` events, ICMP Timestamp) and the
//! layer-2 announces of its MAC (`announce` events). Both are bounded like
//! the sample ring, and reduced per pixel column for drawing.
//!
//! Plain Rust with no browser calls, so it is unit tested natively.
//!
//! The absolute clock offset is arbitrary (the guest's clock was never set
//! to ours), so the clock track shows the offset *relative to the first
//! readings in view*, in ms: a migration shows as a downward step of about
//! the downtime.

use migwatch_shared::wire::{Announce, AnnounceKind, Clock};
use migwatch_shared::Light;
use std::collections::VecDeque;

/// Most clock readings kept: two hours at one every 100 ms (24 bytes
/// each, about 1.7 MB).
pub const CLOCK_CAPACITY: usize = 72_000;

/// Most announce frames kept (a migration sends about ten).
pub const ANNOUNCE_CAPACITY: usize = 4_096;

/// How many of the first readings in view set the track's zero (their
/// median, so one reading off by its millisecond quantum does not shift
/// the whole track).
const REF_READINGS: usize = 5;

/// One reading in a column: (index in the window, relative ms, send time).
type Pick = (usize, f64, i64);
/// A column being reduced: (column, its lowest, its highest).
type Column = (i64, Pick, Pick);

/// Readings either side of the largest jump that measure it.
const STEP_SIDE: usize = 3;

/// One clock reading as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// When the timestamp request left, unix µs.
    pub sent_us: i64,
    /// The target's clock minus ours, µs.
    pub offset_us: i64,
    /// Round-trip time of the exchange, µs.
    pub rtt_us: u32,
}

/// One announce frame as kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Capture time, unix µs.
    pub at_us: i64,
    /// RARP or gratuitous ARP.
    pub kind: AnnounceKind,
}

/// Counts since the last clear.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalTotals {
    /// Clock readings received.
    pub clock: u64,
    /// RARP announces received.
    pub rarp: u64,
    /// Gratuitous-ARP announces received.
    pub garp: u64,
}

impl SignalTotals {
    /// Announce frames of both kinds.
    pub fn announces(&self) -> u64 {
        self.rarp + self.garp
    }
}

/// Clock readings and announces of one target, time-ordered and bounded.
#[derive(Debug, Clone)]
pub struct Signals {
    clock: VecDeque<Reading>,
    clock_cap: usize,
    announces: VecDeque<Marker>,
    totals: SignalTotals,
}

impl Default for Signals {
    fn default() -> Self {
        Signals::new(CLOCK_CAPACITY)
    }
}

/// Inserts `v` into `q` (sorted by `key`), usually at the back; drops the
/// oldest past `cap`. Returns `false` for an exact duplicate.
fn insert_sorted<T: Copy + PartialEq>(
    q: &mut VecDeque<T>,
    cap: usize,
    v: T,
    key: impl Fn(&T) -> i64,
) -> bool {
    let k = key(&v);
    let at = match q.back() {
        Some(b) if key(b) <= k => q.len(),
        None => 0,
        Some(_) => q.partition_point(|x| key(x) <= k),
    };
    // Equal keys sit just before `at`: a resent event is not kept twice.
    if q.range(..at)
        .rev()
        .take_while(|x| key(x) == k)
        .any(|x| *x == v)
    {
        return false;
    }
    if q.len() == q.capacity() {
        let len = q.len();
        let want = (len * 2).clamp(64, cap + 1).max(len + 1);
        q.reserve_exact(want - len);
    }
    q.insert(at, v);
    let excess = q.len().saturating_sub(cap);
    q.drain(..excess);
    true
}

impl Signals {
    /// Empty, keeping at most `clock_cap` clock readings (at least 16).
    pub fn new(clock_cap: usize) -> Self {
        Signals {
            clock: VecDeque::new(),
            clock_cap: clock_cap.clamp(16, CLOCK_CAPACITY),
            announces: VecDeque::new(),
            totals: SignalTotals::default(),
        }
    }

    /// Changes the bound on clock readings, dropping the oldest if needed.
    pub fn set_clock_capacity(&mut self, cap: usize) {
        self.clock_cap = cap.clamp(16, CLOCK_CAPACITY);
        let excess = self.clock.len().saturating_sub(self.clock_cap);
        self.clock.drain(..excess);
    }

    /// The bound on clock readings.
    pub fn clock_capacity(&self) -> usize {
        self.clock_cap
    }

    /// Forgets everything (a new sidecar run).
    pub fn clear(&mut self) {
        self.clock = VecDeque::new();
        self.announces = VecDeque::new();
        self.totals = SignalTotals::default();
    }

    /// Counts received.
    pub fn totals(&self) -> SignalTotals {
        self.totals
    }

    /// Clock readings held.
    pub fn clock_len(&self) -> usize {
        self.clock.len()
    }

    /// Announce frames held.
    pub fn announce_len(&self) -> usize {
        self.announces.len()
    }

    /// Adds a clock reading.
    pub fn push_clock(&mut self, c: &Clock) {
        let r = Reading {
            sent_us: c.sent_us,
            offset_us: c.offset_us,
            rtt_us: c.rtt_us,
        };
        if insert_sorted(&mut self.clock, self.clock_cap, r, |r| r.sent_us) {
            self.totals.clock += 1;
        }
    }

    /// Adds an announce frame.
    pub fn push_announce(&mut self, a: &Announce) {
        let m = Marker {
            at_us: a.at_us,
            kind: a.kind,
        };
        if insert_sorted(&mut self.announces, ANNOUNCE_CAPACITY, m, |m| m.at_us) {
            match a.kind {
                AnnounceKind::Rarp => self.totals.rarp += 1,
                AnnounceKind::Garp => self.totals.garp += 1,
            }
        }
    }

    /// The clock readings sent in `[from_us, to_us]`, oldest first.
    pub fn clock_window(&self, from_us: i64, to_us: i64) -> impl Iterator<Item = &Reading> + '_ {
        let a = self.clock.partition_point(|r| r.sent_us < from_us);
        let b = self.clock.partition_point(|r| r.sent_us <= to_us).max(a);
        self.clock.range(a..b)
    }

    /// The announces captured in `[from_us, to_us]`, oldest first.
    pub fn announces_in(&self, from_us: i64, to_us: i64) -> Vec<Marker> {
        let a = self.announces.partition_point(|m| m.at_us < from_us);
        let b = self.announces.partition_point(|m| m.at_us <= to_us).max(a);
        self.announces.range(a..b).copied().collect()
    }

    /// The clock track for `[from_us, to_us]` over `columns` pixel columns:
    /// offsets relative to the first readings in view, in ms, reduced to
    /// the lowest and highest per column (in the order they came).
    pub fn clock_frame(&self, from_us: i64, to_us: i64, columns: u32) -> ClockFrame {
        let columns = i64::from(columns.max(1));
        let span = (to_us - from_us).max(1);
        let mut f = ClockFrame {
            from_us,
            to_us,
            held: self.clock.len(),
            ..ClockFrame::default()
        };
        let mut first: Vec<i64> = self
            .clock_window(from_us, to_us)
            .take(REF_READINGS)
            .map(|r| r.offset_us)
            .collect();
        if first.is_empty() {
            return f;
        }
        crate::sort::by_key(&mut first, |x| *x);
        let zero = first[(first.len() - 1) / 2];
        f.zero_us = Some(zero);
        let rel = |us: i64| (us - zero) as f64 / 1000.0;
        let col_of =
            |t: i64| ((t - from_us).max(0).saturating_mul(columns) / span).min(columns - 1);
        // (column, (index, value) of min, (index, value) of max, time of each).
        let mut bucket: Option<Column> = None;
        let mut prev: Option<i64> = None;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let flush = |b: Option<Column>, out: &mut Vec<(i64, f64)>| {
            if let Some((_, mn, mx)) = b {
                let (a, b) = if mn.0 <= mx.0 { (mn, mx) } else { (mx, mn) };
                out.push((a.2, a.1));
                if a.0 != b.0 {
                    out.push((b.2, b.1));
                }
            }
        };
        // The largest jump between consecutive readings: (index after it, size).
        let mut jump: Option<(usize, i64)> = None;
        for (i, r) in self.clock_window(from_us, to_us).enumerate() {
            f.readings += 1;
            if let Some(p) = prev {
                let d = r.offset_us - p;
                if jump.is_none_or(|(_, s)| d.abs() > s.abs()) {
                    jump = Some((i, d));
                }
            }
            prev = Some(r.offset_us);
            let v = rel(r.offset_us);
            lo = lo.min(v);
            hi = hi.max(v);
            let c = col_of(r.sent_us);
            match &mut bucket {
                Some((bc, mn, mx)) if *bc == c => {
                    if v < mn.1 {
                        *mn = (i, v, r.sent_us);
                    }
                    if v > mx.1 {
                        *mx = (i, v, r.sent_us);
                    }
                }
                _ => {
                    flush(bucket.take(), &mut f.points);
                    bucket = Some((c, (i, v, r.sent_us), (i, v, r.sent_us)));
                }
            }
        }
        flush(bucket, &mut f.points);
        f.low_ms = lo;
        f.high_ms = hi;
        // Its size as the change of the median of up to three readings
        // either side, so one slow reply next to it does not set it.
        f.step_us = jump.map(|(i, _)| {
            let side = |skip: usize, take: usize| {
                let mut v: Vec<i64> = self
                    .clock_window(from_us, to_us)
                    .skip(skip)
                    .take(take)
                    .map(|r| r.offset_us)
                    .collect();
                crate::sort::by_key(&mut v, |x| *x);
                v[(v.len() - 1) / 2]
            };
            let before = i.min(STEP_SIDE);
            side(i, STEP_SIDE) - side(i - before, before)
        });
        f
    }
}

/// What the clock track draws for one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClockFrame {
    /// Window start, unix µs (the RTT chart's).
    pub from_us: i64,
    /// Window end, unix µs.
    pub to_us: i64,
    /// Readings held in all (0: the target sends none).
    pub held: usize,
    /// Readings in the window.
    pub readings: usize,
    /// The offset that is 0 on the track (median of the first readings in
    /// view), µs.
    pub zero_us: Option<i64>,
    /// `(send time, offset relative to zero in ms)`, at most two per column.
    pub points: Vec<(i64, f64)>,
    /// Lowest relative offset in view, ms.
    pub low_ms: f64,
    /// Highest relative offset in view, ms.
    pub high_ms: f64,
    /// The largest change between two consecutive readings in view, µs
    /// (negative: the guest clock fell behind), measured as the change of
    /// the median of up to three readings either side of it.
    pub step_us: Option<i64>,
    /// What the RTT chart shades in the window: detected migrations and
    /// every other yellow.
    pub bands: Vec<(i64, i64, Light)>,
    /// Announces in the window (as on the RTT chart).
    pub announces: Vec<Marker>,
}

/// Announce frames close together, drawn with one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceGroup {
    /// First frame's capture time, unix µs.
    pub first_us: i64,
    /// Last frame's capture time, unix µs.
    pub last_us: i64,
    /// RARP frames.
    pub rarp: u32,
    /// Gratuitous ARPs.
    pub garp: u32,
}

impl AnnounceGroup {
    /// `5 RARP + 5 GARP`, naming only the kinds present.
    pub fn label(&self) -> String {
        match (self.rarp, self.garp) {
            (0, g) => format!("{g} GARP"),
            (r, 0) => format!("{r} RARP"),
            (r, g) => format!("{r} RARP + {g} GARP"),
        }
    }
}

/// Groups time-ordered markers: a frame within `gap_us` of the previous one
/// joins its group.
pub fn announce_groups(markers: &[Marker], gap_us: i64) -> Vec<AnnounceGroup> {
    let mut out: Vec<AnnounceGroup> = Vec::new();
    for m in markers {
        let g = match out.last_mut() {
            Some(g) if m.at_us - g.last_us <= gap_us => g,
            _ => {
                out.push(AnnounceGroup {
                    first_us: m.at_us,
                    last_us: m.at_us,
                    rarp: 0,
                    garp: 0,
                });
                let n = out.len() - 1;
                &mut out[n]
            }
        };
        g.last_us = m.at_us;
        match m.kind {
            AnnounceKind::Rarp => g.rarp += 1,
            AnnounceKind::Garp => g.garp += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use migwatch_shared::wire::Mac;

    const T0: i64 = 1_763_000_000_000_000;
    const MAC: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    fn clock(j: i64, offset_us: i64) -> Clock {
        Clock {
            seq: j as u64,
            sent_us: T0 + j * 200_000,
            rtt_us: 300,
            offset_us,
        }
    }

    fn announce(at_us: i64, kind: AnnounceKind) -> Announce {
        Announce {
            at_us,
            kind,
            mac: MAC,
            previous_mac: None,
        }
    }

    /// 10 s of readings every 200 ms at +319.5 ms, then 370 ms behind.
    fn stepped() -> Signals {
        let mut s = Signals::default();
        for j in 0..50 {
            let off = if j < 25 { 319_500 } else { -50_500 };
            s.push_clock(&clock(j, off + (j % 3) * 500));
        }
        s
    }

    #[test]
    fn a_step_shows_relative_to_the_first_readings_in_view() {
        let s = stepped();
        let f = s.clock_frame(T0, T0 + 10_000_000, 1000);
        assert_eq!((f.held, f.readings), (50, 50));
        // Median of 319.5, 320.0, 320.5, 319.5, 320.0 ms.
        assert_eq!(f.zero_us, Some(320_000));
        assert_eq!(f.points.len(), 50, "one reading per column is kept");
        assert_eq!(f.points[0], (T0, -0.5));
        assert_eq!(f.step_us, Some(-370_000));
        assert!((f.low_ms - -370.5).abs() < 1e-9, "{}", f.low_ms);
        assert!((f.high_ms - 0.5).abs() < 1e-9, "{}", f.high_ms);
        // After the step the zero is the new offset: a flat track.
        let late = s.clock_frame(T0 + 6_000_000, T0 + 10_000_000, 100);
        assert_eq!(late.readings, 20);
        assert_eq!(late.zero_us, Some(-50_000));
        assert!(late.step_us.is_some_and(|d| d.abs() <= 1_000));
    }

    #[test]
    fn the_track_is_decimated_to_two_points_per_column() {
        let mut s = Signals::default();
        // An hour at 5 Hz into 100 columns.
        for j in 0..18_000 {
            s.push_clock(&clock(j, (j % 7) * 100));
        }
        let f = s.clock_frame(T0, T0 + 3_600_000_000, 100);
        assert_eq!(f.readings, 18_000);
        assert!(f.points.len() <= 200, "{}", f.points.len());
        assert!(f.points.iter().any(|p| p.1 == f.low_ms));
        assert!(f.points.iter().any(|p| p.1 == f.high_ms));
        // In time order.
        assert!(f.points.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn no_readings_is_an_empty_track() {
        let s = Signals::default();
        let f = s.clock_frame(T0, T0 + 1_000_000, 10);
        assert_eq!((f.held, f.readings, f.zero_us), (0, 0, None));
        assert!(f.points.is_empty());
        let s = stepped();
        let f = s.clock_frame(T0 - 5_000_000, T0 - 1, 10);
        assert_eq!((f.held, f.readings), (50, 0));
    }

    #[test]
    fn clock_readings_are_bounded_ordered_and_not_duplicated() {
        let mut s = Signals::new(100);
        for j in 0..1000 {
            s.push_clock(&clock(j, 0));
        }
        assert_eq!(s.clock_len(), 100);
        assert_eq!(s.totals().clock, 1000);
        assert!(s.clock.capacity() < 300, "{}", s.clock.capacity());
        // Out of order and resent.
        let mut s = Signals::default();
        for j in [0, 2, 1, 2] {
            s.push_clock(&clock(j, j));
        }
        let t: Vec<i64> = s
            .clock_window(i64::MIN, i64::MAX)
            .map(|r| r.offset_us)
            .collect();
        assert_eq!(t, vec![0, 1, 2]);
        assert_eq!(s.totals().clock, 3);
        s.set_clock_capacity(2);
        // The bound is at least 16.
        assert_eq!(s.clock_len(), 3);
        s.clear();
        assert_eq!((s.clock_len(), s.totals()), (0, SignalTotals::default()));
    }

    #[test]
    fn announces_are_kept_counted_and_grouped() {
        let mut s = Signals::default();
        // QEMU's burst: RARP at 0, 50, 200, 450, 800 ms; the guest's GARPs.
        for ms in [0, 50, 200, 450, 800] {
            s.push_announce(&announce(T0 + ms * 1000, AnnounceKind::Rarp));
        }
        for ms in [30, 130, 280, 530] {
            s.push_announce(&announce(T0 + ms * 1000, AnnounceKind::Garp));
        }
        // A lone GARP much later, and a resent frame.
        s.push_announce(&announce(T0 + 20_000_000, AnnounceKind::Garp));
        s.push_announce(&announce(T0, AnnounceKind::Rarp));
        let t = s.totals();
        assert_eq!((t.rarp, t.garp, t.announces()), (5, 5, 10));
        let all = s.announces_in(i64::MIN, i64::MAX);
        assert_eq!(all.len(), 10);
        assert!(all.windows(2).all(|w| w[0].at_us <= w[1].at_us));
        assert_eq!(all[1].kind, AnnounceKind::Garp);
        assert_eq!(s.announces_in(T0 + 1, T0 + 1_000_000).len(), 8);
        let g = announce_groups(&all, 2_000_000);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].rarp, g[0].garp), (5, 4));
        assert_eq!(g[0].label(), "5 RARP + 4 GARP");
        assert_eq!((g[0].first_us, g[0].last_us), (T0, T0 + 800_000));
        assert_eq!(g[1].label(), "1 GARP");
        for _ in 0..(ANNOUNCE_CAPACITY + 10) {
            s.push_announce(&announce(T0 + 30_000_000, AnnounceKind::Rarp));
        }
        // Identical frames are dropped as resends; distinct ones bounded.
        assert_eq!(s.announce_len(), 11);
        for i in 0..(ANNOUNCE_CAPACITY as i64 + 10) {
            s.push_announce(&announce(T0 + 40_000_000 + i, AnnounceKind::Rarp));
        }
        assert_eq!(s.announce_len(), ANNOUNCE_CAPACITY);
    }
}
