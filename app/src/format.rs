//! Turning numbers and detector reasons into plain words.
//!
//! No browser calls: the local time-zone offset is passed in, so these are
//! unit tested natively.

use migwatch_shared::{Light, Reason};

/// A UTC offset lookup: minutes to add to UTC for local time at the given
/// unix µs (a function, because the offset changes with daylight saving).
pub type TzOffset<'a> = &'a dyn Fn(i64) -> i32;

/// `HH:MM:SS.mmm` of unix µs `t`, shifted by `offset_min` minutes.
pub fn clock(t_us: i64, offset_min: i32) -> String {
    let ms = t_us.div_euclid(1000) + i64::from(offset_min) * 60_000;
    let day_ms = ms.rem_euclid(86_400_000);
    let (h, rest) = (day_ms / 3_600_000, day_ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// A duration in µs, with as many digits as are meaningful at its size:
/// `0.25 ms`, `46.8 ms`, `468 ms`, `1.44 s`, `12.3 s`.
pub fn duration(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 999.5 {
        format!("{ms:.0} ms")
    } else if ms < 9_995.0 {
        format!("{} s", trim(&format!("{:.2}", ms / 1000.0)))
    } else {
        format!("{} s", trim(&format!("{:.1}", ms / 1000.0)))
    }
}

/// A probe interval in ms as the header shows it: `every 10 ms`.
pub fn interval(ms: f64) -> String {
    if !(ms.is_finite() && ms > 0.0) {
        return "unknown interval".into();
    }
    if ms >= 1000.0 {
        format!("every {} s", trim(&format!("{:.3}", ms / 1000.0)))
    } else {
        format!("every {} ms", trim(&format!("{ms:.3}")))
    }
}

/// A decimal number without trailing zeros: `2.50` → `2.5`, `1.00` → `1`.
fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// `HH:MM:SS.mmm–HH:MM:SS.mmm`, or one time when both ends are equal.
fn span(start_us: i64, end_us: i64, tz: TzOffset<'_>) -> String {
    let a = clock(start_us, tz(start_us));
    if start_us == end_us {
        a
    } else {
        format!("{a}–{}", clock(end_us, tz(end_us)))
    }
}

/// A signed µs duration (negative counts as 0).
fn duration_i(us: i64) -> String {
    duration(u64::try_from(us).unwrap_or(0))
}

/// `1 probe`, `47 probes`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One detector reason in plain words, e.g.
/// `47 probes lost 10:31:02.315–10:31:02.790` or `late reply 468 ms (probe #1234)`.
pub fn reason(r: &Reason, tz: TzOffset<'_>) -> String {
    let ms = |us: u32| duration(u64::from(us));
    match *r {
        Reason::LossBurst {
            probes,
            start_us,
            end_us,
            ..
        } => format!(
            "{} lost {}",
            count(probes, "probe", "probes"),
            span(start_us, end_us, tz)
        ),
        Reason::LateReply { seq, rtt_us } => {
            format!("late reply {} (probe #{seq})", ms(rtt_us))
        }
        Reason::Sawtooth {
            probes,
            first_rtt_us,
            max_rtt_us,
            ..
        } => format!(
            "sawtooth after the outage: {}, first {}, peak {}",
            count(u64::from(probes), "elevated reply", "elevated replies"),
            ms(first_rtt_us),
            ms(max_rtt_us)
        ),
        Reason::QueueFlush {
            replies,
            max_rtt_us,
        } => format!(
            "{} released at once (up to {}): a queue flush, not a migration",
            count(u64::from(replies), "queued reply", "queued replies"),
            ms(max_rtt_us)
        ),
        Reason::Congestion {
            rtt_us,
            baseline_us,
        } => format!(
            "RTT already high before the loss: {} against a baseline of {}",
            ms(rtt_us),
            ms(baseline_us)
        ),
        Reason::LongOutage { duration_us } => format!(
            "outage of {}: longer than any stop-and-copy",
            duration_i(duration_us)
        ),
        Reason::Silence {
            since_us,
            elapsed_us,
            ..
        } => format!(
            "no reply since {} ({})",
            clock(since_us, tz(since_us)),
            duration_i(elapsed_us)
        ),
        Reason::RttPeak {
            max_rtt_us,
            baseline_us,
            probes,
            start_us,
            end_us,
        } => format!(
            "RTT peak {} (baseline {}, {}) {}",
            ms(max_rtt_us),
            ms(baseline_us),
            count(u64::from(probes), "reply", "replies"),
            span(start_us, end_us, tz)
        ),
        // Evidence kinds added to the detector later: their tag in words.
        #[allow(unreachable_patterns)]
        _ => r.name().replace('_', " "),
    }
}

/// The light's name as the page shows it, in capitals.
pub fn light_word(light: Option<Light>) -> &'static str {
    match light {
        Some(Light::Green) => "GREEN",
        Some(Light::Yellow) => "YELLOW",
        Some(Light::Red) => "RED",
        None => "NO DATA",
    }
}

/// What the light means, under its name.
pub fn light_meaning(light: Option<Light>) -> &'static str {
    match light {
        Some(Light::Green) => "nothing unusual",
        Some(Light::Yellow) => "unusual outage or RTT peak: maybe a migration",
        Some(Light::Red) => "migration: the stop-and-copy signature",
        None => "waiting for samples from the sidecar",
    }
}

/// The verdict in one sentence, e.g. `Red: 47 probes lost
/// 10:31:02.315–10:31:02.790, then a late reply of 468 ms: stop-and-copy
/// signature.` Empty when green.
pub fn headline(light: Light, reasons: &[Reason], tz: TzOffset<'_>) -> String {
    let word = match light {
        Light::Green => return String::new(),
        Light::Yellow => "Yellow",
        Light::Red => "Red",
    };
    let ms = |us: u32| duration(u64::from(us));
    let mut parts: Vec<String> = Vec::new();
    let mut conclusion = None;
    for r in reasons {
        let part = match *r {
            Reason::LossBurst { .. } | Reason::Silence { .. } => reason(r, tz),
            Reason::LateReply { rtt_us, .. } => format!("then a late reply of {}", ms(rtt_us)),
            Reason::Sawtooth { probes, .. } => format!(
                "then a sawtooth of {}",
                count(u64::from(probes), "elevated reply", "elevated replies")
            ),
            Reason::QueueFlush { replies, .. } => {
                conclusion.get_or_insert("a queue released at once, not a migration");
                format!(
                    "then {} released at once",
                    count(u64::from(replies), "queued reply", "queued replies")
                )
            }
            Reason::Congestion {
                rtt_us,
                baseline_us,
            } => {
                conclusion.get_or_insert("congestion, not a migration");
                format!(
                    "with RTT already at {} before it (baseline {})",
                    ms(rtt_us),
                    ms(baseline_us)
                )
            }
            Reason::LongOutage { duration_us } => {
                conclusion.get_or_insert("too long for a stop-and-copy");
                format!("lasting {}", duration_i(duration_us))
            }
            Reason::RttPeak { .. } => {
                conclusion.get_or_insert("an RTT peak: pre-copy or congestion, maybe");
                reason(r, tz)
            }
            #[allow(unreachable_patterns)]
            _ => reason(r, tz),
        };
        parts.push(part);
    }
    let conclusion = match (light, conclusion) {
        (Light::Red, _) => "stop-and-copy signature",
        (_, Some(c)) => c,
        _ if reasons.iter().any(|r| matches!(r, Reason::Silence { .. })) => {
            "an outage in progress, maybe a migration"
        }
        _ => "a possible migration",
    };
    if parts.is_empty() {
        format!("{word}: {conclusion}.")
    } else {
        format!("{word}: {}: {conclusion}.", parts.join(", "))
    }
}

/// One detected migration as the event log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Which target (the page's key for it).
    pub key: u32,
    /// The target's label.
    pub target: String,
    /// The detector's id for the migration.
    pub id: u64,
    /// Red or yellow.
    pub level: Light,
    /// Start (send time of the first lost probe), unix µs.
    pub start_us: i64,
    /// End (send time of the first probe answered after), unix µs.
    pub end_us: i64,
    /// `10:31:02.315`.
    pub start: String,
    /// `10:31:02.790`.
    pub end: String,
    /// `468 ms`.
    pub downtime: String,
    /// The evidence in words.
    pub evidence: Vec<String>,
}

/// The event log row of migration `m` of target `key` (`target`).
pub fn log_row(key: u32, target: &str, m: &migwatch_shared::Migration, tz: TzOffset<'_>) -> LogRow {
    LogRow {
        key,
        target: target.to_string(),
        id: m.id,
        level: m.level,
        start_us: m.start_us,
        end_us: m.end_us,
        start: clock(m.start_us, tz(m.start_us)),
        end: clock(m.end_us, tz(m.end_us)),
        downtime: duration_i(m.downtime_us),
        evidence: m.reasons().iter().map(|r| reason(r, tz)).collect(),
    }
}

/// The most severe light of those given; `None` when none has data.
pub fn worst(lights: impl IntoIterator<Item = Option<Light>>) -> Option<Light> {
    let rank = |l: Light| match l {
        Light::Green => 0,
        Light::Yellow => 1,
        Light::Red => 2,
    };
    lights.into_iter().flatten().max_by_key(|l| rank(*l))
}

/// The favicon for a light: an SVG disc in its colour, as a data URL.
pub fn favicon(light: Option<Light>) -> String {
    let color = match light {
        Some(Light::Green) => "%2316a34a",
        Some(Light::Yellow) => "%23eab308",
        Some(Light::Red) => "%23dc2626",
        None => "%239aa3ae",
    };
    format!(
        "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='7' fill='{color}'/%3E%3C/svg%3E"
    )
}

/// The tab title for a light: `● RED — migwatch`, `○ no data — migwatch`.
pub fn title(light: Option<Light>) -> String {
    match light {
        Some(l) => format!("● {} — migwatch", light_word(Some(l))),
        None => "○ no data — migwatch".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UTC: TzOffset<'static> = &|_| 0;

    #[test]
    fn clock_formats_local_time_with_millis() {
        // 2025-11-13T02:13:20.123456Z
        let t = 1_763_000_000_123_456;
        assert_eq!(clock(t, 0), "02:13:20.123");
        assert_eq!(clock(t, 60), "03:13:20.123");
        assert_eq!(clock(t, -180), "23:13:20.123");
        assert_eq!(clock(0, 0), "00:00:00.000");
        assert_eq!(clock(-1000, 0), "23:59:59.999");
    }

    #[test]
    fn durations_keep_meaningful_digits() {
        assert_eq!(duration(250), "0.25 ms");
        assert_eq!(duration(46_800), "46.8 ms");
        assert_eq!(duration(468_000), "468 ms");
        assert_eq!(duration(999_000), "999 ms");
        assert_eq!(duration(999_700), "1 s");
        assert_eq!(duration(1_000_000), "1 s");
        assert_eq!(duration(1_100_000), "1.1 s");
        assert_eq!(duration(1_441_000), "1.44 s");
        assert_eq!(duration(12_300_000), "12.3 s");
        assert_eq!(duration(120_000_000), "120 s");
    }

    #[test]
    fn intervals_read_naturally() {
        assert_eq!(interval(10.0), "every 10 ms");
        assert_eq!(interval(0.5), "every 0.5 ms");
        assert_eq!(interval(2500.0), "every 2.5 s");
        assert_eq!(interval(0.0), "unknown interval");
    }

    #[test]
    fn loss_burst_in_words() {
        let t = 1_763_000_000_000_000;
        let r = Reason::LossBurst {
            probes: 47,
            first_seq: 100,
            last_seq: 146,
            start_us: t + 315_000,
            end_us: t + 790_000,
        };
        assert_eq!(reason(&r, UTC), "47 probes lost 02:13:20.315–02:13:20.790");
        let one = Reason::LossBurst {
            probes: 1,
            first_seq: 1,
            last_seq: 1,
            start_us: t,
            end_us: t,
        };
        assert_eq!(reason(&one, UTC), "1 probe lost 02:13:20.000");
    }

    #[test]
    fn late_reply_in_words() {
        let r = Reason::LateReply {
            seq: 1234,
            rtt_us: 468_000,
        };
        assert_eq!(reason(&r, UTC), "late reply 468 ms (probe #1234)");
    }

    #[test]
    fn other_reasons_in_words() {
        let t = 1_763_000_000_000_000;
        let cases = [
            (
                Reason::Sawtooth {
                    probes: 12,
                    first_rtt_us: 5_200,
                    max_rtt_us: 8_100,
                    teeth: 3,
                    span_us: 120_000,
                },
                "sawtooth after the outage: 12 elevated replies, first 5.20 ms, peak 8.10 ms",
            ),
            (
                Reason::QueueFlush {
                    replies: 37,
                    max_rtt_us: 468_000,
                },
                "37 queued replies released at once (up to 468 ms): a queue flush, not a migration",
            ),
            (
                Reason::Congestion {
                    rtt_us: 12_300,
                    baseline_us: 300,
                },
                "RTT already high before the loss: 12.3 ms against a baseline of 0.30 ms",
            ),
            (
                Reason::LongOutage {
                    duration_us: 12_300_000,
                },
                "outage of 12.3 s: longer than any stop-and-copy",
            ),
            (
                Reason::Silence {
                    first_seq: 9,
                    since_us: t + 315_000,
                    elapsed_us: 470_000,
                },
                "no reply since 02:13:20.315 (470 ms)",
            ),
            (
                Reason::RttPeak {
                    max_rtt_us: 46_800,
                    baseline_us: 300,
                    probes: 1,
                    start_us: t,
                    end_us: t,
                },
                "RTT peak 46.8 ms (baseline 0.30 ms, 1 reply) 02:13:20.000",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(reason(&r, UTC), want);
        }
    }

    fn migration_reasons(t: i64) -> Vec<Reason> {
        vec![
            Reason::LossBurst {
                probes: 47,
                first_seq: 100,
                last_seq: 146,
                start_us: t + 315_000,
                end_us: t + 790_000,
            },
            Reason::LateReply {
                seq: 100,
                rtt_us: 468_000,
            },
        ]
    }

    #[test]
    fn headlines_read_as_one_sentence() {
        let t = 1_763_000_000_000_000;
        assert_eq!(headline(Light::Green, &[], UTC), "");
        assert_eq!(
            headline(Light::Red, &migration_reasons(t), UTC),
            "Red: 47 probes lost 02:13:20.315–02:13:20.790, then a late reply of 468 ms: stop-and-copy signature."
        );
        let mut flush = migration_reasons(t);
        flush[1] = Reason::QueueFlush {
            replies: 37,
            max_rtt_us: 468_000,
        };
        assert_eq!(
            headline(Light::Yellow, &flush, UTC),
            "Yellow: 47 probes lost 02:13:20.315–02:13:20.790, then 37 queued replies released at once: a queue released at once, not a migration."
        );
        let silence = [Reason::Silence {
            first_seq: 9,
            since_us: t,
            elapsed_us: 80_000,
        }];
        assert_eq!(
            headline(Light::Yellow, &silence, UTC),
            "Yellow: no reply since 02:13:20.000 (80.0 ms): an outage in progress, maybe a migration."
        );
        assert_eq!(
            headline(Light::Yellow, &[], UTC),
            "Yellow: a possible migration."
        );
    }

    #[test]
    fn worst_light_and_favicon() {
        assert_eq!(
            worst([None, Some(Light::Green), Some(Light::Red)]),
            Some(Light::Red)
        );
        assert_eq!(worst([Some(Light::Yellow), None]), Some(Light::Yellow));
        assert_eq!(worst([None, None]), None);
        assert_eq!(worst(Vec::new()), None);
        assert!(favicon(Some(Light::Red)).contains("%23dc2626"));
        assert!(favicon(None).starts_with("data:image/svg+xml,"));
    }

    #[test]
    fn titles_follow_the_light() {
        assert_eq!(title(Some(Light::Red)), "● RED — migwatch");
        assert_eq!(title(None), "○ no data — migwatch");
        assert_eq!(light_word(Some(Light::Green)), "GREEN");
    }
}
