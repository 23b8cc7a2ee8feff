//! Echo only, a slow (TCG) guest: it releases its queue at resume as one
//! ramp, then stalls again for 10–25 ms before it is back at its level.
//! The shapes are the replies of the lab's runs (`/work/lab-echo`, run
//! 13:19:28 step 1 and run 13:13:48 step 6), RTT in µs, probes every 10 ms.

use super::*;

/// Run 13:19:28, step 1 (57 ms STOP→RESUME, probes 511–516 lost): a ramp
/// from 90.5 ms, then stalls of 15, 13 and 26 ms; elevated 180 ms in all.
const RAMP_THEN_STALLS: [u32; 19] = [
    90476, 80731, 74614, 66087, 56373, 46575, 36484, 26776, 16695, 6932, 15310, 5495, 13016, 3131,
    25714, 16006, 6117, 6577, 2413,
];

/// Run 13:13:48, step 6 (66 ms, probes 3915–3920 lost): a ramp from
/// 114.6 ms, then a stall of 36 ms.
const HIGH_RAMP: [u32; 18] = [
    114600, 104833, 97750, 87879, 78063, 68093, 58276, 48367, 38531, 28414, 19874, 9959, 35897,
    26240, 16329, 6416, 4039, 534,
];

/// Quiet replies, probes 0..400 lost 400..406, then `shape` and quiet
/// replies again.
fn run(shape: &[u32], cfg: DetectorConfig) -> Migration {
    let mut d = Detector::new(cfg);
    feed(&mut d, 0..400, 500);
    let after: Vec<(u64, u32)> = shape
        .iter()
        .enumerate()
        .map(|(i, &r)| (406 + i as u64, r))
        .collect();
    outage(&mut d, 400, 406, &after);
    let end = 406 + shape.len() as u64;
    feed(&mut d, end..end + 100, 500);
    d.finish();
    assert_eq!(d.migrations().len(), 1, "{:?}", d.migrations());
    d.migrations()[0]
}

/// The ramp is the resume's release: red, with the ramp as its sawtooth.
/// Judged on the whole shape (no ramp rule) the stalls after it keep it
/// elevated past `sawtooth_window_ms`: yellow.
#[test]
fn a_released_ramp_is_a_sawtooth_whatever_stalls_follow() {
    let m = run(&RAMP_THEN_STALLS, DetectorConfig::default());
    assert_eq!(m.level, Light::Red, "{m:?}");
    let s = m.evidence.sawtooth.expect("sawtooth");
    assert_eq!((s.probes, s.max_rtt_us, s.teeth), (10, 90476, 1), "{s:?}");
    let off = DetectorConfig {
        ramp_max_us: 0,
        ..DetectorConfig::default()
    };
    let m = run(&RAMP_THEN_STALLS, off);
    assert_eq!(m.level, Light::Yellow, "{m:?}");
    assert!(m.evidence.sawtooth.is_none(), "{m:?}");
}

/// A ramp peaking above `sawtooth_max_us` (114.6 ms) is still a resume's
/// release up to `ramp_max_us`; 30 ms higher (144.6 ms, as a monitor-side
/// flap's ARP queue) it is a queue flush.
#[test]
fn a_ramp_above_ramp_max_is_a_queue_flush() {
    let m = run(&HIGH_RAMP, DetectorConfig::default());
    assert_eq!(m.level, Light::Red, "{m:?}");
    assert!(m.evidence.flush.is_none(), "{m:?}");
    let higher: Vec<u32> = HIGH_RAMP
        .iter()
        .map(|&r| if r > 9000 { r + 30_000 } else { r })
        .collect();
    let m = run(&higher, DetectorConfig::default());
    assert_eq!(m.level, Light::Yellow, "{m:?}");
    assert!(m.evidence.flush.is_some(), "{m:?}");
}

/// Stalls that were not released together (each reply an interval after
/// the one before, RTT not falling) are no ramp: the shape stays judged as
/// a whole and, elevated 180 ms, is no sawtooth.
#[test]
fn stalls_not_released_together_are_no_ramp() {
    let mut flat = RAMP_THEN_STALLS;
    flat[..10].fill(30_000);
    let m = run(&flat, DetectorConfig::default());
    assert_ne!(m.level, Light::Red, "{m:?}");
    assert!(m.evidence.sawtooth.is_none(), "{m:?}");
}
