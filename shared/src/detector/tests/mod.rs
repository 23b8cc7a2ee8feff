use super::*;
use crate::wire::Gap;

const MS: i64 = 1000;
const T0: i64 = 1_000_000_000;
/// Probe interval in these tests.
const IV: i64 = 10 * MS;

fn sent(seq: u64) -> i64 {
    T0 + seq as i64 * IV
}

fn sample(seq: u64, rtt_us: Option<u32>) -> Event {
    Event::Sample(Sample {
        seq,
        sent_us: sent(seq),
        rtt_us,
    })
}

fn feed(d: &mut Detector, seqs: impl IntoIterator<Item = u64>, rtt: u32) {
    for q in seqs {
        d.push(&sample(q, Some(rtt)));
    }
}

fn tick(d: &mut Detector, now: i64, next_seq: u64) {
    d.push(&Event::Tick(Tick {
        now_us: now,
        next_seq,
    }));
}

/// A live-order outage of probes `a..b` (exclusive): ticks every 20 ms
/// while silent, then the replies `after` (seq, rtt) of the probes after
/// it, then (one timeout later) the losses.
fn outage(d: &mut Detector, a: u64, b: u64, after: &[(u64, u32)]) {
    let mut t = sent(a - 1) + 20 * MS;
    while t < sent(b) {
        tick(d, t, (t - T0) as u64 / IV as u64 + 1);
        t += 20 * MS;
    }
    for &(q, r) in after {
        d.push(&sample(q, Some(r)));
    }
    for q in a..b {
        d.push(&sample(q, None));
    }
}

#[test]
fn steady_replies_are_green_and_the_interval_and_baseline_are_learnt() {
    let mut d = Detector::default();
    feed(&mut d, 0..1000, 250);
    assert_eq!(
        d.verdict(),
        Verdict {
            light: Light::Green,
            reasons: vec![]
        }
    );
    assert_eq!(d.interval_us(), Some(10_000));
    // MAD = 0 (constant RTT) is handled by the floor.
    let b = d.baseline().unwrap();
    assert_eq!((b.median_us, b.mad_us), (250, 0));
    assert_eq!(b.elevated_us, 2250);
    assert!(d.migrations().is_empty());
}

#[test]
fn isolated_losses_and_spikes_stay_green() {
    let mut d = Detector::default();
    for q in 0..3000u64 {
        let rtt = match q % 100 {
            7 => None,
            50 => Some(60_000),
            _ => Some(250),
        };
        d.push(&sample(q, rtt));
        assert_ne!(d.light(), Light::Red, "at {q}");
    }
    assert!(d.migrations().is_empty(), "{:?}", d.migrations());
}

#[test]
fn silence_is_yellow_within_two_intervals_and_50_ms() {
    let mut d = Detector::default();
    feed(&mut d, 0..100, 250);
    // Probe 100 is the first without a reply; the sidecar ticks every
    // 20 ms from the last reply on.
    let first_missed = sent(100) + 250;
    let mut yellow_at = None;
    let mut t = sent(99) + 250;
    for _ in 0..10 {
        t += 20 * MS;
        tick(&mut d, t, (t - T0) as u64 / IV as u64 + 1);
        if d.light() == Light::Yellow && yellow_at.is_none() {
            yellow_at = Some(t);
        }
    }
    let latency = yellow_at.unwrap() - first_missed;
    assert!(latency <= 2 * IV + 50 * MS, "{latency}");
    let v = d.verdict();
    assert!(matches!(
        v.reasons[0],
        Reason::Silence { first_seq: 100, .. }
    ));
}

#[test]
fn plain_outage_is_yellow_with_its_extent_then_green() {
    let mut d = Detector::default();
    feed(&mut d, 0..200, 250);
    let after: Vec<(u64, u32)> = (250..260).map(|q| (q, 250)).collect();
    outage(&mut d, 200, 250, &after);
    let v = d.verdict();
    assert_eq!(v.light, Light::Yellow);
    assert_eq!(
        v.reasons[0],
        Reason::LossBurst {
            probes: 50,
            first_seq: 200,
            last_seq: 249,
            start_us: sent(200),
            end_us: sent(250),
        }
    );
    let m = d.migrations();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].level, Light::Yellow);
    assert_eq!(m[0].downtime_us, 500 * MS);
    feed(&mut d, 260..2000, 250);
    assert_eq!(d.light(), Light::Green);
}

#[test]
fn burst_with_held_reply_is_red_then_decays_to_yellow_then_green() {
    let mut d = Detector::default();
    feed(&mut d, 0..199, 250);
    // Probe 199 was held across a 334 ms stop (arrives at resume); the
    // probes sent during the stop are lost.
    let mut after = vec![(199u64, 334_000 + 5_000)];
    after.extend((234..240).map(|q| (q, 250)));
    let mut t = sent(198) + 20 * MS;
    while t < sent(233) {
        tick(&mut d, t, (t - T0) as u64 / IV as u64 + 1);
        t += 20 * MS;
    }
    assert_eq!(d.light(), Light::Yellow);
    for &(q, r) in &after {
        d.push(&sample(q, Some(r)));
    }
    assert_eq!(d.light(), Light::Red, "{:?}", d.verdict());
    let v = d.verdict();
    assert!(matches!(v.reasons[0], Reason::LossBurst { probes: 34, .. }));
    assert!(v.reasons.contains(&Reason::LateReply {
        seq: 199,
        rtt_us: 339_000
    }));
    let m = d.migrations()[0];
    assert_eq!(m.level, Light::Red);
    assert_eq!(m.downtime_us, 334_000);
    for q in 200..234 {
        d.push(&sample(q, None));
    }
    // 10 s of red, then 5 s of yellow, then green.
    feed(&mut d, 240..1200, 250);
    assert_eq!(d.light(), Light::Red);
    feed(&mut d, 1200..1400, 250);
    assert_eq!(d.light(), Light::Yellow);
    feed(&mut d, 1400..2000, 250);
    assert_eq!(d.light(), Light::Green);
    assert_eq!(d.migrations().len(), 1);
}

#[test]
fn long_stop_reported_late_is_red() {
    let mut d = Detector::default();
    feed(&mut d, 0..200, 250);
    // A 1.44 s stop with a 1 s timeout: the held probe 200 is reported lost
    // first, then late; the losses of the others arrive during the stop.
    let mut t = sent(199) + 20 * MS;
    let mut next_loss = 200;
    while t < sent(344) {
        tick(&mut d, t, (t - T0) as u64 / IV as u64 + 1);
        while sent(next_loss) + 1_000 * MS <= t {
            d.push(&sample(next_loss, None));
            next_loss += 1;
        }
        t += 20 * MS;
    }
    d.push(&Event::Late(Late {
        seq: 200,
        rtt_us: 1_441_000,
    }));
    feed(&mut d, 345..360, 250);
    assert_eq!(d.light(), Light::Red, "{:?}", d.verdict());
    let m = d.migrations()[0];
    assert_eq!(m.evidence.held.unwrap().seq, 200);
    assert!((m.downtime_us - 1_436_000).abs() <= IV, "{}", m.downtime_us);
}

#[test]
fn sawtooth_after_a_burst_is_red_but_not_after_a_single_loss() {
    let saw = |first: u64| -> Vec<(u64, u32)> {
        let mut v: Vec<(u64, u32)> = (0..5)
            .map(|k| (first + k, 40_000 - k as u32 * 8_000))
            .collect();
        v.extend((first + 5..first + 20).map(|q| (q, 250)));
        v
    };
    let mut d = Detector::default();
    feed(&mut d, 0..200, 250);
    outage(&mut d, 200, 206, &saw(206));
    assert_eq!(d.light(), Light::Red, "{:?}", d.verdict());
    assert!(d
        .verdict()
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::Sawtooth { probes: 5, .. })));

    let mut d = Detector::default();
    feed(&mut d, 0..200, 250);
    outage(&mut d, 200, 201, &saw(201));
    assert_ne!(d.light(), Light::Red);
}

#[test]
fn queue_flush_after_a_burst_is_not_red() {
    // Monitor-side link flap: loss, then ARP-queued replies released
    // together, hundreds of ms late.
    let mut d = Detector::default();
    feed(&mut d, 0..200, 250);
    let release = sent(300) + 200 * MS;
    let queued: Vec<(u64, u32)> = (260..300)
        .map(|q| (q, (release - sent(q)) as u32))
        .chain((300..320).map(|q| (q, 250)))
        .collect();
    outage(&mut d, 200, 260, &queued);
    assert_eq!(d.light(), Light::Yellow);
    assert!(d
        .verdict()
        .reasons
        .iter()
        .any(|r| matches!(r, Reason::QueueFlush { .. })));
}

#[test]
fn congestion_before_the_loss_is_not_red() {
    let mut d = Detector::default();
    feed(&mut d, 0..500, 250);
    // RTT climbs to 150 ms, then a burst with a sawtooth-like recovery.
    for q in 500..700u64 {
        d.push(&sample(q, Some(250 + (q - 500) as u32 * 750)));
    }
    let after: Vec<(u64, u32)> = (0..5)
        .map(|k| (710 + k, 80_000 - k as u32 * 15_000))
        .chain((715..730).map(|q| (q, 250)))
        .collect();
    outage(&mut d, 700, 710, &after);
    assert_ne!(d.light(), Light::Red, "{:?}", d.verdict());
    assert!(d.migrations()[0].evidence.congestion.is_some());
}

#[test]
fn overtaken_replies_are_not_losses() {
    let mut d = Detector::default();
    feed(&mut d, 0..200, 250);
    // 200 and 201 come back after 202 (reordering), nothing is lost.
    d.push(&sample(202, Some(250)));
    d.push(&sample(200, Some(25_000)));
    d.push(&sample(201, Some(15_000)));
    feed(&mut d, 203..400, 250);
    assert_eq!(d.light(), Light::Green);
    assert!(d.migrations().is_empty());
}

#[test]
fn gaps_in_the_data_are_not_evidence() {
    let mut d = Detector::default();
    feed(&mut d, 0..100, 250);
    tick(&mut d, sent(99) + 20 * MS, 102);
    d.push(&Event::Gap(Gap {
        from_id: 1,
        to_id: 100,
        missing: 100,
    }));
    feed(&mut d, 500..510, 250);
    assert_eq!(d.light(), Light::Green);
    assert!(d.migrations().is_empty());
    // With ticks on, a long quiet spell (the sidecar stalled) is a hole too.
    tick(&mut d, sent(510) + 20 * MS, 512);
    feed(&mut d, 900..910, 250);
    assert_eq!(d.light(), Light::Green);
}

#[test]
fn an_unreported_outage_is_withdrawn_as_no_data() {
    // No ticks, no gap event: probes 100..150 are simply never reported.
    let mut d = Detector::default();
    feed(&mut d, 0..100, 250);
    feed(&mut d, 150..160, 250);
    assert_eq!(d.migrations().len(), 1);
    feed(&mut d, 160..8000, 250);
    assert!(d.migrations().is_empty());
}

#[test]
fn a_restarted_sidecar_starts_a_new_run() {
    let mut d = Detector::default();
    feed(&mut d, 0..500, 250);
    // seq starts again at 0, sent later.
    for q in 0..500u64 {
        d.push(&Event::Sample(Sample {
            seq: q,
            sent_us: sent(600 + q),
            rtt_us: Some(250),
        }));
    }
    assert_eq!(d.light(), Light::Green);
    assert!(d.migrations().is_empty());
}

#[test]
fn sustained_rtt_peak_is_yellow_without_an_event() {
    let mut d = Detector::default();
    feed(&mut d, 0..500, 250);
    feed(&mut d, 500..600, 30_000);
    let v = d.verdict();
    assert_eq!(v.light, Light::Yellow);
    assert!(matches!(v.reasons[0], Reason::RttPeak { .. }));
    feed(&mut d, 600..1500, 250);
    assert_eq!(d.light(), Light::Green);
    assert!(d.migrations().is_empty());
}

#[test]
fn outages_longer_than_the_window_do_not_panic() {
    let mut d = Detector::default();
    feed(&mut d, 0..100, 250);
    for q in 100..(3 * WINDOW as u64) {
        d.push(&sample(q, None));
    }
    feed(&mut d, 3 * WINDOW as u64..3 * WINDOW as u64 + 10, 250);
    d.finish();
    let m = d.migrations()[0];
    assert!(m.evidence.long_outage.is_some());
    assert_eq!(m.level, Light::Yellow);
}

#[test]
fn configured_interval_and_reason_serialisation() {
    let cfg = DetectorConfig {
        interval_us: Some(10_000),
        ..DetectorConfig::default()
    };
    let d = Detector::new(cfg);
    assert_eq!(d.interval_us(), Some(10_000));
    let r = Reason::LateReply { seq: 3, rtt_us: 9 };
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        r#"{"kind":"late_reply","seq":3,"rtt_us":9}"#
    );
    let c: DetectorConfig = serde_json::from_str(r#"{"red_hold_ms":5}"#).unwrap();
    assert_eq!(c.red_hold_ms, 5);
    assert_eq!(c.min_burst, 3);
}

// ---- confirming signals: the guest clock and layer-2 announces ------------

mod signals;

// ---- echo only: the path's tail next to a short cut -----------------------

mod tail;

// ---- echo only: a loaded host (its level before and after) ----------------

mod loaded;

// ---- echo only: a slow guest's release at resume, then stalls -----------

mod ramp;

#[test]
fn a_skip_is_missing_data_never_loss() {
    use crate::wire::Skip;
    // The sidecar froze for 600 ms after probe 500 and skipped 501..=560,
    // then probing went on.
    let mut d = Detector::default();
    feed(&mut d, 0..=500, 300);
    d.push(&Event::Skip(Skip {
        first_seq: 501,
        last_seq: 560,
    }));
    tick(&mut d, sent(561), 562);
    assert_eq!(d.light(), Light::Green, "{:?}", d.verdict());
    for q in 561..2000 {
        d.push(&sample(q, Some(300)));
        assert_eq!(d.light(), Light::Green, "at {q}: {:?}", d.verdict());
    }
    assert!(d.migrations().is_empty(), "{:?}", d.migrations());
    // Probe 500 was in flight when the sidecar froze; its reply is read
    // after the skip event: the skipped seqs are still not lost.
    let mut e = Detector::default();
    feed(&mut e, 0..500, 300);
    e.push(&Event::Skip(Skip {
        first_seq: 501,
        last_seq: 560,
    }));
    e.push(&sample(500, Some(600_000)));
    feed(&mut e, 561..1000, 300);
    e.finish();
    assert!(e.migrations().is_empty(), "{:?}", e.migrations());
    // A real outage after the skip is still one.
    outage(&mut d, 2000, 2010, &[(2010, 300)]);
    feed(&mut d, 2011..2100, 300);
    d.finish();
    let m = d.migrations();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].first_seq, m[0].probes), (2000, 10));
}

#[test]
fn slow_first_replies_of_a_run_light_nothing() {
    // A cold ARP cache and a busy guest: the first 20 replies take
    // 15–35 ms, before any baseline exists.
    let mut d = Detector::default();
    for q in 0..20u64 {
        d.push(&sample(q, Some(35_000 - q as u32 * 1000)));
        assert_eq!(d.light(), Light::Green, "at {q}: {:?}", d.verdict());
    }
    feed(&mut d, 20..1000, 300);
    assert_eq!(d.light(), Light::Green, "{:?}", d.verdict());
    assert!(d.migrations().is_empty());
}
