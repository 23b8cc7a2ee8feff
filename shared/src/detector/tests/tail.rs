//! Echo only: one slow reply of the path's own tail next to a short cut
//! is not a stop's signature (not a held reply, not a sawtooth).

use super::*;
use crate::eval::score_with_info;
use crate::synth::{generate, offsets};

/// A held reply that comes back after the first probe answered after the
/// outage was sent was held up on the path, not by a stop: in a move,
/// everything sent before the resume is lost, and the guest releases what
/// it held before it answers anything newer.
#[test]
fn a_reply_back_after_the_next_probe_was_sent_is_not_held() {
    let run = |back_after_next_send_us: i64| {
        let mut d = Detector::default();
        feed(&mut d, 0..199, 250);
        // Probes 200..203 lost; 199 comes back around the send of 203,
        // 203 is queued behind it (replies never overtake), then baseline.
        let arrival = sent(203) + back_after_next_send_us;
        let r199 = (arrival - sent(199)) as u32;
        let r203 = (arrival + 2 - sent(203)).max(250) as u32;
        let mut after = vec![(199u64, r199), (203, r203)];
        after.extend((204..230).map(|q| (q, 250)));
        outage(&mut d, 200, 203, &after);
        feed(&mut d, 230..260, 250);
        d
    };
    // Back 1 ms before the next probe's send: held by the stop (RTT 39 ms).
    let d = run(-MS);
    assert_eq!(d.migrations()[0].level, Light::Red, "{:?}", d.migrations());
    assert!(d.migrations()[0].evidence.held.is_some());
    // Back 5 ms after it, with that probe's reply right behind: the path.
    let d = run(5 * MS);
    let m = d.migrations()[0];
    assert_eq!(m.level, Light::Yellow, "{m:?}");
    assert!(m.evidence.held.is_none(), "{m:?}");
    assert_eq!(m.downtime_source, DowntimeSource::LossBurst);
}

/// The false reds of the offsets sweep before `held_release_us` and
/// `path_tail_us` (seed, trace): 5–8.2 ms cuts at 2 ms next to a 10–14 ms
/// tail reply, which came back after the next probe's send (1, 2: 0440),
/// just before it (2: 0473), or was the first reply after the cut with six
/// queued behind it (5). Each is still an event (yellow), never red.
#[test]
fn tail_replies_around_short_cuts_are_not_red() {
    for (seed, name) in [
        (1, "0425-link_outage-2ms-5ms-p1"),
        (2, "0440-link_outage-2ms-6ms-p1"),
        (2, "0473-link_outage-2ms-8.2ms-p2"),
        (5, "0206-link_outage-2ms-8.2ms-p3"),
    ] {
        let spec = offsets(seed, 2)
            .into_iter()
            .find(|s| s.name == name)
            .unwrap();
        let t = generate(&spec);
        let s = score_with_info(&t.events, &t.labels, DetectorConfig::default(), None);
        assert_eq!(s.false_reds, 0, "seed {seed} {name}");
        assert_eq!(s.decoys[0].level, Light::Yellow, "seed {seed} {name}");
    }
}

/// The same rules keep every held-reply migration at 2 ms of the first
/// seed red (stops of 2–4.1 intervals, 60 ms, 150 ms, 0.8 s, 1.4 s).
#[test]
fn held_migrations_at_2_ms_stay_red() {
    let mut n = 0;
    for spec in offsets(1, 1) {
        let m = matches!(
            spec.scenario,
            crate::synth::Scenario::Migration {
                held: true,
                loaded: false,
                ..
            }
        );
        if !m || spec.interval_us != 2_000 {
            continue;
        }
        let t = generate(&spec);
        let s = score_with_info(&t.events, &t.labels, DetectorConfig::default(), None);
        assert_eq!(s.migrations[0].level, Light::Red, "{}", spec.name);
        n += 1;
    }
    assert!(n >= 20, "{n}");
}

/// At 10 ms a quiet host's post-resume fall, sampled late, can leave only
/// two replies above the level (seed 42's 794 ms stop: 12.3 ms twice, 10 ms
/// apart): two teeth peaking at `sawtooth_min_us` are a sawtooth. Two
/// replies released at once (one slow tail reply and the one queued
/// behind it) or peaking below that are not.
#[test]
fn two_full_teeth_on_a_quiet_host_are_a_sawtooth() {
    let run = |shape: &[(u64, u32)]| {
        let mut d = Detector::default();
        feed(&mut d, 0..400, 250);
        outage(&mut d, 400, 481, shape);
        feed(&mut d, 484..600, 250);
        d.finish();
        d.migrations()[0]
    };
    let m = run(&[(481, 12_300), (482, 12_300), (483, 2_200)]);
    assert_eq!(m.level, Light::Red, "{m:?}");
    let saw = m.evidence.sawtooth.expect("a sawtooth");
    assert_eq!((saw.probes, saw.teeth), (2, 2), "{m:?}");
    for shape in [
        // 482 comes back with 481: one tooth.
        [(481, 14_000), (482, 4_000), (483, 250)],
        // Two teeth, but peaking below the full bar.
        [(481, 11_000), (482, 11_000), (483, 1_000)],
    ] {
        let m = run(&shape);
        assert_eq!(m.level, Light::Yellow, "{shape:?}: {m:?}");
    }
    // The trace it was found in (offsets sweep, seed 42).
    let spec = offsets(42, 2)
        .into_iter()
        .find(|s| s.name == "0117-migration-10ms-794ms-p4")
        .expect("the seed-42 trace");
    let t = generate(&spec);
    let s = score_with_info(&t.events, &t.labels, DetectorConfig::default(), None);
    assert_eq!(s.migrations[0].level, Light::Red, "seed 42 0117");
}
