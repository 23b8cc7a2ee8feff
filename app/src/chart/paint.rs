//! A plot area on a canvas, drawn through plotters' drawing area on its
//! canvas backend: maps data coordinates (seconds before the window's end,
//! and a y value) to device pixels and draws the few shapes the charts
//! need, in pixel coordinates (the axes' ticks come from `ticks`).

use super::Rgb;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

/// Text placement: horizontal alignment and vertical position.
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
    fn pos(self) -> Pos {
        let (h, v) = match self {
            Anchor::LeftTop => (HPos::Left, VPos::Top),
            Anchor::RightTop => (HPos::Right, VPos::Top),
            Anchor::CenterTop => (HPos::Center, VPos::Top),
            Anchor::RightMiddle => (HPos::Right, VPos::Center),
            Anchor::Center => (HPos::Center, VPos::Center),
            Anchor::LeftBottom => (HPos::Left, VPos::Bottom),
            Anchor::RightBottom => (HPos::Right, VPos::Bottom),
        };
        Pos::new(h, v)
    }
}

/// The plot area of one canvas and its data ranges.
pub struct Plot {
    root: DrawingArea<CanvasBackend, Shift>,
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

fn ip((x, y): (f64, f64)) -> (i32, i32) {
    (x.round() as i32, y.round() as i32)
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
        let root = CanvasBackend::with_canvas_object(canvas.clone())
            .ok_or("canvas has no 2d context")?
            .into_drawing_area();
        root.fill(&bg).map_err(|e| e.to_string())?;
        let (w, h) = (f64::from(canvas.width()), f64::from(canvas.height()));
        let px = |css: f64| (css * dpr).round();
        Ok(Plot {
            root,
            dpr,
            left: px(margins.0),
            top: px(margins.1),
            right: (w - px(margins.2)).max(px(margins.0) + 1.0),
            bottom: (h - px(margins.3)).max(px(margins.1) + 1.0),
            x,
            y,
        })
    }

    /// Hands the drawing to the canvas.
    pub fn finish(self) -> Result<(), String> {
        self.root.present().map_err(|e| e.to_string())
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

    fn style(&self, c: Rgb, a: f64, width_css: f64) -> ShapeStyle {
        c.mix(a).stroke_width(self.px(width_css) as u32)
    }

    /// Fills the device-px rectangle between two corners.
    pub fn fill_px(&self, a: (f64, f64), b: (f64, f64), c: Rgb, alpha: f64) {
        let _ = self
            .root
            .draw(&Rectangle::new([ip(a), ip(b)], c.mix(alpha).filled()));
    }

    /// Fills the rectangle between data x `x0..x1` over the whole plot
    /// height.
    pub fn band(&self, x0: f64, x1: f64, c: Rgb, a: f64) {
        self.fill_px((self.sx(x0), self.top), (self.sx(x1), self.bottom), c, a);
    }

    /// Strokes polylines through data points, in colour `c` at opacity
    /// `a`, `width_css` wide, dashed `(on, off)` when given.
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
        let style = self.style(c, a, width_css);
        for line in lines {
            let pts: Vec<(i32, i32)> = line
                .into_iter()
                .map(|(x, y)| ip((self.sx(x), self.sy(y))))
                .collect();
            let _ = match dash_css {
                None => self.root.draw(&PathElement::new(pts, style)),
                Some((on, off)) => self.root.draw(&DashedPathElement::new(
                    pts,
                    self.px(on) as i32,
                    self.px(off) as i32,
                    style,
                )),
            };
        }
    }

    /// Strokes device-px segments `((x0, y0), (x1, y1))`.
    pub fn segments_px(
        &self,
        segs: impl IntoIterator<Item = ((f64, f64), (f64, f64))>,
        c: Rgb,
        width_css: f64,
    ) {
        let style = self.style(c, 1.0, width_css);
        for (a, b) in segs {
            let _ = self.root.draw(&PathElement::new(vec![ip(a), ip(b)], style));
        }
    }

    /// Strokes vertical segments `(data x, device y0, device y1)`.
    pub fn verticals_px(
        &self,
        segs: impl IntoIterator<Item = (f64, f64, f64)>,
        c: Rgb,
        width_css: f64,
    ) {
        self.segments_px(
            segs.into_iter().map(|(x, y0, y1)| {
                let x = self.sx(x);
                ((x, y0), (x, y1))
            }),
            c,
            width_css,
        );
    }

    /// Filled dots of radius `r_css` at data points.
    pub fn dots(&self, pts: impl IntoIterator<Item = (f64, f64)>, c: Rgb, r_css: f64) {
        let r = self.px(r_css) as u32;
        for (x, y) in pts {
            let at = ip((self.sx(x), self.sy(y)));
            let _ = self.root.draw(&Circle::new(at, r, c.filled()));
        }
    }

    fn font(&self, c: Rgb, size_css: f64) -> TextStyle<'static> {
        // The family as plotters' enum: no match on its name per label.
        (FontFamily::SansSerif, self.px(size_css))
            .into_font()
            .color(&c)
    }

    /// Writes `s` at device px `(x, y)` in `size_css` px sans-serif.
    pub fn text(&self, s: &str, at: (f64, f64), anchor: Anchor, c: Rgb, size_css: f64) {
        let style = self.font(c, size_css).pos(anchor.pos());
        let _ = self.root.draw(&Text::new(s, ip(at), style));
    }

    /// Writes `s` turned a quarter left (bottom to top), centred on `at`.
    pub fn text_up(&self, s: &str, at: (f64, f64), c: Rgb, size_css: f64) {
        let style = self
            .font(c, size_css)
            .transform(FontTransform::Rotate270)
            .pos(Anchor::Center.pos());
        let _ = self.root.draw(&Text::new(s, ip(at), style));
    }

    /// About the width of `s` in device px at `size_css`: 0.6 em a
    /// character, a little over sans-serif's digits and lower case.
    /// (plotters' own estimate on the web adds a span to the page and
    /// measures it: a layout pass per label, every frame.)
    pub fn text_width(&self, s: &str, size_css: f64) -> f64 {
        s.chars().count() as f64 * 0.6 * self.px(size_css)
    }
}
