//! The guest's own channels for a generated trace: ICMP Timestamp
//! readings of its clock (every 200 ms) and the hypervisor's RARP
//! announces after a move. Drawn from their own random stream, so turning
//! them on leaves the echo probes of a seed unchanged.
//!
//! The model follows the lab's recordings: the target reads whole
//! milliseconds (the sidecar centres them and dithers its send phase), the
//! clock drifts by tens of ppm, the first readings of a run are often slow
//! on the request leg (a cold ARP cache: 8–21 ms), the first after a resume
//! slow on either (20–60 ms); a stopped guest's clock stands still, so it
//! lags by the stop afterwards. QEMU announces a moved guest with RARP at
//! resume and 50, 150, 350 and 750 ms later.

use super::Rng;
use crate::wire::{Announce, AnnounceKind, Clock, Event, Mac};

/// The synthetic guest's MAC.
const MAC: Mac = Mac([0x52, 0x54, 0x00, 0x5e, 0x00, 0x01]);

/// What happened to the guest and its path.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct GuestStory {
    /// The VM was stopped over [from, to) (a migration or a pause).
    pub stop: Option<(i64, i64)>,
    /// The path was cut over [from, to) (the guest ran on).
    pub cut: Option<(i64, i64)>,
    /// The hypervisor announced the guest at this time (a move).
    pub announce_at: Option<i64>,
    /// Clock readings on.
    pub clock: bool,
}

/// The clock and announce events, each with its stream time.
pub(super) fn guest_events(
    seed: u64,
    t0: i64,
    t_end: i64,
    base_rtt: f64,
    story: &GuestStory,
) -> Vec<(i64, Event)> {
    let mut rng = Rng::new(seed ^ 0x9e57_c10c);
    let mut out = Vec::new();
    if story.clock {
        let off0 = rng.range(-5e6, 5e6) as i64;
        let ppm = rng.range(-40.0, 40.0);
        let cold = rng.next_u64() % 4; // slow first readings
        let warm = 1 + rng.next_u64() % 3; // slow readings after a resume
        let mut t = t0 + rng.range(0.0, 200e3) as i64;
        let (mut j, mut after_resume) = (0u64, 0u64);
        while t < t_end {
            let stopped = story.stop.is_some_and(|(a, b)| t >= a && t < b);
            let cut = story.cut.is_some_and(|(a, b)| t >= a && t < b);
            let resumed = story.stop.is_some_and(|(_, b)| t >= b);
            if !stopped && !cut {
                let mut rtt = base_rtt * (0.15 * rng.normal()).exp();
                // Request leg slow: the reading is late by half the excess.
                let mut skew = 0.0;
                if j < cold {
                    rtt += rng.range(8e3, 21e3);
                    skew = (rtt - base_rtt) / 2.0;
                } else if resumed && after_resume < warm {
                    after_resume += 1;
                    rtt += rng.range(20e3, 60e3);
                    skew = if rng.chance(0.5) { 1.0 } else { -1.0 } * (rtt - base_rtt) / 2.0;
                }
                let lag = story
                    .stop
                    .filter(|(_, b)| t >= *b)
                    .map_or(0, |(a, b)| b - a);
                let truth = off0 + (ppm * (t - t0) as f64 / 1e6) as i64 - lag;
                let dither = ((j * 389) % 1000) as i64;
                let target_ms = (t + dither + truth + skew as i64).div_euclid(1000);
                let offset = target_ms * 1000 + 500 - (t + dither);
                let rtt = rtt.max(1.0) as u32;
                out.push((
                    t + i64::from(rtt),
                    Event::Clock(Clock {
                        seq: j,
                        sent_us: t,
                        rtt_us: rtt,
                        offset_us: offset,
                    }),
                ));
            }
            j += 1;
            t += 200_000;
        }
    }
    if let Some(at) = story.announce_at {
        for (k, d) in [0i64, 50, 150, 350, 750].into_iter().enumerate() {
            let t = at + d * 1000 + rng.range(0.0, 1000.0) as i64;
            out.push((
                t,
                Event::Announce(Announce {
                    at_us: t,
                    kind: if k == 0 || rng.chance(0.8) {
                        AnnounceKind::Rarp
                    } else {
                        AnnounceKind::Garp
                    },
                    mac: MAC,
                    previous_mac: None,
                }),
            ));
        }
    }
    out
}
