//! Evidence about one outage and how it combines into a level.
//!
//! The combination is a small rule table (see [`Evidence::level`]):
//! confirming signals make a loss burst red unless a veto says the outage
//! has another explanation. Issue 6's clock-step and L2-announce events slot
//! in as further confirming fields here; nothing else changes.

use super::{DetectorConfig, Light, Reason};
use serde::{Deserialize, Serialize};

/// A request held across the outage and answered after it: RTT ≈ downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldReply {
    /// The probe's sequence number.
    pub seq: u64,
    /// Its round-trip time in µs.
    pub rtt_us: u32,
}

/// The post-resume shape: the first replies after the outage are elevated
/// (15–45 ms measured) and fall back to baseline within about 50 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sawtooth {
    /// Elevated replies after the outage.
    pub probes: u32,
    /// RTT of the first of them, µs.
    pub first_rtt_us: u32,
    /// Largest RTT among them, µs.
    pub max_rtt_us: u32,
    /// Groups of replies that arrived together.
    pub teeth: u32,
    /// Send-time span of the elevated replies, µs.
    pub span_us: u32,
}

/// Many replies released at once after the outage (VM pause, ARP
/// re-resolution on the monitor's side): evidence *against* a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueFlush {
    /// Replies that had been queued.
    pub replies: u32,
    /// The largest of their RTTs, µs.
    pub max_rtt_us: u32,
}

/// The RTT was already high before the loss (congestion, CPU starvation):
/// evidence against a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Congestion {
    /// RTT level before the outage (75th percentile of 32 replies), µs.
    pub rtt_us: u32,
    /// Baseline median RTT, µs.
    pub baseline_us: u32,
}

/// Everything known about one outage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The held reply closest to the outage, if any (confirming).
    pub held: Option<HeldReply>,
    /// How many held replies there were in all.
    pub held_count: u32,
    /// The post-resume sawtooth (confirming).
    pub sawtooth: Option<Sawtooth>,
    /// A queue released at once (veto).
    pub flush: Option<QueueFlush>,
    /// RTT already high before the loss (veto).
    pub congestion: Option<Congestion>,
    /// The outage lasted this long (µs), longer than any stop-and-copy
    /// (veto).
    pub long_outage: Option<i64>,
}

impl Evidence {
    /// Whether a signal confirms a stop-and-copy: a sawtooth, or a held
    /// reply (`held` is only set while the held replies are few enough to be
    /// the requests in flight at the stop), after a burst of at least
    /// `min_red_probes` probes.
    pub fn confirmed(&self, probes: u64, cfg: &DetectorConfig) -> bool {
        probes >= cfg.min_red_probes.max(1) && (self.held.is_some() || self.sawtooth.is_some())
    }

    /// Whether the outage has another explanation.
    pub fn vetoed(&self) -> bool {
        self.flush.is_some() || self.congestion.is_some() || self.long_outage.is_some()
    }

    /// The level of an outage of `probes` lost probes:
    ///
    /// | loss burst | confirming signal | veto | level |
    /// |---|---|---|---|
    /// | ≥ `min_red_probes` | yes | no | red |
    /// | ≥ `min_burst` | any | any | yellow (if not red) |
    /// | shorter | — | — | green (not an event) |
    pub fn level(&self, probes: u64, cfg: &DetectorConfig) -> Light {
        if self.confirmed(probes, cfg) && !self.vetoed() {
            Light::Red
        } else if probes >= cfg.min_burst.max(1) {
            Light::Yellow
        } else {
            Light::Green
        }
    }
}

/// One outage worth reporting: a possible (yellow) or recognised (red) live
/// migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// Stable id within one detector (increasing).
    pub id: u64,
    /// First probe of the loss burst.
    pub first_seq: u64,
    /// Last probe of the loss burst.
    pub last_seq: u64,
    /// Probes in the burst (`last_seq - first_seq + 1`).
    pub probes: u64,
    /// Send time of the first lost probe, unix µs.
    pub start_us: i64,
    /// Send time of the first probe answered after the burst, unix µs.
    pub end_us: i64,
    /// Downtime estimate in µs: the held reply's RTT less half an interval
    /// when there is one, else lost probes × interval.
    pub downtime_us: i64,
    /// Red or yellow.
    pub level: Light,
    /// The evidence behind the level.
    pub evidence: Evidence,
    /// Event time (unix µs) when it got its current level.
    pub decided_us: i64,
    /// Probe interval in use, µs.
    pub interval_us: u32,
}

impl Migration {
    /// The reasons for this event's level, most important first.
    pub fn reasons(&self) -> Vec<Reason> {
        let mut v = Vec::with_capacity(4);
        self.push_reasons(&mut v);
        v
    }

    pub(crate) fn push_reasons(&self, out: &mut Vec<Reason>) {
        out.push(Reason::LossBurst {
            probes: self.probes,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            start_us: self.start_us,
            end_us: self.end_us,
        });
        let e = &self.evidence;
        if let Some(h) = e.held {
            out.push(Reason::LateReply {
                seq: h.seq,
                rtt_us: h.rtt_us,
            });
        }
        if let Some(s) = e.sawtooth {
            out.push(Reason::Sawtooth {
                probes: s.probes,
                first_rtt_us: s.first_rtt_us,
                max_rtt_us: s.max_rtt_us,
                teeth: s.teeth,
                span_us: s.span_us,
            });
        }
        if let Some(f) = e.flush {
            out.push(Reason::QueueFlush {
                replies: f.replies,
                max_rtt_us: f.max_rtt_us,
            });
        }
        if let Some(c) = e.congestion {
            out.push(Reason::Congestion {
                rtt_us: c.rtt_us,
                baseline_us: c.baseline_us,
            });
        }
        if let Some(d) = e.long_outage {
            out.push(Reason::LongOutage { duration_us: d });
        }
    }
}
