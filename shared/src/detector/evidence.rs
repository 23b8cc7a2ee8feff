//! Evidence about one outage and how it combines into a level.
//!
//! The combination is a small rule table (see [`Evidence::level`]): a
//! strong signal from the guest itself (its clock stepped back by the
//! outage, its MAC was announced again) makes a loss burst red whatever
//! else happened; a weak one (a held reply, the post-resume sawtooth) does
//! unless a veto says the outage has another explanation.

use super::{DetectorConfig, EventVerdict, Light, Reason};
use crate::wire::Mac;
use serde::{Deserialize, Serialize};

/// The guest's clock stepped back across the outage: it stood still while
/// the VM was stopped. The step is about the guest-visible downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStep {
    /// The change of the target's clock offset, µs (negative: it now lags).
    pub step_us: i64,
    /// Send time of the last good reading before the step (unix µs).
    pub before_us: i64,
    /// Send time of the reading that confirmed the step (unix µs).
    pub after_us: i64,
    /// Good readings after the step that agree on it.
    pub samples: u32,
}

impl ClockStep {
    /// The downtime this step implies, µs.
    pub fn downtime_us(&self) -> i64 {
        self.step_us.saturating_neg().max(0)
    }
}

impl From<ClockStep> for Reason {
    fn from(c: ClockStep) -> Reason {
        Reason::ClockStep {
            step_us: c.step_us,
            before_us: c.before_us,
            after_us: c.after_us,
            samples: c.samples,
        }
    }
}

/// The target's MAC was announced again on the capture interface (RARP
/// from the hypervisor, gratuitous ARP from the guest) around the outage:
/// the move completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceBurst {
    /// Frames in the burst.
    pub frames: u32,
    /// Of which RARP.
    pub rarp: u32,
    /// Of which gratuitous ARP.
    pub garp: u32,
    /// Capture time of the first frame (unix µs).
    pub first_us: i64,
    /// The MAC announced.
    pub mac: Mac,
    /// The MAC learned at the address before, when the announces name
    /// another (see `replaced.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_mac: Option<Mac>,
}

impl From<AnnounceBurst> for Reason {
    fn from(a: AnnounceBurst) -> Reason {
        Reason::Announce {
            frames: a.frames,
            rarp: a.rarp,
            garp: a.garp,
            first_us: a.first_us,
            mac: a.mac,
            previous_mac: a.previous_mac,
        }
    }
}

/// The guest's clock ran on through the outage (readings before and after
/// it agree): the guest was never stopped, so the loss was on the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockSteady {
    /// The offset change across the outage, µs (about 0).
    pub change_us: i64,
    /// The outage it spans, µs.
    pub outage_us: i64,
}

/// Which confirming channels were live around an outage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels {
    /// Clock readings were arriving before the outage.
    pub clock: bool,
    /// The sidecar watches for layer-2 announces.
    pub announce: bool,
}

impl Channels {
    /// Whether any confirming channel was live.
    pub fn any(&self) -> bool {
        self.clock || self.announce
    }
}

/// Where a migration's downtime estimate comes from, best first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DowntimeSource {
    /// The guest clock's step (about ±1 ms).
    ClockStep,
    /// The held reply's RTT less half an interval.
    LateReply,
    /// Lost probes × interval.
    #[default]
    LossBurst,
}

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
    /// The guest clock stepped back by about the outage (strong).
    #[serde(default)]
    pub clock_step: Option<ClockStep>,
    /// The target's MAC was announced again (strong).
    #[serde(default)]
    pub announce: Option<AnnounceBurst>,
    /// The guest clock ran on through the outage (veto, even of a weak
    /// signal).
    #[serde(default)]
    pub clock_steady: Option<ClockSteady>,
    /// The confirming channels that were live.
    #[serde(default)]
    pub channels: Channels,
    /// The live channels have had their chance to confirm
    /// (`confirm_wait_ms` after the outage): a missing announce now says
    /// something.
    #[serde(default)]
    pub waited: bool,
}

impl Evidence {
    /// Whether the guest itself says it moved: its clock stepped back by
    /// the outage, or its MAC was announced again.
    pub fn strong(&self) -> bool {
        self.clock_step.is_some() || self.announce.is_some()
    }

    /// Whether a weak signal points at a stop-and-copy: a sawtooth, or a
    /// held reply (`held` is only set while the held replies are few enough
    /// to be the requests in flight at the stop).
    pub fn weak(&self) -> bool {
        self.held.is_some() || self.sawtooth.is_some()
    }

    /// Whether a signal confirms a stop-and-copy: a strong one after any
    /// loss (a stop of 10–20 ms loses a single probe at 100 Hz), a weak one
    /// after a burst of at least `min_red_probes` probes.
    pub fn confirmed(&self, probes: u64, cfg: &DetectorConfig) -> bool {
        (probes >= 1 && self.strong()) || (probes >= cfg.min_red_probes.max(1) && self.weak())
    }

    /// Whether the outage has another explanation. Only a weak signal can
    /// be vetoed.
    pub fn vetoed(&self) -> bool {
        self.flush.is_some()
            || self.congestion.is_some()
            || self.long_outage.is_some()
            || self.clock_steady.is_some()
    }

    /// Whether a live channel could have confirmed the outage and did not:
    /// "an outage, not a migration".
    pub fn unconfirmed(&self) -> bool {
        self.waited && !self.strong() && (self.channels.any() || self.clock_steady.is_some())
    }

    /// What the event was (see [`EventVerdict`] and the truth table in
    /// `docs/DETECTION.md`):
    ///
    /// | announce | clock | echo | announce channel | verdict |
    /// |---|---|---|---|---|
    /// | a burst, after ≥ 1 lost probe or a clock step | any | any | live | migrated |
    /// | none | stepped back | any | live, window passed | paused |
    /// | none | stepped back | any | live, window open | undecided (waiting) |
    /// | — | stepped back | any | off | migrated ("or paused") |
    /// | none | ran on | any | any | path outage |
    /// | none | nothing | held reply or sawtooth, no veto, ≥ `min_red_probes` | off | migrated ("or paused") |
    /// | a burst naming a new MAC (`previous_mac`) | any | any | any | replaced (yellow) |
    /// | otherwise | | | | undecided |
    pub fn verdict(&self, probes: u64, cfg: &DetectorConfig) -> EventVerdict {
        // A different machine at the address: no rule below applies.
        if let Some(v) = super::replaced::verdict(self) {
            return v;
        }
        if self.announce.is_some() && (probes >= 1 || self.clock_step.is_some()) {
            return EventVerdict::Migrated;
        }
        if self.clock_step.is_some() {
            return match (self.channels.announce, self.waited) {
                // A stop that lost no probe and no announce to tell: a
                // pause as likely as a move.
                (false, _) if probes == 0 => EventVerdict::Undecided,
                (false, _) => EventVerdict::Migrated,
                (true, true) => EventVerdict::Paused,
                (true, false) => EventVerdict::Undecided,
            };
        }
        if self.clock_steady.is_some() {
            return EventVerdict::PathOutage;
        }
        if !self.channels.announce
            && probes >= cfg.min_red_probes.max(1)
            && self.weak()
            && !self.vetoed()
        {
            return EventVerdict::Migrated;
        }
        EventVerdict::Undecided
    }

    /// The level of an outage of `probes` lost probes: red for a migration
    /// only; a pause is always worth a yellow; a path outage or an
    /// undecided one when its burst is at least `min_burst` long or the
    /// guest's clock stepped; else nothing (isolated loss).
    pub fn level(&self, probes: u64, cfg: &DetectorConfig) -> Light {
        match self.verdict(probes, cfg) {
            EventVerdict::Migrated => Light::Red,
            EventVerdict::Paused => Light::Yellow,
            EventVerdict::Replaced => super::replaced::LEVEL,
            EventVerdict::PathOutage | EventVerdict::Undecided => {
                if probes >= cfg.min_burst.max(1) || self.clock_step.is_some() {
                    Light::Yellow
                } else {
                    Light::Green
                }
            }
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
    /// Downtime estimate in µs: from the guest clock's step when there is
    /// one, else the held reply's RTT less half an interval, else lost
    /// probes × interval.
    pub downtime_us: i64,
    /// Where [`Self::downtime_us`] comes from.
    #[serde(default)]
    pub downtime_source: DowntimeSource,
    /// Red or yellow.
    pub level: Light,
    /// What it was: migrated (red), paused in place, a path outage, or
    /// undecided.
    #[serde(default)]
    pub verdict: EventVerdict,
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
        // A stop that lost no probe (a pause whose requests were queued
        // and answered late) has no loss burst to name.
        if self.probes > 0 {
            out.push(Reason::LossBurst {
                probes: self.probes,
                first_seq: self.first_seq,
                last_seq: self.last_seq,
                start_us: self.start_us,
                end_us: self.end_us,
            });
        }
        let e = &self.evidence;
        out.extend(e.clock_step.map(Reason::from));
        out.extend(e.announce.map(Reason::from));
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
        if let Some(c) = e.clock_steady {
            out.push(Reason::ClockSteady {
                change_us: c.change_us,
                outage_us: c.outage_us,
            });
        }
        if self.level != Light::Red && e.unconfirmed() {
            out.push(Reason::Unconfirmed {
                clock: e.channels.clock,
                announce: e.channels.announce,
            });
        }
    }
}
