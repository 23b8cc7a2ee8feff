//! The two confirming signals that come from the guest itself rather than
//! from echo RTTs: its clock (ICMP Timestamp readings) and layer-2
//! announces of its MAC.
//!
//! * [`ClockTrack`] follows the target clock's offset from ours and finds
//!   *steps*. A stopped guest's clock stands still, so after a stop-and-copy
//!   it lags by the downtime (measured to about 1 ms on real migrations).
//!   The starting offset is arbitrary and drifts by tens of ppm, so only
//!   changes against a robust fit of the recent readings count. A reading's
//!   RTT bounds its error (the asymmetry of the two legs is at most the RTT
//!   in excess of the path's minimum), so slow readings (the first ones
//!   after a resume) count less or not at all.
//! * [`AnnounceAcc`] groups announce frames into bursts.
//!
//! Both are O(1) per event (small fixed arrays) and never allocate.

use super::{AnnounceBurst, ClockStep, DetectorConfig};
use crate::wire::{Announce, AnnounceKind, Clock, Mac};

/// Good readings kept for the fit (a power of two).
const FIT: usize = 16;
/// Readings that disagree with the fit, kept while a step is confirmed.
const CAND: usize = 8;
/// RTTs kept for the path's minimum.
const RTTS: usize = 64;

/// A clock reading that was good enough to use.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    t: i64,
    off: i64,
    /// Error bound, µs: quantisation plus half the RTT excess.
    err: i64,
    /// Its RTT, µs: judged again as the path's minimum falls.
    rtt: u32,
}

/// A line through the readings: offset at `t0` and slope in µs per s.
#[derive(Debug, Clone, Copy, Default)]
struct Fit {
    t0: i64,
    off0: i64,
    ppm: f64,
}

impl Fit {
    fn at(&self, t: i64) -> i64 {
        let dt = (t - self.t0) as f64 / 1e6;
        self.off0 + (self.ppm * dt) as i64
    }
}

/// A step found by [`ClockTrack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Change of offset, µs.
    pub step_us: i64,
    /// Time of the last good reading before it.
    pub before_us: i64,
    /// Time of the first reading after it.
    pub first_after_us: i64,
    /// Time of the reading that confirmed it.
    pub after_us: i64,
    /// Readings after it that agree.
    pub samples: u32,
}

impl Step {
    /// The step as evidence.
    pub fn evidence(&self) -> ClockStep {
        ClockStep {
            step_us: self.step_us,
            before_us: self.before_us,
            after_us: self.after_us,
            samples: self.samples,
        }
    }
}

/// What a reading did to the track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClockNews {
    /// Nothing to report (unusable, or not enough readings yet).
    None,
    /// A reading that agrees with the fit, with its residual.
    Steady { t: i64, residual: i64 },
    /// A step was confirmed or its estimate refined.
    Step,
}

/// Follows the target's clock offset and finds steps.
#[derive(Debug, Clone)]
pub(crate) struct ClockTrack {
    fit: [Reading; FIT],
    fit_len: usize,
    fit_head: usize,
    cand: [Reading; CAND],
    cand_len: usize,
    rtts: [u32; RTTS],
    rtt_len: usize,
    rtt_head: usize,
    /// The fit before the latest step, for refining it.
    pre: Option<Fit>,
    /// The latest step, refined while readings agree with it.
    pub last_step: Option<Step>,
    /// Residuals of the readings after the latest step, against `pre`.
    post: [Reading; CAND],
    post_len: usize,
    /// When the latest reading (of any quality) was sent, µs.
    pub last_any_us: i64,
}

impl ClockTrack {
    pub fn new() -> Self {
        ClockTrack {
            fit: [Reading::default(); FIT],
            fit_len: 0,
            fit_head: 0,
            cand: [Reading::default(); CAND],
            cand_len: 0,
            rtts: [0; RTTS],
            rtt_len: 0,
            rtt_head: 0,
            pre: None,
            last_step: None,
            post: [Reading::default(); CAND],
            post_len: 0,
            last_any_us: i64::MIN,
        }
    }

    /// The smallest recent RTT: the path without queueing.
    fn min_rtt(&self) -> u32 {
        self.rtts[..self.rtt_len].iter().copied().min().unwrap_or(0)
    }

    fn readings(&self) -> impl Iterator<Item = &Reading> {
        self.fit[..self.fit_len].iter()
    }

    /// A robust line through the fit readings: the median offset of the
    /// older and newer halves, joined. It resists a stray reading in either
    /// half and follows drift of tens of ppm; over less than 2 s the slope
    /// is noise (±0.5 ms readings), so it is a level then.
    ///
    /// Only readings precise against the path's minimum as now known
    /// count (`clock_fit_excess_us`); with fewer than two there is no line
    /// (one is a level only a reading beyond both error bounds leaves: see
    /// [`Self::push`]).
    fn line(&self, cfg: &DetectorConfig) -> Option<Fit> {
        let precise = self.precise(cfg);
        let mut v = [Reading::default(); FIT];
        let mut n = 0;
        // Oldest first.
        for i in 0..self.fit_len {
            let r = self.fit[(self.fit_head + FIT - self.fit_len + i) % FIT];
            if precise(&r) {
                v[n] = r;
                n += 1;
            }
        }
        if n < 2 {
            return None;
        }
        let med = |s: &[Reading]| -> (i64, i64) {
            let mut offs = [0i64; FIT];
            let mut ts = [0i64; FIT];
            for (i, r) in s.iter().enumerate() {
                offs[i] = r.off;
                ts[i] = r.t;
            }
            let (o, t) = (&mut offs[..s.len()], &mut ts[..s.len()]);
            o.sort_unstable();
            t.sort_unstable();
            (o[o.len() / 2], t[t.len() / 2])
        };
        let h = n / 2;
        let (o1, t1) = med(&v[..h]);
        let (o2, t2) = med(&v[h..n]);
        if t2.saturating_sub(t1) < 2_000_000 {
            let (o, t) = med(&v[..n]);
            return Some(Fit {
                t0: t,
                off0: o,
                ppm: 0.0,
            });
        }
        let ppm = ((o2 - o1) as f64 / ((t2 - t1) as f64 / 1e6)).clamp(-500.0, 500.0);
        Some(Fit {
            t0: t2,
            off0: o2,
            ppm,
        })
    }

    fn push_fit(&mut self, r: Reading) {
        self.fit[self.fit_head] = r;
        self.fit_head = (self.fit_head + 1) % FIT;
        self.fit_len = (self.fit_len + 1).min(FIT);
    }

    fn last_fit_t(&self) -> Option<i64> {
        self.readings().map(|r| r.t).max()
    }

    /// Feeds one reading.
    pub fn push(&mut self, c: &Clock, cfg: &DetectorConfig) -> ClockNews {
        self.last_any_us = self.last_any_us.max(c.sent_us);
        self.rtts[self.rtt_head] = c.rtt_us;
        self.rtt_head = (self.rtt_head + 1) % RTTS;
        self.rtt_len = (self.rtt_len + 1).min(RTTS);
        let excess = i64::from(c.rtt_us.saturating_sub(self.min_rtt()));
        if excess > i64::from(cfg.clock_max_excess_us) {
            return ClockNews::None; // too slow to say anything
        }
        // Whole-ms readings: ±0.5 ms, plus what the legs' asymmetry can do.
        let r = Reading {
            t: c.sent_us,
            off: c.offset_us,
            err: 500 + excess / 2,
            rtt: c.rtt_us,
        };
        let Some(fit) = self.line(cfg) else {
            // One precise reading so far is a level, not yet a line. A
            // reading off it beyond both error bounds is the first after a
            // step (a stop in a run's first 200 ms), not the line's second
            // point: made that point, it dated the step after the stop.
            if let Some(one) = self.lone_precise(cfg) {
                let tol = i64::from(cfg.clock_tol_us) + r.err + one.err;
                if (r.off - one.off).abs() > tol {
                    let level = Fit {
                        t0: one.t,
                        off0: one.off,
                        ppm: 0.0,
                    };
                    self.push_cand(r);
                    return self.try_confirm(level, cfg);
                }
                self.cand_len = 0;
            }
            self.push_fit(r);
            return ClockNews::None;
        };
        let residual = r.off - fit.at(r.t);
        let tol = i64::from(cfg.clock_tol_us) + r.err;
        if residual.abs() <= tol {
            self.cand_len = 0;
            self.push_fit(r);
            return if self.refine(r, cfg) {
                ClockNews::Step
            } else {
                ClockNews::Steady { t: r.t, residual }
            };
        }
        // Off the line: a stray reading or the first after a step.
        self.push_cand(r);
        self.try_confirm(fit, cfg)
    }

    fn push_cand(&mut self, r: Reading) {
        if self.cand_len == CAND {
            self.cand.copy_within(1.., 0);
            self.cand_len -= 1;
        }
        self.cand[self.cand_len] = r;
        self.cand_len += 1;
    }

    /// The fit's only reading precise against the path's minimum as now
    /// known, if exactly one is (`clock_fit_excess_us`).
    fn lone_precise(&self, cfg: &DetectorConfig) -> Option<Reading> {
        let is_precise = self.precise(cfg);
        let mut precise = self.readings().filter(|r| is_precise(r));
        let one = precise.next()?;
        precise.next().is_none().then_some(*one)
    }

    /// Whether a reading is precise against the path's minimum as now
    /// known (`clock_fit_excess_us`).
    fn precise(&self, cfg: &DetectorConfig) -> impl Fn(&Reading) -> bool {
        let (min, excess) = (self.min_rtt(), cfg.clock_fit_excess_us);
        move |r| r.rtt.saturating_sub(min) <= excess
    }

    /// Confirms a step once `clock_confirm` off-line readings agree with
    /// each other and are far enough off.
    fn try_confirm(&mut self, fit: Fit, cfg: &DetectorConfig) -> ClockNews {
        let need = cfg.clock_confirm.max(1) as usize;
        if self.cand_len < need {
            return ClockNews::None;
        }
        // The latest `need` candidates must agree within their error bounds.
        let c = &self.cand[self.cand_len - need..self.cand_len];
        let tol = i64::from(cfg.clock_tol_us);
        let agree = c.iter().all(|a| {
            c.iter()
                .all(|b| (a.off - fit.at(a.t) - (b.off - fit.at(b.t))).abs() <= a.err + b.err + tol)
        });
        if !agree {
            return ClockNews::None;
        }
        let mut res = [0i64; CAND];
        for (i, r) in c.iter().enumerate() {
            res[i] = r.off - fit.at(r.t);
        }
        let res = &mut res[..need];
        res.sort_unstable();
        let step = res[need / 2];
        if step.abs() < i64::from(cfg.clock_step_min_us) {
            return ClockNews::None;
        }
        let before = self.last_fit_t().unwrap_or(c[0].t);
        let first_after = c[0].t;
        // The readings after the step start the new line.
        let cands = self.cand;
        let n = self.cand_len;
        self.fit_len = 0;
        self.fit_head = 0;
        self.post_len = 0;
        self.pre = Some(fit);
        for r in &cands[n - need..n] {
            self.push_fit(*r);
            self.push_post(*r);
        }
        self.cand_len = 0;
        self.last_step = Some(Step {
            step_us: step,
            before_us: before,
            first_after_us: first_after,
            after_us: cands[n - 1].t,
            samples: need as u32,
        });
        self.refine_estimate();
        ClockNews::Step
    }

    fn push_post(&mut self, r: Reading) {
        if self.post_len == CAND {
            return; // enough for the estimate
        }
        self.post[self.post_len] = r;
        self.post_len += 1;
    }

    /// A reading on the new line after a step: it refines the step's size
    /// (the best readings win) while the step is recent.
    fn refine(&mut self, r: Reading, cfg: &DetectorConfig) -> bool {
        let Some(s) = self.last_step else {
            return false;
        };
        if self.post_len == CAND
            || r.t.saturating_sub(s.after_us) > i64::from(cfg.clock_refine_ms) * 1000
        {
            return false;
        }
        self.push_post(r);
        self.refine_estimate();
        true
    }

    /// The step's size from the readings after it: the median residual of
    /// the most precise half against the line before it.
    fn refine_estimate(&mut self) {
        let (Some(pre), Some(step)) = (self.pre, self.last_step.as_mut()) else {
            return;
        };
        let n = self.post_len;
        if n == 0 {
            return;
        }
        let mut v = self.post;
        let v = &mut v[..n];
        v.sort_unstable_by_key(|r| r.err);
        let best = v[0].err;
        let mut res = [0i64; CAND];
        let mut k = 0;
        for r in v.iter().filter(|r| r.err <= best + 500) {
            res[k] = r.off - pre.at(r.t);
            k += 1;
        }
        let res = &mut res[..k];
        res.sort_unstable();
        step.step_us = if k % 2 == 1 {
            res[k / 2]
        } else {
            (res[k / 2 - 1] + res[k / 2]) / 2
        };
        step.samples = n as u32;
    }
}

/// A burst of announce frames: frames less than `announce_gap_ms` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Burst {
    pub first_us: i64,
    pub last_us: i64,
    pub rarp: u32,
    pub garp: u32,
    pub mac: Mac,
    /// The MAC learned at the address before, when a frame named it.
    pub previous_mac: Option<Mac>,
}

impl Burst {
    /// The burst as evidence.
    pub fn evidence(&self) -> AnnounceBurst {
        AnnounceBurst {
            frames: self.rarp.saturating_add(self.garp),
            rarp: self.rarp,
            garp: self.garp,
            first_us: self.first_us,
            mac: self.mac,
            previous_mac: self.previous_mac,
        }
    }
}

/// Groups announce frames into bursts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AnnounceAcc {
    /// The latest burst.
    pub burst: Option<Burst>,
    /// Any announce was ever seen: the capture is on.
    pub seen: bool,
}

impl AnnounceAcc {
    /// Adds a frame.
    pub fn push(&mut self, a: &Announce, cfg: &DetectorConfig) {
        self.seen = true;
        let gap = i64::from(cfg.announce_gap_ms) * 1000;
        let (rarp, garp) = match a.kind {
            AnnounceKind::Rarp => (1, 0),
            AnnounceKind::Garp => (0, 1),
        };
        match self.burst.as_mut() {
            Some(b) if a.at_us >= b.first_us && a.at_us.saturating_sub(b.last_us) <= gap => {
                b.last_us = b.last_us.max(a.at_us);
                b.rarp = b.rarp.saturating_add(rarp);
                b.garp = b.garp.saturating_add(garp);
                b.previous_mac = b.previous_mac.or(a.previous_mac);
            }
            _ => {
                self.burst = Some(Burst {
                    first_us: a.at_us,
                    last_us: a.at_us,
                    rarp,
                    garp,
                    mac: a.mac,
                    previous_mac: a.previous_mac,
                });
            }
        }
    }
}
