//! Seeded synthetic labelled traces: realistic baseline noise, live
//! migrations with a chosen downtime, and every decoy of issue 4. Pure: the
//! same spec and seed always give the same events, on any platform with the
//! same float library.
//!
//! The model follows the figures measured on real QEMU migrations (see
//! `docs/DETECTION.md`):
//! * **baseline**: log-normal RTT around 150–400 µs, a 1.2 % heavy tail of
//!   2–15 ms, rare isolated spikes of 40–70 ms (about one a minute: one
//!   slow reply, or a stall that delays every probe in it), isolated losses
//!   (2 in 10 000). Replies never overtake each other (one path, one
//!   queue), so a slow reply holds up the ones behind it.
//! * **migration**: 0.5–9 s of pre-copy (p99 up a few ms; on a loaded host
//!   median 2–7 ms and stalls of 30–110 ms, 0.2 a second), then the stop: every probe sent during
//!   the downtime is lost, plus 0–8 ms of extra loss after resume half the
//!   time; optionally the last request before the stop is held and answered
//!   at resume (RTT ≈ downtime, reported `late` beyond the timeout); then
//!   for 40–60 ms the replies come in batches with RTTs falling from 15–45 ms
//!   (the sawtooth).
//! * **decoys**: bulk copy, link outage, monitor-side link flap (loss, then
//!   ARP-queued replies released together), VM pause (replies queued in the
//!   guest), congestion (RTT ramps, then loss), CPU starvation (growing
//!   stalls, then loss), isolated losses and spikes, stream gap, sidecar
//!   stall (skipped slots) and sidecar restart.
//!
//! Events are emitted as the sidecar would: a reply at its arrival, a loss
//! one timeout after the send, a late reply after its loss, and ticks while
//! the stream is quiet.

use crate::eval::{Labels, Truth, TruthKind};
use crate::wire::{Event, Info};

/// A generated trace: the events in stream order, and its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthTrace {
    /// Events as the sidecar would have emitted them.
    pub events: Vec<Event>,
    /// Ground truth.
    pub labels: Labels,
    /// The sidecar's `/info` to write at the trace's head when a guest
    /// channel is on (the clock interval, the capture interface).
    pub info: Option<Info>,
}

/// Start of synthetic time (unix µs, November 2025).
const T0: i64 = 1_763_000_000_000_000;

#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    pub(super) run: u8,
    pub(super) seq: u64,
    pub(super) sent: i64,
    /// Reply arrival (unix µs), `None` when lost.
    pub(super) arrival: Option<i64>,
}

/// A loaded host's median RTT, µs: `load_x` × the quiet level, or 2–7 ms.
/// One draw either way, so a spec without `load_x` gives the trace it
/// always gave.
fn load_median(rng: &mut Rng, load_x: Option<[f64; 2]>, base: f64) -> f64 {
    match load_x {
        Some([lo, hi]) => base * rng.range(lo, hi),
        None => rng.range(2000.0, 7000.0),
    }
}

/// The quiet path's spread (log-normal σ) unless a spec sets its own.
const QUIET_SIGMA: f64 = 0.15;

fn base_rtt(rng: &mut Rng, base: f64, sigma: f64) -> f64 {
    let mut r = base * (sigma * rng.normal()).exp();
    if rng.chance(0.012) {
        // The heavy tail: p99 of 2–15 ms.
        r += 1000.0 + (1000.0 / rng.f64().max(1e-9).powf(1.0 / 1.1)).min(13_000.0);
    }
    r
}

/// Probes of run 0 sent in [a, b).
fn in_window(p: &Probe, a: i64, b: i64) -> bool {
    p.run == 0 && p.sent >= a && p.sent < b
}

/// Generates one trace.
pub fn generate(spec: &TraceSpec) -> SynthTrace {
    let mut rng = Rng::new(spec.seed);
    let iv = i64::from(spec.interval_us.max(100));
    let timeout = i64::from(spec.timeout_us.max(1000));
    let base = rng.range(150.0, 400.0);
    let sigma = spec.quiet_sigma.unwrap_or(QUIET_SIGMA);
    let t0 = T0 + rng.range(0.0, 1e6) as i64;
    let dur = (spec.duration_s.max(1.0) * 1e6) as i64;
    let t_end = t0 + dur;
    let mut t_e = t0 + dur / 2 + (rng.range(-0.1, 0.1) * dur as f64) as i64;
    if spec.scenario == Scenario::Isolated {
        t_e = t0 + dur / 6;
    }
    if let Some(ph) = spec.phase {
        // Probes are due at t0 + k·iv (sent up to 30 µs later).
        let k = (t_e - t0).div_euclid(iv);
        t_e = t0 + k * iv + (ph.clamp(0.0, 0.999) * iv as f64) as i64 + 30;
    }
    let s = |x: f64| (x * 1e6) as i64;

    // Scheduling holes: a stalled sidecar skips slots; a restart starts over.
    let stall = match spec.scenario {
        Scenario::SidecarStall => Some((t_e, t_e + s(rng.range(1.5, 5.0)))),
        _ => None,
    };
    let restart = match spec.scenario {
        Scenario::SidecarRestart => Some((t_e, t_e + s(rng.range(1.0, 5.0)))),
        _ => None,
    };
    let mut probes: Vec<Probe> = Vec::with_capacity((dur / iv) as usize + 1);
    let mut k: u64 = 0;
    loop {
        let due = t0 + k as i64 * iv;
        if due >= t_end || restart.is_some_and(|(r0, _)| due >= r0) {
            break;
        }
        if !stall.is_some_and(|(g0, g1)| due >= g0 && due < g1) {
            probes.push(Probe {
                run: 0,
                seq: k,
                sent: due + rng.range(0.0, 30.0) as i64,
                arrival: None,
            });
        }
        k += 1;
    }
    if let Some((_, r1)) = restart {
        let mut k: u64 = 0;
        while r1 + (k as i64) * iv < t_end {
            probes.push(Probe {
                run: 1,
                seq: k,
                sent: r1 + k as i64 * iv + rng.range(0.0, 30.0) as i64,
                arrival: None,
            });
            k += 1;
        }
    }
    for p in probes.iter_mut() {
        p.arrival = Some(p.sent + base_rtt(&mut rng, base, sigma) as i64);
    }

    // Scenario parameters first, so baseline noise can stay out of its way.
    let mut truths: Vec<Truth> = Vec::new();
    let window = |kind, a: i64, b: i64| Truth {
        kind,
        start_us: a,
        end_us: b,
        downtime_us: None,
        first_lost_seq: None,
        last_lost_seq: None,
        lost_start_us: None,
        lost_end_us: None,
        first_missed_us: None,
        gap_end_us: None,
        held: false,
        loaded: false,
    };
    let mut excl: Option<(i64, i64)> = None;
    let mut stream_gap: Option<(i64, i64)> = None;
    let rtt_at = |rng: &mut Rng, sent: i64| sent + base_rtt(rng, base, sigma) as i64;

    let mut story = GuestStory {
        clock: spec.clock,
        ..GuestStory::default()
    };
    match spec.scenario {
        Scenario::Baseline => {}
        Scenario::Migration {
            downtime_ms,
            held,
            loaded,
        } => {
            let t_s = t_e;
            let d = (downtime_ms * 1000.0).max(1.0) as i64;
            let t_r = t_s + d;
            let precopy = s(rng.range(0.5, 9.0)).min(t_s - t0 - s(3.0)).max(s(0.2));
            let extra = if rng.chance(0.5) {
                0
            } else {
                rng.range(0.0, 8000.0) as i64
            };
            let w = rng.range(40e3, 60e3);
            let d0 = rng.range(15e3, 45e3);
            let g = rng.range(4e3, 12e3);
            let load = load_median(&mut rng, spec.load_x, base);
            for p in probes.iter_mut().filter(|p| p.run == 0) {
                if p.sent >= t_s - precopy && p.sent < t_s {
                    let a = if loaded {
                        p.sent + (load * (0.5 * rng.normal()).exp()) as i64
                    } else {
                        let mut r = base_rtt(&mut rng, base, sigma);
                        if rng.chance(0.03) {
                            r += rng.range(1000.0, 5000.0);
                        }
                        p.sent + r as i64
                    };
                    p.arrival = Some(a);
                } else if p.sent >= t_s && p.sent < t_r + extra {
                    p.arrival = None;
                } else if p.sent >= t_r + extra && (p.sent as f64) < t_r as f64 + w {
                    let since = (p.sent - t_r) as f64;
                    let delay = d0 * (1.0 - since / w);
                    let release = t_r as f64 + ((since + delay) / g).ceil() * g;
                    let a = (p.sent as f64 + base).max(release) + rng.range(0.0, 100.0);
                    p.arrival = Some(a as i64);
                }
            }
            if loaded {
                loaded_stalls(
                    &mut probes,
                    &mut rng,
                    (t_s - precopy, t_s),
                    base,
                    !spec.steady_load,
                );
            }
            if held {
                if let Some(p) = probes.iter_mut().rev().find(|p| p.run == 0 && p.sent < t_s) {
                    p.arrival = Some(t_r + rng.range(50.0, 300.0) as i64);
                }
            }
            let first = probes.iter().find(|p| p.run == 0 && p.sent >= t_s);
            let last = probes
                .iter()
                .rev()
                .find(|p| p.run == 0 && p.sent < t_r + extra);
            let mut t = window(
                TruthKind::Migration,
                t_s - precopy,
                t_r + w as i64 + 200_000,
            );
            t.downtime_us = Some(d);
            t.held = held;
            t.loaded = loaded;
            if let (Some(f), Some(l)) = (first, last) {
                if f.seq <= l.seq {
                    let after = probes.iter().find(|p| p.run == 0 && p.seq == l.seq + 1);
                    t.first_lost_seq = Some(f.seq);
                    t.last_lost_seq = Some(l.seq);
                    t.lost_start_us = Some(f.sent);
                    t.lost_end_us = after.map(|p| p.sent);
                    t.first_missed_us = Some(f.sent + base as i64);
                    t.gap_end_us = after.and_then(|p| p.arrival);
                }
            }
            truths.push(t);
            excl = Some((t_s - precopy, t_r + s(1.0)));
            story.stop = Some((t_s, t_r));
            story.announce_at = spec.announce.then_some(t_r);
        }
        Scenario::BulkCopy => {
            let len = s(rng.range(3.0, 15.0));
            let x = rng.range(5e3, 60e3);
            let ramp = 300e3;
            for p in probes.iter_mut().filter(|p| in_window(p, t_e, t_e + len)) {
                let f = ((p.sent - t_e) as f64 / ramp)
                    .min((t_e + len - p.sent) as f64 / ramp)
                    .min(1.0);
                let extra = x * f * rng.range(0.6, 1.4);
                p.arrival = Some(rtt_at(&mut rng, p.sent) + extra as i64);
            }
            truths.push(window(TruthKind::BulkCopy, t_e, t_e + len));
            excl = Some((t_e, t_e + len));
        }
        Scenario::LinkOutage | Scenario::LinkOutageOf { .. } => {
            let len = match spec.scenario {
                Scenario::LinkOutageOf { ms } => (ms * 1000.0).max(1.0) as i64,
                _ => rng.range(50e3, 3e6) as i64,
            };
            for p in probes.iter_mut().filter(|p| in_window(p, t_e, t_e + len)) {
                p.arrival = None;
            }
            // A cut link also drops the replies that reach it while it is
            // down (a slow reply to a probe sent just before the cut).
            if spec.phase.is_some() {
                for p in probes.iter_mut().filter(|p| p.run == 0 && p.sent < t_e) {
                    if p.arrival.is_some_and(|a| a >= t_e && a < t_e + len) {
                        p.arrival = None;
                    }
                }
            }
            truths.push(window(TruthKind::LinkOutage, t_e, t_e + len));
            excl = Some((t_e, t_e + len));
            story.cut = Some((t_e, t_e + len));
        }
        Scenario::LoadedCut { ms } => {
            let len = (ms * 1000.0).max(1.0) as i64;
            let pre = s(rng.range(0.5, 9.0)).min(t_e - t0 - s(3.0)).max(s(0.2));
            let post = s(rng.range(0.0, 9.0))
                .min(t_end - t_e - len - s(1.0))
                .max(0);
            let (l0, l1) = (t_e - pre, t_e + len + post);
            let load = load_median(&mut rng, spec.load_x, base);
            for p in probes.iter_mut().filter(|p| in_window(p, l0, l1)) {
                p.arrival = Some(p.sent + (load * (0.5 * rng.normal()).exp()) as i64);
            }
            // The loaded host's stalls go on across the cut.
            loaded_stalls(&mut probes, &mut rng, (l0, l1), base, !spec.steady_load);
            // The cut drops the requests sent while it is down and the
            // replies that reach it then (a stall may release them into it).
            for p in probes
                .iter_mut()
                .filter(|p| p.run == 0 && p.sent < t_e + len)
            {
                if p.sent >= t_e || p.arrival.is_some_and(|a| a >= t_e && a < t_e + len) {
                    p.arrival = None;
                }
            }
            truths.push(window(TruthKind::LoadedCut, l0, l1));
            excl = Some((l0, l1));
            story.cut = Some((t_e, t_e + len));
        }
        Scenario::LinkFlap => {
            let down = s(rng.range(0.5, 1.0));
            let q = rng.range(150e3, 500e3) as i64;
            let release = t_e + down + q;
            for p in probes.iter_mut().filter(|p| in_window(p, t_e, t_e + down)) {
                p.arrival = None;
            }
            let queued: Vec<usize> = (0..probes.len())
                .filter(|&i| in_window(&probes[i], t_e + down, release))
                .collect();
            // The neighbour queue keeps the newest 100 packets.
            let drop = queued.len().saturating_sub(100);
            for (j, &i) in queued.iter().enumerate() {
                probes[i].arrival = if j < drop {
                    None
                } else {
                    Some(release + base as i64 + 3 * j as i64)
                };
            }
            truths.push(window(TruthKind::LinkFlap, t_e, release));
            excl = Some((t_e, release));
        }
        Scenario::VmPause => {
            let len = rng.range(0.1e6, 3e6) as i64;
            let queued = probes.iter_mut().filter(|p| in_window(p, t_e, t_e + len));
            for (j, p) in queued.enumerate() {
                // The guest's receive ring holds 256 requests.
                p.arrival = (j < 256).then_some(t_e + len + base as i64 + 10 * j as i64);
            }
            truths.push(window(TruthKind::VmPause, t_e, t_e + len));
            excl = Some((t_e, t_e + len));
        }
        Scenario::Pause { stop_ms, lose_ms } => {
            let len = (stop_ms * 1000.0).max(1.0) as i64;
            let t_r = t_e + len;
            let lose_from = t_r - (lose_ms * 1000.0).clamp(0.0, len as f64) as i64;
            let queued = probes.iter_mut().filter(|p| in_window(p, t_e, t_r));
            for (j, p) in queued.enumerate() {
                // Answered in order at resume; the guest's ring holds 256.
                p.arrival =
                    (p.sent < lose_from && j < 256).then_some(t_r + base as i64 + 10 * j as i64);
            }
            let mut t = window(TruthKind::Pause, t_e, t_r);
            t.downtime_us = Some(len);
            truths.push(t);
            excl = Some((t_e, t_r));
            story.stop = Some((t_e, t_r));
        }
        Scenario::Congestion => {
            let r1 = rng.range(1e6, 3e6) as i64;
            let x = rng.range(50e3, 300e3);
            let burst = rng.range(30e3, 300e3) as i64;
            let r2 = rng.range(1e6, 2e6) as i64;
            let (b0, b1) = (t_e + r1, t_e + r1 + burst);
            let end = b1 + r2;
            let mut last_arrival = 0i64;
            for p in probes.iter_mut().filter(|p| in_window(p, t_e, end)) {
                let level = if p.sent < b0 {
                    x * (p.sent - t_e) as f64 / r1 as f64
                } else if p.sent < b1 {
                    x
                } else {
                    x * (1.0 - (p.sent - b1) as f64 / r2 as f64)
                };
                let near_peak = p.sent >= b0 - 500_000 && p.sent < b1 + 500_000;
                if (p.sent >= b0 && p.sent < b1) || (near_peak && rng.chance(0.03)) {
                    p.arrival = None;
                    continue;
                }
                // A FIFO queue: replies never overtake each other.
                let a = (rtt_at(&mut rng, p.sent) + (level * rng.range(0.8, 1.2)) as i64)
                    .max(last_arrival + 5);
                last_arrival = a;
                p.arrival = Some(a);
            }
            truths.push(window(TruthKind::Congestion, t_e, end));
            excl = Some((t_e, end));
        }
        Scenario::CpuStarvation => {
            let r = rng.range(1.5e6, 3e6);
            let x = rng.range(60e3, 250e3);
            let mut stalls: Vec<(i64, i64)> = Vec::new();
            let mut t = t_e as f64;
            while t < t_e as f64 + r {
                let frac = (t - t_e as f64) / r;
                let len = 10e3 + (x - 10e3) * frac;
                stalls.push((t as i64, (t + len) as i64));
                t += len + rng.range(40e3, 100e3) * (1.0 - 0.5 * frac);
            }
            let burst = rng.range(50e3, 300e3);
            let (b0, b1) = (t as i64, (t + burst) as i64);
            let mut t = t + burst;
            let rec_end = t + 1e6;
            while t < rec_end {
                let frac = (t - b1 as f64) / 1e6;
                let len = (x / 2.0) * (1.0 - frac) + 10e3 * frac;
                stalls.push((t as i64, (t + len) as i64));
                t += len + rng.range(60e3, 120e3);
            }
            let end = t as i64;
            for p in probes.iter_mut().filter(|p| in_window(p, t_e, end)) {
                if p.sent >= b0 && p.sent < b1 {
                    p.arrival = None;
                    continue;
                }
                if let Some(&(_, se)) = stalls.iter().find(|(a, b)| p.sent >= *a && p.sent < *b) {
                    let own = p.arrival.unwrap_or(p.sent);
                    p.arrival = Some(own.max(se + (base * rng.range(0.8, 1.2)) as i64));
                }
            }
            truths.push(window(TruthKind::CpuStarvation, t_e, end));
            excl = Some((t_e, end));
        }
        Scenario::Isolated => {
            let end = (t_e + s(20.0)).min(t_end - s(2.0));
            let idx: Vec<usize> = (0..probes.len())
                .filter(|&i| in_window(&probes[i], t_e, end))
                .collect();
            if idx.len() > 100 {
                let pick = |rng: &mut Rng| idx[(rng.next_u64() % idx.len() as u64) as usize];
                for _ in 0..30 {
                    let i = pick(&mut rng);
                    // Single losses only: keep both neighbours answered.
                    let lone = [i.wrapping_sub(1), i + 1]
                        .iter()
                        .all(|&j| probes.get(j).is_none_or(|p| p.arrival.is_some()));
                    if lone {
                        probes[i].arrival = None;
                    }
                }
                for _ in 0..15 {
                    let i = pick(&mut rng);
                    if probes[i].arrival.is_some() {
                        probes[i].arrival = Some(probes[i].sent + rng.range(40e3, 70e3) as i64);
                    }
                }
                for _ in 0..6 {
                    let at = probes[pick(&mut rng)].sent;
                    stall_spike(&mut probes, at, rng.range(40e3, 70e3) as i64, base);
                }
            }
            truths.push(window(TruthKind::Isolated, t_e, end));
            excl = Some((t_e, end));
        }
        Scenario::StreamGap => {
            let len = s(rng.range(0.5, 5.0));
            stream_gap = Some((t_e, t_e + len));
            truths.push(window(TruthKind::StreamGap, t_e, t_e + len));
            excl = Some((t_e, t_e + len));
        }
        Scenario::SidecarStall => {
            if let Some((g0, g1)) = stall {
                truths.push(window(TruthKind::SidecarStall, g0, g1));
                excl = Some((g0, g1));
            }
        }
        Scenario::SidecarRestart => {
            if let Some((r0, r1)) = restart {
                truths.push(window(TruthKind::SidecarRestart, r0, r1));
                excl = Some((r0, r1));
            }
        }
    }

    // Baseline noise: rare spikes and isolated losses, away from the
    // scenario so that its labels stay clean.
    // (The margins match the padding eval gives labelled windows.)
    let (x0, x1) = excl.map_or((i64::MAX, i64::MIN), |(a, b)| (a - s(1.5), b + s(3.5)));
    let clear = |t: i64| t < x0 || t > x1;
    let mut t = t0 as f64;
    loop {
        t += rng.exp(60e6);
        if t >= t_end as f64 {
            break;
        }
        let at = t as i64;
        if !clear(at) || !clear(at + 100_000) {
            continue;
        }
        if rng.chance(0.5) {
            let len = rng.range(40e3, 70e3) as i64;
            if let Some(p) = probes.iter_mut().find(|p| p.sent >= at) {
                if p.arrival.is_some() {
                    p.arrival = Some(p.sent + len);
                }
            }
        } else {
            stall_spike(&mut probes, at, rng.range(40e3, 70e3) as i64, base);
        }
    }
    for p in probes.iter_mut() {
        if clear(p.sent) && rng.chance(2e-4) {
            p.arrival = None;
        }
    }

    // One path, one queue: replies leave in the order the requests came.
    let mut last: Option<(u8, i64)> = None;
    for p in probes.iter_mut() {
        if let Some(a) = p.arrival.as_mut() {
            if let Some((run, prev)) = last.filter(|(r, _)| *r == p.run) {
                *a = (*a).max(prev + 2);
                last = Some((run, *a));
            } else {
                last = Some((p.run, *a));
            }
        }
    }

    let guest = guest_events(spec.seed, t0, t_end, base, &story);
    let events = emit(&probes, iv, timeout, stall, restart, stream_gap, guest);
    let first = events
        .first()
        .map_or(t0, |e| event_time(e, &probes, timeout));
    let info = (spec.clock || spec.announce).then(|| Info {
        target: "192.0.2.1".into(),
        interval_ms: iv as f64 / 1000.0,
        timeout_ms: timeout as f64 / 1000.0,
        version: "synth".into(),
        run_id: format!("synth-{}", spec.seed),
        clock_interval_ms: spec.clock.then_some(200.0),
        capture_iface: spec.announce.then(|| "synth0".to_string()),
        name: spec.name.clone(),
        labels: Default::default(),
    });
    SynthTrace {
        info,
        events,
        labels: Labels {
            name: spec.name.clone(),
            seed: spec.seed,
            interval_us: iv as u32,
            timeout_us: timeout as u32,
            base_rtt_us: base as u32,
            start_us: first.min(t0),
            end_us: t_end,
            events: truths,
            phase: spec.phase,
        },
    }
}

mod emit;
mod guest;
mod spec;
mod suite;
#[cfg(test)]
mod tests;

use emit::{emit, event_time, loaded_stalls, stall_spike};
use guest::{guest_events, GuestStory};
pub use spec::{Rng, Scenario, TraceSpec};
pub use suite::{channels, jitter, mild, offsets, suite};
