//! The event log: the page's own detections merged with the sidecar's list
//! (`/migrations`, which reaches back before the history the page holds),
//! split into migrations and outages, and the short line that keeps the
//! last migration on screen until acknowledged. Plain Rust, unit tested.

use crate::format::{self, clock, duration_i, LogRow, RowKind, RowSource, TzOffset};
use crate::json;
use migwatch_shared::detector::DowntimeSource;
use migwatch_shared::{Light, Migration};

/// The fields the log shows of a `shared::report::MigrationRecord` from
/// the sidecar's `/migrations`. Its `reasons` are left unread: decoding
/// every detector reason would add ~20 KB to the page, over its weight
/// budget, and the page's own detector gives the words for every event in
/// its history.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarRecord {
    /// Send time of the first lost probe, s.
    pub start_s: f64,
    /// Send time of the first probe answered after, s.
    pub end_s: f64,
    /// Downtime estimate, ms.
    pub downtime_ms: f64,
    /// `clock_step`, `late_reply` or `loss_burst`.
    pub downtime_from: String,
    /// `red` or `yellow`.
    pub level: String,
    /// The sidecar's verdict in words (empty from older sidecars).
    pub explanation: String,
}

/// `/targets/{name}/migrations`: `{"migrations":[…]}`, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SidecarRecords {
    /// The records.
    pub migrations: Vec<SidecarRecord>,
}

impl SidecarRecords {
    /// Decodes `/migrations`' answer (`json`'s rules: every field but
    /// `explanation` is required).
    pub fn from_json(text: &str) -> Result<SidecarRecords, json::Error> {
        let v = json::parse(text)?;
        let migrations = json::items(&v, "migrations", |r| {
            Ok(SidecarRecord {
                start_s: json::f64(r, "start_s")?,
                end_s: json::f64(r, "end_s")?,
                downtime_ms: json::f64(r, "downtime_ms")?,
                downtime_from: json::string(r, "downtime_from")?,
                level: json::string(r, "level")?,
                explanation: json::string_or_empty(r, "explanation")?,
            })
        })?;
        Ok(SidecarRecords { migrations })
    }
}

/// `clock_step` → `clock step`, as [`format::downtime_source`] says it.
fn source_words(s: &str) -> String {
    match s {
        "clock_step" => format::downtime_source(DowntimeSource::ClockStep).into(),
        "late_reply" => format::downtime_source(DowntimeSource::LateReply).into(),
        "loss_burst" => format::downtime_source(DowntimeSource::LossBurst).into(),
        other => other.replace('_', " "),
    }
}

/// Two detections of one target closer than this (start times, µs) are the
/// same event seen by the page and by the sidecar: the page's detector
/// and the sidecar's run the same code over the same probes, so they agree
/// to the probe; one second leaves room for a resumed stream.
const SAME_EVENT_US: i64 = 1_000_000;

/// The log row of a record from the sidecar's `/migrations`.
pub fn record_row(key: u32, target: &str, r: &SidecarRecord, tz: TzOffset<'_>) -> LogRow {
    let us = |s: f64| (s * 1e6).round() as i64;
    let (start_us, end_us) = (us(r.start_s), us(r.end_s));
    LogRow {
        key,
        target: target.to_string(),
        id: u64::try_from(start_us).unwrap_or(0),
        level: if r.level == "red" {
            Light::Red
        } else {
            Light::Yellow
        },
        start_us,
        end_us,
        start: clock(start_us, tz(start_us)),
        end: clock(end_us, tz(end_us)),
        downtime: format!(
            "{} ({})",
            duration_i((r.downtime_ms * 1000.0).round() as i64),
            source_words(&r.downtime_from)
        ),
        evidence: vec![if r.explanation.is_empty() {
            "detected by the sidecar, before the history this page holds".into()
        } else {
            format!(
                "{} (the sidecar's own detector, before the history this page holds)",
                r.explanation
            )
        }],
        source: RowSource::Sidecar,
        kind: RowKind::Event,
        open: false,
    }
}

/// Whether a sidecar record ended before the page's oldest held sample
/// (`None`: the page holds nothing, so everything is before it).
pub fn before_history(r: &SidecarRecord, oldest_us: Option<i64>) -> bool {
    oldest_us.is_none_or(|o| ((r.end_s * 1e6).round() as i64) < o)
}

/// Adds the sidecar's rows that the page did not detect itself (same
/// target, start within [`SAME_EVENT_US`]), then sorts newest first and
/// keeps at most `max`.
pub fn merge(mut rows: Vec<LogRow>, sidecar: Vec<LogRow>, max: usize) -> Vec<LogRow> {
    let extra: Vec<LogRow> = sidecar
        .into_iter()
        .filter(|s| {
            !rows
                .iter()
                .any(|r| r.key == s.key && (r.start_us - s.start_us).abs() < SAME_EVENT_US)
        })
        .collect();
    rows.extend(extra);
    crate::sort::by_key(&mut rows, |r| std::cmp::Reverse(r.start_us));
    rows.truncate(max);
    rows
}

/// Migrations (red) and outages (yellow: judged not a migration, or not
/// confirmed), each newest first.
pub fn split(rows: &[LogRow]) -> (Vec<LogRow>, Vec<LogRow>) {
    rows.iter().cloned().partition(|r| r.level == Light::Red)
}

/// `last migration: 14:02:07, downtime 392 ms (clock step)`.
pub fn last_migration_words(
    start_us: i64,
    downtime_us: i64,
    from: DowntimeSource,
    tz: TzOffset<'_>,
) -> String {
    let t = clock(start_us, tz(start_us));
    let hms = t.split('.').next().unwrap_or(&t);
    format!(
        "last migration: {hms}, downtime {} ({})",
        duration_i(downtime_us),
        format::downtime_source(from)
    )
}

/// The last red migration of `migrations` not yet acknowledged (`acked`:
/// the start of the one the user acknowledged last).
pub fn unacknowledged(migrations: &[Migration], acked: Option<i64>) -> Option<&Migration> {
    migrations
        .iter()
        .rev()
        .find(|m| m.level == Light::Red)
        .filter(|m| acked.is_none_or(|a| m.start_us > a))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UTC: TzOffset<'static> = &|_| 0;

    fn rec(start_s: f64, level: &str) -> SidecarRecord {
        SidecarRecord {
            start_s,
            end_s: start_s + 0.4,
            downtime_ms: 392.4,
            downtime_from: "clock_step".into(),
            level: level.into(),
            explanation: String::new(),
        }
    }

    #[test]
    fn the_sidecars_printed_record_decodes() {
        let full = migwatch_shared::report::MigrationRecord {
            start_s: 1.5,
            end_s: 2.0,
            downtime_ms: 40.0,
            downtime_from: DowntimeSource::LateReply,
            level: "red".into(),
            decided_s: 2.1,
            reasons: vec![migwatch_shared::Reason::LateReply {
                seq: 7,
                rtt_us: 400_000,
            }],
            verdict: Default::default(),
            explanation: "migrated: downtime 40 ms".into(),
        };
        let text = format!(
            "{{\"migrations\":[{}]}}",
            serde_json::to_string(&full).expect("json")
        );
        let got = SidecarRecords::from_json(&text).expect("decodes");
        assert_eq!(got.migrations[0].downtime_from, "late_reply");
        let r = record_row(1, "a", &got.migrations[0], UTC);
        assert_eq!(r.downtime, "40.0 ms (late reply)");
        assert_eq!(r.level, Light::Red);
        assert!(r.evidence[0].starts_with("migrated: downtime 40 ms (the sidecar's own"));
    }

    #[test]
    fn sidecar_records_read_as_rows() {
        let r = record_row(3, "vm-1", &rec(1_763_000_000.5, "red"), UTC);
        assert_eq!(r.level, Light::Red);
        assert_eq!(r.start, "02:13:20.500");
        assert_eq!(r.downtime, "392 ms (clock step)");
        assert_eq!(r.source, RowSource::Sidecar);
        let y = record_row(3, "vm-1", &rec(1.0, "yellow"), UTC);
        assert_eq!(y.level, Light::Yellow);
    }

    #[test]
    fn merge_keeps_the_pages_rows_and_adds_older_sidecar_ones() {
        let page = vec![record_row(1, "a", &rec(1000.0, "red"), UTC)];
        let mut p0 = page.clone();
        p0[0].source = RowSource::Page;
        let side = vec![
            record_row(1, "a", &rec(1000.3, "red"), UTC),
            record_row(1, "a", &rec(500.0, "red"), UTC),
            record_row(2, "b", &rec(1000.0, "yellow"), UTC),
        ];
        let got = merge(p0, side, 10);
        assert_eq!(got.len(), 3);
        assert!(got[0].source == RowSource::Page || got[0].key == 2);
        assert_eq!(got[2].start_us, 500_000_000);
        assert_eq!(got[2].source, RowSource::Sidecar);
        let (mig, out) = split(&got);
        assert_eq!((mig.len(), out.len()), (2, 1));
        assert_eq!(merge(got, Vec::new(), 1).len(), 1);
    }

    #[test]
    fn only_records_older_than_the_pages_history_are_added() {
        let r = rec(1000.0, "red");
        assert!(before_history(&r, None));
        assert!(before_history(&r, Some(1_000_500_000)));
        assert!(!before_history(&r, Some(1_000_300_000)));
    }

    #[test]
    fn last_migration_is_said_in_whole_seconds() {
        assert_eq!(
            last_migration_words(
                1_763_000_000_500_000,
                392_400,
                DowntimeSource::ClockStep,
                UTC
            ),
            "last migration: 02:13:20, downtime 392 ms (clock step)"
        );
    }
}
