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
