//! Drawing and small browser helpers: the detail chart and clock track,
//! the tiles' sparklines, canvas sizing, downloads, the beep.

use super::{App, Target};
use crate::chart::{self, ChartOpts, Palette};
use crate::viewport::{Span, Viewport, YAxis};
use leptos::prelude::*;
use migwatch_shared::wire::AnnounceKind;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

pub(super) fn read_palette() -> Palette {
    let style = web_sys::window().and_then(|w| {
        let root = w.document()?.document_element()?;
        w.get_computed_style(&root).ok().flatten()
    });
    match style {
        Some(st) => Palette::from_css(|name| st.get_property_value(name).unwrap_or_default()),
        None => Palette::default(),
    }
}

/// Minutes to add to UTC for local time at unix µs `t`.
pub fn tz_offset(t_us: i64) -> i32 {
    let d = js_sys::Date::new(&JsValue::from_f64(t_us as f64 / 1000.0));
    -(d.get_timezone_offset() as i32)
}

/// `performance.now()` in ms.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

impl App {
    pub(super) fn draw_main(&self, t: &Target) {
        let Some(canvas) = canvas_by_id("chart") else {
            return;
        };
        if self.draw_overlay(&canvas) {
            return;
        }
        let _ = canvas.remove_attribute("data-overlay");
        let (columns, dpr) = fit_canvas(&canvas);
        let vp = self.vp.get();
        let frame = t.model.borrow().frame(&vp, columns);
        let opts = ChartOpts {
            y: vp.y,
            compact: false,
            dpr,
            tz: &tz_offset,
        };
        let drawn = match chart::draw(canvas.clone(), &frame, &self.palette.get(), &opts) {
            Ok(()) => frame.points,
            Err(e) => {
                if !self.logged_draw_error.replace(true) {
                    leptos::logging::error!("chart: {e}");
                }
                0
            }
        };
        let (samples, lost) = t
            .tui
            .tile
            .with_untracked(|v| (v.summary.samples, v.summary.lost));
        let set = |k: &str, v: String| {
            let _ = canvas.set_attribute(k, &v);
        };
        set("data-key", t.key.to_string());
        set("data-samples", samples.to_string());
        set("data-lost", lost.to_string());
        set("data-drawn", drawn.to_string());
        set("data-vertices", frame.vertices().to_string());
        set("data-from", frame.from_us.to_string());
        set("data-to", frame.to_us.to_string());
        set("data-bands", frame.bands.len().to_string());
        let rarp = frame
            .announces
            .iter()
            .filter(|m| m.kind == AnnounceKind::Rarp)
            .count();
        set("data-announces", frame.announces.len().to_string());
        set("data-rarp", rarp.to_string());
        set("data-garp", (frame.announces.len() - rarp).to_string());
        self.draw_clock(t, &frame);
    }

    /// The targets of `overlay=` (those found, by name, in URL order) on
    /// one chart over the current window; false when fewer than two are
    /// here (the shown target's own chart is drawn then).
    fn draw_overlay(&self, canvas: &HtmlCanvasElement) -> bool {
        let names = self.ui.overlay.get_untracked();
        if names.len() < 2 {
            return false;
        }
        let targets = self.targets.borrow();
        let name_of = |t: &Target| t.overlay_name();
        let picked: Vec<&Rc<Target>> = names
            .iter()
            .filter_map(|n| targets.iter().find(|t| name_of(t) == *n))
            .collect();
        if picked.len() < 2 {
            return false;
        }
        let (columns, dpr) = fit_canvas(canvas);
        let vp = self.vp.get();
        let first = picked[0].model.borrow().frame(&vp, columns);
        // Every target over the first one's window.
        let same = Viewport {
            end_us: Some(first.to_us),
            ..vp
        };
        let mut frames = vec![first];
        frames.extend(
            picked[1..]
                .iter()
                .map(|t| t.model.borrow().frame(&same, columns)),
        );
        let labels: Vec<String> = picked.iter().map(|t| name_of(t)).collect();
        let series: Vec<(&str, &crate::store::Frame)> =
            labels.iter().map(String::as_str).zip(&frames).collect();
        let opts = ChartOpts {
            y: vp.y,
            compact: false,
            dpr,
            tz: &tz_offset,
        };
        if let Err(e) = chart::draw_overlay(canvas.clone(), &series, &self.palette.get(), &opts) {
            if !self.logged_draw_error.replace(true) {
                leptos::logging::error!("overlay chart: {e}");
            }
        }
        let _ = canvas.set_attribute("data-overlay", &labels.join(","));
        true
    }

    /// The clock track under the main chart, over the same window.
    fn draw_clock(&self, t: &Target, frame: &crate::store::Frame) {
        let Some(canvas) = canvas_by_id("clock-chart") else {
            return;
        };
        let (columns, dpr) = fit_canvas(&canvas);
        let m = t.model.borrow();
        let cf = m.clock_frame(frame, columns);
        let opts = ChartOpts {
            y: YAxis::Auto,
            compact: false,
            dpr,
            tz: &tz_offset,
        };
        let drawn = match chart::draw_clock(canvas.clone(), &cf, &self.palette.get(), &opts) {
            Ok(()) => cf.readings,
            Err(e) => {
                if !self.logged_draw_error.replace(true) {
                    leptos::logging::error!("clock chart: {e}");
                }
                0
            }
        };
        let set = |k: &str, v: String| {
            let _ = canvas.set_attribute(k, &v);
        };
        let ms = |v: f64| {
            if cf.readings > 0 && v.is_finite() {
                format!("{v:.1}")
            } else {
                String::new()
            }
        };
        set("data-key", t.key.to_string());
        set("data-clock-readings", m.signals.totals().clock.to_string());
        set("data-drawn", drawn.to_string());
        set("data-low-ms", ms(cf.low_ms));
        set("data-high-ms", ms(cf.high_ms));
        set(
            "data-clock-step-ms",
            cf.step_us
                .map(|s| format!("{:.1}", s as f64 / 1000.0))
                .unwrap_or_default(),
        );
        set("data-announces", cf.announces.len().to_string());
        set("data-from", cf.from_us.to_string());
        set("data-to", cf.to_us.to_string());
    }

    pub(super) fn draw_spark(&self, t: &Target, dirty: bool) {
        let Some(canvas) = canvas_by_id(&format!("spark-{}", t.key)) else {
            return;
        };
        if canvas.client_width() == 0 {
            return;
        }
        let (columns, dpr) = fit_canvas(&canvas);
        if !dirty && canvas.get_attribute("data-drawn").is_some() {
            return;
        }
        let frame = t.model.borrow().frame(&Viewport::new(Span::S30), columns);
        let opts = ChartOpts {
            y: YAxis::Auto,
            compact: true,
            dpr,
            tz: &tz_offset,
        };
        if chart::draw(canvas.clone(), &frame, &self.palette.get(), &opts).is_ok() {
            let _ = canvas.set_attribute("data-drawn", &frame.points.to_string());
        }
    }
}

/// A short two-tone beep.
pub(super) fn beep(ctx: &web_sys::AudioContext) {
    let run = || -> Result<(), JsValue> {
        let _ = ctx.resume();
        let osc = ctx.create_oscillator()?;
        let gain = ctx.create_gain()?;
        let t = ctx.current_time();
        osc.frequency().set_value_at_time(880.0, t)?;
        osc.frequency().set_value_at_time(660.0, t + 0.15)?;
        gain.gain().set_value_at_time(0.15, t)?;
        gain.gain().linear_ramp_to_value_at_time(0.0, t + 0.35)?;
        osc.connect_with_audio_node(&gain)?;
        gain.connect_with_audio_node(&ctx.destination())?;
        osc.start()?;
        osc.stop_with_when(t + 0.4)?;
        Ok(())
    };
    let _ = run();
}

pub(super) fn document() -> Option<web_sys::Document> {
    web_sys::window()?.document()
}

fn canvas_by_id(id: &str) -> Option<HtmlCanvasElement> {
    document()?
        .get_element_by_id(id)?
        .dyn_into::<HtmlCanvasElement>()
        .ok()
}

/// Sets the canvas backing store to its CSS size × devicePixelRatio (only
/// when that changed: resizing clears it). Returns the backing width and
/// the ratio.
pub fn fit_canvas(canvas: &HtmlCanvasElement) -> (u32, f64) {
    let dpr = web_sys::window()
        .map(|w| w.device_pixel_ratio())
        .filter(|d| d.is_finite() && *d > 0.0)
        .unwrap_or(1.0);
    let w = (f64::from(canvas.client_width()) * dpr).round().max(1.0) as u32;
    let h = (f64::from(canvas.client_height()) * dpr).round().max(1.0) as u32;
    if canvas.width() != w {
        canvas.set_width(w);
        let _ = canvas.remove_attribute("data-drawn");
    }
    if canvas.height() != h {
        canvas.set_height(h);
        let _ = canvas.remove_attribute("data-drawn");
    }
    (w, dpr)
}

/// Saves `text` as a download named `name`.
pub(super) fn download(name: &str, text: &str, mime: &str) -> Result<(), JsValue> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let a = document()
        .ok_or("no document")?
        .create_element("a")?
        .dyn_into::<web_sys::HtmlAnchorElement>()?;
    a.set_href(&url);
    a.set_download(name);
    a.click();
    set_timeout(
        move || {
            let _ = web_sys::Url::revoke_object_url(&url);
        },
        Duration::from_secs(10),
    );
    Ok(())
}
