//! Measurement hooks into the running page (only with the `bench`
//! feature): a synthetic fleet fed through the real render path, and the
//! time each render took.

use super::app;
use super::target::Source;
use crate::replay::{Replay, Speed};
use crate::ui::ViewMode;
use leptos::prelude::*;
use migwatch_shared::{Event, Sample};
use std::cell::RefCell;

/// Render times kept (ms), the newest.
const KEEP: usize = 20_000;

thread_local! {
    static RENDERS: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Notes how long one render took, ms.
pub fn record(ms: f64) {
    RENDERS.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() >= KEEP {
            r.drain(..KEEP / 2);
        }
        r.push(ms);
    });
}

/// The render times since the last call, ms (and forgets them).
pub fn take() -> Vec<f64> {
    RENDERS.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// `minutes` of probes every 100 ms (10 Hz): jittery sub-ms RTTs, one
/// lost probe in 500, starting at `t0_us`.
fn ten_hz(minutes: u32, t0_us: i64, seed: u64) -> Vec<Event> {
    let n = u64::from(minutes) * 600;
    let mut x = seed | 1;
    (0..n)
        .map(|q| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Event::Sample(Sample {
                seq: q,
                sent_us: t0_us + q as i64 * 100_000,
                rtt_us: (x % 500 != 0).then_some(200 + (x % 300) as u32),
            })
        })
        .collect()
}

/// Adds `n` targets, each replaying 10 minutes of 10 Hz probes in real
/// time (as live targets would arrive), shows the grid and starts timing
/// renders afresh.
pub fn fleet(n: u32) {
    let Some(a) = app() else { return };
    let t0 = (js_sys::Date::now() * 1000.0) as i64;
    for i in 0..n {
        let name = format!("bench-{i:03}");
        let cap = a.capacity(100.0);
        let t = a.new_target(name.clone(), Source::File(name), cap, None);
        *t.replay.borrow_mut() = Some(Replay::new(
            ten_hz(10, t0, 0x9e37_79b9 + u64::from(i)),
            Speed::X1,
        ));
    }
    a.ui.mode.set(ViewMode::Grid);
    a.chart_dirty.set(true);
    a.schedule();
    take();
}
