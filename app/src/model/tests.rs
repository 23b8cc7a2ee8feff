//! Unit tests of `model`.

use super::*;

const UTC: TzOffset<'static> = &|_| 0;
const T0: i64 = 1_763_000_000_000_000;

fn sample(m: &mut Model, seq: u64, rtt: Option<u32>) {
    let rtt = rtt.map_or("null".to_string(), |r| r.to_string());
    let data = format!(
        r#"{{"seq":{seq},"sent_us":{},"rtt_us":{rtt}}}"#,
        T0 + seq as i64 * 10_000
    );
    m.ingest("sample", &data);
}

fn summary(m: &Model, live: bool) -> Summary {
    m.summary(live, UTC)
}

/// 20 s of 10 ms probes with a 470 ms stop-and-copy at 10 s: 47 lost,
/// the first held and answered late, then a sawtooth.
fn migration(m: &mut Model) {
    for q in 0..2000u64 {
        let rtt = match q {
            1000..=1046 => None,
            1047..=1051 => Some(30_000 - (q - 1047) as u32 * 5_000),
            _ => Some(250 + (q % 7) as u32 * 10),
        };
        sample(m, q, rtt);
        if q == 1047 {
            m.ingest("late", r#"{"seq":1000,"rtt_us":468000}"#);
        }
    }
}

#[test]
fn no_samples_is_no_data() {
    let m = Model::default();
    let s = summary(&m, true);
    assert_eq!(s.light_name(), "nodata");
    assert!(s.reasons.is_empty());
    assert!(s.headline.is_empty());
    assert!(s.stats.contains("median RTT –"));
}

#[test]
fn steady_samples_are_green_with_stats() {
    let mut m = Model::default();
    for q in 0..100 {
        sample(&mut m, q, Some(250));
    }
    let s = summary(&m, true);
    assert_eq!(s.light_name(), "green");
    assert_eq!((s.samples, s.lost, s.late), (100, 0, 0));
    assert!(s.stats.starts_with("median RTT 0.25 ms"), "{}", s.stats);
    assert_eq!((s.first_seq, s.last_seq, s.held), (Some(0), Some(99), 100));
}

#[test]
fn a_migration_is_red_with_words_and_logged() {
    let mut m = Model::default();
    migration(&mut m);
    let s = summary(&m, true);
    assert_eq!(s.light_name(), "red", "{s:?}");
    assert_eq!(s.lost, 47);
    assert_eq!(s.late, 1);
    assert!(
        s.headline.starts_with(
            "Red: downtime 463 ms (late reply); 47 probes lost 02:13:30.000–02:13:30.470"
        ),
        "{}",
        s.headline
    );
    assert!(
        s.headline.ends_with("stop-and-copy signature."),
        "{}",
        s.headline
    );
    assert_eq!(m.migrations().len(), 1);
    assert_eq!(s.migrations, 1);
    // The verdict stays until acknowledged, in whole seconds.
    assert_eq!(
        s.last_migration,
        "last migration: 02:13:30, downtime 463 ms (late reply)"
    );
    m.acknowledge();
    assert_eq!(summary(&m, true).last_migration, "");
    let f = m.frame(&Viewport::default(), 100);
    assert_eq!(f.bands.len(), 1);
    assert_eq!(f.bands[0].2, Light::Red);
}

#[test]
fn a_dropped_stream_is_no_data_but_says_what_it_saw() {
    let mut m = Model::default();
    migration(&mut m);
    let s = summary(&m, false);
    assert_eq!(s.light_name(), "nodata");
    assert_eq!(s.headline, "Stream down; the last light was RED.");
    assert!(!s.reasons.is_empty());
    // A green run that drops says nothing.
    let mut g = Model::default();
    sample(&mut g, 0, Some(1));
    let s = summary(&g, false);
    assert!(s.reasons.is_empty() && s.headline.is_empty());
}

#[test]
fn bad_events_are_counted_not_fatal() {
    let mut m = Model::default();
    m.ingest("future", "{}");
    m.ingest("sample", "not json");
    m.ingest("sample", r#"{"seq":1}"#);
    m.unnamed();
    let s = summary(&m, true);
    assert_eq!((s.unknown, s.malformed), (2, 2));
    assert_eq!(m.diag.events, 0);
    assert!(s.has_trouble());
    assert!(s.diag_line().contains("last error: event without a name"));
}

#[test]
fn gaps_overflows_and_new_runs_are_counted() {
    let mut m = Model::default();
    sample(&mut m, 0, Some(1));
    m.ingest("gap", r#"{"from_id":5,"to_id":14,"missing":10}"#);
    m.ingest("overflow", r#"{"last_id":20}"#);
    assert_eq!((m.diag.gaps, m.diag.missing, m.diag.overflows), (1, 10, 1));
    assert_eq!(m.event_count(), 3);
    m.new_run();
    assert!(m.store.is_empty());
    assert_eq!(m.event_count(), 0);
    assert_eq!(m.diag.new_runs, 1);
    assert_eq!(summary(&m, true).light_name(), "nodata");
}

#[test]
fn ticks_move_the_window_on_and_mark_pending_probes() {
    let mut m = Model::default();
    let vp = Viewport::default();
    for q in 0..100 {
        sample(&mut m, q, Some(100));
    }
    let newest = T0 + 99 * 10_000;
    assert_eq!(m.frame(&vp, 10).to_us, newest);
    assert_eq!(m.frame(&vp, 10).pending_from_us, None);
    // Quiet stream: probes 100..149 sent, none reported yet.
    let tick = format!(r#"{{"now_us":{},"next_seq":150}}"#, newest + 500_000);
    m.ingest("tick", &tick);
    let f = m.frame(&vp, 10);
    assert_eq!(f.to_us, newest + 500_000);
    assert_eq!(f.pending_from_us, Some(newest));
    // An older tick does not move time back.
    m.ingest("tick", &format!(r#"{{"now_us":{newest},"next_seq":100}}"#));
    assert_eq!(m.frame(&vp, 10).to_us, newest + 500_000);
    // Once later samples arrive the tick is behind them: nothing pending.
    for q in 100..200 {
        sample(&mut m, q, Some(100));
    }
    let f = m.frame(&vp, 10);
    assert_eq!(f.to_us, T0 + 199 * 10_000);
    assert_eq!(f.pending_from_us, None);
    assert_eq!(m.diag.events, 202);
}

#[test]
fn frame_follows_the_viewport() {
    let mut m = Model::default();
    // 40 s of samples at 10 ms.
    for q in 0..4000 {
        sample(&mut m, q, Some(100));
    }
    let mut vp = Viewport::default();
    let f = m.frame(&vp, 500);
    assert_eq!(f.points, 3001);
    assert_eq!(f.to_us - f.from_us, 30_000_000);
    vp.pause(T0 + 10_000_000);
    let f = m.frame(&vp, 500);
    assert_eq!(f.points, 1001);
}

#[test]
fn exports_replay_to_the_same_migrations() {
    let mut m = Model::default();
    migration(&mut m);
    m.ingest(
        "tick",
        &format!(r#"{{"now_us":{},"next_seq":2000}}"#, T0 + 20_000_000),
    );
    for (text, n) in [(m.export_jsonl(), 2002), (m.export_csv(), 2001)] {
        let evs = trace::read(&text).expect("own export reads back");
        assert_eq!(evs.len(), n);
        let mut back = Model::default();
        for ev in &evs {
            back.apply(ev);
        }
        back.finish();
        assert_eq!(back.migrations().len(), 1);
        assert_eq!(back.migrations()[0].level, Light::Red);
        assert_eq!(back.migrations()[0].start_us, m.migrations()[0].start_us);
    }
    let lines = m.migrations_jsonl();
    let v: serde_json::Value = serde_json::from_str(lines.trim()).expect("json");
    assert_eq!(v["level"], "red");
    assert_eq!(v["reasons"][0]["kind"], "loss_burst");
    let csv = m.migrations_csv(UTC);
    assert!(csv.starts_with("start_s,end_s,downtime_ms,level,probes,evidence\n"));
    assert!(csv.contains(",red,47,\"47 probes lost"), "{csv}");
}

/// A real lab migration (QEMU, TCG): 368.7 ms STOP→RESUME, with clock
/// readings and the announces captured on the monitor link.
const LAB: &str = include_str!("../../../tests/fixtures/lab-dirty-clock-announce.jsonl");

#[test]
fn a_lab_trace_draws_its_clock_step_and_announces() {
    let evs = crate::replay::parse("lab.jsonl", LAB).expect("the fixture reads");
    // As `migwatch-sidecar detect` reads a file: no `/info`, so no
    // announce channel until an announce is seen.
    let mut m = Model::default();
    for ev in &evs {
        m.apply(ev);
    }
    m.finish();
    let t = m.signals.totals();
    assert_eq!((t.clock, t.rarp, t.garp), (20, 5, 5));
    let s = summary(&m, true);
    assert_eq!((s.clock_readings, s.announces), (20, 10));
    assert!(
        s.stats
            .ends_with(" · clock readings 20 · announces 10 (5 RARP, 5 GARP)"),
        "{}",
        s.stats
    );
    let f = m.frame(&Viewport::default(), 600);
    assert_eq!(f.announces.len(), 10);
    let c = m.clock_frame(&f, 600);
    assert_eq!(c.readings, 20);
    // The clock track shades what the RTT chart shades.
    let shaded: Vec<_> = f
        .shades
        .iter()
        .map(|s| (s.from_us, s.to_us, s.level))
        .collect();
    assert_eq!(c.bands, shaded);
    assert!(!c.bands.is_empty());
    assert_eq!(c.announces.len(), 10);
    // The guest clock fell 370 ms behind across the stop (readings are
    // whole ms at the guest, so within a couple of ms of QMP's 368.7).
    let step = c.step_us.expect("a step");
    assert!((-372_000..=-366_000).contains(&step), "{step}");
    assert!((c.low_ms - -370.0).abs() < 5.0, "{}", c.low_ms);
    // The detector's verdict, in the page's words.
    let mg = m.migrations();
    assert_eq!(mg.len(), 1, "{mg:?}");
    assert_eq!(mg[0].level, Light::Red);
    let row = format::log_row(1, "lab", &mg[0], UTC);
    assert!(row.downtime.ends_with(" (clock step)"), "{row:?}");
    assert_eq!(row.evidence[0], "migrated", "{row:?}");
    assert!(
        row.evidence
            .iter()
            .any(|e| e.starts_with("guest clock stepped back 37")),
        "{row:?}"
    );
    assert!(
        row.evidence
            .iter()
            .any(|e| e == "MAC 52:54:00:4d:57:0a announced again: 5 RARP + 5 gratuitous ARP"),
        "{row:?}"
    );
    let lines = m.migrations_jsonl();
    let v: serde_json::Value = serde_json::from_str(lines.trim()).expect("json");
    assert_eq!(v["downtime_from"], "clock_step");
    // A new run forgets them, and keeps the announce channel.
    m.set_announce_channel(true);
    m.new_run();
    assert_eq!(m.signals.totals(), crate::signals::SignalTotals::default());
    assert!(m.announce_channel);
}

#[test]
fn the_demo_recording_turns_red_with_the_lab_downtime_and_the_decoy_does_not() {
    let text = include_str!("../../../public/demo.jsonl");
    let events = crate::replay::parse("demo.jsonl", text).expect("the demo parses");
    let mut m = Model::new(10_000);
    let mut red_at = None;
    let first = events.iter().find_map(|e| match e {
        Event::Sample(s) => Some(s.sent_us),
        _ => None,
    });
    for ev in &events {
        m.apply(ev);
        if red_at.is_none() && m.light() == Light::Red {
            red_at = m.newest_us();
        }
    }
    m.finish();
    let mg = m.migrations();
    let red: Vec<_> = mg.iter().filter(|x| x.level == Light::Red).collect();
    assert_eq!(red.len(), 1, "{mg:?}");
    // QMP measured 368.7 ms STOP→RESUME.
    assert!((300_000..=450_000).contains(&red[0].downtime_us), "{mg:?}");
    // The decoy link flap is detected, and not red.
    assert!(mg.iter().any(|x| x.level == Light::Yellow), "{mg:?}");
    // Red within a minute of the start at 1×.
    let after = red_at.zip(first).map(|(r, f)| r - f).expect("red");
    assert!(after < 60_000_000, "red after {after} µs");
    let s = summary(&m, true);
    assert!(s.last_migration.contains("(clock step)"), "{s:?}");
}

#[test]
fn raw_events_are_bounded_with_the_store() {
    let mut m = Model::new(1000);
    for q in 0..5000 {
        sample(&mut m, q, Some(100));
    }
    assert_eq!(m.store.len(), 1000);
    assert_eq!(m.event_count(), 1250);
    m.set_capacity(100);
    assert_eq!(m.event_count(), 125);
    assert!(m.events.capacity() < 2000);
}

#[test]
fn a_brief_rtt_peak_leaves_a_yellow_row_after_the_light_is_green_again() {
    let mut m = Model::default();
    for q in 0..500 {
        sample(&mut m, q, Some(250));
    }
    assert_eq!(m.yellow_spans().count(), 0);
    // 1 s of 30 ms replies, no probe lost.
    for q in 500..600 {
        sample(&mut m, q, Some(30_000));
    }
    for q in 600..1500 {
        sample(&mut m, q, Some(250));
    }
    assert_eq!(m.light(), Light::Green);
    assert!(m.migrations().is_empty());
    let spans: Vec<&YellowSpan> = m.yellow_spans().collect();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let y = spans[0];
    assert!(!y.open);
    assert!(y.start_us >= T0 + 500 * 10_000 && y.start_us < T0 + 600 * 10_000);
    assert!(y.end_us > T0 + 600 * 10_000, "the hold counts: {y:?}");
    assert!(matches!(
        y.reasons[0],
        migwatch_shared::Reason::RttPeak { .. }
    ));
    let row = format::yellow_row(1, "vm", y, UTC);
    assert_eq!(row.kind, format::RowKind::Yellow);
    assert_eq!(row.level, Light::Yellow);
    assert!(row.downtime_text().starts_with("yellow for "), "{row:?}");
    assert!(
        row.evidence[0].starts_with("RTT peak 30.0 ms")
            && row.evidence[0].ends_with("an RTT peak: pre-copy or congestion, maybe."),
        "{row:?}"
    );
}

#[test]
fn a_migrations_own_yellows_are_not_logged_twice() {
    let mut m = Model::default();
    migration(&mut m);
    for q in 2000..5000u64 {
        sample(&mut m, q, Some(250));
    }
    assert_eq!(m.migrations().len(), 1);
    assert_eq!(m.yellow_spans().count(), 0, "{:?}", m.yellows);
}

/// The lab recording and the demo (real guests' clocks, read at load):
/// no logged yellow span is a clock step alone, and no event is one
/// without a lost probe (clock noise).
#[test]
fn recorded_yellows_are_explained_and_clock_noise_is_not_one() {
    for (name, text) in [
        ("lab.jsonl", LAB),
        ("demo.jsonl", include_str!("../../../public/demo.jsonl")),
    ] {
        let evs = crate::replay::parse(name, text).expect("the fixture reads");
        let mut m = Model::default();
        for ev in &evs {
            m.apply(ev);
        }
        m.finish();
        for y in m.yellow_spans() {
            let noise = y
                .reasons
                .iter()
                .all(|r| matches!(r, migwatch_shared::Reason::ClockStep { .. }));
            assert!(!noise, "{name}: a yellow from the clock alone: {y:?}");
        }
        // A clock step with no probe lost becomes an event of its own: in
        // these recordings every event lost probes.
        for e in m.migrations() {
            assert!(e.probes > 0, "{name}: an event without loss: {e:?}");
        }
    }
}
