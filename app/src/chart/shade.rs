//! What the charts shade and why: every detected migration (red or
//! yellow) and every other yellow the light showed, such as an RTT peak,
//! each with its reason. Plain data, computed per frame ([`shades`]) from
//! the detector's events and the model's record of every yellow.

use crate::format::{self, TzOffset};
use migwatch_shared::detector::EventVerdict;
use migwatch_shared::{Light, Migration, Reason};

/// A time the light was yellow, as the chart shades it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YellowSpan {
    /// When the yellow began, unix µs.
    pub from_us: i64,
    /// When it ended (the latest event time while it lasts), unix µs.
    pub to_us: i64,
    /// The detector's first reason for it.
    pub reason: Option<Reason>,
}

impl YellowSpan {
    /// The span the light was yellow `start_us..end_us` for `reason`
    /// (the model's record of every yellow). An RTT peak is seen a few
    /// replies after it began: it is shaded from the peak's own start.
    pub fn of(start_us: i64, end_us: i64, reason: Option<Reason>) -> YellowSpan {
        let from_us = match reason {
            Some(Reason::RttPeak { start_us: s, .. }) => s.min(start_us),
            _ => start_us,
        };
        YellowSpan {
            from_us,
            to_us: end_us,
            reason,
        }
    }
}

/// Why an interval is shaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Why {
    /// A detected migration or outage, with its verdict and downtime.
    Migration {
        /// The detector's verdict.
        verdict: EventVerdict,
        /// Downtime estimate, µs.
        downtime_us: i64,
    },
    /// A yellow with no detection behind it, and its first reason.
    Yellow(Option<Reason>),
}

/// One shaded interval of a chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shade {
    /// Start, unix µs.
    pub from_us: i64,
    /// End, unix µs.
    pub to_us: i64,
    /// Red or yellow.
    pub level: Light,
    /// Why.
    pub why: Why,
}

impl Shade {
    /// The words on the chart: `migration, downtime 392 ms`, `path
    /// outage`, or the yellow's reason.
    pub fn label(&self, tz: TzOffset<'_>) -> String {
        match self.why {
            Why::Migration {
                verdict,
                downtime_us,
            } => {
                let what = match verdict {
                    EventVerdict::Migrated if self.level == Light::Red => "migration",
                    EventVerdict::Migrated => "maybe a migration",
                    EventVerdict::Paused => "paused in place",
                    EventVerdict::PathOutage => "path outage",
                    EventVerdict::Undecided => "outage, undecided",
                    EventVerdict::Replaced => "another machine at the address",
                };
                format!("{what}, downtime {}", format::duration_i(downtime_us))
            }
            Why::Yellow(Some(r)) => format::reason(&r, tz),
            Why::Yellow(None) => "yellow".into(),
        }
    }
}

/// The shades of the window `from_us..=to_us`: detected migrations, and
/// the yellows that are not one of them (a yellow overlapping a
/// migration's outage or the wait for its evidence is that migration).
pub fn shades(
    migrations: &[Migration],
    yellows: impl IntoIterator<Item = YellowSpan>,
    from_us: i64,
    to_us: i64,
) -> Vec<Shade> {
    let within = |a: i64, b: i64| b >= from_us && a <= to_us;
    let mut out: Vec<Shade> = migrations
        .iter()
        .filter(|m| within(m.start_us, m.end_us))
        .map(|m| Shade {
            from_us: m.start_us,
            to_us: m.end_us,
            level: m.level,
            why: Why::Migration {
                verdict: m.verdict,
                downtime_us: m.downtime_us,
            },
        })
        .collect();
    let covered = |y: &YellowSpan| {
        migrations
            .iter()
            .any(|m| y.to_us >= m.start_us && y.from_us <= m.end_us.max(m.decided_us))
    };
    out.extend(
        yellows
            .into_iter()
            .filter(|y| within(y.from_us, y.to_us) && !covered(y))
            .map(|y| Shade {
                from_us: y.from_us,
                to_us: y.to_us,
                level: Light::Yellow,
                why: Why::Yellow(y.reason),
            }),
    );
    // In time order for the labels: a window holds a handful, both lists
    // come nearly sorted.
    crate::sort::by_key(&mut out, |s| s.from_us);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use migwatch_shared::detector::{DowntimeSource, Evidence};

    const T: i64 = 1_763_000_000_000_000;
    const UTC: TzOffset<'static> = &|_| 0;

    fn peak() -> Option<Reason> {
        Some(Reason::LateReply {
            seq: 7,
            rtt_us: 46_800,
        })
    }

    fn migration(start_us: i64, end_us: i64, level: Light, verdict: EventVerdict) -> Migration {
        Migration {
            id: 1,
            first_seq: 100,
            last_seq: 146,
            probes: 47,
            start_us,
            end_us,
            downtime_us: 392_000,
            downtime_source: DowntimeSource::LossBurst,
            level,
            verdict,
            evidence: Evidence::default(),
            decided_us: end_us + 1_000_000,
            interval_us: 10_000,
        }
    }

    #[test]
    fn an_rtt_peak_is_shaded_from_its_own_start() {
        let rtt_peak = Reason::RttPeak {
            max_rtt_us: 46_800,
            baseline_us: 300,
            probes: 4,
            start_us: T - 40_000,
            end_us: T,
        };
        assert_eq!(
            YellowSpan::of(T, T + 10, Some(rtt_peak)).from_us,
            T - 40_000
        );
        assert_eq!(YellowSpan::of(T, T + 10, peak()).from_us, T);
        assert_eq!(YellowSpan::of(T, T + 10, None).to_us, T + 10);
    }

    #[test]
    fn shades_hold_migrations_and_the_other_yellows_with_their_reasons() {
        let migs = [
            migration(T, T + 400_000, Light::Red, EventVerdict::Migrated),
            migration(
                T + 60_000_000,
                T + 61_000_000,
                Light::Yellow,
                EventVerdict::PathOutage,
            ),
        ];
        // An RTT peak 20 s later: its own shade, from the peak's start.
        let rtt_peak = Reason::RttPeak {
            max_rtt_us: 46_800,
            baseline_us: 300,
            probes: 4,
            start_us: T + 19_960_000,
            end_us: T + 20_000_000,
        };
        let y = [
            // The yellow while the first outage was judged: that migration.
            YellowSpan::of(T + 100_000, T + 900_000, peak()),
            YellowSpan::of(T + 20_000_000, T + 20_500_000, Some(rtt_peak)),
        ];
        let s = shades(&migs, y, T - 1_000_000, T + 30_000_000);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!((s[0].from_us, s[0].level), (T, Light::Red));
        assert_eq!(s[0].label(UTC), "migration, downtime 392 ms");
        assert_eq!((s[1].from_us, s[1].to_us), (T + 19_960_000, T + 20_500_000));
        assert_eq!(s[1].level, Light::Yellow);
        assert_eq!(s[1].label(UTC), format::reason(&rtt_peak, UTC));
        // The window decides what is in it.
        let s = shades(&migs, y, T + 50_000_000, T + 70_000_000);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].label(UTC), "path outage, downtime 392 ms");
        assert!(shades(&[], [], T, T + 1).is_empty());
    }
}
