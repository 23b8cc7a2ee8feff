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

mod signals {
    use super::*;
    use crate::wire::{Announce, AnnounceKind, Clock, Mac};

    const MAC: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    /// A scripted run: echo probes every 10 ms (RTT 500 µs), clock readings
    /// every 200 ms (RTT 400 µs, whole-ms target readings), and one outage.
    struct Run {
        secs: i64,
        /// Echo probes lost from here to `out_end` (send times, µs after T0).
        out_start: i64,
        out_end: i64,
        /// The guest clock stood still for this long at `out_start` (a
        /// migration), or 0 (a path outage).
        stop_us: i64,
        /// Drift of the target clock, ppm.
        ppm: f64,
        /// RTT of the first `slow` clock readings after the outage.
        slow: (usize, u32),
        /// Announce frames after the outage.
        announce: bool,
        /// Echo replies right after the outage (RTT falling from this).
        sawtooth_us: u32,
        /// Clock readings on.
        clock: bool,
    }

    impl Run {
        fn new(out_start_ms: i64, out_ms: i64) -> Run {
            Run {
                secs: 12,
                out_start: out_start_ms * MS,
                out_end: (out_start_ms + out_ms) * MS,
                stop_us: 0,
                ppm: 20.0,
                slow: (0, 0),
                announce: false,
                sawtooth_us: 0,
                clock: true,
            }
        }

        fn migration(mut self, stop_ms: i64) -> Run {
            self.stop_us = stop_ms * MS;
            self.announce = true;
            self
        }

        /// The events in arrival order.
        fn events(&self) -> Vec<(i64, Event)> {
            let mut v = Vec::new();
            let out = |t: i64| t >= self.out_start && t < self.out_end;
            let n = self.secs * 1000 * MS / IV;
            for q in 0..n as u64 {
                let s = sent(q);
                let t = s - T0;
                if out(t) {
                    // Reported lost one timeout (1 s) later.
                    v.push((s + 1_000 * MS, sample(q, None)));
                } else {
                    let after = t - self.out_end;
                    let rtt = if self.sawtooth_us > 0 && (0..50 * MS).contains(&after) {
                        self.sawtooth_us - (after as u32 / 50_000) * self.sawtooth_us / 2
                    } else {
                        500
                    };
                    v.push((s + i64::from(rtt), sample(q, Some(rtt))));
                }
            }
            if self.clock {
                let mut slow_left = self.slow.0;
                let mut j = 0u64;
                let mut t = 100 * MS;
                while t < self.secs * 1000 * MS {
                    if !out(t) {
                        let rtt = if t >= self.out_end && slow_left > 0 {
                            slow_left -= 1;
                            self.slow.1
                        } else {
                            400
                        };
                        // The target's clock: a base offset, drift, and the
                        // stop; it reads whole ms (centred by the sidecar),
                        // and the sidecar dithers the phase.
                        let lag = if t >= self.out_end { self.stop_us } else { 0 };
                        let truth = 7_654_321 + (self.ppm * t as f64 / 1e6) as i64 - lag;
                        let dither = (j * 389) % 1000;
                        let target_ms = (T0 + t + dither as i64 + truth).div_euclid(1000);
                        // A slow reply is slow on its way back: the
                        // midpoint estimate is off by half the excess.
                        let skew = i64::from(rtt.saturating_sub(400)) / 2;
                        let off = target_ms * 1000 + 500 - (T0 + t + dither as i64) - skew;
                        v.push((
                            T0 + t + i64::from(rtt),
                            Event::Clock(Clock {
                                seq: j,
                                sent_us: T0 + t,
                                rtt_us: rtt,
                                offset_us: off,
                            }),
                        ));
                    }
                    j += 1;
                    t += 200 * MS;
                }
            }
            if self.announce {
                for (k, d) in [0, 30, 50, 130, 200].into_iter().enumerate() {
                    let kind = if k % 2 == 0 {
                        AnnounceKind::Rarp
                    } else {
                        AnnounceKind::Garp
                    };
                    let at = T0 + self.out_end - 5 * MS + d * MS;
                    v.push((
                        at,
                        Event::Announce(Announce {
                            at_us: at,
                            kind,
                            mac: MAC,
                        }),
                    ));
                }
            }
            v.sort_by_key(|(t, _)| *t);
            v
        }

        /// Feeds the run; returns the detector and the light after every
        /// event with its time.
        fn play(&self) -> (Detector, Vec<(i64, Verdict)>) {
            let mut d = Detector::default();
            let mut seen = Vec::new();
            for (t, e) in self.events() {
                d.push(&e);
                seen.push((t, d.verdict()));
            }
            d.finish();
            (d, seen)
        }
    }

    fn reds(seen: &[(i64, Verdict)]) -> Option<i64> {
        seen.iter()
            .find(|(_, v)| v.light == Light::Red)
            .map(|(t, _)| *t)
    }

    #[test]
    fn a_clock_step_and_announces_make_a_plain_outage_red_with_the_clock_downtime() {
        // 300 ms stop, no held reply, no sawtooth: only the guest's own
        // signals can tell this from a cut cable.
        let run = Run::new(5000, 300).migration(300);
        let (d, seen) = run.play();
        let m = d.migrations();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].level, Light::Red);
        assert_eq!(m[0].downtime_source, DowntimeSource::ClockStep);
        assert!(
            (m[0].downtime_us - 300 * MS).abs() <= 1000,
            "downtime {} µs",
            m[0].downtime_us
        );
        let e = m[0].evidence;
        assert!(e.clock_step.is_some() && e.announce.is_some(), "{e:?}");
        assert_eq!(e.announce.map(|a| (a.rarp, a.garp)), Some((3, 2)));
        // Red as soon as the first replies and frames are in, long before
        // the clock confirms.
        let first_red = reds(&seen).expect("never red");
        assert!(
            first_red - (T0 + run.out_end) < 300 * MS,
            "red after {first_red}"
        );
        let reasons = m[0].reasons();
        assert!(
            reasons.iter().any(|r| r.name() == "clock_step"),
            "{reasons:?}"
        );
        assert!(
            !reasons.iter().any(|r| r.name() == "unconfirmed"),
            "{reasons:?}"
        );
    }

    #[test]
    fn the_clock_alone_confirms_and_slow_readings_after_resume_do_not_skew_it() {
        let mut run = Run::new(5000, 800).migration(800);
        run.announce = false;
        // The first three readings after resume come back 40 ms slow: each
        // would be 20 ms off on its own.
        run.slow = (3, 40_400);
        let (d, _) = run.play();
        let m = d.migrations();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].level, Light::Red);
        let step = m[0].evidence.clock_step.expect("no step");
        assert!((step.step_us + 800 * MS).abs() <= 1000, "{step:?}");
    }

    #[test]
    fn a_path_outage_with_a_steady_clock_is_not_a_migration_even_with_a_sawtooth() {
        // A weak signal (the sawtooth) alone would make this red; the
        // guest's clock ran on through it, so it was never stopped.
        let mut run = Run::new(5000, 300);
        run.sawtooth_us = 30_000;
        let (d, seen) = run.play();
        let m = d.migrations();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].level, Light::Yellow, "{m:?}");
        let e = m[0].evidence;
        assert!(e.clock_steady.is_some() && e.clock_step.is_none(), "{e:?}");
        assert!(e.channels.clock, "{e:?}");
        let names: Vec<_> = m[0].reasons().iter().map(|r| r.name()).collect();
        assert!(
            names.contains(&"clock_steady") && names.contains(&"unconfirmed"),
            "{names:?}"
        );
        // It may be red for a moment on the sawtooth, but not once the
        // clock has spoken (two readings after the outage).
        let last_red = seen
            .iter()
            .rev()
            .find(|(_, v)| v.light == Light::Red)
            .map(|(t, _)| *t);
        if let Some(t) = last_red {
            assert!(t < T0 + run.out_end + 600 * MS, "still red at {t}");
        }
        assert_ne!(d.light(), Light::Red);
    }

    #[test]
    fn an_unconfirmed_outage_says_so_only_after_the_channels_had_their_chance() {
        // Announces watched (from /info), no clock: nothing but waiting can
        // tell that no announce is coming.
        let mut run = Run::new(5000, 300);
        run.clock = false;
        let mut d = Detector::default();
        d.set_announce_channel(true);
        let end = T0 + run.out_end;
        let mut first_said = None;
        for (t, e) in run.events() {
            d.push(&e);
            let v = d.verdict();
            if first_said.is_none() && v.reasons.iter().any(|r| r.name() == "unconfirmed") {
                first_said = Some(t);
            }
        }
        let t = first_said.expect("never said unconfirmed");
        assert!(t >= end + 2_500 * MS, "said at {t}, the end was {end}");
        let m = d.migrations();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].level, Light::Yellow);
        assert!(m[0].reasons().iter().any(|r| matches!(
            r,
            Reason::Unconfirmed {
                clock: false,
                announce: true
            }
        )));
    }

    #[test]
    fn without_clock_readings_an_outage_is_just_yellow() {
        let mut run = Run::new(5000, 300);
        run.clock = false;
        let (d, _) = run.play();
        let m = d.migrations();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].level, Light::Yellow);
        assert!(!m[0].evidence.channels.any());
        assert!(!m[0].reasons().iter().any(|r| r.name() == "unconfirmed"));
    }

    #[test]
    fn a_short_stop_that_loses_one_probe_is_red_with_the_guests_signals() {
        // 12 ms: one probe lost at 100 Hz.
        let run = Run::new(5000, 10).migration(12);
        let (d, _) = run.play();
        let m = d.migrations();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!((m[0].probes, m[0].level), (1, Light::Red));
        assert!((m[0].downtime_us - 12 * MS).abs() <= 1000, "{:?}", m[0]);
    }

    #[test]
    fn drift_and_a_stray_reading_are_not_steps() {
        let mut run = Run::new(0, 0);
        run.secs = 120;
        run.ppm = 60.0;
        let mut events = run.events();
        // One reading 30 ms off in the middle.
        if let Some((_, Event::Clock(c))) = events
            .iter_mut()
            .find(|(t, e)| *t > T0 + 60_000 * MS && matches!(e, Event::Clock(_)))
        {
            c.offset_us -= 30_000;
        }
        let mut d = Detector::default();
        for (_, e) in events {
            d.push(&e);
            assert_eq!(d.light(), Light::Green, "{:?}", d.verdict());
        }
        assert!(d.migrations().is_empty());
    }

    #[test]
    fn a_clock_step_or_announces_without_an_outage_are_yellow_on_their_own() {
        // The guest clock set back 50 ms with no loss (or a stop shorter
        // than the probe interval).
        let mut run = Run::new(0, 0);
        run.secs = 20;
        let mut d = Detector::default();
        let mut lit = None;
        for (t, mut e) in run.events() {
            if let Event::Clock(c) = &mut e {
                if c.sent_us > T0 + 10_000 * MS {
                    c.offset_us -= 50_000;
                }
            }
            d.push(&e);
            if lit.is_none() && d.light() == Light::Yellow {
                lit = Some((t, d.verdict()));
            }
        }
        let (t, v) = lit.expect("never yellow");
        assert!(t < T0 + 10_700 * MS, "yellow only at {t}");
        assert!(
            matches!(v.reasons[..], [Reason::ClockStep { step_us, .. }] if (step_us + 50_000).abs() <= 1000),
            "{v:?}"
        );
        assert!(d.migrations().is_empty());
        // Announces on their own, too.
        let mut d = Detector::default();
        feed(&mut d, 0..100, 500);
        d.push(&Event::Announce(Announce {
            at_us: sent(100),
            kind: AnnounceKind::Rarp,
            mac: MAC,
        }));
        let v = d.verdict();
        assert_eq!(v.light, Light::Yellow);
        assert!(
            matches!(v.reasons[..], [Reason::Announce { rarp: 1, .. }]),
            "{v:?}"
        );
        feed(&mut d, 101..700, 500);
        assert_eq!(d.light(), Light::Green, "{:?}", d.verdict());
    }

    #[test]
    fn an_announce_during_the_silence_is_red_before_the_guest_answers() {
        let mut d = Detector::default();
        feed(&mut d, 0..500, 500);
        // Silent from probe 500 on; ticks every 20 ms.
        for k in 1..=15 {
            tick(&mut d, sent(499) + k * 20 * MS, 500 + 2 * k as u64);
        }
        assert_eq!(d.light(), Light::Yellow);
        d.push(&Event::Announce(Announce {
            at_us: sent(499) + 305 * MS,
            kind: AnnounceKind::Rarp,
            mac: MAC,
        }));
        let v = d.verdict();
        assert_eq!(v.light, Light::Red, "{v:?}");
        assert!(
            matches!(
                v.reasons[..],
                [
                    Reason::Silence { first_seq: 500, .. },
                    Reason::Announce { rarp: 1, .. }
                ]
            ),
            "{v:?}"
        );
        // The outage then ends and is recorded red, with the announce.
        d.push(&sample(531, Some(30_000)));
        for q in 500..531 {
            d.push(&sample(q, None));
        }
        let m = d.migrations();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].level, Light::Red);
        assert!(m[0].evidence.announce.is_some());
        assert_eq!(d.light(), Light::Red);
    }
}
