//! Echo-only separability on a loaded host (issue 14, docs/DETECTION.md
//! "Loaded hosts (echo only)"): runs the offsets sweep in memory for seeds
//! FROM..=TO and prints every missed migration (≥ 2 intervals) and every
//! false red with its echo observables (the loss run, the level before,
//! the replies held across it, the first replies after it, the level
//! 150 ms–1 s after it), then each kind's levels and verdicts.
//!
//! `cargo run --release -p migwatch-shared --example loaded_sep -- FROM TO`
//!
//! Environment: `CFG` a detector config as JSON (`{"load_ratio":1e9}` gives
//! the session-4 rules), `SUITE=standard|channels|mild|steady|jitter` another suite,
//! `STATS=1` one line per loaded migration and loaded cut instead,
//! `DEBUG=NAME` (with FROM the seed) one trace's light changes and events,
//! `SIGMA=0.5` the quiet path's spread for every trace of the suite.
//! (`BACK=N`: its rows start N probes before each event, default 40).

use migwatch_shared::eval::{score_with_info, TruthKind};
use migwatch_shared::synth::{
    channels, generate, jitter, mild, offsets, suite, Scenario, TraceSpec,
};
use migwatch_shared::{Detector, DetectorConfig, Event, Light};
use std::collections::BTreeMap;

#[derive(Clone, Copy)]
struct P {
    sent: i64,
    rtt: Option<u32>,
    late: Option<u32>,
}

fn probes(events: &[Event]) -> BTreeMap<u64, P> {
    let mut m = BTreeMap::new();
    for e in events {
        match e {
            Event::Sample(s) => {
                m.insert(
                    s.seq,
                    P {
                        sent: s.sent_us,
                        rtt: s.rtt_us,
                        late: None,
                    },
                );
            }
            Event::Late(l) => {
                if let Some(p) = m.get_mut(&l.seq) {
                    p.late = Some(l.rtt_us);
                }
            }
            _ => {}
        }
    }
    m
}

/// Observables of the loss run a..=b.
fn observe(ps: &BTreeMap<u64, P>, a: u64, b: u64, iv: i64) -> String {
    let s_a = ps[&a].sent;
    let pre: Vec<(u64, P)> = ps
        .range(..a)
        .rev()
        .filter(|(_, p)| p.rtt.is_some())
        .take(64)
        .map(|(k, p)| (*k, *p))
        .collect();
    let mut pre_rtts: Vec<u32> = pre.iter().take(32).map(|(_, p)| p.rtt.unwrap()).collect();
    pre_rtts.sort_unstable();
    let med = pre_rtts.get(pre_rtts.len() / 2).copied().unwrap_or(0);
    let p75 = pre_rtts.get(pre_rtts.len() * 3 / 4).copied().unwrap_or(0);
    let win = (500_000 / iv).clamp(16, 256) as usize;
    let last: Vec<u32> = ps
        .range(..a)
        .rev()
        .take(win)
        .filter_map(|(_, p)| p.rtt)
        .collect();
    let hi = last.iter().filter(|r| **r >= 20_000).count();
    // held: replies to probes before a arriving after s_a
    let held: Vec<String> = ps
        .range(..a)
        .rev()
        .take(40)
        .filter_map(|(k, p)| p.rtt.or(p.late).map(|r| (k, p.sent + i64::from(r), r)))
        .filter(|(_, arr, _)| *arr >= s_a)
        .map(|(k, arr, r)| {
            format!(
                "#{}:{:.1}ms@{:+.1}",
                a - k,
                r as f64 / 1e3,
                (arr - s_a) as f64 / 1e3
            )
        })
        .collect();
    let s_next = ps.get(&(b + 1)).map_or(0, |p| p.sent);
    let post: Vec<String> = ps
        .range(b + 1..)
        .take(8)
        .map(|(_, p)| match p.rtt {
            Some(r) => format!("{:.1}", r as f64 / 1e3),
            None => "x".into(),
        })
        .collect();
    let mut later: Vec<u32> = ps
        .range(b + 1..)
        .filter(|(_, p)| p.sent > s_next + 150_000 && p.sent < s_next + 1_000_000)
        .filter_map(|(_, p)| p.rtt)
        .collect();
    later.sort_unstable();
    let lmed = later.get(later.len() / 2).copied().unwrap_or(0);
    format!(
        "lost={} pre med={:.1} p75={:.1} hi20={}/{} held=[{}] post=[{}] postmed={:.2}",
        b - a + 1,
        med as f64 / 1e3,
        p75 as f64 / 1e3,
        hi,
        last.len(),
        held.join(" "),
        post.join(" "),
        lmed as f64 / 1e3
    )
}

/// One line per loaded migration / loaded cut: pre level, baseline at the
/// outage, the level after the shape, and the detector's level.
fn stats(from: u64, to: u64, cfg: DetectorConfig) {
    for seed in from..=to {
        for spec in specs_for(seed) {
            if !spec.scenario.on_loaded_host() {
                continue;
            }
            let tr = generate(&spec);
            let ps = probes(&tr.events);
            let iv = i64::from(tr.labels.interval_us);
            let mut det = Detector::new(cfg);
            let mut base_at: Option<u32> = None;
            // the (first) main loss run: the longest run of lost probes
            let mut best = (0u64, 0u64);
            let mut cur: Option<u64> = None;
            for (&k, p) in &ps {
                if p.rtt.is_none() {
                    let st = *cur.get_or_insert(k);
                    if k - st + 1 > best.1 - best.0 + u64::from(best.1 >= best.0 && best != (0, 0))
                    {
                        best = (st, k);
                    }
                } else {
                    cur = None;
                }
            }
            let (a, b) = best;
            let s_a = ps[&a].sent;
            for e in &tr.events {
                let t = match e {
                    Event::Sample(x) => x.sent_us + x.rtt_us.map_or(1_000_000, i64::from),
                    Event::Tick(x) => x.now_us,
                    _ => 0,
                };
                if t >= s_a && base_at.is_none() {
                    base_at = Some(det.baseline().map_or(0, |b| b.median_us));
                }
                det.push(e);
            }
            det.finish();
            let lvl = det
                .migrations()
                .iter()
                .filter(|x| x.last_seq >= a && x.first_seq <= b)
                .map(|x| x.level)
                .max()
                .unwrap_or(Light::Green);
            let mut pre: Vec<u32> = ps
                .range(..a)
                .rev()
                .filter_map(|(_, p)| p.rtt)
                .take(32)
                .collect();
            pre.sort_unstable();
            let pm = pre[pre.len() / 2];
            let post: Vec<u32> = ps
                .range(b + 1..)
                .take(40)
                .map(|(_, p)| p.rtt.unwrap_or(u32::MAX))
                .collect();
            // shape end: first reply <= pm + 2 ms
            let end = post
                .iter()
                .position(|r| *r <= pm + 2000)
                .unwrap_or(post.len());
            let mut after: Vec<u32> = post.iter().skip(end).take(4).copied().collect();
            after.sort_unstable();
            let am = after.get(after.len() / 2).copied().unwrap_or(0);
            let quiet2 = post
                .iter()
                .skip(end)
                .take(4)
                .filter(|r| **r * 3 <= pm)
                .count();
            let post_ms =
                (tr.labels.events[0].end_us - ps.get(&(b + 1)).map_or(0, |p| p.sent)) / 1000;
            println!(
                "{} {} post_ms={post_ms} iv={} pre={} base={} end={} after_med={} quiet_of4={} level={:?}",
                if matches!(spec.scenario, Scenario::LoadedCut { .. }) {
                    "CUT"
                } else {
                    "MIG"
                },
                spec.name,
                iv,
                pm,
                base_at.unwrap_or(0),
                end,
                am,
                quiet2,
                lvl
            );
        }
    }
}

/// The traces of one seed: the suite `SUITE` names (default the offsets
/// sweep), with the quiet path's spread `SIGMA` if set.
fn specs_for(seed: u64) -> Vec<TraceSpec> {
    let sigma: Option<f64> = std::env::var("SIGMA")
        .ok()
        .map(|v| v.parse().expect("SIGMA: a number, the log-normal σ"));
    let specs = match std::env::var("SUITE").as_deref() {
        Ok("standard") => suite(seed, 20),
        Ok("channels") => channels(seed, 3),
        Ok("mild") => mild(seed, 2),
        // The mild sweep without the load's stalls.
        Ok("steady") => mild(seed, 2)
            .into_iter()
            .map(|mut t| {
                t.steady_load = true;
                t
            })
            .collect(),
        Ok("jitter") => jitter(seed, 2),
        _ => offsets(seed, 2),
    };
    specs
        .into_iter()
        .map(|mut t| {
            t.quiet_sigma = sigma.or(t.quiet_sigma);
            t
        })
        .collect()
}

fn main() {
    if let Ok(name) = std::env::var("DEBUG") {
        let seed: u64 = std::env::args()
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1);
        let spec = specs_for(seed)
            .into_iter()
            .find(|s| s.name.starts_with(&name))
            .expect("name");
        let tr = generate(&spec);
        let ps = probes(&tr.events);
        let cfg: DetectorConfig = std::env::var("CFG")
            .map(|c| serde_json::from_str(&c).expect("CFG"))
            .unwrap_or_default();
        let mut det = Detector::new(cfg);
        let mut prev = Light::Green;
        for e in &tr.events {
            det.push(e);
            if det.light() != prev {
                prev = det.light();
                println!(
                    "{:?} -> {:?} {:?}",
                    det.now_us(),
                    prev,
                    det.verdict()
                        .reasons
                        .iter()
                        .map(|r| r.name())
                        .collect::<Vec<_>>()
                );
            }
        }
        det.finish();
        for m in det.migrations() {
            println!("{m:?}");
            let row: Vec<String> = ps
                .range(
                    m.first_seq.saturating_sub(
                        std::env::var("BACK")
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(40),
                    )..m.last_seq + 40,
                )
                .map(|(k, p)| {
                    format!(
                        "{}{}:{}",
                        if *k == m.first_seq { "[" } else { "" },
                        k,
                        p.rtt
                            .map_or("x".into(), |r| format!("{:.1}", r as f64 / 1e3))
                    )
                })
                .collect();
            println!("{}", row.join(" "));
        }
        return;
    }
    if std::env::var("STATS").is_ok() {
        let args: Vec<u64> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        stats(args[0], args[1], DetectorConfig::default());
        return;
    }
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (from, to) = (
        args.first().copied().unwrap_or(1),
        args.get(1).copied().unwrap_or(1),
    );
    let cfg: DetectorConfig = std::env::var("CFG")
        .map(|c| serde_json::from_str(&c).expect("CFG"))
        .unwrap_or_default();
    let mut misses = 0;
    let mut decoys = BTreeMap::new();
    let mut total = 0;
    let mut verdicts: BTreeMap<(String, String), u32> = BTreeMap::new();
    for seed in from..=to {
        for spec in specs_for(seed) {
            let tr = generate(&spec);
            let sc = score_with_info(&tr.events, &tr.labels, cfg, tr.info.as_ref());
            let iv = i64::from(tr.labels.interval_us);
            for (m, t) in sc.migrations.iter().zip(
                tr.labels
                    .events
                    .iter()
                    .filter(|t| t.kind == TruthKind::Migration && t.lost_start_us.is_some()),
            ) {
                if m.downtime_us < 2 * iv {
                    continue;
                }
                total += 1;
                if m.level == Light::Red {
                    continue;
                }
                misses += 1;
                let ps = probes(&tr.events);
                let (a, b) = (t.first_lost_seq.unwrap(), t.last_lost_seq.unwrap());
                let mut det = Detector::new(cfg);
                for e in &tr.events {
                    det.push(e);
                }
                det.finish();
                let ev: Vec<String> = det
                    .migrations()
                    .iter()
                    .filter(|x| {
                        x.start_us <= t.lost_end_us.unwrap() + 2 * iv + 5000
                            && x.end_us >= t.lost_start_us.unwrap() - 2 * iv - 5000
                    })
                    .map(|x| {
                        format!(
                            "{:?} n={} {:?}",
                            x.level,
                            x.probes,
                            x.reasons().iter().map(|r| r.name()).collect::<Vec<_>>()
                        )
                    })
                    .collect();
                let held = matches!(spec.scenario, Scenario::Migration { held: true, .. });
                println!(
                    "seed {seed} {} d={:.1} held={held} | {} | det {:?}",
                    spec.name,
                    m.downtime_us as f64 / 1e3,
                    observe(&ps, a, b, iv),
                    ev
                );
            }
            if sc.false_reds > 0 {
                let ps = probes(&tr.events);
                let iv = i64::from(tr.labels.interval_us);
                let mut det = Detector::new(cfg);
                for e in &tr.events {
                    det.push(e);
                }
                det.finish();
                for x in det.migrations().iter().filter(|x| x.level == Light::Red) {
                    println!(
                        "FALSE RED seed {seed} {} | {} | det n={} {:?}",
                        spec.name,
                        observe(&ps, x.first_seq, x.last_seq, iv),
                        x.probes,
                        x.reasons()
                    );
                }
            }
            for m in &sc.migrations {
                *verdicts
                    .entry(("migration".into(), format!("{:?} {:?}", m.level, m.verdict)))
                    .or_insert(0) += 1;
            }
            for d in &sc.decoys {
                *verdicts
                    .entry((
                        d.kind.name().into(),
                        format!("{:?} {:?}", d.level, d.verdict),
                    ))
                    .or_insert(0) += 1;
                *decoys
                    .entry((
                        d.kind.name(),
                        tr.labels.interval_us,
                        format!("{:?}", d.level),
                    ))
                    .or_insert(0u32) += 1;
            }
        }
    }
    println!("misses {misses}/{total}");
    for (k, n) in verdicts {
        println!("verdict {k:?}: {n}");
    }
    for (k, n) in decoys {
        println!("decoy {k:?}: {n}");
    }
}
