//! The committed traces in `tests/fixtures/` (also used by the page's replay
//! test): they parse in both formats and detect as labelled.
//!
//! Regenerate them with
//! `cargo test -p migwatch-shared --test fixtures -- --ignored regenerate`.

use migwatch_shared::detector::{Detector, DetectorConfig, Light};
use migwatch_shared::eval::{self, Labels, TruthKind};
use migwatch_shared::synth::{generate, Scenario, TraceSpec};
use migwatch_shared::trace;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// The fixtures: name, seed, interval, scenario.
fn specs() -> Vec<TraceSpec> {
    let mk = |name: &str, seed, sc| {
        let mut s = TraceSpec::new(name, seed, 10_000, sc);
        s.duration_s = 8.0;
        s
    };
    vec![
        mk(
            "migration-334ms-10ms",
            4,
            Scenario::Migration {
                downtime_ms: 334.0,
                held: true,
                loaded: false,
            },
        ),
        mk(
            "migration-1441ms-late-10ms",
            6,
            Scenario::Migration {
                downtime_ms: 1441.0,
                held: true,
                loaded: false,
            },
        ),
        mk("link-flap-10ms", 7, Scenario::LinkFlap),
    ]
}

#[test]
#[ignore = "writes tests/fixtures; run on purpose"]
fn regenerate() {
    for spec in specs() {
        let t = generate(&spec);
        let mut j = String::new();
        trace::write_jsonl(&t.events, &mut j).unwrap();
        let mut c = String::new();
        trace::write_csv(&t.events, &mut c).unwrap();
        let mut l = serde_json::to_string_pretty(&t.labels).unwrap();
        l.push('\n');
        std::fs::write(dir().join(format!("{}.jsonl", spec.name)), j).unwrap();
        std::fs::write(dir().join(format!("{}.csv", spec.name)), c).unwrap();
        std::fs::write(dir().join(format!("{}.labels.json", spec.name)), l).unwrap();
    }
}

#[test]
fn committed_fixtures_detect_as_labelled_in_both_formats() {
    for spec in specs() {
        let labels: Labels = serde_json::from_str(
            &std::fs::read_to_string(dir().join(format!("{}.labels.json", spec.name))).unwrap(),
        )
        .unwrap();
        let mut levels = Vec::new();
        for ext in ["jsonl", "csv"] {
            let text = std::fs::read_to_string(dir().join(format!("{}.{ext}", spec.name))).unwrap();
            let events = trace::read(&text).unwrap();
            let s = eval::score(&events, &labels, DetectorConfig::default());
            assert_eq!(s.false_reds, 0, "{} {ext}", spec.name);
            let mut d = Detector::default();
            events.iter().for_each(|e| d.push(e));
            d.finish();
            let m: Vec<_> = d
                .migrations()
                .iter()
                .map(|m| (m.level, m.downtime_us))
                .collect();
            match labels.events[0].kind {
                TruthKind::Migration => {
                    let sm = s.migrations[0];
                    assert_eq!(sm.level, Light::Red, "{} {ext}", spec.name);
                    assert!(sm.downtime_err_us.unwrap() <= 15_000, "{} {ext}", spec.name);
                }
                _ => assert!(m.iter().all(|(l, _)| *l == Light::Yellow), "{}", spec.name),
            }
            levels.push(m);
        }
        // The CSV replay finds the same events as the live-order JSON lines.
        assert_eq!(levels[0], levels[1], "{}", spec.name);
    }
}

#[test]
fn the_late_fixture_has_a_late_event_and_ticks() {
    let text = std::fs::read_to_string(dir().join("migration-1441ms-late-10ms.jsonl")).unwrap();
    assert!(text.contains("{\"type\":\"late\","));
    assert!(text.contains("{\"type\":\"tick\","));
}
