//! What the charts shade and why: every detected migration (red or
//! yellow) and every other yellow the light showed, such as an RTT peak,
//! each with its reason. Plain data, computed from the detector's state as
//! events arrive ([`YellowTrack`]) and per frame ([`shades`]).

use crate::format::{self, TzOffset};
use migwatch_shared::detector::EventVerdict;
use migwatch_shared::{Light, Migration, Reason};
use std::collections::VecDeque;

/// Yellows kept per target: far more than a window shows; the oldest go.
pub const YELLOW_SPANS_KEPT: usize = 256;

/// A time the light was yellow, from its first reason.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YellowSpan {
    /// When the light turned yellow (event time), unix µs.
    pub from_us: i64,
    /// When it left yellow, unix µs (the latest event time while open).
    pub to_us: i64,
    /// The detector's first reason when it turned yellow.
    pub reason: Option<Reason>,
}

/// The light's yellow intervals, recorded as events arrive; bounded.
#[derive(Debug, Clone, Default)]
pub struct YellowTrack {
    open: Option<YellowSpan>,
    done: VecDeque<YellowSpan>,
}

impl YellowTrack {
    /// Notes the light after an event at `now_us`; `reason` is asked only
    /// when a yellow begins.
    pub fn observe(&mut self, now_us: i64, light: Light, reason: impl FnOnce() -> Option<Reason>) {
        match (&mut self.open, light) {
            (Some(s), Light::Yellow) => s.to_us = s.to_us.max(now_us),
            (None, Light::Yellow) => {
                let reason = reason();
                // An RTT peak is seen a few replies after it began: shade
                // it from its start.
                let from_us = match reason {
                    Some(Reason::RttPeak { start_us, .. }) => start_us.min(now_us),
                    _ => now_us,
                };
                self.open = Some(YellowSpan {
                    from_us,
                    to_us: now_us,
                    reason,
                })
            }
            (open, _) => {
                if let Some(mut s) = open.take() {
                    s.to_us = s.to_us.max(now_us);
                    if self.done.len() >= YELLOW_SPANS_KEPT {
                        self.done.pop_front();
                    }
                    self.done.push_back(s);
                }
            }
        }
    }

    /// The yellows so far, oldest first, the open one last.
    pub fn spans(&self) -> impl Iterator<Item = &YellowSpan> {
        self.done.iter().chain(self.open.as_ref())
    }

    /// Forgets everything (a new run).
    pub fn clear(&mut self) {
        *self = YellowTrack::default();
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
    yellows: &YellowTrack,
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
            .spans()
            .filter(|y| within(y.from_us, y.to_us) && !covered(y))
            .map(|y| Shade {
                from_us: y.from_us,
                to_us: y.to_us,
                level: Light::Yellow,
                why: Why::Yellow(y.reason),
            }),
    );
    // In time order for the labels. An insertion sort: a window holds a
    // handful, both lists come nearly sorted, and a library sort would add
    // ~2 KB of wasm to the page for this one type.
    for i in 1..out.len() {
        let mut j = i;
        while j > 0 && out[j - 1].from_us > out[j].from_us {
            out.swap(j - 1, j);
            j -= 1;
        }
    }
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
    fn the_track_records_each_yellow_from_its_start_to_its_end() {
        let mut y = YellowTrack::default();
        let mut asked = 0;
        let mut see = |y: &mut YellowTrack, t: i64, l: Light| {
            y.observe(t, l, || {
                asked += 1;
                peak()
            })
        };
        see(&mut y, T, Light::Green);
        see(&mut y, T + 10, Light::Yellow);
        see(&mut y, T + 20, Light::Yellow);
        // Still open: it reaches the latest event.
        assert_eq!(
            y.spans().copied().collect::<Vec<_>>(),
            vec![YellowSpan {
                from_us: T + 10,
                to_us: T + 20,
                reason: peak()
            }]
        );
        see(&mut y, T + 30, Light::Green);
        see(&mut y, T + 40, Light::Yellow);
        see(&mut y, T + 50, Light::Red);
        let s: Vec<_> = y.spans().map(|s| (s.from_us, s.to_us)).collect();
        assert_eq!(s, vec![(T + 10, T + 30), (T + 40, T + 50)]);
        assert_eq!(asked, 2, "the reason is asked once per yellow");
        y.clear();
        assert_eq!(y.spans().count(), 0);
    }

    #[test]
    fn the_track_is_bounded() {
        let mut y = YellowTrack::default();
        for i in 0..(YELLOW_SPANS_KEPT as i64 + 10) {
            y.observe(T + i * 20, Light::Yellow, || None);
            y.observe(T + i * 20 + 10, Light::Green, || None);
        }
        assert_eq!(y.spans().count(), YELLOW_SPANS_KEPT);
        assert_eq!(y.spans().next().map(|s| s.from_us), Some(T + 200));
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
        let mut y = YellowTrack::default();
        // The yellow while the first outage was judged: that migration.
        y.observe(T + 100_000, Light::Yellow, peak);
        y.observe(T + 900_000, Light::Red, peak);
        // An RTT peak 20 s later: its own shade, from the peak's start.
        let rtt_peak = Reason::RttPeak {
            max_rtt_us: 46_800,
            baseline_us: 300,
            probes: 4,
            start_us: T + 19_960_000,
            end_us: T + 20_000_000,
        };
        y.observe(T + 20_000_000, Light::Yellow, || Some(rtt_peak));
        y.observe(T + 20_500_000, Light::Green, peak);
        let s = shades(&migs, &y, T - 1_000_000, T + 30_000_000);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!((s[0].from_us, s[0].level), (T, Light::Red));
        assert_eq!(s[0].label(UTC), "migration, downtime 392 ms");
        assert_eq!((s[1].from_us, s[1].to_us), (T + 19_960_000, T + 20_500_000));
        assert_eq!(s[1].level, Light::Yellow);
        assert_eq!(s[1].label(UTC), format::reason(&rtt_peak, UTC));
        // The window decides what is in it.
        let s = shades(&migs, &y, T + 50_000_000, T + 70_000_000);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].label(UTC), "path outage, downtime 392 ms");
        assert!(shades(&[], &YellowTrack::default(), T, T + 1).is_empty());
    }
}
