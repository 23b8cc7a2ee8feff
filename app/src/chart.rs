//! Drawing one [`Frame`] on the chart canvas with plotters.
//!
//! The canvas is drawn at its backing size (CSS size × devicePixelRatio),
//! so every length here is given in CSS pixels and scaled by `dpr`.

use crate::format;
use crate::store::Frame;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

/// Chart colours, read from the page's CSS so dark mode follows the theme.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Palette {
    /// Background.
    pub bg: RGBColor,
    /// Labels and axes.
    pub fg: RGBColor,
    /// Grid lines.
    pub grid: RGBColor,
    /// The RTT line.
    pub line: RGBColor,
    /// Lost-probe ticks.
    pub lost: RGBColor,
    /// Late-reply marks.
    pub late: RGBColor,
}

impl Default for Palette {
    /// The light theme, used until the CSS has been read.
    fn default() -> Self {
        Palette {
            bg: RGBColor(0xff, 0xff, 0xff),
            fg: RGBColor(0x44, 0x4b, 0x55),
            grid: RGBColor(0xe4, 0xe7, 0xeb),
            line: RGBColor(0x25, 0x63, 0xeb),
            lost: RGBColor(0xdc, 0x26, 0x26),
            late: RGBColor(0xd9, 0x77, 0x06),
        }
    }
}

impl Palette {
    /// A palette from a CSS custom-property lookup (`--chart-bg` etc.);
    /// what is missing or unreadable keeps its default.
    pub fn from_css(get: impl Fn(&str) -> String) -> Palette {
        let d = Palette::default();
        let c = |name: &str, dflt: RGBColor| parse_color(&get(name)).unwrap_or(dflt);
        Palette {
            bg: c("--chart-bg", d.bg),
            fg: c("--chart-fg", d.fg),
            grid: c("--chart-grid", d.grid),
            line: c("--chart-line", d.line),
            lost: c("--chart-lost", d.lost),
            late: c("--chart-late", d.late),
        }
    }
}

/// Parses `#rgb`, `#rrggbb` or `rgb(r, g, b)` (what the CSS here uses).
pub fn parse_color(s: &str) -> Option<RGBColor> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix('#') {
        let v = |i: usize, n: usize| u8::from_str_radix(hex.get(i..i + n)?, 16).ok();
        return match hex.len() {
            6 => Some(RGBColor(v(0, 2)?, v(2, 2)?, v(4, 2)?)),
            3 => Some(RGBColor(v(0, 1)? * 17, v(1, 1)? * 17, v(2, 1)? * 17)),
            _ => None,
        };
    }
    let inner = s.strip_prefix("rgb(")?.strip_suffix(')')?;
    let mut it = inner.split(',').map(|p| p.trim().parse::<u8>().ok());
    let rgb = RGBColor(it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(rgb)
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `x` (x > 0), for a y axis top.
pub fn nice_ceiling(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&v| v >= x * (1.0 - 1e-12))
        .unwrap_or(10.0 * p)
}

/// Draws `f` on `canvas` at its current backing size.
pub fn draw(canvas: HtmlCanvasElement, f: &Frame, pal: &Palette, dpr: f64) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let px = |css: f64| (css * dpr).round().max(1.0);
    let root = CanvasBackend::with_canvas_object(canvas)
        .ok_or("canvas has no 2d context")?
        .into_drawing_area();
    root.fill(&pal.bg).map_err(err)?;

    let span_s = ((f.to_us - f.from_us) as f64 / 1e6).max(1.0);
    // Scale to the answered RTTs only: a late reply (hundreds of ms) would
    // flatten the normal line, so it gets a vertical mark instead.
    let y_max = nice_ceiling(f64::from(f.max_rtt_us) / 1000.0 * 1.15).max(0.1);
    let decimals = if y_max < 1.0 {
        2
    } else if y_max < 10.0 {
        1
    } else {
        0
    };
    let font = |size: f64| ("sans-serif", px(size)).into_font().color(&pal.fg);

    let mut chart = ChartBuilder::on(&root)
        .margin(px(10.0) as u32)
        .x_label_area_size(px(24.0) as u32)
        .y_label_area_size(px(52.0) as u32)
        .build_cartesian_2d(-span_s..0.0, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .bold_line_style(pal.grid.stroke_width(px(1.0) as u32))
        .light_line_style(TRANSPARENT)
        .axis_style(pal.fg.stroke_width(px(1.0) as u32))
        .label_style(font(12.0))
        .axis_desc_style(font(12.0))
        .x_labels(7)
        .y_labels(5)
        .x_label_formatter(&|x| format!("{x:.0} s"))
        .y_label_formatter(&|y| format!("{y:.decimals$}"))
        .y_desc("RTT (ms)")
        .draw()
        .map_err(err)?;

    let x = |t: i64| (t - f.to_us) as f64 / 1e6;
    let y = |us: u32| f64::from(us) / 1000.0;

    // Probes sent but not reported yet: a shaded band up to "now".
    if let Some(p) = f.pending_from_us {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x(p), 0.0), (0.0, y_max)],
                pal.fg.mix(0.08).filled(),
            )))
            .map_err(err)?;
    }

    let line = pal.line.stroke_width(px(1.5) as u32);
    chart
        .draw_series(f.lines.iter().filter(|l| l.len() > 1).map(|l| {
            PathElement::new(
                l.iter().map(|&(t, r)| (x(t), y(r))).collect::<Vec<_>>(),
                line,
            )
        }))
        .map_err(err)?;
    // A lone answered probe between two losses has no segment: a dot.
    chart
        .draw_series(
            f.lines
                .iter()
                .filter(|l| l.len() == 1)
                .map(|l| Circle::new((x(l[0].0), y(l[0].1)), px(1.5) as u32, pal.line.filled())),
        )
        .map_err(err)?;

    // Lost probes: red ticks along the bottom of the plot.
    let tick = pal.lost.stroke_width(px(2.0) as u32);
    let tick_top = y_max * 0.1;
    chart
        .draw_series(
            f.lost_ticks
                .iter()
                .map(|&t| PathElement::new(vec![(x(t), 0.0), (x(t), tick_top)], tick)),
        )
        .map_err(err)?;

    // Late replies: a full-height mark with its RTT.
    let late = pal.late.stroke_width(px(1.5) as u32);
    for &(t, rtt) in &f.late {
        let xt = x(t);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(xt, 0.0), (xt, y_max)],
                late,
            )))
            .map_err(err)?;
        let anchor = if xt > -span_s * 0.2 {
            Pos::new(HPos::Right, VPos::Top)
        } else {
            Pos::new(HPos::Left, VPos::Top)
        };
        let label = format!(" late {} ", format::duration(u64::from(rtt)));
        let style = ("sans-serif", px(12.0))
            .into_font()
            .color(&pal.late)
            .pos(anchor);
        chart
            .draw_series(std::iter::once(Text::new(label, (xt, y_max), style)))
            .map_err(err)?;
    }

    if f.points == 0 {
        let style = font(14.0).pos(Pos::new(HPos::Center, VPos::Center));
        chart
            .draw_series(std::iter::once(Text::new(
                "waiting for samples…",
                (-span_s / 2.0, y_max / 2.0),
                style,
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_parse() {
        assert_eq!(parse_color(" #1a2B3c"), Some(RGBColor(0x1a, 0x2b, 0x3c)));
        assert_eq!(parse_color("#fff"), Some(RGBColor(255, 255, 255)));
        assert_eq!(parse_color("rgb(1, 2, 3)"), Some(RGBColor(1, 2, 3)));
        assert_eq!(parse_color("rgb(1, 2, 3, 4)"), None);
        assert_eq!(parse_color("#12345"), None);
        assert_eq!(parse_color("red"), None);
        assert_eq!(parse_color(""), None);
    }

    #[test]
    fn palette_falls_back_per_color() {
        let p = Palette::from_css(|n| {
            if n == "--chart-bg" {
                "#000000".into()
            } else {
                String::new()
            }
        });
        assert_eq!(p.bg, RGBColor(0, 0, 0));
        assert_eq!(p.line, Palette::default().line);
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.3), 0.5);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(4.9), 5.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
    }
}
