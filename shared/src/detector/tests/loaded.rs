//! Echo only, on a loaded host: a pre-copy's level ends with the stop; a
//! load that goes on across a cut is no stop, whatever shape its stalls
//! and noise give the first replies after it.

use super::*;

/// A loaded level: 3–7 ms, median 5 ms.
const FIVE: [u32; 5] = [3000, 4000, 5000, 6000, 7000];
/// A light one: 1.2–2.2 ms, median 2 ms, below the elevated bar of a
/// 250 µs baseline, which learns it within seconds.
const TWO: [u32; 5] = [1200, 1600, 2000, 2000, 2200];

fn loaded_at(d: &mut Detector, seqs: std::ops::Range<u64>, level: [u32; 5]) {
    for q in seqs {
        d.push(&sample(q, Some(level[(q % 5) as usize])));
    }
}

fn loaded(d: &mut Detector, seqs: std::ops::Range<u64>) {
    loaded_at(d, seqs, FIVE);
}

/// A host stall from `a` to `b` (inclusive): every request of it is
/// answered at its end, the first one `len_ms` after its send.
fn stall(d: &mut Detector, a: u64, b: u64, len_ms: i64) {
    for q in a..=b {
        d.push(&sample(
            q,
            Some(((len_ms - (q - a) as i64 * 10) * MS) as u32),
        ));
    }
}

/// A quiet host (250 µs) loaded for `pre_s` seconds, probes 1400–1403
/// lost, three replies of 30, 20 and 10 ms released at once (a 40 ms
/// stall right after a cut, or a sawtooth released in one batch), then
/// the loaded level again or the quiet one.
fn cut_then(pre_s: u64, level: [u32; 5], after_loaded: bool) -> Migration {
    let mut d = Detector::default();
    let start = 1400 - pre_s * 100;
    feed(&mut d, 0..start, 250);
    loaded_at(&mut d, start..1400, level);
    let shape = [(1404, 30_000), (1405, 20_000), (1406, 10_000)];
    outage(&mut d, 1400, 1404, &shape);
    if after_loaded {
        loaded_at(&mut d, 1407..1500, level);
    } else {
        feed(&mut d, 1407..1500, 250);
    }
    d.finish();
    d.migrations()[0]
}

/// The loaded level goes on after the cut: the shape is the load's, not a
/// resume's (`load_ratio`, `load_fall`). With the level back at the quiet
/// one it is a stop: pre-copy ended. Also after 8 s of a light load that
/// the baseline has learnt (`Baseline::floor` keeps the quiet level).
#[test]
fn a_loaded_level_that_goes_on_after_a_cut_vetoes_its_shape() {
    for (pre_s, level) in [(1, FIVE), (8, FIVE), (8, TWO)] {
        let m = cut_then(pre_s, level, true);
        assert_eq!(m.level, Light::Yellow, "{pre_s} s {level:?}: {m:?}");
        assert!(m.evidence.congestion.is_some(), "{m:?}");
        let m = cut_then(pre_s, level, false);
        assert_eq!(m.level, Light::Red, "{pre_s} s {level:?}: {m:?}");
        assert!(m.evidence.sawtooth.is_some(), "{m:?}");
    }
}

/// At 10 ms a 40–60 ms fall holds two replies above a loaded level: two
/// teeth peaking at 12 ms or more, then the level back at the quiet one,
/// are a sawtooth. Released at once (one tooth: a short stall) or with
/// the load going on, they are not.
#[test]
fn two_teeth_above_a_loaded_level_that_falls_are_a_sawtooth() {
    let run = |one_tooth: bool, after_loaded: bool| {
        let mut d = Detector::default();
        feed(&mut d, 0..300, 250);
        loaded(&mut d, 300..400);
        // 404 back 4 ms after 403 (two teeth), or with it (one).
        let r404 = if one_tooth { 10_000 } else { 14_000 };
        outage(
            &mut d,
            400,
            403,
            &[(403, 20_000), (404, r404), (405, 5_000)],
        );
        if after_loaded {
            loaded(&mut d, 406..500);
        } else {
            feed(&mut d, 406..500, 250);
        }
        d.finish();
        d.migrations()[0]
    };
    let m = run(false, false);
    assert_eq!(m.level, Light::Red, "{m:?}");
    assert_eq!(m.evidence.sawtooth.map(|s| s.probes), Some(2), "{m:?}");
    for (one, on) in [(true, false), (false, true)] {
        let m = run(one, on);
        assert_eq!(
            m.level,
            Light::Yellow,
            "one tooth {one}, loaded after {on}: {m:?}"
        );
    }
}

/// Two stalls of a loaded pre-copy in the last 500 ms before the stop
/// put over a quarter of the replies above 20 ms (the congestion veto).
/// When the level then falls and stays down for `load_settle_ms`, the
/// pre-copy ended: red. When it comes back within that (the next stall
/// of a starved host), the veto stands.
#[test]
fn a_level_that_stays_down_lifts_the_congestion_veto() {
    let run = |relapse: bool| {
        let mut d = Detector::default();
        feed(&mut d, 0..300, 250);
        loaded(&mut d, 300..350);
        stall(&mut d, 350, 360, 110);
        loaded(&mut d, 361..365);
        stall(&mut d, 365, 369, 50);
        loaded(&mut d, 370..400);
        let saw = [(404, 30_000), (405, 24_000), (406, 18_000), (407, 5_000)];
        outage(&mut d, 400, 404, &saw);
        feed(&mut d, 408..413, 250);
        if relapse {
            stall(&mut d, 413, 416, 40);
        } else {
            feed(&mut d, 413..417, 250);
        }
        feed(&mut d, 417..500, 250);
        d.finish();
        d.migrations()[0]
    };
    let m = run(false);
    assert_eq!(m.level, Light::Red, "{m:?}");
    let m = run(true);
    assert_eq!(m.level, Light::Yellow, "{m:?}");
    assert!(m.evidence.congestion.is_some(), "{m:?}");
}

/// The loaded cuts of the first offsets seed (180: 2–4.1 intervals, 60,
/// 150, 794 and 1 441 ms at 10 and 2 ms, five offsets each): three were
/// red before the loaded level had to fall back (a stall right after the
/// cut, read as a one-tooth sawtooth); none is now.
#[test]
fn loaded_cuts_of_the_first_offsets_seed_are_never_red() {
    let mut n = 0;
    for spec in crate::synth::offsets(1, 2) {
        if !matches!(spec.scenario, crate::synth::Scenario::LoadedCut { .. }) {
            continue;
        }
        let t = crate::synth::generate(&spec);
        let s = crate::eval::score(&t.events, &t.labels, DetectorConfig::default());
        assert_eq!(s.false_reds, 0, "{}", spec.name);
        n += 1;
    }
    assert_eq!(n, 180);
}

/// At 2 ms a host stall in the last 64 ms before the stop makes most of
/// the 32 replies before it the stall's (here 70 ms released at once:
/// 70, 68 … 2 ms), so the post-resume fall (28 ms in three teeth) is not
/// above that level. The level before the stall is the load's (5 ms):
/// against it the fall is a sawtooth, and with the quiet level after it,
/// red (`load_stall_us`). With the load going on after it, not.
#[test]
fn a_stall_just_before_the_stop_does_not_raise_the_level_before() {
    const IV2: i64 = 2 * MS;
    let at = |seq: u64, rtt: Option<u32>| {
        Event::Sample(Sample {
            seq,
            sent_us: T0 + seq as i64 * IV2,
            rtt_us: rtt,
        })
    };
    let run = |cfg: DetectorConfig, after_loaded: bool| {
        let mut d = Detector::new(cfg);
        let load = |q: u64| FIVE[(q % 5) as usize];
        for q in 0..1500 {
            d.push(&at(q, Some(250)));
        }
        for q in 1500..1965 {
            d.push(&at(q, Some(load(q))));
        }
        for q in 1965..2000 {
            d.push(&at(q, Some(((2000 - q) * 2) as u32 * 1000)));
        }
        // Probes 2000–2004 lost (a 10 ms stop), then the fall.
        for (k, q) in (2005..2017).enumerate() {
            let tooth = k as u32 / 4;
            d.push(&at(
                q,
                Some(28_000 - tooth * 8_000 - (k as u32 % 4) * 2_000),
            ));
        }
        for q in 2000..2005 {
            d.push(&at(q, None));
        }
        for q in 2017..2500 {
            d.push(&at(q, Some(if after_loaded { load(q) } else { 250 })));
        }
        d.finish();
        d.migrations()[0]
    };
    let m = run(DetectorConfig::default(), false);
    assert_eq!(m.level, Light::Red, "{m:?}");
    assert!(m.evidence.sawtooth.is_some(), "{m:?}");
    let m = run(DetectorConfig::default(), true);
    assert_eq!(m.level, Light::Yellow, "load goes on: {m:?}");
    let off = DetectorConfig {
        load_stall_us: u32::MAX,
        ..DetectorConfig::default()
    };
    let m = run(off, false);
    assert_eq!(m.level, Light::Yellow, "without the rule: {m:?}");
}

/// A mildly loaded host (the `mild` sweep, seed 21: a 2 ms probe, a
/// 150 ms cut, the level before it 0.96 ms, between 3 and 4 × the quiet
/// one) stalls as a busy one does: a stall across the cut's end releases
/// a one-tooth ramp from 17.8 ms. Judged as a quiet host's (`load_ratio`
/// 4) it was red; as a loaded one, whose level must fall back, it is not.
#[test]
fn a_mildly_loaded_host_is_judged_as_a_loaded_one() {
    let spec = crate::synth::mild(21, 2)
        .into_iter()
        .find(|s| s.name.starts_with("0619-loaded_cut-2ms-150ms-p4"))
        .expect("the mild sweep's cut");
    let t = crate::synth::generate(&spec);
    let red = |cfg| crate::eval::score(&t.events, &t.labels, cfg).false_reds;
    assert_eq!(red(DetectorConfig::default()), 0);
    let four = DetectorConfig {
        load_ratio: 4.0,
        ..DetectorConfig::default()
    };
    assert_eq!(red(four), 1);
}

/// The lab's TCG guest (`lab-mix-20261205-205001`, step 11): a pre-copy
/// at 4–5 × the quiet level, a 42 ms stop, then the resumed guest
/// releases its replies in bursts (three teeth of 75, 70 and 51 ms), and
/// its own workload keeps the level up after. No fall, but three tall
/// teeth: a stop (`load_teeth`). Two tall teeth, or one release of the
/// same height (a host stall right after a cut), keep the veto.
#[test]
fn three_tall_teeth_after_a_level_that_stays_up_are_a_stop() {
    // 0.5–6 ms, median 1.4 ms: a TCG pre-copy over a 0.3 ms path.
    const TCG: [u32; 5] = [500, 900, 1400, 2000, 6000];
    let run = |teeth: &[(u64, u32)]| {
        let mut d = Detector::default();
        feed(&mut d, 0..300, 300);
        loaded_at(&mut d, 300..400, TCG);
        outage(&mut d, 400, 405, teeth);
        let next = teeth.last().map_or(405, |t| t.0 + 1);
        loaded_at(&mut d, next..next + 100, TCG);
        d.finish();
        d.migrations()[0]
    };
    // Arrivals (send + RTT, from 405's send): 75 | 80, 80 | 85 × 5.
    let three = [
        (405, 75_000),
        (406, 70_000),
        (407, 60_000),
        (408, 55_000),
        (409, 45_000),
        (410, 35_000),
        (411, 25_000),
        (412, 15_000),
    ];
    let m = run(&three);
    assert_eq!(m.level, Light::Red, "{m:?}");
    assert_eq!(m.verdict, EventVerdict::Migrated, "{m:?}");
    assert!(m.evidence.congestion.is_none(), "{m:?}");
    // The first two teeth as one release (80 | 85 × 5): two tall teeth.
    let mut two = three;
    two[0].1 = 80_000;
    // All at once (85 ms each an interval faster): a stall's one tooth.
    let one: Vec<(u64, u32)> = (405..414)
        .map(|q| (q, 85_000 - (q as u32 - 405) * 10_000))
        .collect();
    for (what, teeth) in [("two teeth", &two[..]), ("one tooth", &one[..])] {
        let m = run(teeth);
        assert_eq!(m.level, Light::Yellow, "{what}: {m:?}");
        assert!(m.evidence.congestion.is_some(), "{what}: {m:?}");
    }
    let off = DetectorConfig {
        load_teeth: 0,
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(off);
    feed(&mut d, 0..300, 300);
    loaded_at(&mut d, 300..400, TCG);
    outage(&mut d, 400, 405, &three);
    loaded_at(&mut d, 413..513, TCG);
    d.finish();
    assert_eq!(d.migrations()[0].level, Light::Yellow, "without the rule");
}
