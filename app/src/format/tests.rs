//! Unit tests of `format`.

use super::*;

const UTC: TzOffset<'static> = &|_| 0;

#[test]
fn a_probe_in_words() {
    let t = 1_763_000_000_123_456;
    assert_eq!(
        sample_words(7, t, Some(250), None, UTC),
        "02:13:20.123 · probe #7 · RTT 0.25 ms"
    );
    assert_eq!(
        sample_words(7, t, None, None, UTC),
        "02:13:20.123 · probe #7 · lost"
    );
    assert_eq!(
        sample_words(7, t, None, Some(468_000), UTC),
        "02:13:20.123 · probe #7 · lost, late reply 468 ms"
    );
}

#[test]
fn clock_formats_local_time_with_millis() {
    // 2025-11-13T02:13:20.123456Z
    let t = 1_763_000_000_123_456;
    assert_eq!(clock(t, 0), "02:13:20.123");
    assert_eq!(clock(t, 60), "03:13:20.123");
    assert_eq!(clock(t, -180), "23:13:20.123");
    assert_eq!(clock(0, 0), "00:00:00.000");
    assert_eq!(clock(-1000, 0), "23:59:59.999");
}

#[test]
fn durations_keep_meaningful_digits() {
    assert_eq!(duration(250), "0.25 ms");
    assert_eq!(duration(46_800), "46.8 ms");
    assert_eq!(duration(468_000), "468 ms");
    assert_eq!(duration(999_000), "999 ms");
    assert_eq!(duration(999_700), "1 s");
    assert_eq!(duration(1_000_000), "1 s");
    assert_eq!(duration(1_100_000), "1.1 s");
    assert_eq!(duration(1_441_000), "1.44 s");
    assert_eq!(duration(12_300_000), "12.3 s");
    assert_eq!(duration(120_000_000), "120 s");
}

#[test]
fn intervals_read_naturally() {
    assert_eq!(interval(10.0), "every 10 ms");
    assert_eq!(interval(0.5), "every 0.5 ms");
    assert_eq!(interval(2500.0), "every 2.5 s");
    assert_eq!(interval(0.0), "unknown interval");
}

#[test]
fn loss_burst_in_words() {
    let t = 1_763_000_000_000_000;
    let r = Reason::LossBurst {
        probes: 47,
        first_seq: 100,
        last_seq: 146,
        start_us: t + 315_000,
        end_us: t + 790_000,
    };
    assert_eq!(reason(&r, UTC), "47 probes lost 02:13:20.315–02:13:20.790");
    let one = Reason::LossBurst {
        probes: 1,
        first_seq: 1,
        last_seq: 1,
        start_us: t,
        end_us: t,
    };
    assert_eq!(reason(&one, UTC), "1 probe lost 02:13:20.000");
}

#[test]
fn late_reply_in_words() {
    let r = Reason::LateReply {
        seq: 1234,
        rtt_us: 468_000,
    };
    assert_eq!(reason(&r, UTC), "late reply 468 ms (probe #1234)");
}

#[test]
fn other_reasons_in_words() {
    let t = 1_763_000_000_000_000;
    let cases = [
        (
            Reason::Sawtooth {
                probes: 12,
                first_rtt_us: 5_200,
                max_rtt_us: 8_100,
                teeth: 3,
                span_us: 120_000,
            },
            "sawtooth after the outage: 12 elevated replies, first 5.20 ms, peak 8.10 ms",
        ),
        (
            Reason::QueueFlush {
                replies: 37,
                max_rtt_us: 468_000,
            },
            "37 queued replies released at once (up to 468 ms): a queue flush, not a migration",
        ),
        (
            Reason::Congestion {
                rtt_us: 12_300,
                baseline_us: 300,
            },
            "RTT already high before the loss: 12.3 ms against a baseline of 0.30 ms",
        ),
        (
            Reason::LongOutage {
                duration_us: 12_300_000,
            },
            "outage of 12.3 s: longer than any stop-and-copy",
        ),
        (
            Reason::Silence {
                first_seq: 9,
                since_us: t + 315_000,
                elapsed_us: 470_000,
            },
            "no reply since 02:13:20.315 (470 ms)",
        ),
        (
            Reason::RttPeak {
                max_rtt_us: 46_800,
                baseline_us: 300,
                probes: 1,
                start_us: t,
                end_us: t,
            },
            "RTT peak 46.8 ms (baseline 0.30 ms, 1 reply) 02:13:20.000",
        ),
    ];
    for (r, want) in cases {
        assert_eq!(reason(&r, UTC), want);
    }
}

fn migration_reasons(t: i64) -> Vec<Reason> {
    vec![
        Reason::LossBurst {
            probes: 47,
            first_seq: 100,
            last_seq: 146,
            start_us: t + 315_000,
            end_us: t + 790_000,
        },
        Reason::LateReply {
            seq: 100,
            rtt_us: 468_000,
        },
    ]
}

#[test]
fn headlines_read_as_one_sentence() {
    let t = 1_763_000_000_000_000;
    assert_eq!(headline(Light::Green, &[], UTC), "");
    assert_eq!(
        headline(Light::Red, &migration_reasons(t), UTC),
        "Red: 47 probes lost 02:13:20.315–02:13:20.790, then a late reply of 468 ms: stop-and-copy signature."
    );
    let mut flush = migration_reasons(t);
    flush[1] = Reason::QueueFlush {
        replies: 37,
        max_rtt_us: 468_000,
    };
    assert_eq!(
        headline(Light::Yellow, &flush, UTC),
        "Yellow: 47 probes lost 02:13:20.315–02:13:20.790, then 37 queued replies released at once: a queue released at once, not a migration."
    );
    let silence = [Reason::Silence {
        first_seq: 9,
        since_us: t,
        elapsed_us: 80_000,
    }];
    assert_eq!(
        headline(Light::Yellow, &silence, UTC),
        "Yellow: no reply since 02:13:20.000 (80.0 ms): an outage in progress, maybe a migration."
    );
    assert_eq!(
        headline(Light::Yellow, &[], UTC),
        "Yellow: a possible migration."
    );
    // Another machine announced the address (verdict `replaced`).
    let mut replaced = migration_reasons(t);
    replaced[1] = Reason::Announce {
        frames: 1,
        rarp: 0,
        garp: 1,
        first_us: t + 800_000,
        mac: migwatch_shared::wire::Mac([2, 0x6d, 0x77, 0x0e, 0x0e, 1]),
        previous_mac: Some(MAC),
    };
    assert_eq!(
        reason(&replaced[1], UTC),
        "another machine announced the address: MAC 52:54:00:12:34:56 → 02:6d:77:0e:0e:01 (1 gratuitous ARP)"
    );
    assert_eq!(
        headline(Light::Yellow, &replaced, UTC),
        "Yellow: 47 probes lost 02:13:20.315–02:13:20.790, another machine announced the address: MAC 52:54:00:12:34:56 → 02:6d:77:0e:0e:01 (1 gratuitous ARP): a different machine at the address, not a migration."
    );
}

const MAC: migwatch_shared::wire::Mac =
    migwatch_shared::wire::Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

fn clock_step(step_us: i64) -> Reason {
    Reason::ClockStep {
        step_us,
        before_us: 0,
        after_us: 0,
        samples: 3,
    }
}

fn announce(rarp: u32, garp: u32) -> Reason {
    Reason::Announce {
        frames: rarp + garp,
        rarp,
        garp,
        first_us: 0,
        mac: MAC,
        previous_mac: None,
    }
}

#[test]
fn confirming_signals_in_words() {
    assert_eq!(
        reason(&clock_step(-368_240), UTC),
        "guest clock stepped back 368.2 ms (3 readings)"
    );
    assert_eq!(
        reason(&clock_step(12_000), UTC),
        "guest clock jumped ahead 12.0 ms (3 readings)"
    );
    assert_eq!(
        reason(&announce(3, 2), UTC),
        "MAC 52:54:00:12:34:56 announced again: 3 RARP + 2 gratuitous ARP"
    );
    assert_eq!(
        reason(&announce(5, 0), UTC),
        "MAC 52:54:00:12:34:56 announced again: 5 RARP"
    );
    assert_eq!(
        reason(&announce(0, 1), UTC),
        "MAC 52:54:00:12:34:56 announced again: 1 gratuitous ARP"
    );
    let steady = Reason::ClockSteady {
        change_us: -400,
        outage_us: 512_000,
    };
    assert_eq!(
        reason(&steady, UTC),
        "guest clock ran on through the 512 ms outage (±0.4 ms): the guest was not stopped"
    );
    let un = |clock, announce| reason(&Reason::Unconfirmed { clock, announce }, UTC);
    assert_eq!(un(true, true), "no clock step and no MAC announce followed");
    assert_eq!(un(true, false), "no clock step followed");
    assert_eq!(un(false, true), "no MAC announce followed");
    assert_eq!(un(false, false), "nothing confirmed a migration");
}

#[test]
fn red_headlines_name_the_strongest_signal() {
    let t = 1_763_000_000_000_000;
    let mut r = migration_reasons(t);
    r.insert(1, clock_step(-368_240));
    r.insert(2, announce(5, 5));
    assert_eq!(
        headline(Light::Red, &r, UTC),
        "Red: 47 probes lost 02:13:20.315–02:13:20.790; guest clock stepped back 368 ms, MAC announced again: migrated."
    );
    r.remove(2);
    assert_eq!(
        headline(Light::Red, &r, UTC),
        "Red: 47 probes lost 02:13:20.315–02:13:20.790; guest clock stepped back 368 ms: migrated."
    );
    let only_announce = [migration_reasons(t)[0], announce(5, 4)];
    assert_eq!(
        headline(Light::Red, &only_announce, UTC),
        "Red: 47 probes lost 02:13:20.315–02:13:20.790; MAC announced again (5 RARP + 4 gratuitous ARP): migrated."
    );
    assert_eq!(
        headline(Light::Red, &[announce(0, 2)], UTC),
        "Red: MAC announced again (2 gratuitous ARP): migrated."
    );
    // Without a strong signal it is the RTT signature, as before.
    assert!(
        headline(Light::Red, &migration_reasons(t), UTC).ends_with(": stop-and-copy signature.")
    );
}

#[test]
fn yellow_headlines_say_outage_when_the_guest_says_so() {
    let t = 1_763_000_000_000_000;
    let burst = migration_reasons(t)[0];
    let un = [
        burst,
        Reason::Unconfirmed {
            clock: true,
            announce: true,
        },
    ];
    assert_eq!(
        headline(Light::Yellow, &un, UTC),
        "Yellow: 47 probes lost 02:13:20.315–02:13:20.790, no clock step and no MAC announce followed: an outage, not a migration."
    );
    let steady = [
        burst,
        Reason::Sawtooth {
            probes: 4,
            first_rtt_us: 30_000,
            max_rtt_us: 30_000,
            teeth: 2,
            span_us: 40_000,
        },
        Reason::ClockSteady {
            change_us: 300,
            outage_us: 470_000,
        },
        Reason::Unconfirmed {
            clock: true,
            announce: false,
        },
    ];
    assert_eq!(
        headline(Light::Yellow, &steady, UTC),
        "Yellow: 47 probes lost 02:13:20.315–02:13:20.790, then a sawtooth of 4 elevated replies, the guest clock ran on (±0.3 ms), no clock step followed: an outage, not a migration."
    );
    // An announce on its own, outside any outage.
    assert_eq!(
        headline(Light::Yellow, &[announce(5, 0)], UTC),
        "Yellow: its MAC was announced again (5 RARP): the VM may have moved."
    );
}

#[test]
fn the_log_names_where_the_downtime_comes_from() {
    use migwatch_shared::detector::{ClockStep, Evidence};
    let t = 1_763_000_000_000_000;
    let mut m = migwatch_shared::Migration {
        id: 1,
        first_seq: 100,
        last_seq: 146,
        probes: 47,
        start_us: t,
        end_us: t + 470_000,
        downtime_us: 368_240,
        downtime_source: DowntimeSource::ClockStep,
        level: Light::Red,
        verdict: migwatch_shared::detector::EventVerdict::Migrated,
        evidence: Evidence {
            clock_step: Some(ClockStep {
                step_us: -368_240,
                before_us: t - 100_000,
                after_us: t + 600_000,
                samples: 3,
            }),
            ..Evidence::default()
        },
        decided_us: t + 700_000,
        interval_us: 10_000,
    };
    let row = log_row(1, "198.18.0.2", &m, UTC);
    assert_eq!(row.downtime, "368 ms (clock step)");
    // The verdict leads.
    assert_eq!(
        row.evidence[0],
        "migrated or paused (no announce channel to tell)"
    );
    assert_eq!(
        row.evidence[2],
        "guest clock stepped back 368.2 ms (3 readings)"
    );
    m.downtime_source = DowntimeSource::LateReply;
    assert_eq!(log_row(1, "x", &m, UTC).downtime, "368 ms (late reply)");
    m.downtime_source = DowntimeSource::LossBurst;
    assert_eq!(log_row(1, "x", &m, UTC).downtime, "368 ms (lost probes)");
}

#[test]
fn worst_light_and_favicon() {
    assert_eq!(
        worst([None, Some(Light::Green), Some(Light::Red)]),
        Some(Light::Red)
    );
    assert_eq!(worst([Some(Light::Yellow), None]), Some(Light::Yellow));
    assert_eq!(worst([None, None]), None);
    assert_eq!(worst(Vec::new()), None);
    assert!(favicon(Some(Light::Red)).contains("%23dc2626"));
    assert!(favicon(None).starts_with("data:image/svg+xml,"));
}

#[test]
fn titles_follow_the_light() {
    assert_eq!(title(Some(Light::Red)), "● RED — migwatch");
    assert_eq!(title(None), "○ no data — migwatch");
    assert_eq!(light_word(Some(Light::Green)), "GREEN");
}
