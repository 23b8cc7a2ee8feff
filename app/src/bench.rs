//! Measurement hooks for the benchmarks in `docs/BENCHMARKS.md`, callable
//! from the browser console or WebDriver:
//!
//! * `migwatchBench.chart(points, frames)`: fills a target with `points`
//!   synthetic samples 10 ms apart and times `frames` renders of the 1 h
//!   window (decimation + drawing) on the page's chart canvas (or a
//!   1200×340 CSS px one). Returns JSON with mean, median, p95 and max ms.
//! * `migwatchBench.detector(samples)`: times `Detector::push` over that
//!   many synthetic samples. Returns JSON with samples per second.
//! * `migwatchBench.fleet(n)`: adds `n` targets fed at 10 Hz in real time
//!   through the page's own render path, in the grid.
//! * `migwatchBench.frames()`: the render times since the last call (or
//!   since `fleet`), as JSON stats (ms), with the count and the wasm
//!   memory size in bytes.
//!
//! Built only with the `bench` feature (`trunk build --release --features
//! bench --dist dist-bench`), never into the shipped page.

use crate::chart::{self, ChartOpts, Palette};
use crate::live::{fit_canvas, now_ms, tz_offset};
use crate::model::Model;
use crate::synth::synthetic_events;
use crate::viewport::{Span, Viewport};
use migwatch_shared::Detector;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Installs `window.migwatchBench`.
pub fn install() {
    let Some(w) = web_sys::window() else { return };
    let obj = js_sys::Object::new();
    let chart = Closure::<dyn Fn(u32, u32) -> String>::new(chart_bench);
    let det = Closure::<dyn Fn(u32) -> String>::new(detector_bench);
    let fleet = Closure::<dyn Fn(u32)>::new(crate::live::bench_hooks::fleet);
    let frames = Closure::<dyn Fn() -> String>::new(frames_bench);
    let ok = js_sys::Reflect::set(&obj, &"chart".into(), chart.as_ref()).is_ok()
        && js_sys::Reflect::set(&obj, &"detector".into(), det.as_ref()).is_ok()
        && js_sys::Reflect::set(&obj, &"fleet".into(), fleet.as_ref()).is_ok()
        && js_sys::Reflect::set(&obj, &"frames".into(), frames.as_ref()).is_ok()
        && js_sys::Reflect::set(&w, &"migwatchBench".into(), &obj).is_ok();
    if ok {
        chart.forget();
        det.forget();
        fleet.forget();
        frames.forget();
    }
}

/// `{"mean":…,"p50":…,"p95":…,"max":…}` of `v` (ms).
fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let n = v.len().max(1);
    let at = |p: f64| {
        v.get(((n - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    format!(
        "{{\"mean\":{:.3},\"p50\":{:.3},\"p95\":{:.3},\"max\":{:.3}}}",
        v.iter().sum::<f64>() / n as f64,
        at(0.5),
        at(0.95),
        at(1.0)
    )
}

fn chart_bench(points: u32, frames: u32) -> String {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return "{}".into();
    };
    let t0 = 1_763_000_000_000_000;
    let build = now_ms();
    let mut m = Model::new((points as usize).max(1_000));
    for ev in synthetic_events(u64::from(points), t0) {
        m.apply(&ev);
    }
    let build_ms = now_ms() - build;
    let page_canvas = doc
        .get_element_by_id("chart")
        .and_then(|e| e.dyn_into::<web_sys::HtmlCanvasElement>().ok())
        .filter(|c| c.client_width() > 0);
    let (canvas, temp) = match page_canvas {
        Some(c) => (c, false),
        None => {
            let Some(c) = doc
                .create_element("canvas")
                .ok()
                .and_then(|e| e.dyn_into::<web_sys::HtmlCanvasElement>().ok())
            else {
                return "{}".into();
            };
            let _ = c.set_attribute("style", "width:1200px;height:340px;display:block");
            if let Some(b) = doc.body() {
                let _ = b.append_child(&c);
            }
            (c, true)
        }
    };
    let palette = Palette::default();
    let vp = Viewport::new(Span::H1);
    let (mut dec, mut total) = (Vec::new(), Vec::new());
    let (mut columns, mut dpr, mut vertices) = (0, 1.0, 0);
    for _ in 0..frames.max(1) {
        let a = now_ms();
        (columns, dpr) = fit_canvas(&canvas);
        let f = m.frame(&vp, columns);
        let b = now_ms();
        let opts = ChartOpts {
            y: vp.y,
            compact: false,
            dpr,
            tz: &tz_offset,
        };
        let _ = chart::draw(canvas.clone(), &f, &palette, &opts);
        let c = now_ms();
        vertices = f.vertices();
        dec.push(b - a);
        total.push(c - a);
    }
    if temp {
        canvas.remove();
    }
    format!(
        "{{\"points\":{points},\"held\":{},\"frames\":{frames},\"columns\":{columns},\"dpr\":{dpr},\"vertices\":{vertices},\"build_ms\":{build_ms:.1},\"decimate_ms\":{},\"frame_ms\":{}}}",
        m.store.len(),
        stats(dec),
        stats(total)
    )
}

fn frames_bench() -> String {
    let v = crate::live::bench_hooks::take();
    let mem = wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .ok()
        .and_then(|m| m.buffer().dyn_into::<js_sys::ArrayBuffer>().ok())
        .map_or(0.0, |b| b.byte_length() as f64);
    format!(
        "{{\"renders\":{},\"wasm_bytes\":{mem},\"render_ms\":{}}}",
        v.len(),
        stats(v)
    )
}

fn detector_bench(samples: u32) -> String {
    let evs = synthetic_events(u64::from(samples), 1_763_000_000_000_000);
    let mut det = Detector::default();
    let a = now_ms();
    for ev in &evs {
        det.push(ev);
    }
    let ms = (now_ms() - a).max(1e-3);
    format!(
        "{{\"samples\":{samples},\"events\":{},\"ms\":{ms:.1},\"samples_per_s\":{:.0},\"migrations\":{},\"light\":\"{}\"}}",
        evs.len(),
        f64::from(samples) / ms * 1000.0,
        det.migrations().len(),
        det.light().name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_json() {
        let v: serde_json::Value = serde_json::from_str(&stats(vec![3.0, 1.0, 2.0])).unwrap();
        assert_eq!(v["p50"], 2.0);
        assert_eq!(v["max"], 3.0);
        assert_eq!(v["mean"], 2.0);
    }
}
