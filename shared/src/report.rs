//! The one printed shape of a detected event: the JSON line `detect` and
//! `watch` print, the objects `GET /targets/{name}/migrations` returns, and
//! what the page reads back. Defined once so the three never drift.

use crate::detector::{DowntimeSource, EventVerdict, Light, Migration, Reason};
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch from µs.
fn secs(us: i64) -> f64 {
    us as f64 / 1e6
}

/// One detected event (a migration, or an outage the detector judged), as
/// printed: times in seconds since the Unix epoch (or since the trace's
/// clock origin), the downtime in ms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationRecord {
    /// Send time of the first lost probe, s.
    pub start_s: f64,
    /// Send time of the first probe answered after the outage, s.
    pub end_s: f64,
    /// Downtime estimate, ms.
    pub downtime_ms: f64,
    /// Where the downtime figure comes from: clock_step, late_reply or
    /// loss_burst.
    pub downtime_from: DowntimeSource,
    /// `red` or `yellow`.
    pub level: String,
    /// What it was: `migrated` (red, and only then), `paused` (stopped and
    /// resumed in place), `path_outage` (the guest ran on), `replaced`
    /// (another machine announced the address) or `undecided`.
    #[serde(default)]
    pub verdict: EventVerdict,
    /// The verdict in words, e.g. "paused in place for 301 ms, not
    /// migrated: ...".
    #[serde(default)]
    pub explanation: String,
    /// Event time when it got its level (for alarm latency), s.
    pub decided_s: f64,
    /// The evidence behind the level, most important first.
    pub reasons: Vec<Reason>,
}

impl MigrationRecord {
    /// The record of a detector's migration event.
    pub fn from_migration(m: &Migration) -> MigrationRecord {
        MigrationRecord {
            start_s: secs(m.start_us),
            end_s: secs(m.end_us),
            downtime_ms: m.downtime_us as f64 / 1000.0,
            downtime_from: m.downtime_source,
            level: m.level.name().to_string(),
            verdict: m.verdict,
            explanation: m.explain(),
            decided_s: secs(m.decided_us),
            reasons: m.reasons(),
        }
    }

    /// Whether the detector called it a migration (red).
    pub fn is_migration(&self) -> bool {
        self.level == Light::Red.name()
    }
}

/// One target at a glance, for a grid of many (`GET /overview`): the
/// sidecar's own detector's light and reasons, and a per-second sparkline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSummary {
    /// The target's name.
    pub name: String,
    /// `green`, `yellow` or `red`.
    pub light: String,
    /// Why, when not green.
    pub reasons: Vec<Reason>,
    /// Whole seconds (Unix time) of the first sparkline bucket.
    pub first_s: i64,
    /// Mean RTT of each second's answered probes, µs, oldest first (`None`:
    /// none answered that second).
    pub rtt_us: Vec<Option<u32>>,
    /// Probes lost in each second.
    pub lost: Vec<u32>,
    /// Migrations found so far (red verdicts).
    pub migrations: u64,
    /// The newest recorded event, if any.
    pub last_event: Option<MigrationRecord>,
}

/// `GET /overview`: every target at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// The sidecar's clock, s since the Unix epoch.
    pub at_s: f64,
    /// One summary per target, in the sidecar's order.
    pub targets: Vec<TargetSummary>,
}
