//! A different machine at the target's address: the announce capture heard
//! a MAC other than the one it had learned there (`previous_mac` on the
//! announce). A live migration keeps the VM's MAC, so such an outage is
//! not a migration, however much it looks like one on the wire (a loss
//! burst ended by gratuitous ARPs): its verdict is
//! [`EventVerdict::Replaced`], yellow, never red, and never counted as a
//! migration.

use super::{AnnounceBurst, EventVerdict, Evidence, Light, Migration};
use crate::wire::Mac;

/// The MAC change an announce burst carries: (learned before, announced).
pub(super) fn mac_change(b: &AnnounceBurst) -> Option<(Mac, Mac)> {
    b.previous_mac.filter(|p| *p != b.mac).map(|p| (p, b.mac))
}

/// The verdict when the outage's announces name a new MAC; `None`
/// otherwise (the other rules decide).
pub(super) fn verdict(e: &Evidence) -> Option<EventVerdict> {
    e.announce
        .as_ref()
        .and_then(mac_change)
        .map(|_| EventVerdict::Replaced)
}

/// A replaced machine's light: worth a look, never the migration red.
pub(super) const LEVEL: Light = Light::Yellow;

/// The sentence for a [`EventVerdict::Replaced`] event.
pub(super) fn explain(m: &Migration, loss: &str) -> String {
    let change = m
        .evidence
        .announce
        .as_ref()
        .and_then(mac_change)
        .map_or_else(String::new, |(old, new)| format!(": MAC {old} → {new}"));
    format!(
        "replaced, not migrated: a different machine now answers at this address{change}; \
         a live migration keeps the MAC ({loss})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{Channels, Detector, DetectorConfig};
    use crate::wire::{Announce, AnnounceKind, Event, Sample, Tick};

    const OLD: Mac = Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    const NEW: Mac = Mac([0x02, 0x6d, 0x77, 0x0e, 0x0e, 0x01]);

    fn burst(previous_mac: Option<Mac>) -> AnnounceBurst {
        AnnounceBurst {
            frames: 1,
            rarp: 0,
            garp: 1,
            first_us: 1_000_000,
            mac: NEW,
            previous_mac,
        }
    }

    fn evidence(previous_mac: Option<Mac>) -> Evidence {
        Evidence {
            announce: Some(burst(previous_mac)),
            channels: Channels {
                clock: false,
                announce: true,
            },
            waited: true,
            ..Evidence::default()
        }
    }

    #[test]
    fn an_announce_of_a_new_mac_is_replaced_yellow_whatever_the_loss() {
        let cfg = DetectorConfig::default();
        let e = evidence(Some(OLD));
        for probes in [0, 1, 108, 10_000] {
            assert_eq!(e.verdict(probes, &cfg), EventVerdict::Replaced, "{probes}");
            assert_eq!(e.level(probes, &cfg), Light::Yellow, "{probes}");
        }
        // Even with the guest clock's step, which alone would say "moved".
        let mut stepped = e;
        stepped.clock_step = Some(crate::detector::ClockStep {
            step_us: -300_000,
            before_us: 0,
            after_us: 1,
            samples: 3,
        });
        assert_eq!(stepped.verdict(30, &cfg), EventVerdict::Replaced);
        assert_eq!(stepped.level(30, &cfg), Light::Yellow);
    }

    #[test]
    fn the_same_mac_announced_again_is_still_a_migration() {
        let cfg = DetectorConfig::default();
        // No previous MAC (the capture had not learned one, or it is the
        // same machine), or a "previous" equal to the announced one.
        for prev in [None, Some(NEW)] {
            let e = evidence(prev);
            assert_eq!(verdict(&e), None);
            assert_eq!(e.verdict(30, &cfg), EventVerdict::Migrated);
            assert_eq!(e.level(30, &cfg), Light::Red);
        }
    }

    /// A 31-probe outage at 100 Hz during which `announce` is heard, as
    /// the stream delivers it; the light after the announce, and the
    /// detector at the end.
    fn outage_with(announce: Announce) -> (Light, Detector) {
        const T0: i64 = 1_000_000_000;
        let sent = |q: u64| T0 + q as i64 * 10_000;
        let sample = |q: u64, rtt_us| {
            Event::Sample(Sample {
                seq: q,
                sent_us: sent(q),
                rtt_us,
            })
        };
        let mut d = Detector::default();
        d.set_announce_channel(true);
        for q in 0..500 {
            d.push(&sample(q, Some(500)));
        }
        for k in 1..=15u64 {
            d.push(&Event::Tick(Tick {
                now_us: sent(499) + k as i64 * 20_000,
                next_seq: 500 + 2 * k,
            }));
        }
        d.push(&Event::Announce(Announce {
            at_us: sent(499) + 305_000,
            ..announce
        }));
        let during = d.light();
        d.push(&sample(531, Some(500)));
        for q in 500..531 {
            d.push(&sample(q, None));
        }
        for q in 532..800 {
            d.push(&sample(q, Some(500)));
        }
        d.finish();
        (during, d)
    }

    #[test]
    fn a_new_machine_announcing_during_the_silence_is_never_red() {
        let a = Announce {
            at_us: 0,
            kind: AnnounceKind::Garp,
            mac: NEW,
            previous_mac: Some(OLD),
        };
        let (during, d) = outage_with(a);
        assert_eq!(during, Light::Yellow);
        let m = d.migrations();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(
            (m[0].verdict, m[0].level),
            (EventVerdict::Replaced, Light::Yellow)
        );
        assert_ne!(d.light(), Light::Red);
        // Its reasons say which MAC it replaced (the page words them).
        assert!(
            m[0].reasons().iter().any(|r| matches!(
                r,
                crate::detector::Reason::Announce { previous_mac: Some(p), .. } if *p == OLD
            )),
            "{:?}",
            m[0].reasons()
        );
        // The same outage with the old MAC announced again is a move.
        let (during, d) = outage_with(Announce {
            mac: OLD,
            previous_mac: None,
            ..a
        });
        assert_eq!(during, Light::Red);
        assert_eq!(d.migrations()[0].verdict, EventVerdict::Migrated);
    }

    #[test]
    fn the_sentence_names_both_macs() {
        let m = Migration {
            id: 0,
            first_seq: 10,
            last_seq: 117,
            probes: 108,
            start_us: 0,
            end_us: 1_080_000,
            downtime_us: 1_080_000,
            downtime_source: Default::default(),
            level: LEVEL,
            verdict: EventVerdict::Replaced,
            evidence: evidence(Some(OLD)),
            decided_us: 0,
            interval_us: 10_000,
        };
        let s = m.explain();
        assert!(
            s.starts_with("replaced, not migrated: a different machine now answers at this address: MAC 52:54:00:12:34:56 → 02:6d:77:0e:0e:01; a live migration keeps the MAC (108 probes lost over 1080 ms)"),
            "{s}"
        );
    }
}
