//! Drawing one [`Frame`] on the chart canvas with plotters.
//!
//! The canvas is drawn at its backing size (CSS size × devicePixelRatio),
//! so every length here is given in CSS pixels and scaled by `dpr`.

use crate::format::{self, TzOffset};
use crate::signals::{announce_groups, ClockFrame, Marker};
use crate::store::Frame;
use crate::viewport::YAxis;
use migwatch_shared::wire::AnnounceKind;
use migwatch_shared::Light;
use plotters::element::DashedPathElement;
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
    /// Bands of yellow (possible) migrations; red ones use `lost`.
    pub band_yellow: RGBColor,
    /// The clock track.
    pub clock: RGBColor,
    /// Announce markers (RARP solid, gratuitous ARP dashed).
    pub announce: RGBColor,
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
            band_yellow: RGBColor(0xea, 0xb3, 0x08),
            clock: RGBColor(0x0d, 0x94, 0x88),
            announce: RGBColor(0x93, 0x33, 0xea),
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
            band_yellow: c("--chart-band-yellow", d.band_yellow),
            clock: c("--chart-clock", d.clock),
            announce: c("--chart-announce", d.announce),
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

/// How to draw a frame.
pub struct ChartOpts<'a> {
    /// The y axis.
    pub y: YAxis,
    /// A small tile chart: no axes, labels or legend text.
    pub compact: bool,
    /// devicePixelRatio: lengths are given in CSS pixels and scaled by it.
    pub dpr: f64,
    /// Local time offset for the clock labels.
    pub tz: TzOffset<'a>,
}

/// The y scale of one frame: what range is shown and how an RTT maps to
/// it. Log scales map to log10(ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YScale {
    /// Bottom of the axis (ms, or log10 ms).
    pub lo: f64,
    /// Top of the axis (ms, or log10 ms).
    pub hi: f64,
    /// Logarithmic.
    pub log: bool,
}

impl YScale {
    /// The scale for a frame whose answered RTTs span `min_us..=max_us`.
    pub fn new(y: YAxis, min_us: Option<u32>, max_us: u32) -> YScale {
        let max_ms = f64::from(max_us) / 1000.0;
        match y {
            YAxis::Auto => YScale {
                lo: 0.0,
                hi: nice_ceiling(max_ms * 1.15).max(0.1),
                log: false,
            },
            YAxis::Fixed(ms) => YScale {
                lo: 0.0,
                hi: if ms.is_finite() && ms > 0.0 { ms } else { 1.0 },
                log: false,
            },
            YAxis::Log => {
                let min_ms = min_us.map_or(0.01, |m| f64::from(m.max(1)) / 1000.0);
                let lo = min_ms.log10().floor().max(-3.0);
                let hi = max_ms.max(min_ms).log10().ceil().max(lo + 1.0);
                YScale { lo, hi, log: true }
            }
        }
    }

    /// Where an RTT (µs) goes, clamped to the axis.
    pub fn map(&self, us: u32) -> f64 {
        let ms = f64::from(us) / 1000.0;
        let v = if self.log { ms.max(1e-3).log10() } else { ms };
        v.clamp(self.lo, self.hi)
    }

    /// The label of an axis value, in ms.
    pub fn label(&self, v: f64) -> String {
        let ms = if self.log { 10f64.powf(v) } else { v };
        let span = if self.log { ms } else { self.hi - self.lo };
        let decimals = if span < 1.0 {
            2
        } else if span < 10.0 {
            1
        } else {
            0
        };
        format!("{ms:.decimals$}")
    }
}

/// Left edge of the main chart's plot area, CSS px (margin + y labels).
pub const PLOT_LEFT_CSS: f64 = 62.0;
/// Right margin of the main chart's plot area, CSS px.
pub const PLOT_RIGHT_CSS: f64 = 34.0;

/// Where CSS x `x` of a main chart `width` CSS px wide falls across the
/// plot area: 0 at its left edge, 1 at its right, clamped.
pub fn plot_fraction(x: f64, width: f64) -> f64 {
    let w = (width - PLOT_LEFT_CSS - PLOT_RIGHT_CSS).max(1.0);
    ((x - PLOT_LEFT_CSS) / w).clamp(0.0, 1.0)
}

/// Draws `f` on `canvas` at its current backing size.
pub fn draw(
    canvas: HtmlCanvasElement,
    f: &Frame,
    pal: &Palette,
    o: &ChartOpts<'_>,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let dpr = o.dpr;
    let px = |css: f64| (css * dpr).round().max(1.0);
    let root = open_root(canvas, pal)?;

    let span_s = ((f.to_us - f.from_us) as f64 / 1e6).max(1e-3);
    let ys = YScale::new(o.y, f.min_rtt_us, f.max_rtt_us);
    let (y_lo, y_hi) = (ys.lo, ys.hi);
    let font = |size: f64| ("sans-serif", px(size)).into_font().color(&pal.fg);

    let mut builder = ChartBuilder::on(&root);
    if o.compact {
        builder.margin(px(2.0) as u32);
    } else {
        builder
            .margin(px(10.0) as u32)
            .margin_right(px(PLOT_RIGHT_CSS) as u32)
            .x_label_area_size(px(24.0) as u32)
            .y_label_area_size(px(PLOT_LEFT_CSS - 10.0) as u32);
    }
    let mut chart = builder
        .build_cartesian_2d(-span_s..0.0, y_lo..y_hi)
        .map_err(err)?;
    if !o.compact {
        let to_us = f.to_us;
        let tz = o.tz;
        let short = span_s >= 600.0;
        let x_fmt = move |x: &f64| {
            let t = to_us + (x * 1e6) as i64;
            let c = format::clock(t, tz(t));
            // HH:MM:SS, or HH:MM:SS.m when zoomed in below 10 s.
            if span_s < 10.0 {
                c[..10].to_string()
            } else if short {
                c[..5].to_string()
            } else {
                c[..8].to_string()
            }
        };
        let y_fmt = |y: &f64| ys.label(*y);
        chart
            .configure_mesh()
            .bold_line_style(pal.grid.stroke_width(px(1.0) as u32))
            .light_line_style(TRANSPARENT)
            .axis_style(pal.fg.stroke_width(px(1.0) as u32))
            .label_style(font(12.0))
            .axis_desc_style(font(12.0))
            .x_labels(6)
            .y_labels(if ys.log {
                (y_hi - y_lo) as usize + 1
            } else {
                5
            })
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .y_desc(if ys.log { "RTT (ms, log)" } else { "RTT (ms)" })
            .draw()
            .map_err(err)?;
    }

    let x = |t: i64| (t - f.to_us) as f64 / 1e6;
    let y = |us: u32| ys.map(us);

    // Detected migrations: shaded bands in their level's colour.
    draw_bands(&mut chart, &f.bands, f.to_us, span_s, (y_lo, y_hi), pal)?;

    // Probes sent but not reported yet: a shaded band up to "now".
    if let Some(p) = f.pending_from_us {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x(p), y_lo), (0.0, y_hi)],
                pal.fg.mix(0.08).filled(),
            )))
            .map_err(err)?;
    }

    let line = pal
        .line
        .stroke_width(px(if o.compact { 1.0 } else { 1.5 }) as u32);
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
    let tick_top = y_lo + (y_hi - y_lo) * if o.compact { 0.25 } else { 0.1 };
    chart
        .draw_series(
            f.lost_ticks
                .iter()
                .map(|&t| PathElement::new(vec![(x(t), y_lo), (x(t), tick_top)], tick)),
        )
        .map_err(err)?;

    // Late replies: a full-height mark with its RTT.
    let late = pal.late.stroke_width(px(1.5) as u32);
    for &(t, rtt) in &f.late {
        let xt = x(t);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(xt, y_lo), (xt, y_hi)],
                late,
            )))
            .map_err(err)?;
        if o.compact {
            continue;
        }
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
            .draw_series(std::iter::once(Text::new(label, (xt, y_hi), style)))
            .map_err(err)?;
    }

    // Layer-2 announces of the target: RARP solid, gratuitous ARP dashed.
    let label_y = (!o.compact).then(|| {
        let h = f64::from(chart.plotting_area().dim_in_pixel().1.max(1));
        y_hi - (y_hi - y_lo) * (px(18.0) / h)
    });
    draw_announces(
        &mut chart,
        &f.announces,
        f.to_us,
        span_s,
        (y_lo, y_hi),
        label_y,
        pal,
        dpr,
    )?;

    if f.points == 0 && !o.compact {
        let style = font(14.0).pos(Pos::new(HPos::Center, VPos::Center));
        chart
            .draw_series(std::iter::once(Text::new(
                "no samples in this window",
                (-span_s / 2.0, (y_lo + y_hi) / 2.0),
                style,
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)
}

type Chart<'a> = ChartContext<
    'a,
    CanvasBackend,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The canvas as a drawing area at its backing size, cleared to the
/// background.
fn open_root(
    canvas: HtmlCanvasElement,
    pal: &Palette,
) -> Result<DrawingArea<CanvasBackend, plotters::coord::Shift>, String> {
    let root = CanvasBackend::with_canvas_object(canvas)
        .ok_or("canvas has no 2d context")?
        .into_drawing_area();
    root.fill(&pal.bg).map_err(|e| e.to_string())?;
    Ok(root)
}

/// Shades detected migrations (red) and possible ones (yellow) across the
/// plot, each at least two CSS pixels wide so a short one stays visible.
fn draw_bands(
    chart: &mut Chart<'_>,
    bands: &[(i64, i64, Light)],
    to_us: i64,
    span_s: f64,
    (y_lo, y_hi): (f64, f64),
    pal: &Palette,
) -> Result<(), String> {
    let x = |t: i64| (t - to_us) as f64 / 1e6;
    for &(a, b, level) in bands {
        let c = if level == Light::Red {
            pal.lost
        } else {
            pal.band_yellow
        };
        let (xa, xb) = (x(a).max(-span_s), x(b).min(0.0));
        let xb = xb.max(xa + span_s / 600.0);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(xa, y_lo), (xb, y_hi)],
                c.mix(0.16).filled(),
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Full-height announce markers (RARP solid, gratuitous ARP dashed) and,
/// when `label_y` is given, one label per burst at that height.
#[allow(clippy::too_many_arguments)]
fn draw_announces(
    chart: &mut Chart<'_>,
    markers: &[Marker],
    to_us: i64,
    span_s: f64,
    (y_lo, y_hi): (f64, f64),
    label_y: Option<f64>,
    pal: &Palette,
    dpr: f64,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let px = |css: f64| (css * dpr).round().max(1.0);
    let x = |t: i64| (t - to_us) as f64 / 1e6;
    let solid = pal.announce.stroke_width(px(1.5) as u32);
    let dashed = pal.announce.stroke_width(px(1.5) as u32);
    for m in markers {
        let xt = x(m.at_us);
        let pts = [(xt, y_lo), (xt, y_hi)];
        match m.kind {
            AnnounceKind::Rarp => chart
                .draw_series(std::iter::once(PathElement::new(pts.to_vec(), solid)))
                .map(|_| ())
                .map_err(err)?,
            AnnounceKind::Garp => chart
                .draw_series(std::iter::once(DashedPathElement::new(
                    pts,
                    px(4.0) as i32,
                    px(3.0) as i32,
                    dashed,
                )))
                .map(|_| ())
                .map_err(err)?,
        }
    }
    let Some(ly) = label_y else { return Ok(()) };
    let gap_us = ((span_s * 1e6) as i64 / 100).max(2_000_000);
    for g in announce_groups(markers, gap_us) {
        let xt = x(g.first_us);
        let anchor = if xt > -span_s * 0.3 {
            Pos::new(HPos::Right, VPos::Top)
        } else {
            Pos::new(HPos::Left, VPos::Top)
        };
        let style = ("sans-serif", px(12.0))
            .into_font()
            .color(&pal.announce)
            .pos(anchor);
        let label = format!(" announce: {} ", g.label());
        chart
            .draw_series(std::iter::once(Text::new(label, (xt, ly), style)))
            .map_err(err)?;
    }
    Ok(())
}

/// The y range of the clock track: the offsets in view and 0, at least
/// 2 ms tall, with a little room above and below.
pub fn clock_range(f: &ClockFrame) -> (f64, f64) {
    if f.readings == 0 || !(f.low_ms.is_finite() && f.high_ms.is_finite()) {
        return (-1.0, 1.0);
    }
    let (lo, hi) = (f.low_ms.min(0.0), f.high_ms.max(0.0));
    let mid = (lo + hi) / 2.0;
    let half = ((hi - lo) / 2.0).max(1.0) * 1.15;
    (mid - half, mid + half)
}

/// Draws the clock track `f` under the RTT chart: the guest clock's offset
/// relative to the first readings in view (ms), on the same time axis and
/// with the same left and right margins, so a step lines up with the
/// outage above it.
pub fn draw_clock(
    canvas: HtmlCanvasElement,
    f: &ClockFrame,
    pal: &Palette,
    o: &ChartOpts<'_>,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    let dpr = o.dpr;
    let px = |css: f64| (css * dpr).round().max(1.0);
    let root = open_root(canvas, pal)?;
    let span_s = ((f.to_us - f.from_us) as f64 / 1e6).max(1e-3);
    let (y_lo, y_hi) = clock_range(f);
    let font = |size: f64| ("sans-serif", px(size)).into_font().color(&pal.fg);
    let mut chart = ChartBuilder::on(&root)
        .margin(px(10.0) as u32)
        .margin_top(px(6.0) as u32)
        .margin_bottom(px(6.0) as u32)
        .margin_right(px(34.0) as u32)
        .y_label_area_size(px(52.0) as u32)
        .build_cartesian_2d(-span_s..0.0, y_lo..y_hi)
        .map_err(err)?;
    let decimals = if y_hi - y_lo < 10.0 { 1 } else { 0 };
    let y_fmt = |y: &f64| format!("{y:.decimals$}");
    chart
        .configure_mesh()
        .bold_line_style(pal.grid.stroke_width(px(1.0) as u32))
        .light_line_style(TRANSPARENT)
        .axis_style(pal.fg.stroke_width(px(1.0) as u32))
        .label_style(font(11.0))
        .axis_desc_style(font(11.0))
        .x_labels(6)
        .y_labels(3)
        .y_label_formatter(&y_fmt)
        .y_desc("clock (ms)")
        .draw()
        .map_err(err)?;
    let x = |t: i64| (t - f.to_us) as f64 / 1e6;
    draw_bands(&mut chart, &f.bands, f.to_us, span_s, (y_lo, y_hi), pal)?;
    draw_announces(
        &mut chart,
        &f.announces,
        f.to_us,
        span_s,
        (y_lo, y_hi),
        None,
        pal,
        dpr,
    )?;
    if f.readings > 0 {
        // The zero: the offset of the first readings in view.
        chart
            .draw_series(std::iter::once(DashedPathElement::new(
                [(-span_s, 0.0), (0.0, 0.0)],
                px(3.0) as i32,
                px(3.0) as i32,
                pal.fg.mix(0.5).stroke_width(px(1.0) as u32),
            )))
            .map_err(err)?;
        let pts: Vec<(f64, f64)> = f.points.iter().map(|&(t, v)| (x(t), v)).collect();
        chart
            .draw_series(std::iter::once(PathElement::new(
                pts.clone(),
                pal.clock.stroke_width(px(1.5) as u32),
            )))
            .map_err(err)?;
        if f.points.len() <= 600 {
            chart
                .draw_series(
                    pts.into_iter()
                        .map(|p| Circle::new(p, px(1.5) as u32, pal.clock.filled())),
                )
                .map_err(err)?;
        }
    } else {
        let text = if f.held == 0 {
            "no clock readings (target doesn't answer ICMP Timestamp / disabled)"
        } else {
            "no clock readings in this window"
        };
        let style = font(12.0).pos(Pos::new(HPos::Center, VPos::Center));
        chart
            .draw_series(std::iter::once(Text::new(
                text,
                (-span_s / 2.0, (y_lo + y_hi) / 2.0),
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
    fn y_scales() {
        let a = YScale::new(YAxis::Auto, Some(100), 4_000);
        assert_eq!((a.lo, a.hi, a.log), (0.0, 5.0, false));
        assert_eq!(a.map(2_000), 2.0);
        assert_eq!(a.label(2.0), "2.0");
        let f = YScale::new(YAxis::Fixed(1.0), Some(100), 468_000);
        assert_eq!(f.hi, 1.0);
        // Clamped to the axis, not drawn off the chart.
        assert_eq!(f.map(468_000), 1.0);
        assert_eq!(YScale::new(YAxis::Fixed(-1.0), None, 0).hi, 1.0);
        let l = YScale::new(YAxis::Log, Some(150), 468_000);
        assert_eq!((l.lo, l.hi, l.log), (-1.0, 3.0, true));
        assert!((l.map(10_000) - 1.0).abs() < 1e-12);
        assert_eq!(l.label(2.0), "100");
        assert_eq!(l.label(-1.0), "0.10");
        let empty = YScale::new(YAxis::Log, None, 0);
        assert!(empty.hi > empty.lo);
    }

    #[test]
    fn clock_range_holds_zero_and_the_step() {
        let mut f = ClockFrame {
            readings: 0,
            ..ClockFrame::default()
        };
        assert_eq!(clock_range(&f), (-1.0, 1.0));
        f.readings = 20;
        f.low_ms = -370.5;
        f.high_ms = 0.5;
        let (lo, hi) = clock_range(&f);
        assert!(lo < -370.5 && hi > 0.5, "{lo} {hi}");
        // A flat track is at least 2 ms tall, around 0.
        f.low_ms = -0.2;
        f.high_ms = 0.3;
        let (lo, hi) = clock_range(&f);
        assert!(lo < -0.2 && hi > 0.3 && hi - lo >= 2.0, "{lo} {hi}");
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
