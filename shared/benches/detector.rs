//! Native throughput of the detector: events per second through
//! `Detector::push` (and a light read after each, as the page does).
//!
//! `cargo bench -p migwatch-shared --bench detector`

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use migwatch_shared::detector::Detector;
use migwatch_shared::synth::{generate, Scenario, TraceSpec};
use migwatch_shared::wire::{Event, Sample};

fn bench(c: &mut Criterion) {
    // A realistic stream: 2 minutes at 2 ms with baseline noise, ticks and
    // a migration in the middle.
    let mut spec = TraceSpec::new(
        "bench",
        42,
        2_000,
        Scenario::Migration {
            downtime_ms: 334.0,
            held: true,
            loaded: false,
        },
    );
    spec.duration_s = 120.0;
    let trace = generate(&spec).events;
    // The hot path alone: in-order answered samples.
    let steady: Vec<Event> = (0..100_000u64)
        .map(|q| {
            Event::Sample(Sample {
                seq: q,
                sent_us: 1_763_000_000_000_000 + q as i64 * 1000,
                rtt_us: Some(200 + (q * 7919 % 97) as u32),
            })
        })
        .collect();

    let mut g = c.benchmark_group("detector");
    for (name, events) in [("synthetic_trace", &trace), ("steady_samples", &steady)] {
        g.throughput(Throughput::Elements(events.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = Detector::default();
                for ev in events.iter() {
                    d.push(black_box(ev));
                }
                black_box(d.light())
            })
        });
    }
    g.bench_function("push_and_light_per_event", |b| {
        b.iter(|| {
            let mut d = Detector::default();
            let mut reds = 0u32;
            for ev in trace.iter() {
                d.push(black_box(ev));
                reds += u32::from(d.light() == migwatch_shared::Light::Red);
            }
            black_box(reds)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
