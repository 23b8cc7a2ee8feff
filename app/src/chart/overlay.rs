//! Several targets' RTT on one chart (`overlay=a,b` in the URL): one line
//! per target in its own colour, a legend, a shared y scale, and each
//! target's migrations shaded.

use super::paint::{Anchor, Plot};
use super::rtt::{axes, time_grid, y_grid};
use super::ticks::{decade_ticks, linear_ticks};
use super::{ChartOpts, Palette, Rgb, YScale, PLOT_LEFT_CSS, PLOT_RIGHT_CSS};
use crate::store::Frame;
use migwatch_shared::Light;
use web_sys::HtmlCanvasElement;

/// Most targets on one chart: more lines stop being readable.
pub const OVERLAY_MAX: usize = 4;

/// The overlay's colours, in target order: the page's line colour first,
/// then three that differ from it, from each other and from the red and
/// yellow shading in both themes.
pub fn overlay_colors(pal: &Palette) -> [Rgb; OVERLAY_MAX] {
    [pal.line, pal.clock, pal.announce, Rgb(0x8a, 0x6d, 0x3b)]
}

/// The target names of an `overlay` URL value: comma-separated, trimmed,
/// without empties or repeats, at most [`OVERLAY_MAX`].
pub fn parse_overlay(v: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if out.len() < OVERLAY_MAX && !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
    }
    out
}

/// `names` with `name` taken off if it is there, else added last; past
/// [`OVERLAY_MAX`] the oldest goes.
pub fn toggle_overlay(names: &[String], name: &str) -> Vec<String> {
    let mut out: Vec<String> = names.iter().filter(|n| *n != name).cloned().collect();
    if out.len() == names.len() {
        out.push(name.to_string());
        if out.len() > OVERLAY_MAX {
            out.remove(0);
        }
    }
    out
}

/// The `overlay` URL value of `names` (the inverse of [`parse_overlay`]).
pub fn overlay_value(names: &[String]) -> String {
    names.join(",")
}

/// The y scale shared by all `frames`: their answered RTTs' full range.
pub fn overlay_scale(o: &ChartOpts<'_>, frames: &[&Frame]) -> YScale {
    let min = frames.iter().filter_map(|f| f.min_rtt_us).min();
    let max = frames.iter().map(|f| f.max_rtt_us).max().unwrap_or(0);
    YScale::new(o.y, min, max)
}

/// Draws `series` (name, frame; at most [`OVERLAY_MAX`] are drawn, all
/// over the first frame's window) on `canvas` with a legend.
pub fn draw_overlay(
    canvas: HtmlCanvasElement,
    series: &[(&str, &Frame)],
    pal: &Palette,
    o: &ChartOpts<'_>,
) -> Result<(), String> {
    let series = &series[..series.len().min(OVERLAY_MAX)];
    let Some(&(_, first)) = series.first() else {
        return Err("no target to overlay".into());
    };
    let (from_us, to_us) = (first.from_us, first.to_us);
    let span_s = ((to_us - from_us) as f64 / 1e6).max(1e-3);
    let frames: Vec<&Frame> = series.iter().map(|s| s.1).collect();
    let ys = overlay_scale(o, &frames);
    let p = Plot::open(
        &canvas,
        pal.bg,
        o.dpr,
        (PLOT_LEFT_CSS, 10.0, PLOT_RIGHT_CSS, 34.0),
        (-span_s, 0.0),
        (ys.lo, ys.hi),
    )?;
    let yt = if ys.log {
        decade_ticks(ys.lo, ys.hi)
    } else {
        linear_ticks(ys.lo, ys.hi, 6)
    };
    time_grid(&p, from_us, to_us, pal, o, true);
    y_grid(&p, &yt, |v| ys.label(v), pal, 12.0);
    axes(&p, pal);
    let desc = if ys.log { "RTT (ms, log)" } else { "RTT (ms)" };
    p.text_up(desc, (p.px(18.0), (p.top + p.bottom) / 2.0), pal.fg, 12.0);
    let x = |t: i64| (t - to_us) as f64 / 1e6;
    let colors = overlay_colors(pal);
    for (_, f) in series {
        for &(a, b, level) in &f.bands {
            let c = if level == Light::Red {
                pal.lost
            } else {
                pal.band_yellow
            };
            let (xa, xb) = (x(a).max(-span_s), x(b).min(0.0));
            p.band(xa, xb.max(xa + span_s / 600.0), c, 0.12);
        }
    }
    for (&(_, f), &c) in series.iter().zip(&colors) {
        p.paths(
            f.lines
                .iter()
                .filter(|l| l.len() > 1)
                .map(|l| l.iter().map(|&(t, r)| (x(t), ys.map(r)))),
            (c, 1.0),
            1.5,
            None,
        );
        p.dots(
            f.lines
                .iter()
                .filter(|l| l.len() == 1)
                .map(|l| (x(l[0].0), ys.map(l[0].1))),
            c,
            1.5,
        );
        let tick_top = p.bottom - p.height() * 0.1;
        p.verticals_px(
            f.lost_ticks.iter().map(|&t| (x(t), p.bottom, tick_top)),
            c,
            2.0,
        );
    }
    // The legend: a swatch and the name per target, top left.
    let (mut lx, ly) = (p.left + p.px(8.0), p.top + p.px(6.0));
    for (&(name, _), &c) in series.iter().zip(&colors) {
        p.fill_px(
            (lx, ly + p.px(5.0)),
            (lx + p.px(14.0), ly + p.px(8.0)),
            c,
            1.0,
        );
        p.text(name, (lx + p.px(18.0), ly), Anchor::LeftTop, pal.fg, 12.0);
        lx += p.px(18.0) + p.text_width(name, 12.0) + p.px(16.0);
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viewport::YAxis;

    #[test]
    fn a_toggle_adds_last_removes_and_keeps_at_most_four() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(toggle_overlay(&[], "a"), v(&["a"]));
        assert_eq!(toggle_overlay(&v(&["a", "b"]), "a"), v(&["b"]));
        assert_eq!(toggle_overlay(&v(&["a", "b"]), "c"), v(&["a", "b", "c"]));
        assert_eq!(
            toggle_overlay(&v(&["a", "b", "c", "d"]), "e"),
            v(&["b", "c", "d", "e"])
        );
    }

    #[test]
    fn overlay_names_from_the_url() {
        assert_eq!(parse_overlay("a, b,,a"), vec!["a", "b"]);
        assert_eq!(parse_overlay("1,2,3,4,5").len(), OVERLAY_MAX);
        assert!(parse_overlay("").is_empty());
        let v = parse_overlay("web-1,db");
        assert_eq!(overlay_value(&v), "web-1,db");
        assert_eq!(parse_overlay(&overlay_value(&v)), v);
    }

    #[test]
    fn overlay_colours_differ_and_the_scale_holds_every_target() {
        let c = overlay_colors(&Palette::default());
        for i in 0..c.len() {
            for j in i + 1..c.len() {
                assert_ne!(c[i], c[j]);
            }
        }
        let a = Frame {
            min_rtt_us: Some(200),
            max_rtt_us: 900,
            ..Frame::default()
        };
        let b = Frame {
            min_rtt_us: Some(100),
            max_rtt_us: 4_000,
            ..Frame::default()
        };
        let tz = |_: i64| 0;
        let o = ChartOpts {
            y: YAxis::Auto,
            compact: false,
            dpr: 1.0,
            tz: &tz,
        };
        let s = overlay_scale(&o, &[&a, &b]);
        assert_eq!((s.lo, s.hi), (0.0, 5.0));
        let o = ChartOpts { y: YAxis::Log, ..o };
        let s = overlay_scale(&o, &[&a, &b]);
        assert_eq!((s.lo, s.hi), (-1.0, 1.0));
    }
}
