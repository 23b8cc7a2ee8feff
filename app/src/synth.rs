//! A synthetic probe trace for measurements and drawing tests: jittery
//! sub-ms RTTs at 10 ms with a periodic stop-and-copy.

use migwatch_shared::{Event, Late, Sample};

/// Probes between two synthetic outages.
const OUTAGE_EVERY: u64 = 60_000;

/// `n` synthetic events at 10 ms: jittery sub-ms RTTs, and every
/// [`OUTAGE_EVERY`] probes a 40-probe stop-and-copy with a late reply.
pub fn synthetic_events(n: u64, t0_us: i64) -> Vec<Event> {
    let mut out = Vec::with_capacity(n as usize + n as usize / OUTAGE_EVERY as usize + 1);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for q in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let phase = q % OUTAGE_EVERY;
        let lost = (OUTAGE_EVERY / 2..OUTAGE_EVERY / 2 + 40).contains(&phase);
        let rtt = 180 + (x % 160) as u32 + if x % 500 == 0 { 4_000 } else { 0 };
        out.push(Event::Sample(Sample {
            seq: q,
            sent_us: t0_us + q as i64 * 10_000,
            rtt_us: (!lost).then_some(rtt),
        }));
        if phase == OUTAGE_EVERY / 2 + 40 {
            // The held request, answered at resume: 0.5 ms before the first
            // probe after the stop is sent (a stopped guest releases what it
            // held before it can answer anything new; the detector's
            // `held_release_us`).
            out.push(Event::Late(Late {
                seq: q - 40,
                rtt_us: 399_500,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use migwatch_shared::{Detector, Light};

    #[test]
    fn synthetic_trace_has_periodic_stop_and_copies() {
        let evs = synthetic_events(180_000, 0);
        let lost = evs
            .iter()
            .filter(|e| matches!(e, Event::Sample(s) if s.rtt_us.is_none()))
            .count();
        assert_eq!(lost, 3 * 40);
        assert_eq!(evs.len(), 180_000 + 3);
        let mut det = Detector::default();
        for ev in &evs {
            det.push(ev);
        }
        assert_eq!(det.migrations().len(), 3);
        assert!(det.migrations().iter().all(|m| m.level == Light::Red));
    }
}
