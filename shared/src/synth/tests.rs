//! Generation is deterministic and every scenario is covered.

use super::*;

#[test]
fn generation_is_deterministic_and_ordered() {
    let spec = TraceSpec::new(
        "m",
        7,
        10_000,
        Scenario::Migration {
            downtime_ms: 1441.0,
            held: true,
            loaded: false,
        },
    );
    let a = generate(&spec);
    assert_eq!(a, generate(&spec));
    // A held reply past the timeout is reported lost, then late.
    let late = a
        .events
        .iter()
        .find_map(|e| match e {
            Event::Late(l) => Some(*l),
            _ => None,
        })
        .unwrap();
    assert!((1_441_000..1_460_000).contains(&late.rtt_us), "{late:?}");
    let t = &a.labels.events[0];
    assert_eq!(t.kind, TruthKind::Migration);
    let n = t.last_lost_seq.unwrap() - t.first_lost_seq.unwrap() + 1;
    assert!((144..=146).contains(&n), "{n}");
    // Ticks are there and in time order.
    let ticks: Vec<i64> = a
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Tick(t) => Some(t.now_us),
            _ => None,
        })
        .collect();
    assert!(ticks.len() > 50);
    assert!(ticks.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn stream_gap_inserts_a_gap_event() {
    let t = generate(&TraceSpec::new("g", 3, 10_000, Scenario::StreamGap));
    let gaps: Vec<_> = t
        .events
        .iter()
        .filter(|e| matches!(e, Event::Gap(_)))
        .collect();
    assert_eq!(gaps.len(), 1);
}

#[test]
fn suite_covers_everything() {
    let s = suite(1, 2);
    assert_eq!(s.len(), 12 + 20 + 1);
    assert!(s.iter().all(|t| t.name.len() > 5));
}

/// The RTTs of the replies to probes sent in `from..to`, sorted.
fn rtts_sent(t: &SynthTrace, from: i64, to: i64) -> Vec<u32> {
    let mut r: Vec<u32> = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Sample(s) if (from..to).contains(&s.sent_us) => s.rtt_us,
            _ => None,
        })
        .collect();
    r.sort_unstable();
    r
}

#[test]
fn a_loaded_cut_is_loaded_around_a_loss() {
    let mut spec = TraceSpec::new("c", 9, 10_000, Scenario::LoadedCut { ms: 150.0 });
    spec.phase = Some(0.25);
    let t = generate(&spec);
    let w = &t.labels.events[0];
    assert_eq!(w.kind, TruthKind::LoadedCut);
    let sorted = rtts_sent(&t, w.start_us, w.end_us);
    let lost = t
        .events
        .iter()
        .filter(|e| matches!(e, Event::Sample(s) if s.rtt_us.is_none()))
        .count();
    // The load's median is 2–7 ms; the cut loses its 15 probes.
    assert!(
        (2_000..7_500).contains(&sorted[sorted.len() / 2]),
        "{}",
        sorted[sorted.len() / 2]
    );
    assert!((15..=17).contains(&lost), "{lost}");
    // The offsets sweep holds as many loaded cuts as quiet ones.
    let o = offsets(1, 1);
    let count = |f: fn(&Scenario) -> bool| o.iter().filter(|s| f(&s.scenario)).count();
    assert_eq!(count(|s| matches!(s, Scenario::LoadedCut { .. })), 90);
    assert_eq!(count(|s| matches!(s, Scenario::LinkOutageOf { .. })), 90);
}

#[test]
fn a_mild_load_sits_at_its_multiple_of_the_quiet_level_and_changes_nothing_else() {
    let median_in = |spec: &TraceSpec| {
        let t = generate(spec);
        let w = &t.labels.events[0];
        let rtts = rtts_sent(&t, w.start_us, w.end_us);
        let quiet = rtts_sent(&t, i64::MIN, w.start_us);
        (
            f64::from(rtts[rtts.len() / 2]),
            f64::from(quiet[quiet.len() / 2]),
        )
    };
    let spec = TraceSpec::new("c", 9, 10_000, Scenario::LoadedCut { ms: 150.0 });
    let (loaded, quiet_before) = median_in(&spec);
    assert!(loaded >= 2_000.0, "{loaded}");
    let mut m = spec.clone();
    m.load_x = Some([2.0, 8.0]);
    let (load, quiet) = median_in(&m);
    assert!((1.8..8.5).contains(&(load / quiet)), "{load} over {quiet}");
    // One draw either way: the quiet part of the trace is the same.
    assert_eq!(quiet, quiet_before);
    // The mild sweep is the offsets sweep's loaded half, loaded 2–8 ×.
    let mild = mild(1, 1);
    assert_eq!(mild.len(), 180);
    assert!(mild
        .iter()
        .all(|t| t.load_x == Some([2.0, 8.0]) && t.name.ends_with("-mild")));
}

#[test]
fn a_jittery_quiet_path_spreads_its_replies_and_keeps_the_rest() {
    let spread = |spec: &TraceSpec| {
        let r = rtts_sent(&generate(spec), i64::MIN, i64::MAX);
        let q = |f: f64| f64::from(r[(f * r.len() as f64) as usize]);
        (q(0.9) / q(0.5), r.len())
    };
    let spec = TraceSpec::new("b", 5, 10_000, Scenario::Baseline);
    let mut jittery = spec.clone();
    jittery.quiet_sigma = Some(0.3);
    let (calm, n) = spread(&spec);
    let (wide, m) = spread(&jittery);
    // σ 0.15: p90 at 1.21 × the median; σ 0.3 (the lab's): 1.47 ×.
    assert!((1.1..1.3).contains(&calm), "{calm}");
    assert!((1.35..1.6).contains(&wide), "{wide}");
    assert_eq!(n, m);
    let j = jitter(1, 1);
    assert_eq!(j.len(), offsets(1, 1).len());
    assert!(j.iter().all(|t| t.quiet_sigma == Some(0.3)));
}
