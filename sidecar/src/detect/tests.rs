//! `detect`, `synth` and `eval` over files and streams.

use super::*;
use migwatch_shared::synth::Scenario;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "migwatch-detect-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A 20 s trace with one 334 ms stop-and-copy and a held reply.
fn migration_spec() -> TraceSpec {
    let mut spec = TraceSpec::new(
        "m",
        11,
        10_000,
        Scenario::Migration {
            downtime_ms: 334.0,
            held: true,
            loaded: false,
        },
    );
    spec.duration_s = 20.0;
    spec
}

fn migration() -> synth::SynthTrace {
    synth::generate(&migration_spec())
}

fn run(text: &str, format: Option<Format>) -> Result<(DetectSummary, Vec<serde_json::Value>)> {
    let mut out = Vec::new();
    let s = detect_stream(
        text.as_bytes(),
        format,
        DetectorConfig::default(),
        DetectOptions::default(),
        &mut out,
    )?;
    let lines = String::from_utf8(out)?
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Ok((s, lines))
}

#[test]
fn lights_are_printed_as_they_change() {
    let t = migration();
    let mut jsonl = String::new();
    trace::write_jsonl(&t.events, &mut jsonl).unwrap();
    let mut out = Vec::new();
    detect_stream(
        jsonl.as_bytes(),
        None,
        DetectorConfig::default(),
        DetectOptions {
            lights: true,
            ..DetectOptions::default()
        },
        &mut out,
    )
    .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let changes: Vec<&str> = lines.iter().filter_map(|l| l["light"].as_str()).collect();
    // Yellow while silent, red once the outage is recognised, and back
    // (through yellow) to green after the holds.
    assert_eq!(changes.first(), Some(&"yellow"), "{changes:?}");
    assert!(changes.contains(&"red"), "{changes:?}");
    let red = lines.iter().find(|l| l["light"] == "red").unwrap();
    assert!(red["at_s"].as_f64().unwrap() > 1.7e9);
    assert_eq!(red["reasons"][0]["kind"], "loss_burst");
    // Changes come first, then the events and the summary.
    let first_event = lines.iter().position(|l| l.get("level").is_some()).unwrap();
    assert!(lines[..first_event]
        .iter()
        .all(|l| l.get("light").is_some()));
}

#[test]
fn detect_prints_events_then_a_summary_for_both_formats() {
    let t = migration();
    let mut jsonl = String::new();
    trace::write_jsonl(&t.events, &mut jsonl).unwrap();
    let mut csv = String::new();
    trace::write_csv(&t.events, &mut csv).unwrap();
    for (text, fmt) in [(&jsonl, None), (&csv, None), (&csv, Some(Format::Csv))] {
        let (s, lines) = run(text, fmt).unwrap();
        assert_eq!(s.red, 1, "{lines:?}");
        let first = &lines[0];
        assert_eq!(first["level"], "red");
        let d = first["downtime_ms"].as_f64().unwrap();
        assert!((d - 334.0).abs() < 15.0, "{d}");
        assert!(first["start_s"].as_f64().unwrap() > 1.7e9);
        assert_eq!(first["reasons"][0]["kind"], "loss_burst");
        assert!(
            lines.last().unwrap()["summary"]["samples"]
                .as_u64()
                .unwrap()
                > 1000
        );
    }
}

#[test]
fn malformed_files_name_the_line() {
    let e = run("seq,t_send,rtt_ms\n1,1.0,0.2\n2,oops,0.2\n", None).unwrap_err();
    assert!(e.to_string().contains("line 3"), "{e:#}");
    let e = run(
        "\n{\"type\":\"tick\",\"now_us\":1,\"next_seq\":0}\n{\"type\":\"sample\"}\n",
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("line 3"), "{e:#}");
    // Invalid UTF-8 names its line, also far into a file.
    let e = run_bytes(b"seq,t_send,rtt_ms\n1,1.0,0.2\n2,1.01,\xff\n", None).unwrap_err();
    assert!(
        format!("{e:#}").contains("line 3: not valid UTF-8"),
        "{e:#}"
    );
    let mut big = b"#\n".repeat(999_999);
    big.extend_from_slice(b"{\"type\":\"tick\",\"now_us\":1,\"next_seq\":0}\xc3\n");
    let e = run_bytes(&big, None).unwrap_err();
    assert!(
        format!("{e:#}").contains("line 1000000: not valid UTF-8"),
        "{e:#}"
    );
}

fn run_bytes(bytes: &[u8], format: Option<Format>) -> Result<DetectSummary> {
    detect_stream(
        bytes,
        format,
        DetectorConfig::default(),
        DetectOptions::default(),
        &mut Vec::new(),
    )
}

#[test]
fn empty_input_is_the_same_error_in_every_format() {
    let inputs = ["", "\n\n", "# only a comment\n", "seq,t_send,rtt_ms\n"];
    for text in inputs {
        for format in [None, Some(Format::Jsonl), Some(Format::Csv)] {
            if text.starts_with("seq") && format == Some(Format::Jsonl) {
                continue; // a CSV header is malformed JSON
            }
            let e = run(text, format).unwrap_err();
            assert!(
                format!("{e:#}").contains("the trace holds no events"),
                "{text:?} as {format:?}: {e:#}"
            );
        }
    }
    // An info record alone holds no events either.
    let e = run("{\"type\":\"info\",\"target\":\"192.0.2.1\",\"interval_ms\":10,\"timeout_ms\":1000,\"version\":\"x\",\"run_id\":\"r\"}\n", None).unwrap_err();
    assert!(format!("{e:#}").contains("no events"), "{e:#}");
}

#[test]
fn unsorted_or_repeated_input_is_a_warning_naming_the_first_line() {
    let t = migration();
    let mut jsonl = String::new();
    trace::write_jsonl(&t.events, &mut jsonl).unwrap();
    let (s, _) = run(&jsonl, None).unwrap();
    assert_eq!(s.warning, None);
    // A repeated line.
    let mut lines: Vec<&str> = jsonl.lines().collect();
    let dup = lines[100];
    lines.insert(101, dup);
    let (s, _) = run(&lines.join("\n"), None).unwrap();
    assert!(
        s.warning
            .as_deref()
            .is_some_and(|w| w.starts_with("line 102: ") && w.contains("repeated")),
        "{s:?}"
    );
    // Two blocks swapped: time goes back.
    let lines: Vec<&str> = jsonl.lines().collect();
    let mut swapped = lines[1000..1500].to_vec();
    swapped.extend_from_slice(&lines[..1000]);
    swapped.extend_from_slice(&lines[1500..]);
    let (s, _) = run(&swapped.join("\n"), None).unwrap();
    assert!(
        s.warning
            .as_deref()
            .is_some_and(|w| w.starts_with("line 501: ") && w.contains("out of order")),
        "{s:?}"
    );
    // CSV rows out of order.
    let csv = "seq,t_send,rtt_ms\n1,1.00,0.2\n3,1.02,0.2\n2,1.01,0.2\n2,1.01,0.2\n";
    let (s, _) = run(csv, None).unwrap();
    assert_eq!(
        s.warning.as_deref(),
        Some("line 4: seq 2 after 3: rows out of order")
    );
}

#[test]
fn the_info_record_sets_the_announce_channel_and_the_flag_overrides_it() {
    let t = migration();
    let info = migwatch_shared::wire::Info {
        target: "192.0.2.1".into(),
        interval_ms: 10.0,
        timeout_ms: 1000.0,
        version: "t".into(),
        run_id: "r".into(),
        clock_interval_ms: None,
        capture_iface: Some("veth0".into()),
        name: String::new(),
        labels: Default::default(),
    };
    let mut jsonl = trace::info_line(&info);
    jsonl.push('\n');
    trace::write_jsonl(&t.events, &mut jsonl).unwrap();
    let (s, lines) = run(&jsonl, None).unwrap();
    assert!(s.announce_channel);
    assert_eq!(s.interval_ms, Some(10.0));
    // Announces were watched and none came: the held reply and the
    // sawtooth say "stopped", but not "moved".
    assert_eq!((s.red, s.undecided), (0, 1), "{lines:?}");
    let mut out = Vec::new();
    let s = detect_stream(
        jsonl.as_bytes(),
        None,
        DetectorConfig::default(),
        DetectOptions {
            announce_channel: Some(false),
            ..DetectOptions::default()
        },
        &mut out,
    )
    .unwrap();
    assert!(!s.announce_channel);
    assert_eq!((s.red, s.migrated), (1, 1));
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["verdict"], "migrated");
    assert!(
        first["explanation"]
            .as_str()
            .unwrap()
            .starts_with("migrated or paused"),
        "{first}"
    );
}

#[test]
fn synth_then_eval_round_trips_through_files() {
    let dir = tmpdir("eval");
    let t = migration();
    let mut spec = TraceSpec::new("b", 5, 10_000, Scenario::LinkOutage);
    spec.duration_s = 20.0;
    write_synth(&dir, &spec, Format::Csv).unwrap();
    write_synth(&dir, &migration_spec(), Format::Jsonl).unwrap();
    let s = eval_dir(&dir, DetectorConfig::default()).unwrap();
    assert_eq!(s.traces.len(), 2);
    let mig = &s.traces.iter().find(|x| x.name == "m").unwrap().migrations[0];
    assert_eq!(mig.level, Light::Red);
    assert_eq!(t.labels.events.len(), 1);
    assert!(s.table().contains("| link_outage | 1 |"));
    assert!(eval_dir(&dir.join("nope"), DetectorConfig::default()).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_json_overrides_defaults() {
    let c = config(Some("{\"red_hold_ms\":5}")).unwrap();
    assert_eq!(c.red_hold_ms, 5);
    assert_eq!(c.min_burst, DetectorConfig::default().min_burst);
    assert!(config(Some("{\"red_hold_ms\":-1}")).is_err());
    let e = config(Some("{\"red_hold_msec\":5}")).unwrap_err();
    assert!(
        format!("{e:#}").contains("unknown field `red_hold_msec`"),
        "{e:#}"
    );
}
