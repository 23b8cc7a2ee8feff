//! The confirming signals: the guest clock and layer-2 announces.

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
    /// Echo probes sent from `out_start` until this time are queued in the
    /// stopped guest and answered at `out_end` instead of lost (a pause).
    queued_until: i64,
    /// The sidecar watches for announces (its `/info`).
    announce_channel: bool,
    /// RTT of the first clock readings of the run (a cold ARP cache).
    start_slow: (usize, u32),
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
            queued_until: out_start_ms * MS,
            announce_channel: false,
            start_slow: (0, 0),
        }
    }

    fn migration(mut self, stop_ms: i64) -> Run {
        self.stop_us = stop_ms * MS;
        self.announce = true;
        self
    }

    /// A QMP stop/cont of the outage's length, no move: the guest clock
    /// stands still, no announce goes out; the requests of the pause but
    /// its last `lost_ms` are queued and answered at resume.
    fn pause(mut self, lost_ms: i64) -> Run {
        self.stop_us = self.out_end - self.out_start;
        self.announce = false;
        self.queued_until = self.out_end - lost_ms * MS;
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
            if out(t) && t < self.queued_until {
                // Queued in the stopped guest, answered at resume.
                let rtt = (self.out_end - t + 500) as u32;
                v.push((s + i64::from(rtt), sample(q, Some(rtt))));
            } else if out(t) {
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
                    } else if (j as usize) < self.start_slow.0 {
                        self.start_slow.1
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
                    // A cold ARP cache at the start delays the request
                    // instead: the reading is late by half the excess.
                    let mut skew = i64::from(rtt.saturating_sub(400)) / 2;
                    if (j as usize) < self.start_slow.0 && t < self.out_start {
                        skew = -skew;
                    }
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
                        previous_mac: None,
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
        d.set_announce_channel(self.announce_channel);
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
    // The step is an event of its own: a stop that lost no probe, and no
    // announce channel to tell a pause from a move.
    let m = d.migrations();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].probes, m[0].verdict), (0, EventVerdict::Undecided));
    // Announces on their own, too.
    let mut d = Detector::default();
    feed(&mut d, 0..100, 500);
    d.push(&Event::Announce(Announce {
        at_us: sent(100),
        kind: AnnounceKind::Rarp,
        mac: MAC,
        previous_mac: None,
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
        previous_mac: None,
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

#[test]
fn a_pause_that_loses_no_probe_is_an_event_of_its_own_paused_not_red() {
    for stop in [100, 300, 800] {
        let mut run = Run::new(5000, stop).pause(0);
        run.announce_channel = true;
        let (d, seen) = run.play();
        let m = d.migrations();
        assert_eq!(m.len(), 1, "{stop} ms: {m:?}");
        assert_eq!(m[0].verdict, EventVerdict::Paused, "{stop} ms: {m:?}");
        assert_eq!(m[0].level, Light::Yellow);
        assert_eq!(m[0].probes, 0);
        assert!(
            (m[0].downtime_us - stop * MS).abs() <= 1500,
            "{stop} ms: downtime {}",
            m[0].downtime_us
        );
        // Where it was: the queued request sent first.
        assert!((m[0].start_us - (T0 + run.out_start)).abs() <= IV, "{m:?}");
        assert!(reds(&seen).is_none(), "{stop} ms pause went red");
        let words = m[0].explain();
        assert!(
            words.starts_with(&format!("paused in place for {stop} ms, not migrated")),
            "{words}"
        );
        assert!(!m[0].reasons().iter().any(|r| r.name() == "loss_burst"));
    }
}

#[test]
fn a_pause_losing_probes_at_its_end_has_one_clock_judgement() {
    // 800 ms pause, the last 70 ms of requests dropped (the queue was
    // full): the step is 800 ms although the loss is 70 ms.
    let mut run = Run::new(5000, 800).pause(70);
    run.announce_channel = true;
    let (d, seen) = run.play();
    let m = d.migrations();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].verdict, EventVerdict::Paused, "{m:?}");
    assert_eq!(m[0].downtime_source, DowntimeSource::ClockStep);
    assert!((m[0].downtime_us - 800 * MS).abs() <= 1500, "{m:?}");
    let reasons = m[0].reasons();
    assert!(
        reasons.iter().any(|r| r.name() == "clock_step"),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r.name() == "clock_steady"),
        "{reasons:?}"
    );
    assert!(reds(&seen).is_none());
    // The light never says something else about the clock than the event.
    for (_, v) in &seen {
        let steps = v
            .reasons
            .iter()
            .filter(|r| r.name() == "clock_step")
            .count();
        let steady = v.reasons.iter().any(|r| r.name() == "clock_steady");
        assert!(steps <= 1 && !(steady && steps > 0), "{v:?}");
    }
}

#[test]
fn a_pause_that_loses_everything_is_paused_with_announces_watched_else_migrated_or_paused() {
    let mut run = Run::new(5000, 300).pause(300);
    run.announce_channel = true;
    let (d, seen) = run.play();
    let m = d.migrations();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].verdict, EventVerdict::Paused, "{m:?}");
    assert!(reds(&seen).is_none());

    run.announce_channel = false;
    let (d, _) = run.play();
    let m = d.migrations();
    assert_eq!(m[0].verdict, EventVerdict::Migrated, "{m:?}");
    assert_eq!(m[0].level, Light::Red);
    assert!(
        m[0].explain().starts_with("migrated or paused"),
        "{}",
        m[0].explain()
    );
}

#[test]
fn verdicts_of_a_migration_and_a_path_outage() {
    let mut run = Run::new(5000, 300).migration(300);
    run.announce_channel = true;
    let (d, _) = run.play();
    let m = d.migrations();
    assert_eq!(
        (m[0].verdict, m[0].level),
        (EventVerdict::Migrated, Light::Red)
    );
    assert!(
        m[0].explain().starts_with("migrated: stopped for 300 ms"),
        "{}",
        m[0].explain()
    );

    let mut run = Run::new(5000, 300);
    run.announce_channel = true;
    let (d, seen) = run.play();
    let m = d.migrations();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(
        (m[0].verdict, m[0].level),
        (EventVerdict::PathOutage, Light::Yellow)
    );
    assert!(
        m[0].explain().starts_with("path outage"),
        "{}",
        m[0].explain()
    );
    assert!(reds(&seen).is_none());
}

#[test]
fn slow_first_clock_readings_make_no_step_and_no_yellow() {
    // A cold ARP cache: the first readings come back 8–21 ms slow, then
    // the path's minimum is known.
    for (n, rtt) in [(1, 8_400), (2, 12_000), (3, 21_000), (4, 6_000)] {
        let mut run = Run::new(9000, 300).migration(300);
        run.start_slow = (n, rtt);
        let (d, seen) = run.play();
        let early = seen
            .iter()
            .find(|(t, v)| *t < T0 + run.out_start && v.light != Light::Green);
        assert!(early.is_none(), "{n} × {rtt} µs: {early:?}");
        assert_eq!(d.migrations().len(), 1, "{:?}", d.migrations());
    }
}

/// A stop in a run's first 200 ms, with one clock reading before it (at
/// 100 ms): that reading is a level, not yet a line, and the readings
/// after the stop are the first after a step, not the line's second
/// point. One event, its clock judged once: a migration is red with the
/// clock's downtime, a path outage is one, and a pause is paused (before,
/// the stop and its clock step were two yellow events, the step dated
/// after the stop). And with a slow first reading (a cold ARP cache,
/// 12 ms), which the fast ones after it rule out, there is no level to
/// judge against: the stop is an echo event alone, as before.
#[test]
fn a_stop_after_the_first_clock_reading_has_one_event_with_its_clock() {
    let (d, _) = Run::new(150, 300).migration(300).play();
    let m = d.migrations();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(
        (m[0].verdict, m[0].level),
        (EventVerdict::Migrated, Light::Red)
    );
    assert_eq!(m[0].downtime_source, DowntimeSource::ClockStep);
    assert!(
        (m[0].downtime_us - 300 * MS).abs() <= 1000,
        "downtime {} µs",
        m[0].downtime_us
    );

    let mut cut = Run::new(150, 300);
    cut.announce_channel = true;
    let m = cut.play().0.migrations().to_vec();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].verdict, EventVerdict::PathOutage, "{}", m[0].explain());

    let mut pause = Run::new(150, 300).pause(300);
    pause.announce_channel = true;
    let m = pause.play().0.migrations().to_vec();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].verdict, EventVerdict::Paused, "{}", m[0].explain());

    let mut cold = Run::new(150, 300).migration(300);
    cold.start_slow = (1, 12_000);
    let m = cold.play().0.migrations().to_vec();
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].evidence.clock_step.is_none(), "{:?}", m[0].evidence);
}
