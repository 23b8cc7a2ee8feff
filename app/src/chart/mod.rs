//! The charts on canvases: the RTT chart ([`draw`], also the tiles'
//! sparklines) and the clock track under it ([`draw_clock`]).
//!
//! A canvas is drawn at its backing size (CSS size × devicePixelRatio), so
//! every length here is given in CSS pixels and scaled by `dpr`.
//! `paint` maps data to pixels and draws through plotters' drawing area
//! on its canvas backend, `ticks` places axis labels, `marks` holds
//! the announce bursts and the clock's steps, `shade` what is shaded and
//! why, `rtt`, `clock` and `overlay` (several targets on one chart) draw.

mod clock;
mod marks;
mod overlay;
mod paint;
mod rtt;
mod shade;
mod ticks;

pub use clock::{clock_range, draw_clock};
pub use marks::{bursts, step_points, Burst};
pub use overlay::{
    draw_overlay, overlay_colors, overlay_scale, overlay_value, parse_overlay, toggle_overlay,
    OVERLAY_MAX,
};
pub use rtt::draw;
pub use shade::{shades, Shade, Why, YellowSpan};

use crate::format::TzOffset;
use crate::viewport::YAxis;

/// An sRGB colour (plotters' own).
pub use plotters::style::RGBColor as Rgb;

/// Chart colours, read from the page's CSS so dark mode follows the theme.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Palette {
    /// Background.
    pub bg: Rgb,
    /// Labels and axes.
    pub fg: Rgb,
    /// Grid lines.
    pub grid: Rgb,
    /// The RTT line.
    pub line: Rgb,
    /// Lost-probe ticks.
    pub lost: Rgb,
    /// Late-reply marks.
    pub late: Rgb,
    /// Bands of yellow (possible) migrations; red ones use `lost`.
    pub band_yellow: Rgb,
    /// The clock track.
    pub clock: Rgb,
    /// Announce markers (RARP solid, gratuitous ARP dashed).
    pub announce: Rgb,
}

impl Default for Palette {
    /// The light theme, used until the CSS has been read.
    fn default() -> Self {
        Palette {
            bg: Rgb(0xff, 0xff, 0xff),
            fg: Rgb(0x44, 0x4b, 0x55),
            grid: Rgb(0xe4, 0xe7, 0xeb),
            line: Rgb(0x25, 0x63, 0xeb),
            lost: Rgb(0xdc, 0x26, 0x26),
            late: Rgb(0xd9, 0x77, 0x06),
            band_yellow: Rgb(0xea, 0xb3, 0x08),
            clock: Rgb(0x0d, 0x94, 0x88),
            announce: Rgb(0x93, 0x33, 0xea),
        }
    }
}

impl Palette {
    /// A palette from a CSS custom-property lookup (`--chart-bg` etc.);
    /// what is missing or unreadable keeps its default.
    pub fn from_css(get: impl Fn(&str) -> String) -> Palette {
        let d = Palette::default();
        let c = |name: &str, dflt: Rgb| parse_color(&get(name)).unwrap_or(dflt);
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
pub fn parse_color(s: &str) -> Option<Rgb> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix('#') {
        let v = |i: usize, n: usize| u8::from_str_radix(hex.get(i..i + n)?, 16).ok();
        return match hex.len() {
            6 => Some(Rgb(v(0, 2)?, v(2, 2)?, v(4, 2)?)),
            3 => Some(Rgb(v(0, 1)? * 17, v(1, 1)? * 17, v(2, 1)? * 17)),
            _ => None,
        };
    }
    let inner = s.strip_prefix("rgb(")?.strip_suffix(')')?;
    let mut it = inner.split(',').map(|p| p.trim().parse::<u8>().ok());
    let rgb = Rgb(it.next()??, it.next()??, it.next()??);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_parse() {
        assert_eq!(parse_color(" #1a2B3c"), Some(Rgb(0x1a, 0x2b, 0x3c)));
        assert_eq!(parse_color("#fff"), Some(Rgb(255, 255, 255)));
        assert_eq!(parse_color("rgb(1, 2, 3)"), Some(Rgb(1, 2, 3)));
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
        assert_eq!(p.bg, Rgb(0, 0, 0));
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
