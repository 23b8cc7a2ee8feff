//! Fixture tests over generated traces: every decoy stays below red and a
//! range of migrations go red with a good downtime estimate.

use migwatch_shared::detector::{Detector, DetectorConfig, Light};
use migwatch_shared::eval;
use migwatch_shared::synth::{generate, Scenario, TraceSpec};

fn spec(name: &str, seed: u64, iv: u32, sc: Scenario) -> TraceSpec {
    let mut s = TraceSpec::new(name, seed, iv, sc);
    // Short traces keep the debug-build test fast; the baseline still has
    // seconds to settle before the event.
    s.duration_s = 16.0;
    s
}

#[test]
fn no_decoy_goes_red() {
    for sc in Scenario::DECOYS {
        for (iv, seed) in [(2_000, 1), (10_000, 2), (10_000, 3)] {
            let t = generate(&spec(sc.name(), seed, iv, sc));
            let mut d = Detector::default();
            for ev in &t.events {
                d.push(ev);
                assert_ne!(
                    d.light(),
                    Light::Red,
                    "{} at {iv} µs, seed {seed}: {:?}",
                    sc.name(),
                    d.verdict()
                );
            }
            d.finish();
            let reds = d
                .migrations()
                .iter()
                .filter(|m| m.level == Light::Red)
                .count();
            assert_eq!(reds, 0, "{}", sc.name());
            if matches!(
                sc,
                Scenario::StreamGap | Scenario::SidecarStall | Scenario::SidecarRestart
            ) {
                // No data is never evidence, not even yellow.
                assert!(
                    d.migrations().is_empty(),
                    "{}: {:?}",
                    sc.name(),
                    d.migrations()
                );
            }
        }
    }
}

#[test]
fn plain_outage_flap_and_pause_are_yellow_events_or_peaks() {
    for sc in [Scenario::LinkOutage, Scenario::LinkFlap, Scenario::VmPause] {
        let t = generate(&spec(sc.name(), 5, 10_000, sc));
        let s = eval::score(&t.events, &t.labels, DetectorConfig::default());
        assert_eq!(s.decoys[0].level, Light::Yellow, "{}", sc.name());
    }
}

#[test]
fn migrations_go_red_quickly_with_the_downtime() {
    let cases = [
        (2_000, 4.0, true),
        (2_000, 25.0, false),
        (2_000, 334.0, true),
        (10_000, 20.0, false),
        (10_000, 150.0, true),
        (10_000, 1441.0, false),
        (10_000, 1441.0, true),
    ];
    for (i, (iv, down, held)) in cases.into_iter().enumerate() {
        for loaded in [false, true] {
            let sc = Scenario::Migration {
                downtime_ms: down,
                held,
                loaded,
            };
            let t = generate(&spec("m", 100 + i as u64, iv, sc));
            let s = eval::score(&t.events, &t.labels, DetectorConfig::default());
            let m = s.migrations[0];
            let what = format!("{down} ms at {iv} µs, held {held}, loaded {loaded}: {m:?}");
            assert_eq!(m.level, Light::Red, "{what}");
            assert!(
                m.yellow_latency_us.unwrap() <= 2 * i64::from(iv) + 50_000,
                "{what}"
            );
            // On a loaded host red waits for the level to fall back
            // (`load_quiet_ms` of quiet replies after the sawtooth).
            let red_bar = if loaded { 120_000 } else { 50_000 };
            assert!(m.red_latency_us.unwrap() <= red_bar, "{what}");
            // Extra losses after resume can add up to ~8 ms without a held
            // reply (see docs/DETECTION.md).
            let slack = if held { 5_000 } else { 10_000 };
            assert!(
                m.downtime_err_us.unwrap() <= i64::from(iv) + slack,
                "{what}"
            );
            assert_eq!(s.false_reds, 0, "{what}");
        }
    }
}

#[test]
fn baseline_alone_is_quiet() {
    let mut t = TraceSpec::new("b", 9, 2_000, Scenario::Baseline);
    t.duration_s = 60.0;
    let t = generate(&t);
    let s = eval::score(&t.events, &t.labels, DetectorConfig::default());
    assert_eq!((s.false_reds, s.false_yellows), (0, 0));
}

/// With the guest's channels (clock readings, announces watched, as the
/// trace's info record says): migrations are migrated and red, pauses in
/// place paused and never red (lossless, losing their end, losing their
/// start to the timeout), path cuts path outages and never red.
#[test]
fn verdicts_with_the_guests_channels() {
    use migwatch_shared::detector::EventVerdict;
    for (i, spec) in migwatch_shared::synth::channels(7, 1)
        .into_iter()
        .enumerate()
    {
        if !spec.announce || i % 2 == 1 {
            continue; // half of them keeps the debug build quick
        }
        let t = generate(&spec);
        let mut d = Detector::default();
        d.apply_info(t.info.as_ref().expect("channels write an info record"));
        let mut red = false;
        for ev in &t.events {
            d.push(ev);
            red |= d.light() == Light::Red;
        }
        d.finish();
        let m = d.migrations();
        let v: Vec<EventVerdict> = m.iter().map(|m| m.verdict).collect();
        match spec.scenario {
            Scenario::Migration { .. } => {
                assert!(v.contains(&EventVerdict::Migrated), "{}: {m:?}", spec.name)
            }
            Scenario::Pause { stop_ms, .. } => {
                assert!(!red, "{} went red: {m:?}", spec.name);
                assert_eq!(v, [EventVerdict::Paused], "{}: {m:?}", spec.name);
                let err = (m[0].downtime_us as f64 / 1000.0 - stop_ms).abs();
                assert!(err <= 1.5, "{}: length off by {err} ms", spec.name);
            }
            _ => {
                assert!(!red, "{} went red: {m:?}", spec.name);
                assert!(
                    v.iter().all(|x| *x == EventVerdict::PathOutage),
                    "{}: {m:?}",
                    spec.name
                );
            }
        }
    }
}

/// Echo only, at the sidecar's default 10 ms: stops of 2–4 intervals are
/// red at every sampling offset, and link cuts of the same lengths never.
#[test]
fn short_stops_are_red_at_every_sampling_offset_on_echo_alone() {
    let specs = migwatch_shared::synth::offsets(3, 1);
    for spec in specs.iter().filter(|s| {
        s.interval_us == 10_000
            && !s.name.contains("loaded")
            && match s.scenario {
                Scenario::Migration { downtime_ms, .. } => downtime_ms <= 41.0,
                Scenario::LinkOutageOf { ms } => ms <= 41.0,
                _ => false,
            }
    }) {
        let t = generate(spec);
        let s = eval::score(&t.events, &t.labels, DetectorConfig::default());
        assert_eq!(s.false_reds, 0, "{}", spec.name);
        for m in &s.migrations {
            assert_eq!(m.level, Light::Red, "{}: {m:?}", spec.name);
        }
    }
}
