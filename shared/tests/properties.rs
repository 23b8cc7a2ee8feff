//! Property tests: no input sequence panics, and outputs are deterministic.

use migwatch_shared::detector::Detector;
use migwatch_shared::trace;
use migwatch_shared::wire::{Event, Gap, Late, Overflow, Sample, Tick};
use proptest::prelude::*;

/// Events that look like a real stream most of the time (seqs near a
/// running counter, plausible times) with arbitrary values mixed in.
fn event() -> impl Strategy<Value = (u8, u64, i64, u32, bool)> {
    (
        any::<u8>(),
        0u64..6000,
        -5_000i64..5_000_000,
        any::<u32>(),
        any::<bool>(),
    )
}

fn build(raw: &[(u8, u64, i64, u32, bool)]) -> Vec<Event> {
    let t0 = 1_763_000_000_000_000i64;
    raw.iter()
        .enumerate()
        .map(|(i, &(k, seq, dt, r, flag))| {
            let sent_us = t0 + dt * 3 + i as i64 * 2000;
            let rtt = if flag { r % 200_000 } else { r };
            match k % 16 {
                0..=8 => Event::Sample(Sample {
                    seq,
                    sent_us,
                    rtt_us: Some(rtt),
                }),
                9..=11 => Event::Sample(Sample {
                    seq,
                    sent_us,
                    rtt_us: None,
                }),
                12 => Event::Late(Late { seq, rtt_us: rtt }),
                13 => Event::Tick(Tick {
                    now_us: sent_us,
                    next_seq: seq,
                }),
                14 => Event::Gap(Gap {
                    from_id: seq,
                    to_id: seq + 1,
                    missing: 2,
                }),
                _ => Event::Sample(Sample {
                    seq: if flag { u64::MAX - seq } else { seq },
                    sent_us: if flag {
                        i64::MIN.saturating_add(dt.abs())
                    } else {
                        i64::MAX.saturating_sub(dt.abs())
                    },
                    rtt_us: Some(r),
                }),
            }
        })
        .collect()
}

fn run(events: &[Event]) -> (Vec<String>, String) {
    let mut d = Detector::default();
    let mut lights = Vec::with_capacity(events.len());
    for ev in events {
        d.push(ev);
        lights.push(format!("{:?}", d.verdict()));
    }
    d.finish();
    (lights, format!("{:?}", d.migrations()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_event_sequence_is_handled_deterministically(raw in prop::collection::vec(event(), 0..400)) {
        let events = build(&raw);
        let a = run(&events);
        let b = run(&events);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn ordered_streams_with_outages_never_panic(
        losses in prop::collection::vec((0u64..3000, 1u64..400), 0..6),
        rtts in prop::collection::vec(100u32..200_000, 1..64),
        overflow_at in prop::option::of(0usize..3000),
    ) {
        let mut events = Vec::new();
        for q in 0..3000u64 {
            let lost = losses.iter().any(|&(a, n)| q >= a && q < a + n);
            if overflow_at == Some(q as usize) {
                events.push(Event::Overflow(Overflow { last_id: q }));
            }
            events.push(Event::Sample(Sample {
                seq: q,
                sent_us: 1_000_000_000 + q as i64 * 2000,
                rtt_us: (!lost).then(|| rtts[q as usize % rtts.len()]),
            }));
        }
        let a = run(&events);
        prop_assert_eq!(&a, &run(&events));
    }

    #[test]
    fn trace_parsers_never_panic(text in "\\PC{0,300}") {
        let _ = trace::read(&text);
        let _ = trace::read_as(trace::Format::Csv, &format!("seq,t_send,rtt_ms\n{text}"));
    }

    #[test]
    fn jsonl_and_csv_round_trip_samples(raw in prop::collection::vec(event(), 0..100)) {
        let events: Vec<Event> = build(&raw)
            .into_iter()
            .filter(|e| matches!(e, Event::Sample(_) | Event::Tick(_) | Event::Gap(_)))
            .collect();
        let mut s = String::new();
        trace::write_jsonl(&events, &mut s).unwrap();
        // A trace without events is an error in every format.
        if events.is_empty() {
            prop_assert!(trace::read(&s).is_err());
            return Ok(());
        }
        prop_assert_eq!(trace::read(&s).unwrap(), events.clone());
        // CSV keeps samples only, and only exact sub-millisecond RTTs.
        let mut c = String::new();
        trace::write_csv(&events, &mut c).unwrap();
        let samples = events.iter().any(|e| matches!(e, Event::Sample(_)));
        prop_assert_eq!(trace::read(&c).is_ok(), samples);
    }
}
