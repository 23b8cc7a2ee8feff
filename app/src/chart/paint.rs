//! A plot area on a 2-D canvas: maps data coordinates (seconds before the
//! window's end, and a y value) to device pixels and draws the few shapes
//! the charts need. Straight Canvas 2D calls: a charting library cost the
//! page some 20 KB of gzip for the same pictures.

use super::Rgb;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

/// Text placement: horizontal alignment and vertical baseline, as the
/// canvas names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Left edge at x, top at y.
    LeftTop,
    /// Right edge at x, top at y.
    RightTop,
    /// Centred on x, top at y.
    CenterTop,
    /// Right edge at x, middle at y.
    RightMiddle,
    /// Centred on both.
    Center,
    /// Left edge at x, bottom at y.
    LeftBottom,
    /// Right edge at x, bottom at y.
    RightBottom,
}

impl Anchor {
    fn split(self) -> (&'static str, &'static str) {
        match self {
            Anchor::LeftTop => ("left", "top"),
            Anchor::RightTop => ("right", "top"),
            Anchor::CenterTop => ("center", "top"),
            Anchor::RightMiddle => ("right", "middle"),
            Anchor::Center => ("center", "middle"),
            Anchor::LeftBottom => ("left", "bottom"),
            Anchor::RightBottom => ("right", "bottom"),
        }
    }
}

/// The plot area of one canvas and its data ranges.
pub struct Plot {
    ctx: CanvasRenderingContext2d,
    /// devicePixelRatio.
    pub dpr: f64,
    /// Plot area edges, device px.
    pub left: f64,
    /// Top edge, device px.
    pub top: f64,
    /// Right edge, device px.
    pub right: f64,
    /// Bottom edge, device px.
    pub bottom: f64,
    x: (f64, f64),
    y: (f64, f64),
}

/// The CSS colour of `c` at opacity `a`.
pub fn rgba(c: Rgb, a: f64) -> String {
    if a >= 1.0 {
        format!("rgb({},{},{})", c.0, c.1, c.2)
    } else {
        format!("rgba({},{},{},{a})", c.0, c.1, c.2)
    }
}

impl Plot {
    /// Clears `canvas` to `bg` and opens a plot area inset by `margins`
    /// (left, top, right, bottom; CSS px) over `x` × `y`.
    pub fn open(
        canvas: &HtmlCanvasElement,
        bg: Rgb,
        dpr: f64,
        margins: (f64, f64, f64, f64),
        x: (f64, f64),
        y: (f64, f64),
    ) -> Result<Plot, String> {
        let ctx: CanvasRenderingContext2d = canvas
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into().ok())
            .ok_or("canvas has no 2d context")?;
        let (w, h) = (f64::from(canvas.width()), f64::from(canvas.height()));
        ctx.set_fill_style_str(&rgba(bg, 1.0));
        ctx.fill_rect(0.0, 0.0, w, h);
        let px = |css: f64| (css * dpr).round();
        let p = Plot {
            ctx,
            dpr,
            left: px(margins.0),
            top: px(margins.1),
            right: (w - px(margins.2)).max(px(margins.0) + 1.0),
            bottom: (h - px(margins.3)).max(px(margins.1) + 1.0),
            x,
            y,
        };
        Ok(p)
    }

    /// A length in CSS px as device px, at least 1.
    pub fn px(&self, css: f64) -> f64 {
        (css * self.dpr).round().max(1.0)
    }

    /// Device x of data x.
    pub fn sx(&self, x: f64) -> f64 {
        let (a, b) = self.x;
        self.left + (x - a) / (b - a) * (self.right - self.left)
    }

    /// Device y of data y.
    pub fn sy(&self, y: f64) -> f64 {
        let (a, b) = self.y;
        self.bottom - (y - a) / (b - a) * (self.bottom - self.top)
    }

    /// Plot area height, device px.
    pub fn height(&self) -> f64 {
        self.bottom - self.top
    }

    /// Limits what follows to the plot area, until [`Plot::unclip`].
    pub fn clip(&self) {
        self.ctx.save();
        self.ctx.begin_path();
        self.ctx.rect(
            self.left,
            self.top,
            self.right - self.left,
            self.bottom - self.top,
        );
        self.ctx.clip();
    }

    /// Ends [`Plot::clip`].
    pub fn unclip(&self) {
        self.ctx.restore();
    }

    /// Fills the device-px rectangle between two corners.
    pub fn fill_px(&self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb, a: f64) {
        self.ctx.set_fill_style_str(&rgba(c, a));
        self.ctx
            .fill_rect(x0.min(x1), y0.min(y1), (x1 - x0).abs(), (y1 - y0).abs());
    }

    /// Fills the rectangle between data x `x0..x1` over the whole plot
    /// height.
    pub fn band(&self, x0: f64, x1: f64, c: Rgb, a: f64) {
        self.fill_px((self.sx(x0), self.top), (self.sx(x1), self.bottom), c, a);
    }

    fn stroke_with(&self, c: Rgb, a: f64, width_css: f64, dash_css: Option<(f64, f64)>) {
        let ctx = &self.ctx;
        ctx.set_stroke_style_str(&rgba(c, a));
        ctx.set_line_width(self.px(width_css));
        let dash = js_sys::Array::new();
        if let Some((on, off)) = dash_css {
            dash.push(&JsValue::from_f64(self.px(on)));
            dash.push(&JsValue::from_f64(self.px(off)));
        }
        let _ = ctx.set_line_dash(&dash);
        ctx.stroke();
    }

    /// Strokes polylines through data points in one path, in colour `c`
    /// at opacity `a`, `width_css` wide, dashed `(on, off)` when given.
    pub fn paths<L, P>(
        &self,
        lines: L,
        (c, a): (Rgb, f64),
        width_css: f64,
        dash_css: Option<(f64, f64)>,
    ) where
        L: IntoIterator<Item = P>,
        P: IntoIterator<Item = (f64, f64)>,
    {
        let ctx = &self.ctx;
        ctx.begin_path();
        for line in lines {
            for (i, (x, y)) in line.into_iter().enumerate() {
                let (x, y) = (self.sx(x), self.sy(y));
                if i == 0 {
                    ctx.move_to(x, y);
                } else {
                    ctx.line_to(x, y);
                }
            }
        }
        self.stroke_with(c, a, width_css, dash_css);
    }

    /// Strokes device-px segments `((x0, y0), (x1, y1))` in one path.
    pub fn segments_px(
        &self,
        segs: impl IntoIterator<Item = ((f64, f64), (f64, f64))>,
        c: Rgb,
        width_css: f64,
    ) {
        let ctx = &self.ctx;
        ctx.begin_path();
        for ((x0, y0), (x1, y1)) in segs {
            ctx.move_to(x0, y0);
            ctx.line_to(x1, y1);
        }
        self.stroke_with(c, 1.0, width_css, None);
    }

    /// Strokes many vertical segments `(data x, device y0, device y1)` at
    /// once.
    pub fn verticals_px(
        &self,
        segs: impl IntoIterator<Item = (f64, f64, f64)>,
        c: Rgb,
        width_css: f64,
    ) {
        let ctx = &self.ctx;
        ctx.begin_path();
        for (x, y0, y1) in segs {
            let x = self.sx(x);
            ctx.move_to(x, y0);
            ctx.line_to(x, y1);
        }
        self.stroke_with(c, 1.0, width_css, None);
    }

    /// Filled dots of radius `r_css` at data points.
    pub fn dots(&self, pts: impl IntoIterator<Item = (f64, f64)>, c: Rgb, r_css: f64) {
        let ctx = &self.ctx;
        let r = self.px(r_css);
        ctx.begin_path();
        for (x, y) in pts {
            let (x, y) = (self.sx(x), self.sy(y));
            ctx.move_to(x + r, y);
            let _ = ctx.arc(x, y, r, 0.0, std::f64::consts::TAU);
        }
        ctx.set_fill_style_str(&rgba(c, 1.0));
        ctx.fill();
    }

    /// Writes `s` at device px `(x, y)` in `size_css` px sans-serif.
    pub fn text(&self, s: &str, (x, y): (f64, f64), anchor: Anchor, c: Rgb, size_css: f64) {
        let ctx = &self.ctx;
        let (align, base) = anchor.split();
        ctx.set_font(&format!("{}px sans-serif", self.px(size_css)));
        ctx.set_text_align(align);
        ctx.set_text_baseline(base);
        ctx.set_fill_style_str(&rgba(c, 1.0));
        let _ = ctx.fill_text(s, x, y);
    }

    /// Writes `s` turned a quarter left (bottom to top), centred on `(x, y)`.
    pub fn text_up(&self, s: &str, (x, y): (f64, f64), c: Rgb, size_css: f64) {
        let ctx = &self.ctx;
        ctx.save();
        let _ = ctx.translate(x, y);
        let _ = ctx.rotate(-std::f64::consts::FRAC_PI_2);
        self.text(s, (0.0, 0.0), Anchor::Center, c, size_css);
        ctx.restore();
    }

    /// Width of `s` in device px at `size_css`.
    pub fn text_width(&self, s: &str, size_css: f64) -> f64 {
        self.ctx
            .set_font(&format!("{}px sans-serif", self.px(size_css)));
        self.ctx.measure_text(s).map_or(0.0, |m| m.width())
    }
}
