//! The sidecar's output for generated probes: samples, late replies and
//! ticks in the order it would emit them, and the holes of a stalled
//! sidecar or a broken stream.

use super::{Probe, Rng};
use crate::wire::{Event, Gap, Late, Sample, Tick};

/// Every probe sent in [at, at + len) is answered only when the stall ends.
pub(super) fn stall_spike(probes: &mut [Probe], at: i64, len: i64, base: f64) {
    for p in probes
        .iter_mut()
        .filter(|p| p.sent >= at && p.sent < at + len)
    {
        if let Some(a) = p.arrival {
            p.arrival = Some(a.max(at + len + base as i64));
        }
    }
}

/// The loaded host's stalls (its p99 of 70–110 ms): 30–110 ms each, 0.2
/// a second, from `from` while they end before `until`. `apply` false
/// draws them without stalling (a steady load: the rest of the trace is
/// the one the same seed gives with stalls).
pub(super) fn loaded_stalls(
    probes: &mut [Probe],
    rng: &mut Rng,
    (from, until): (i64, i64),
    base: f64,
    apply: bool,
) {
    let mut t = from as f64;
    loop {
        t += rng.exp(5e6);
        let len = rng.range(30e3, 110e3);
        if t + len >= until as f64 {
            break;
        }
        if apply {
            stall_spike(probes, t as i64, len as i64, base);
        }
    }
}

pub(super) fn event_time(e: &Event, probes: &[Probe], timeout: i64) -> i64 {
    match e {
        Event::Sample(s) => s.sent_us + s.rtt_us.map_or(timeout, i64::from),
        Event::Tick(t) => t.now_us,
        _ => probes.first().map_or(0, |p| p.sent),
    }
}

/// The sidecar's output: every probe's sample (and late reply) at the time
/// it would be emitted, ticks while quiet, and the holes of a stalled
/// sidecar or a broken stream.
pub(super) fn emit(
    probes: &[Probe],
    iv: i64,
    timeout: i64,
    stall: Option<(i64, i64)>,
    restart: Option<(i64, i64)>,
    stream_gap: Option<(i64, i64)>,
    guest: Vec<(i64, Event)>,
) -> Vec<Event> {
    // (time, order at equal times, run, seq, event)
    let mut em: Vec<(i64, u8, u8, u64, Event)> = Vec::with_capacity(probes.len() + 16);
    for p in probes {
        let sample = |rtt_us| {
            Event::Sample(Sample {
                seq: p.seq,
                sent_us: p.sent,
                rtt_us,
            })
        };
        match p.arrival {
            Some(a) if a - p.sent <= timeout => {
                let rtt = (a - p.sent).clamp(1, i64::from(u32::MAX)) as u32;
                em.push((a, 1, p.run, p.seq, sample(Some(rtt))));
            }
            Some(a) => {
                let rtt = (a - p.sent).clamp(1, i64::from(u32::MAX)) as u32;
                em.push((p.sent + timeout, 0, p.run, p.seq, sample(None)));
                em.push((
                    a,
                    2,
                    p.run,
                    p.seq,
                    Event::Late(Late {
                        seq: p.seq,
                        rtt_us: rtt,
                    }),
                ));
            }
            None => em.push((p.sent + timeout, 0, p.run, p.seq, sample(None))),
        }
    }
    // A stalled sidecar emits what it owes when it wakes up.
    if let Some((g0, g1)) = stall {
        for e in em.iter_mut() {
            if e.0 >= g0 && e.0 < g1 {
                e.0 = g1;
            }
        }
    }
    em.sort_by_key(|e| (e.0, e.1, e.2, e.3));

    let quiet = (2 * iv).max(20_000);
    // Seq the next probe would carry at time t.
    let next_seq_at = |t: i64| -> u64 {
        let run = u8::from(restart.is_some_and(|(_, r1)| t >= r1));
        let i = probes.partition_point(|p| (p.run, p.sent) <= (run, t));
        match i.checked_sub(1).map(|j| probes[j]) {
            Some(p) if p.run == run => p.seq + 1,
            _ => 0,
        }
    };
    let mut out: Vec<(i64, Event)> = Vec::with_capacity(em.len() + em.len() / 4);
    let mut last = em.first().map_or(0, |e| e.0);
    for (t, _, _, _, ev) in em {
        loop {
            let tt = last + quiet;
            if tt > t {
                break;
            }
            if let Some((g0, g1)) = stall.filter(|(g0, g1)| tt >= *g0 && tt < *g1) {
                // Frozen: no ticks; one when it wakes, still owing its probes.
                out.push((
                    g1,
                    Event::Tick(Tick {
                        now_us: g1,
                        next_seq: next_seq_at(g0),
                    }),
                ));
                last = g1;
                continue;
            }
            if let Some((_, r1)) = restart.filter(|(r0, r1)| tt >= *r0 && tt < *r1) {
                last = r1; // not running at all
                continue;
            }
            out.push((
                tt,
                Event::Tick(Tick {
                    now_us: tt,
                    next_seq: next_seq_at(tt),
                }),
            ));
            last = tt;
        }
        out.push((t, ev));
        last = last.max(t);
    }

    if !guest.is_empty() {
        out.extend(guest);
        // Stable: equal times keep the echo stream's order.
        out.sort_by_key(|(t, _)| *t);
    }
    let Some((g0, g1)) = stream_gap else {
        return out.into_iter().map(|(_, e)| e).collect();
    };
    // The client lost everything emitted in [g0, g1) and is told so when it
    // resumes. Event ids count from 1.
    let mut events = Vec::with_capacity(out.len());
    let mut hole: Option<(u64, u64)> = None;
    for (i, (t, ev)) in out.into_iter().enumerate() {
        let id = i as u64 + 1;
        if t >= g0 && t < g1 {
            hole = Some(hole.map_or((id, id), |(a, _)| (a, id)));
            continue;
        }
        if let Some((a, b)) = hole.take() {
            events.push(Event::Gap(Gap {
                from_id: a,
                to_id: b,
                missing: b - a + 1,
            }));
        }
        events.push(ev);
    }
    events
}
