//! Round trips and errors of both trace formats.

use super::*;
use crate::wire::{Overflow, Tick};

fn events() -> Vec<Event> {
    vec![
        Event::Sample(Sample {
            seq: 0,
            sent_us: 1_763_000_000_000_000,
            rtt_us: Some(250),
        }),
        Event::Tick(Tick {
            now_us: 1_763_000_000_020_000,
            next_seq: 3,
        }),
        Event::Sample(Sample {
            seq: 2,
            sent_us: 1_763_000_000_020_000,
            rtt_us: Some(1_234_567),
        }),
        Event::Sample(Sample {
            seq: 1,
            sent_us: 1_763_000_000_010_000,
            rtt_us: None,
        }),
        Event::Late(Late {
            seq: 1,
            rtt_us: 1_441_000,
        }),
        Event::Gap(Gap {
            from_id: 5,
            to_id: 6,
            missing: 2,
        }),
        Event::Overflow(Overflow { last_id: 9 }),
    ]
}

#[test]
fn jsonl_round_trips_every_event() {
    let mut s = String::new();
    write_jsonl(&events(), &mut s).unwrap();
    assert!(s.starts_with("{\"type\":\"sample\",\"seq\":0,"));
    assert_eq!(Format::sniff(&s), Format::Jsonl);
    assert_eq!(read(&s).unwrap(), events());
    // Every line written takes the fast path (the live stream's decoder).
    for ev in events() {
        assert_eq!(parse_canonical(&jsonl_line(&ev)), Some(ev));
    }
    assert_eq!(
        without_position("missing field `seq` at line 1 column 20"),
        "missing field `seq`"
    );
    // Other forms are left to the slow path.
    assert_eq!(parse_canonical("{\"seq\":1,\"type\":\"sample\"}"), None);
    assert_eq!(parse_canonical("{\"type\":\"nosuch\",\"a\":1}"), None);
}

#[test]
fn jsonl_accepts_envelopes_ids_comments_and_skips_unknown_types() {
    let text = "# a comment\n\n{\"event\":\"late\",\"id\":4,\"data\":{\"seq\":1,\"rtt_us\":9}}\n\
                {\"type\":\"hologram\",\"mac\":\"x\"}\n\
                {\"type\":\"sample\",\"id\":7,\"seq\":3,\"sent_us\":5,\"rtt_us\":null}\n";
    let mut r = TraceReader::new(Format::Jsonl);
    let mut out = vec![];
    for l in text.lines() {
        r.feed_line(l, &mut out).unwrap();
    }
    assert_eq!(r.skipped, 1);
    assert_eq!(
        out,
        vec![
            Event::Late(Late { seq: 1, rtt_us: 9 }),
            Event::Sample(Sample {
                seq: 3,
                sent_us: 5,
                rtt_us: None
            })
        ]
    );
}

#[test]
fn jsonl_errors_name_the_line() {
    let e = read(
        "{\"type\":\"tick\",\"now_us\":1,\"next_seq\":1}\n{\"type\":\"sample\",\"seq\":\"x\"}\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.msg.contains("malformed sample"), "{e}");
    let e = read("{\"type\":\"tick\",\"now_us\":1,\"next_seq\":1}\nnot json\n").unwrap_err();
    assert_eq!(e.line, 2);
    let e = read("{\"seq\":1}\n").unwrap_err();
    assert!(e.to_string().starts_with("line 1: no \"type\""), "{e}");
    let e = read("{\"type\":\"sample\",\"seq\":1,\"sent_us\":2,\"rtt_us\":-3}").unwrap_err();
    assert_eq!(e.line, 1);
}

#[test]
fn csv_round_trips_samples_and_late_replies() {
    let mut s = String::new();
    write_csv(&events(), &mut s).unwrap();
    assert_eq!(
        s,
        "seq,t_send,rtt_ms,late_ms\n\
         0,1763000000.000000,0.250,\n\
         1,1763000000.010000,,1441.000\n\
         2,1763000000.020000,1234.567,\n"
    );
    let back = read(&s).unwrap();
    let samples: Vec<_> = events()
        .into_iter()
        .filter(|e| matches!(e, Event::Sample(_) | Event::Late(_)))
        .collect();
    // Rows come back in seq order, each late right after its loss.
    assert_eq!(back, vec![samples[0], samples[2], samples[3], samples[1]]);
}

#[test]
fn csv_columns_in_any_order_extras_ignored_and_missing_rows_become_gaps() {
    let text = "host,rtt_ms,seq,t_send\nvm,0.3,10,100.5\n\"vm\",,11,100.51\nvm,1.0005,15,100.55\n";
    let ev = read(text).unwrap();
    assert_eq!(
        ev,
        vec![
            Event::Sample(Sample {
                seq: 10,
                sent_us: 100_500_000,
                rtt_us: Some(300)
            }),
            Event::Sample(Sample {
                seq: 11,
                sent_us: 100_510_000,
                rtt_us: None
            }),
            Event::Gap(Gap {
                from_id: 12,
                to_id: 14,
                missing: 3
            }),
            Event::Sample(Sample {
                seq: 15,
                sent_us: 100_550_000,
                rtt_us: Some(1001)
            }),
        ]
    );
}

#[test]
fn csv_errors_name_the_line() {
    let cases = [
        ("seq,when,rtt\n1,2,3\n", 1, "header"),
        ("seq,t_send,rtt_ms\n1,2,3\nx,2,3\n", 3, "seq"),
        ("seq,t_send,rtt_ms\n1,2,3\n2,yesterday,3\n", 3, "t_send"),
        ("seq,t_send,rtt_ms\n1,2,-3\n", 2, "out of range"),
        ("seq,t_send,rtt_ms\n1,2,abc\n", 2, "rtt_ms"),
        ("seq,t_send,rtt_ms\n1,2\n", 2, "columns"),
        ("seq,t_send,rtt_ms,late_ms\n1,2,3,4\n", 2, "late_ms"),
        ("", 1, "no events"),
        ("seq,t_send,rtt_ms\n", 1, "no events"),
    ];
    for (text, line, what) in cases {
        let e = read_as(Format::Csv, text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.msg.contains(what), "{text:?}: {e}");
    }
}

#[test]
fn decimals_parse_exactly() {
    assert_eq!(
        parse_scaled("1763000000.123456", 6),
        Some(1_763_000_000_123_456)
    );
    assert_eq!(parse_scaled("0.2505", 3), Some(251));
    assert_eq!(parse_scaled("12", 3), Some(12_000));
    assert_eq!(parse_scaled(".5", 3), Some(500));
    assert_eq!(parse_scaled("-1.5", 6), Some(-1_500_000));
    assert_eq!(parse_scaled("1.5e3", 3), Some(1_500_000));
    // Exponent forms are exact, rounded half up like plain decimals.
    assert_eq!(parse_scaled("1.5E-3", 6), Some(1_500));
    assert_eq!(parse_scaled("-2.5e+1", 0), Some(-25));
    assert_eq!(parse_scaled("5e-4", 3), Some(1));
    assert_eq!(parse_scaled("4.9e-4", 3), Some(0));
    assert_eq!(parse_scaled("5e-5", 3), Some(0));
    assert_eq!(parse_scaled("0.05e1", 3), Some(500));
    assert_eq!(parse_scaled("1.23456789e-2", 3), Some(12));
    assert_eq!(parse_scaled("1e30", 3), None);
    assert_eq!(parse_scaled("1e", 3), None);
    assert_eq!(parse_scaled("e3", 3), None);
    for bad in ["", ".", "1.2.3", "1,5", "nan", "inf", "1e999", "--1"] {
        assert_eq!(parse_scaled(bad, 3), None, "{bad}");
    }
}

#[test]
fn an_info_record_at_the_head_is_read_and_older_readers_skip_it() {
    let info = crate::wire::Info {
        target: "192.0.2.1".into(),
        interval_ms: 2.0,
        timeout_ms: 1000.0,
        version: "0.1.0".into(),
        run_id: "abc".into(),
        clock_interval_ms: Some(200.0),
        capture_iface: Some("br0".into()),
        name: "vm1".into(),
        labels: [("rack".to_string(), "a".to_string())].into(),
    };
    let mut text = info_line(&info);
    assert!(text.starts_with("{\"type\":\"info\",\"target\":"), "{text}");
    text.push('\n');
    write_jsonl(&events(), &mut text).unwrap();
    let t = read_trace(&text).unwrap();
    assert_eq!(t.info.as_ref(), Some(&info));
    assert_eq!(t.events, events());
    // An event reader skips it as an unknown type.
    assert_eq!(parse_jsonl_line(1, text.lines().next().unwrap()), Ok(None));
    // Only the record at the head describes the trace.
    let late = format!("{}\n{}\n", jsonl_line(&events()[0]), info_line(&info));
    assert_eq!(read_trace(&late).unwrap().info, None);
    // A malformed one names its line.
    let e = read_trace("\n{\"type\":\"info\",\"interval_ms\":\"ten\"}\n").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.msg.contains("info record"), "{e}");
}
