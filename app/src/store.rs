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
mod tests;
