//! The chart in a real browser (headless Chromium through
//! wasm-bindgen-test-runner): it draws at device pixels, breaks the line at
//! lost probes, marks them in red and shades the detected migration. Also
//! times the detector in wasm.
//!
//! Run: `CHROMEDRIVER=/usr/bin/chromedriver
//! CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
//! cargo test -p migwatch-app --target wasm32-unknown-unknown --release
//! --test canvas` (from the workspace root; `app/webdriver.json` holds the
//! browser flags, and scale factor 2 tests HiDPI).
#![cfg(target_arch = "wasm32")]

use migwatch_app::chart::{self, ChartOpts, Palette, Rgb};
use migwatch_app::live::fit_canvas;
use migwatch_app::model::Model;
use migwatch_app::synth::synthetic_events;
use migwatch_app::viewport::{Viewport, YAxis};
use migwatch_shared::{Detector, Light};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

wasm_bindgen_test_configure!(run_in_browser);

fn canvas(w: u32, h: u32) -> HtmlCanvasElement {
    let doc = web_sys::window().unwrap().document().unwrap();
    let c: HtmlCanvasElement = doc.create_element("canvas").unwrap().dyn_into().unwrap();
    c.set_attribute("style", &format!("display:block;width:{w}px;height:{h}px"))
        .unwrap();
    doc.body().unwrap().append_child(&c).unwrap();
    c
}

/// Pixels of `canvas` whose colour is within 40 of `rgb` in each channel.
fn count_color(c: &HtmlCanvasElement, rgb: (u8, u8, u8)) -> usize {
    let ctx: CanvasRenderingContext2d = c.get_context("2d").unwrap().unwrap().dyn_into().unwrap();
    let data = ctx
        .get_image_data(0.0, 0.0, f64::from(c.width()), f64::from(c.height()))
        .unwrap()
        .data();
    let near = |a: u8, b: u8| a.abs_diff(b) <= 40;
    data.chunks_exact(4)
        .filter(|p| near(p[0], rgb.0) && near(p[1], rgb.1) && near(p[2], rgb.2))
        .count()
}

#[wasm_bindgen_test]
fn chart_draws_line_lost_ticks_and_migration_band_at_device_pixels() {
    let mut m = Model::new(100_000);
    for ev in synthetic_events(60_000, 1_763_000_000_000_000) {
        m.apply(&ev);
    }
    m.finish();
    let mig = *m
        .migrations()
        .first()
        .expect("the synthetic outage is detected");
    assert_eq!(mig.level, Light::Red);
    let c = canvas(600, 200);
    let (columns, dpr) = fit_canvas(&c);
    assert!(dpr >= 1.0);
    assert_eq!(
        c.width(),
        (600.0 * dpr).round() as u32,
        "backing store = CSS × DPR"
    );
    assert_eq!(c.height(), (200.0 * dpr).round() as u32);
    let mut vp = Viewport::default();
    vp.jump_to(mig.start_us, mig.end_us);
    let f = m.frame(&vp, columns);
    assert!(f.lines.len() >= 2, "the line is broken at the outage");
    assert_eq!(f.lost, 40);
    assert_eq!(f.bands.len(), 1);
    let pal = Palette::default();
    let tz = |_: i64| 0;
    let opts = ChartOpts {
        y: YAxis::Auto,
        compact: false,
        dpr,
        tz: &tz,
    };
    chart::draw(c.clone(), &f, &pal, &opts).expect("draws");
    let line = count_color(&c, (pal.line.0, pal.line.1, pal.line.2));
    let lost = count_color(&c, (pal.lost.0, pal.lost.1, pal.lost.2));
    assert!(line > 200, "{line} line pixels");
    assert!(lost > 20, "{lost} lost-tick pixels");
    // An empty frame draws the background and a message, no line.
    let empty = Model::default().frame(&Viewport::default(), columns);
    chart::draw(c.clone(), &empty, &pal, &opts).expect("draws empty");
    assert!(count_color(&c, (pal.line.0, pal.line.1, pal.line.2)) < 10);
    c.remove();
}

/// A real lab migration (QEMU, TCG) with clock readings and announces.
const LAB: &str = include_str!("../../tests/fixtures/lab-dirty-clock-announce.jsonl");

#[wasm_bindgen_test]
fn announce_markers_and_the_clock_track_draw_at_device_pixels() {
    let mut m = Model::default();
    for ev in migwatch_app::replay::parse("lab.jsonl", LAB).expect("reads") {
        m.apply(&ev);
    }
    m.finish();
    let pal = Palette::default();
    let px = |c: Rgb| (c.0, c.1, c.2);
    let tz = |_: i64| 0;
    let c = canvas(600, 200);
    let (columns, dpr) = fit_canvas(&c);
    let opts = ChartOpts {
        y: YAxis::Auto,
        compact: false,
        dpr,
        tz: &tz,
    };
    let f = m.frame(&Viewport::default(), columns);
    assert_eq!(f.announces.len(), 10);
    chart::draw(c.clone(), &f, &pal, &opts).expect("draws");
    let marks = count_color(&c, px(pal.announce));
    assert!(marks > 100, "{marks} announce pixels");
    // The clock track: a line in its colour, on a canvas of its own.
    let k = canvas(600, 96);
    let (columns, dpr) = fit_canvas(&k);
    assert_eq!(k.height(), (96.0 * dpr).round() as u32);
    let opts = ChartOpts { dpr, ..opts };
    let cf = m.clock_frame(&f, columns);
    assert_eq!(cf.readings, 20);
    chart::draw_clock(k.clone(), &cf, &pal, &opts).expect("draws the track");
    let track = count_color(&k, px(pal.clock));
    assert!(track > 100, "{track} clock pixels");
    assert!(count_color(&k, px(pal.announce)) > 20);
    // No readings: a message, no track.
    let none = Model::default().clock_frame(&f, columns);
    chart::draw_clock(k.clone(), &none, &pal, &opts).expect("draws empty");
    assert!(count_color(&k, px(pal.clock)) < 10);
    c.remove();
    k.remove();
}

#[wasm_bindgen_test]
fn detector_throughput_in_wasm() {
    let evs = synthetic_events(1_000_000, 1_763_000_000_000_000);
    let perf = web_sys::window().unwrap().performance().unwrap();
    let mut d = Detector::default();
    let t = perf.now();
    for ev in &evs {
        d.push(ev);
    }
    let ms = (perf.now() - t).max(1e-3);
    let rate = 1_000_000.0 / ms * 1000.0;
    web_sys::console::log_1(
        &format!("detector in wasm: {rate:.0} samples/s ({ms:.1} ms for 1 M)").into(),
    );
    assert_eq!(d.migrations().len(), 17);
}
