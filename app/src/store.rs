//! Sample history of one target: a bounded ring ordered by probe sequence,
//! time-window selection, per-pixel-column decimation and window stats.
//!
//! Plain Rust with no browser calls, so it is unit tested natively.
//!
//! Samples arrive almost in order: a lost probe is only reported once its
//! timeout has passed, after the replies of later probes. Keeping the ring
//! sorted by `seq` (an insert near the back) makes the send times sorted as
//! well, so a time window is two binary searches and a late reply finds its
//! probe by binary search too.

use migwatch_shared::wire::{Late, Sample};
use std::collections::VecDeque;

/// Default ring size: one hour at one probe every 10 ms.
pub const DEFAULT_CAPACITY: usize = 360_000;

/// Largest ring we ever keep (two hours at 100 Hz, about 17 MB).
pub const MAX_CAPACITY: usize = 720_000;

/// Smallest ring we ever keep, whatever the probe interval.
const MIN_CAPACITY: usize = 1_000;

/// How many samples to keep for `history_s` seconds of probes every
/// `interval_ms`, between [`MIN_CAPACITY`] and [`MAX_CAPACITY`].
pub fn capacity_for(interval_ms: f64, history_s: f64) -> usize {
    if !(interval_ms.is_finite() && interval_ms > 0.0) {
        return DEFAULT_CAPACITY;
    }
    let history_s = if history_s.is_finite() && history_s > 0.0 {
        history_s
    } else {
        3600.0
    };
    let n = (history_s * 1000.0 / interval_ms).ceil();
    // `as` saturates for floats, and the clamp bounds it anyway.
    (n as usize).clamp(MIN_CAPACITY, MAX_CAPACITY)
}

/// `rtt` value of a lost probe.
const LOST: u32 = u32::MAX;
/// `late` value of a probe without a late reply (a late RTT is never 0).
const NOT_LATE: u32 = 0;

/// One probe as kept in the ring: 24 bytes, so a full default ring is
/// about 8.6 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// Probe sequence number.
    pub seq: u64,
    /// Send time, unix µs.
    pub sent_us: i64,
    rtt: u32,
    late: u32,
}

impl Point {
    /// Round-trip time in µs, `None` when the probe was lost.
    pub fn rtt_us(&self) -> Option<u32> {
        (self.rtt != LOST).then_some(self.rtt)
    }

    /// RTT of the late reply to this (lost) probe, if one came.
    pub fn late_us(&self) -> Option<u32> {
        (self.late != NOT_LATE).then_some(self.late)
    }
}

/// Running totals since the store was created or last cleared. They count
/// what was received, so they keep growing when the ring drops old points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Distinct samples received.
    pub samples: u64,
    /// Of those, lost probes.
    pub lost: u64,
    /// Late replies received.
    pub late: u64,
    /// Samples received again for a seq already held (ignored).
    pub duplicates: u64,
}

/// The history of one target.
#[derive(Debug, Clone)]
pub struct Store {
    points: VecDeque<Point>,
    capacity: usize,
    totals: Totals,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(DEFAULT_CAPACITY)
    }
}

impl Store {
    /// An empty store keeping at most `capacity` points (at least 1).
    pub fn new(capacity: usize) -> Self {
        Store {
            points: VecDeque::new(),
            capacity: capacity.max(1),
            totals: Totals::default(),
        }
    }

    /// Changes the bound, dropping the oldest points if needed.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.evict();
    }

    /// The bound on held points.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every point and total (a new sidecar run restarts seq at 0).
    pub fn clear(&mut self) {
        self.points = VecDeque::new();
        self.totals = Totals::default();
    }

    /// Points held now.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is held.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Totals received.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Send time of the newest probe held.
    pub fn newest_us(&self) -> Option<i64> {
        self.points.back().map(|p| p.sent_us)
    }

    /// Sequence number of the newest probe held.
    pub fn newest_seq(&self) -> Option<u64> {
        self.points.back().map(|p| p.seq)
    }

    /// Sequence number of the oldest probe held.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.points.front().map(|p| p.seq)
    }

    /// Send time of the oldest probe held.
    pub fn oldest_us(&self) -> Option<i64> {
        self.points.front().map(|p| p.sent_us)
    }

    /// Median answered RTT and lost count of the probes sent in
    /// `[from_us, to_us]` (meant for a short window: it copies the RTTs).
    pub fn window_stats(&self, from_us: i64, to_us: i64) -> (Option<u32>, usize) {
        let mut rtts = Vec::new();
        let mut lost = 0;
        for p in self.window(from_us, to_us) {
            match p.rtt_us() {
                Some(r) => rtts.push(r),
                None => lost += 1,
            }
        }
        (median(&mut rtts), lost)
    }

    /// Adds a sample in seq order. Returns `false` (and keeps the held one)
    /// when this seq is already held.
    pub fn push_sample(&mut self, s: &Sample) -> bool {
        let p = Point {
            seq: s.seq,
            sent_us: s.sent_us,
            // An RTT of u32::MAX µs (71 min) cannot be a real answer.
            rtt: s.rtt_us.map_or(LOST, |r| r.min(LOST - 1)),
            late: NOT_LATE,
        };
        let at = match self.points.back() {
            Some(b) if b.seq < p.seq => self.points.len(),
            None => 0,
            Some(_) => {
                let i = self.points.partition_point(|q| q.seq < p.seq);
                if self.points.get(i).is_some_and(|q| q.seq == p.seq) {
                    self.totals.duplicates += 1;
                    return false;
                }
                i
            }
        };
        if self.points.len() == self.points.capacity() {
            // Grow by doubling but never past the bound, so a full ring
            // holds no spare half-ring of memory.
            let len = self.points.len();
            // +1: the insert comes before the eviction.
            let want = (len * 2).max(1024).min(self.capacity + 1).max(len + 1);
            self.points.reserve_exact(want - len);
        }
        self.points.insert(at, p);
        self.totals.samples += 1;
        if p.rtt == LOST {
            self.totals.lost += 1;
        }
        self.evict();
        true
    }

    /// Records a late reply on its probe if that is still held. Counted in
    /// the totals either way.
    pub fn push_late(&mut self, l: &Late) {
        self.totals.late += 1;
        let i = self.points.partition_point(|q| q.seq < l.seq);
        if let Some(p) = self.points.get_mut(i).filter(|p| p.seq == l.seq) {
            p.late = l.rtt_us.max(1);
        }
    }

    fn evict(&mut self) {
        let excess = self.points.len().saturating_sub(self.capacity);
        self.points.drain(..excess);
    }

    /// Index range of the points sent in `[from_us, to_us]`.
    fn range(&self, from_us: i64, to_us: i64) -> std::ops::Range<usize> {
        let a = self.points.partition_point(|p| p.sent_us < from_us);
        let b = self.points.partition_point(|p| p.sent_us <= to_us);
        a..b.max(a)
    }

    /// The probe sent nearest to `t_us`, if any is held.
    pub fn nearest(&self, t_us: i64) -> Option<Point> {
        let i = self.points.partition_point(|p| p.sent_us < t_us);
        let after = self.points.get(i);
        let before = i.checked_sub(1).and_then(|j| self.points.get(j));
        match (before, after) {
            (Some(b), Some(a)) if t_us - b.sent_us <= a.sent_us - t_us => Some(*b),
            (_, Some(a)) => Some(*a),
            (b, None) => b.copied(),
        }
    }

    /// The points sent in `[from_us, to_us]`, oldest first.
    pub fn window(&self, from_us: i64, to_us: i64) -> impl Iterator<Item = &Point> + '_ {
        self.points.range(self.range(from_us, to_us))
    }

    /// Reduces the window `[from_us, to_us]` to what `columns` pixel columns
    /// can show: per column the lowest and highest RTT in arrival order, a
    /// line broken at lost probes and at holes in the seq numbers, the
    /// columns that hold lost probes, and every late reply. Also counts and
    /// bounds the window's RTTs in the same pass. One pass over the window,
    /// no allocation per point: an hour at 100 Hz takes a few ms in wasm.
    pub fn decimate(&self, from_us: i64, to_us: i64, columns: u32) -> Frame {
        let columns = columns.max(1);
        let span = (to_us - from_us).max(1) as f64;
        // Exact integer maths, so `col_of` and `edge` agree on every
        // boundary: t >= edge(c) exactly when col_of(t) >= c. Spans and
        // column counts are far too small for these products to overflow;
        // saturating keeps nonsense input harmless.
        let span_i = (to_us - from_us).max(1);
        let cols_i = i64::from(columns);
        let col_of = |t: i64| -> u32 {
            let c = t.saturating_sub(from_us).max(0).saturating_mul(cols_i) / span_i;
            c.min(cols_i - 1) as u32
        };
        let col_mid =
            |c: u32| -> i64 { from_us + ((f64::from(c) + 0.5) / f64::from(columns) * span) as i64 };

        let mut f = Frame {
            from_us,
            to_us,
            ..Frame::default()
        };
        let mut line: Vec<(i64, u32)> = Vec::new();
        let mut min_rtt = u32::MAX;
        let mut bucket: Option<Bucket> = None;
        let mut prev_seq: Option<u64> = None;

        // The column changes only when a point crosses the next column's
        // left edge: no float maths for the other points of a column.
        let edge = |c: u32| -> i64 {
            let off = i64::from(c)
                .saturating_mul(span_i)
                .saturating_add(cols_i - 1)
                / cols_i;
            from_us.saturating_add(off)
        };
        let mut col = 0;
        let mut next_edge = i64::MIN;
        for p in self.window(from_us, to_us) {
            f.points += 1;
            let hole = prev_seq.is_some_and(|q| p.seq != q + 1);
            prev_seq = Some(p.seq);
            if p.sent_us >= next_edge {
                col = col_of(p.sent_us);
                next_edge = if col + 1 >= columns {
                    i64::MAX
                } else {
                    edge(col + 1)
                };
            }
            match p.rtt_us() {
                Some(rtt) => {
                    f.answered += 1;
                    min_rtt = min_rtt.min(rtt);
                    f.max_rtt_us = f.max_rtt_us.max(rtt);
                    if hole {
                        flush(&mut bucket, &mut line, col_mid);
                        end_line(&mut line, &mut f.lines);
                    }
                    match &mut bucket {
                        Some(b) if b.col == col => b.add(rtt),
                        _ => {
                            flush(&mut bucket, &mut line, col_mid);
                            bucket = Some(Bucket::new(col, rtt));
                        }
                    }
                }
                None => {
                    f.lost += 1;
                    flush(&mut bucket, &mut line, col_mid);
                    end_line(&mut line, &mut f.lines);
                    if f.lost_cols.last() != Some(&col) {
                        f.lost_cols.push(col);
                    }
                    if let Some(l) = p.late_us() {
                        f.late.push((p.sent_us, l));
                    }
                }
            }
        }
        flush(&mut bucket, &mut line, col_mid);
        end_line(&mut line, &mut f.lines);
        f.lost_ticks = f.lost_cols.iter().map(|&c| col_mid(c)).collect();
        f.min_rtt_us = (f.answered > 0).then_some(min_rtt);
        f
    }
}

/// Lowest and highest RTT within one pixel column, in the order they came.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    col: u32,
    min: (usize, u32),
    max: (usize, u32),
    n: usize,
}

impl Bucket {
    fn new(col: u32, rtt: u32) -> Self {
        Bucket {
            col,
            min: (0, rtt),
            max: (0, rtt),
            n: 1,
        }
    }

    fn add(&mut self, rtt: u32) {
        if rtt < self.min.1 {
            self.min = (self.n, rtt);
        }
        if rtt > self.max.1 {
            self.max = (self.n, rtt);
        }
        self.n += 1;
    }
}

fn flush(bucket: &mut Option<Bucket>, line: &mut Vec<(i64, u32)>, col_mid: impl Fn(u32) -> i64) {
    if let Some(b) = bucket.take() {
        let x = col_mid(b.col);
        let (first, second) = if b.min.0 <= b.max.0 {
            (b.min, b.max)
        } else {
            (b.max, b.min)
        };
        line.push((x, first.1));
        if second.0 != first.0 {
            line.push((x, second.1));
        }
    }
}

fn end_line(line: &mut Vec<(i64, u32)>, lines: &mut Vec<Vec<(i64, u32)>>) {
    if !line.is_empty() {
        lines.push(std::mem::take(line));
    }
}

/// Median of `v` (reordered in place), `None` when empty. For an even count
/// it is the lower middle value, a real sample rather than an average.
pub fn median(v: &mut [u32]) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    let mid = (v.len() - 1) / 2;
    Some(*v.select_nth_unstable(mid).1)
}

/// What one chart frame draws, already decimated, plus the window's stats.
/// Times are unix µs, RTTs µs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    /// Window start.
    pub from_us: i64,
    /// Window end.
    pub to_us: i64,
    /// Samples in the window (answered and lost): what this frame shows.
    pub points: usize,
    /// Answered samples in the window.
    pub answered: usize,
    /// Lost samples in the window.
    pub lost: usize,
    /// Polylines of `(time, rtt)`, broken at lost probes and seq holes.
    pub lines: Vec<Vec<(i64, u32)>>,
    /// Pixel columns holding at least one lost probe.
    pub lost_cols: Vec<u32>,
    /// The time at the middle of each of `lost_cols`.
    pub lost_ticks: Vec<i64>,
    /// Late replies: the probe's send time and the reply's RTT.
    pub late: Vec<(i64, u32)>,
    /// Highest answered RTT in the window (0 when none).
    pub max_rtt_us: u32,
    /// Lowest answered RTT in the window.
    pub min_rtt_us: Option<u32>,
    /// Detected migrations overlapping the window: start, end, level.
    pub bands: Vec<(i64, i64, migwatch_shared::Light)>,
    /// What the chart shades and why: the migrations of `bands` and the
    /// other yellows (RTT peaks); filled in by the caller.
    pub shades: Vec<crate::chart::Shade>,
    /// From here to the window's end, probes were sent but not reported
    /// yet (known from a `tick`); filled in by the caller.
    pub pending_from_us: Option<i64>,
    /// Layer-2 announces of the target in the window; filled in by the
    /// caller.
    pub announces: Vec<crate::signals::Marker>,
}

impl Frame {
    /// Polyline vertices this frame draws.
    pub fn vertices(&self) -> usize {
        self.lines.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_probe_to_a_time() {
        let mut s = Store::new(1000);
        assert_eq!(s.nearest(5), None);
        for q in 0..3u64 {
            s.push_sample(&Sample {
                seq: q,
                sent_us: q as i64 * 10_000,
                rtt_us: (q != 1).then_some(250),
            });
        }
        assert_eq!(s.nearest(-50).map(|p| p.seq), Some(0));
        assert_eq!(s.nearest(4_999).map(|p| p.seq), Some(0));
        assert_eq!(s.nearest(6_000).map(|p| p.seq), Some(1));
        assert_eq!(s.nearest(99_000).map(|p| p.seq), Some(2));
        assert_eq!(s.nearest(10_000).and_then(|p| p.rtt_us()), None);
    }

    const T0: i64 = 1_763_000_000_000_000;

    fn s(seq: u64, rtt: Option<u32>) -> Sample {
        Sample {
            seq,
            sent_us: T0 + seq as i64 * 10_000,
            rtt_us: rtt,
        }
    }

    fn seqs(st: &Store) -> Vec<u64> {
        st.window(i64::MIN, i64::MAX).map(|p| p.seq).collect()
    }

    #[test]
    fn capacity_is_an_hour_clamped() {
        assert_eq!(capacity_for(10.0, 3600.0), 360_000);
        assert_eq!(capacity_for(1.0, 3600.0), MAX_CAPACITY);
        assert_eq!(capacity_for(10.0, 7200.0), 720_000);
        assert_eq!(capacity_for(10.0, 600.0), 60_000);
        assert_eq!(capacity_for(100.0, 3600.0), 36_000);
        assert_eq!(capacity_for(10_000.0, 3600.0), MIN_CAPACITY);
        assert_eq!(capacity_for(0.0, 3600.0), DEFAULT_CAPACITY);
        assert_eq!(capacity_for(f64::NAN, 3600.0), DEFAULT_CAPACITY);
        assert_eq!(capacity_for(-3.0, 3600.0), DEFAULT_CAPACITY);
        assert_eq!(capacity_for(10.0, f64::NAN), 360_000);
    }

    #[test]
    fn late_lost_samples_are_inserted_in_seq_order() {
        let mut st = Store::default();
        for q in [0, 1, 3, 4] {
            st.push_sample(&s(q, Some(100)));
        }
        // Probe 2 timed out and is reported after 3 and 4 were answered.
        st.push_sample(&s(2, None));
        assert_eq!(seqs(&st), vec![0, 1, 2, 3, 4]);
        assert_eq!(st.totals().samples, 5);
        assert_eq!(st.totals().lost, 1);
    }

    #[test]
    fn duplicates_are_counted_and_ignored() {
        let mut st = Store::default();
        assert!(st.push_sample(&s(0, Some(1))));
        assert!(st.push_sample(&s(1, Some(1))));
        assert!(!st.push_sample(&s(0, None)));
        assert!(!st.push_sample(&s(1, Some(5))));
        assert_eq!(st.totals().samples, 2);
        assert_eq!(st.totals().lost, 0);
        assert_eq!(st.totals().duplicates, 2);
    }

    #[test]
    fn ring_is_bounded_and_drops_the_oldest() {
        let mut st = Store::new(100);
        for q in 0..1000 {
            st.push_sample(&s(q, Some(1)));
        }
        assert_eq!(st.len(), 100);
        assert_eq!(seqs(&st).first(), Some(&900));
        let mut big = Store::new(5000);
        for q in 0..20_000 {
            big.push_sample(&s(q, Some(1)));
        }
        assert!(
            big.points.capacity() < 5000 + 1024,
            "{}",
            big.points.capacity()
        );
        assert_eq!(st.totals().samples, 1000);
        st.set_capacity(10);
        assert_eq!(seqs(&st), (990..1000).collect::<Vec<_>>());
        st.clear();
        assert!(st.is_empty());
        assert_eq!(st.totals(), Totals::default());
        assert_eq!(st.capacity(), 10);
    }

    #[test]
    fn late_reply_marks_its_probe() {
        let mut st = Store::default();
        for q in 0..10 {
            st.push_sample(&s(q, (q != 5).then_some(100)));
        }
        st.push_late(&Late {
            seq: 5,
            rtt_us: 468_000,
        });
        // A late reply for a probe already dropped is still counted.
        st.push_late(&Late { seq: 99, rtt_us: 1 });
        let p: Vec<_> = st.window(i64::MIN, i64::MAX).copied().collect();
        assert_eq!(p[5].late_us(), Some(468_000));
        assert_eq!(p[5].rtt_us(), None);
        assert_eq!(p[4].late_us(), None);
        assert_eq!(st.totals().late, 2);
    }

    #[test]
    fn window_is_inclusive_by_send_time() {
        let mut st = Store::default();
        for q in 0..100 {
            st.push_sample(&s(q, Some(1)));
        }
        let w: Vec<u64> = st
            .window(T0 + 100_000, T0 + 200_000)
            .map(|p| p.seq)
            .collect();
        assert_eq!(w, (10..=20).collect::<Vec<_>>());
        assert_eq!(st.window(T0 + 5_000_000, T0 + 6_000_000).count(), 0);
        assert_eq!(st.window(T0 + 200_000, T0 + 100_000).count(), 0);
        assert_eq!(st.newest_us(), Some(T0 + 990_000));
        assert_eq!(st.newest_seq(), Some(99));
    }

    #[test]
    fn decimation_keeps_min_and_max_per_column_in_order() {
        let mut st = Store::default();
        // 10 samples in one column: the max comes before the min.
        let rtts = [5, 9, 7, 1, 3, 5, 5, 5, 5, 5];
        for (q, r) in rtts.iter().enumerate() {
            st.push_sample(&s(q as u64, Some(*r)));
        }
        let f = st.decimate(T0, T0 + 100_000, 1);
        assert_eq!(f.points, 10);
        assert_eq!(f.lines.len(), 1);
        let ys: Vec<u32> = f.lines[0].iter().map(|v| v.1).collect();
        assert_eq!(ys, vec![9, 1]);
        assert_eq!(f.max_rtt_us, 9);
        assert_eq!(f.min_rtt_us, Some(1));
        assert_eq!(st.window_stats(T0, T0 + 100_000), (Some(5), 0));
    }

    #[test]
    fn decimation_bounds_vertices_by_columns() {
        let mut st = Store::default();
        for q in 0..3000 {
            st.push_sample(&s(q, Some(100 + (q % 7) as u32)));
        }
        let f = st.decimate(T0, T0 + 30_000_000, 200);
        assert_eq!(f.points, 3000);
        assert_eq!(f.lines.len(), 1);
        assert!(f.vertices() <= 400, "{} vertices", f.vertices());
        assert!(f.vertices() >= 200);
    }

    #[test]
    fn an_hour_at_100_hz_decimates_to_two_vertices_per_column() {
        let mut st = Store::default();
        for q in 0..360_000u64 {
            let lost = q % 10_000 < 5;
            st.push_sample(&s(q, (!lost).then_some(200 + (q % 13) as u32 * 10)));
        }
        assert_eq!(st.len(), DEFAULT_CAPACITY);
        let f = st.decimate(T0, T0 + 3_600_000_000, 1200);
        assert_eq!(f.points, 360_000);
        assert_eq!(f.lost, 36 * 5);
        assert!(f.vertices() <= 2 * 1200 + 2 * 36, "{}", f.vertices());
        assert_eq!(f.lost_cols.len(), 36);
        assert_eq!((f.min_rtt_us, f.max_rtt_us), (Some(200), 320));
        // Every column's extremes survive: the peak is on the line.
        assert!(f.lines.iter().flatten().any(|v| v.1 == 320));
        assert!(f.lines.iter().flatten().any(|v| v.1 == 200));
    }

    #[test]
    fn lost_probes_break_the_line_and_become_ticks() {
        let mut st = Store::default();
        for q in 0..100 {
            let lost = (40..47).contains(&q);
            st.push_sample(&s(q, (!lost).then_some(100)));
        }
        st.push_late(&Late {
            seq: 40,
            rtt_us: 468_000,
        });
        let f = st.decimate(T0, T0 + 1_000_000, 100);
        assert_eq!(f.lines.len(), 2);
        assert_eq!(f.lost, 7);
        assert_eq!(f.answered, 93);
        assert_eq!(f.lost_cols, (40..47).collect::<Vec<_>>());
        assert_eq!(f.lost_ticks.len(), 7);
        assert_eq!(f.late, vec![(T0 + 400_000, 468_000)]);
        // The line stops before the burst and starts again after it.
        assert!(f.lines[0].iter().all(|v| v.0 < T0 + 400_000));
        assert!(f.lines[1].iter().all(|v| v.0 > T0 + 460_000));
    }

    #[test]
    fn holes_in_seq_break_the_line_without_lost_ticks() {
        let mut st = Store::default();
        for q in (0..10).chain(20..30) {
            st.push_sample(&s(q, Some(100)));
        }
        let f = st.decimate(T0, T0 + 300_000, 30);
        assert_eq!(f.lines.len(), 2);
        assert!(f.lost_cols.is_empty());
    }

    #[test]
    fn empty_window_is_an_empty_frame() {
        let st = Store::default();
        let f = st.decimate(T0, T0 + 1, 0);
        assert_eq!(f.points, 0);
        assert_eq!(f.vertices(), 0);
        assert_eq!(f.min_rtt_us, None);
        assert_eq!(st.window_stats(T0, T0 + 1), (None, 0));
    }

    #[test]
    fn median_is_the_lower_middle() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3]), Some(3));
        assert_eq!(median(&mut [4, 1, 3, 2]), Some(2));
        assert_eq!(median(&mut [5, 1, 3]), Some(3));
    }
}
