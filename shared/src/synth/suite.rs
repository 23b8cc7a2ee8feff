//! Sets of trace specs: the standard evaluation suite and the sweeps.

use super::{Rng, Scenario, TraceSpec};

/// The standard evaluation suite: `6 × count` migrations across a range of
/// downtimes (2 intervals up to 1.44 s, with and without a held reply, some
/// on a loaded host), `count` traces of every decoy, and `⌈count / 2⌉`
/// five-minute baseline traces; probe intervals of 2 ms (as in the lab
/// measurements) and 10 ms (the sidecar's default), alternating.
pub fn suite(seed: u64, count: u32) -> Vec<TraceSpec> {
    let mut seeds = Rng::new(seed);
    let mut out = Vec::new();
    let ivs = [2_000u32, 10_000];
    for i in 0..6 * count {
        let iv = ivs[(i % 2) as usize];
        let ivms = f64::from(iv) / 1000.0;
        let downs = [
            2.0 * ivms,
            3.0 * ivms,
            10.0,
            25.0,
            60.0,
            150.0,
            334.0,
            600.0,
            1000.0,
            1441.0,
        ];
        let list: Vec<f64> = downs.into_iter().filter(|d| *d >= 2.0 * ivms).collect();
        let d = list[(i as usize / 2) % list.len()];
        let held = (i / 2) % 2 == 0;
        let loaded = (i / 4) % 3 == 2;
        out.push(TraceSpec::new(
            &format!("{:03}-migration-{}ms-{d}ms", out.len(), iv / 1000),
            seeds.next_u64(),
            iv,
            Scenario::Migration {
                downtime_ms: d,
                held,
                loaded,
            },
        ));
    }
    for sc in Scenario::DECOYS {
        for i in 0..count {
            let iv = ivs[(i % 2) as usize];
            out.push(TraceSpec::new(
                &format!("{:03}-{}-{}ms", out.len(), sc.name(), iv / 1000),
                seeds.next_u64(),
                iv,
                sc,
            ));
        }
    }
    for i in 0..count.div_ceil(2) {
        let iv = ivs[(i % 2) as usize];
        let mut t = TraceSpec::new(
            &format!("{:03}-baseline-{}ms", out.len(), iv / 1000),
            seeds.next_u64(),
            iv,
            Scenario::Baseline,
        );
        t.duration_s = 300.0;
        out.push(t);
    }
    out
}
