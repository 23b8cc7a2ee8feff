//! Fixed-size streaming statistics: the RTT baseline (median/MAD), the probe
//! interval, the recent RTT level and the RTT-peak tracker. None of them
//! allocates after construction, and each costs O(1) per sample (the block
//! statistics are computed once per block over a fixed number of values).

/// RTTs per baseline block.
const BLOCK: usize = 64;
/// Blocks remembered: the baseline spans the last 512 undisturbed replies.
const BLOCKS: usize = 8;

/// Median of `v` (sorted in place); the mean of the two middle values for an
/// even length. `v` must not be empty.
fn median_sorted(v: &mut [u32]) -> u32 {
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        ((u64::from(v[n / 2 - 1]) + u64::from(v[n / 2])) / 2) as u32
    }
}

/// Median and median absolute deviation of `v` (reordered in place).
fn median_mad(v: &mut [u32]) -> (u32, u32) {
    let mid = v.len() / 2;
    let (_, &mut m, _) = v.select_nth_unstable(mid);
    for x in v.iter_mut() {
        *x = x.abs_diff(m);
    }
    let (_, &mut d, _) = v.select_nth_unstable(mid);
    (m, d)
}

/// Robust RTT baseline: the median of block medians (and of block MADs)
/// over the last [`BLOCKS`] blocks of [`BLOCK`] replies. Until the first
/// block is full, a provisional value is computed every 16 replies.
#[derive(Debug, Clone)]
pub(crate) struct Baseline {
    buf: [u32; BLOCK],
    len: usize,
    meds: [u32; BLOCKS],
    mads: [u32; BLOCKS],
    blocks: usize,
    pos: usize,
    /// Median RTT in µs (valid when `ready`).
    pub median: u32,
    /// Median absolute deviation in µs (valid when `ready`).
    pub mad: u32,
    /// At least 16 replies seen.
    pub ready: bool,
    /// The lowest block median of this epoch and the last ([`EPOCH`]
    /// blocks each: 8–16 s at 2 ms, 41–82 s at 10 ms): the path's quiet
    /// level, which seconds of a loaded pre-copy do not raise as they
    /// can raise [`Self::median`].
    pub floor: u32,
    epoch_min: u32,
    prev_min: u32,
    epoch_n: usize,
}

/// Blocks per epoch of [`Baseline::floor`].
const EPOCH: usize = 64;

impl Baseline {
    pub fn new() -> Self {
        Baseline {
            buf: [0; BLOCK],
            len: 0,
            meds: [0; BLOCKS],
            mads: [0; BLOCKS],
            blocks: 0,
            pos: 0,
            median: 0,
            mad: 0,
            ready: false,
            floor: 0,
            epoch_min: u32::MAX,
            prev_min: u32::MAX,
            epoch_n: 0,
        }
    }

    /// Adds one undisturbed RTT. Returns true when median/MAD changed.
    #[inline]
    pub fn push(&mut self, rtt_us: u32) -> bool {
        self.buf[self.len] = rtt_us;
        self.len += 1;
        if self.len == BLOCK {
            let (m, d) = median_mad(&mut self.buf);
            self.meds[self.pos] = m;
            self.mads[self.pos] = d;
            self.pos = (self.pos + 1) % BLOCKS;
            self.blocks = (self.blocks + 1).min(BLOCKS);
            self.len = 0;
            let mut t = self.meds;
            self.median = median_sorted(&mut t[..self.blocks]);
            let mut t = self.mads;
            self.mad = median_sorted(&mut t[..self.blocks]);
            self.ready = true;
            self.epoch_min = self.epoch_min.min(m);
            self.epoch_n += 1;
            if self.epoch_n == EPOCH {
                (self.prev_min, self.epoch_min, self.epoch_n) = (self.epoch_min, u32::MAX, 0);
            }
            self.floor = self.epoch_min.min(self.prev_min);
            return true;
        }
        if self.blocks == 0 && self.len % 16 == 0 {
            let mut t = self.buf;
            let (m, d) = median_mad(&mut t[..self.len]);
            self.median = m;
            self.mad = d;
            self.floor = m;
            self.ready = true;
            return true;
        }
        false
    }
}

/// Probe interval from send times: the median of up to five slopes, each
/// measured over 64 sequence numbers. The sidecar sends on an absolute
/// schedule, so a slope is exact up to send jitter / 64, and skipped slots
/// (a stalled sidecar) keep the slope right; a wall-clock step spoils one
/// slope, which the median outvotes.
#[derive(Debug, Clone)]
pub(crate) struct IntervalEst {
    anchor: Option<(u64, i64)>,
    slopes: [u32; 5],
    n: usize,
    pos: usize,
    /// Current estimate in µs; 0 until two samples were seen.
    pub us: u32,
}

impl IntervalEst {
    pub fn new() -> Self {
        IntervalEst {
            anchor: None,
            slopes: [0; 5],
            n: 0,
            pos: 0,
            us: 0,
        }
    }

    #[inline]
    pub fn observe(&mut self, seq: u64, sent_us: i64) {
        let Some((q0, s0)) = self.anchor else {
            self.anchor = Some((seq, sent_us));
            return;
        };
        if seq <= q0 {
            return; // out of order (a loss reported late): no information
        }
        let d = seq - q0;
        if d > 4096 || sent_us <= s0 {
            self.anchor = Some((seq, sent_us));
            return;
        }
        if d < 64 {
            if self.n == 0 {
                // A first guess, refined until a full slope exists.
                self.us = slope(s0, sent_us, d);
            }
        } else {
            self.slopes[self.pos] = slope(s0, sent_us, d);
            self.pos = (self.pos + 1) % self.slopes.len();
            self.n = (self.n + 1).min(self.slopes.len());
            let mut t = self.slopes;
            self.us = median_sorted(&mut t[..self.n]).max(1);
            self.anchor = Some((seq, sent_us));
        }
    }
}

fn slope(s0: i64, s1: i64, d: u64) -> u32 {
    let per = s1.saturating_sub(s0) / d.max(1) as i64;
    per.clamp(1, i64::from(u32::MAX)) as u32
}

/// Replies in the level just before an outage.
const LEVEL: usize = 32;

/// The last 96 answered RTTs, for the level just before an outage (the
/// last 32) or before a stall that ended it.
#[derive(Debug, Clone)]
pub(crate) struct Recent {
    v: [u32; 3 * LEVEL],
    n: usize,
    pos: usize,
}

impl Recent {
    pub fn new() -> Self {
        Recent {
            v: [0; 3 * LEVEL],
            n: 0,
            pos: 0,
        }
    }

    #[inline]
    pub fn push(&mut self, rtt_us: u32) {
        self.v[self.pos] = rtt_us;
        self.pos = (self.pos + 1) % self.v.len();
        self.n = (self.n + 1).min(self.v.len());
    }

    /// Median and 75th percentile of the last 32 RTTs (0 when empty):
    /// the level just before an outage, robust to a held reply or a spike.
    /// Without the latest `skip` RTTs (the queued replies a paused guest
    /// released at the outage's end).
    pub fn median_p75_before(&self, skip: usize) -> (u32, u32) {
        self.level(skip, self.n.min(LEVEL).saturating_sub(skip))
    }

    /// Median of the 32 RTTs before the latest `skip`, if at least 16 of
    /// them are remembered.
    pub fn level_before(&self, skip: usize) -> Option<u32> {
        let n = self.n.saturating_sub(skip).min(LEVEL);
        (n >= LEVEL / 2).then(|| self.level(skip, n).0)
    }

    fn level(&self, skip: usize, n: usize) -> (u32, u32) {
        if n == 0 {
            return (0, 0);
        }
        let len = self.v.len();
        let mut t = [0u32; LEVEL];
        for (k, x) in t.iter_mut().enumerate().take(n) {
            *x = self.v[(self.pos + 2 * len - 1 - skip - k) % len];
        }
        let s = &mut t[..n];
        s.sort_unstable();
        (s[n / 2], s[(n * 3) / 4])
    }

    pub fn clear(&mut self) {
        self.n = 0;
        self.pos = 0;
    }
}

/// One flag per recent reply (the last 256), for the fraction of the last
/// `n` that were flagged.
#[derive(Debug, Clone)]
pub(crate) struct HighFrac {
    bits: [u64; 4],
    pos: usize,
    n: usize,
}

impl HighFrac {
    pub fn new() -> Self {
        HighFrac {
            bits: [0; 4],
            pos: 0,
            n: 0,
        }
    }

    #[inline]
    pub fn push(&mut self, flag: bool) {
        let (w, b) = (self.pos / 64, self.pos % 64);
        self.bits[w] = (self.bits[w] & !(1 << b)) | (u64::from(flag) << b);
        self.pos = (self.pos + 1) % 256;
        self.n = (self.n + 1).min(256);
    }

    /// Fraction of the last `n` replies (at most 256, at most those seen)
    /// that were flagged.
    /// Counted over the `n` replies before the latest `skip`.
    pub fn fraction_before(&self, n: usize, skip: usize) -> f32 {
        let skip = skip.min(self.n);
        let n = n.min(self.n - skip);
        if n == 0 {
            return 0.0;
        }
        let mut c = 0u32;
        for k in 1 + skip..=n + skip {
            let i = (self.pos + 256 - k) % 256;
            c += ((self.bits[i / 64] >> (i % 64)) & 1) as u32;
        }
        c as f32 / n as f32
    }
}

/// A run of mostly elevated replies: on when 12 of the last 16 answered
/// replies are elevated, off when at most 4 are.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Peak {
    bits: u16,
    pub active: bool,
    pub start_us: i64,
    pub last_elev_us: i64,
    pub max_rtt: u32,
    pub probes: u32,
}

/// What a peak looked like once it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeakSpan {
    pub start_us: i64,
    pub end_us: i64,
    pub max_rtt: u32,
    pub probes: u32,
}

impl Peak {
    /// Elevated replies among the last 16.
    #[inline]
    pub fn count(&self) -> u32 {
        self.bits.count_ones()
    }

    /// Feeds one answered reply; returns the span of a peak that just ended.
    #[inline]
    pub fn push(
        &mut self,
        sent_us: i64,
        rtt_us: u32,
        elevated: bool,
        interval_us: u32,
    ) -> Option<PeakSpan> {
        self.bits = (self.bits << 1) | u16::from(elevated);
        let c = self.count();
        if !self.active {
            if c >= 12 {
                self.active = true;
                // The run began about 15 probes ago.
                self.start_us = sent_us.saturating_sub(15 * i64::from(interval_us));
                self.last_elev_us = sent_us;
                self.max_rtt = rtt_us;
                self.probes = c;
            }
            return None;
        }
        if elevated {
            self.max_rtt = self.max_rtt.max(rtt_us);
            self.last_elev_us = sent_us;
            self.probes = self.probes.saturating_add(1);
        }
        if c <= 4 {
            self.active = false;
            return Some(PeakSpan {
                start_us: self.start_us,
                end_us: self.last_elev_us,
                max_rtt: self.max_rtt,
                probes: self.probes,
            });
        }
        None
    }

    pub fn reset(&mut self) {
        *self = Peak::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_is_robust_and_handles_constant_rtt() {
        let mut b = Baseline::new();
        for i in 0..1000u32 {
            // 1 % huge outliers must not move the median.
            b.push(if i % 100 == 7 { 50_000 } else { 250 + i % 7 });
        }
        assert!(b.ready);
        assert!((250..=256).contains(&b.median), "{}", b.median);
        assert!(b.mad <= 4);
        let mut c = Baseline::new();
        for _ in 0..200 {
            c.push(100);
        }
        assert_eq!((c.median, c.mad), (100, 0));
    }

    #[test]
    fn interval_is_inferred_through_skips_and_jitter() {
        let mut e = IntervalEst::new();
        for k in 0..1000u64 {
            if (300..420).contains(&k) {
                continue; // skipped slots
            }
            let jitter = ((k * 7919) % 40) as i64;
            e.observe(k, 1_000_000 + k as i64 * 2000 + jitter);
        }
        assert!((1999..=2001).contains(&e.us), "{}", e.us);
    }

    #[test]
    fn peak_needs_a_run() {
        let mut p = Peak::default();
        for k in 0..100 {
            assert!(p.push(k * 1000, 100, k % 3 == 0, 1000).is_none());
        }
        assert!(!p.active);
        for k in 100..130 {
            p.push(k * 1000, 9000, true, 1000);
        }
        assert!(p.active);
        let mut end = None;
        for k in 130..150 {
            end = end.or(p.push(k * 1000, 100, false, 1000));
        }
        let s = end.unwrap();
        assert_eq!(s.end_us, 129_000);
        assert_eq!(s.max_rtt, 9000);
    }
}
