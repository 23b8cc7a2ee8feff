//! The RTT chart of one [`Frame`]: axes, migration bands, the broken line,
//! lost-probe ticks, late replies and announce bursts.

use super::marks::{bursts, draw_bursts};
use super::paint::{Anchor, Plot};
use super::ticks::{decade_ticks, linear_ticks, time_label, time_ticks};
use super::Shade;
use super::{ChartOpts, Palette, YScale, PLOT_LEFT_CSS, PLOT_RIGHT_CSS};
use crate::format;
use crate::store::Frame;
use migwatch_shared::Light;
use web_sys::HtmlCanvasElement;

/// Draws `f` on `canvas` at its current backing size.
pub fn draw(
    canvas: HtmlCanvasElement,
    f: &Frame,
    pal: &Palette,
    o: &ChartOpts<'_>,
) -> Result<(), String> {
    let span_s = ((f.to_us - f.from_us) as f64 / 1e6).max(1e-3);
    let ys = YScale::new(o.y, f.min_rtt_us, f.max_rtt_us);
    let margins = if o.compact {
        (2.0, 2.0, 2.0, 2.0)
    } else {
        (PLOT_LEFT_CSS, 10.0, PLOT_RIGHT_CSS, 34.0)
    };
    let p = Plot::open(
        &canvas,
        pal.bg,
        o.dpr,
        margins,
        (-span_s, 0.0),
        (ys.lo, ys.hi),
    )?;
    if !o.compact {
        let yt = if ys.log {
            decade_ticks(ys.lo, ys.hi)
        } else {
            linear_ticks(ys.lo, ys.hi, 6)
        };
        time_grid(&p, f.from_us, f.to_us, pal, o, true);
        y_grid(&p, &yt, |v| ys.label(v), pal, 12.0);
        axes(&p, pal);
        let desc = if ys.log { "RTT (ms, log)" } else { "RTT (ms)" };
        p.text_up(desc, (p.px(18.0), (p.top + p.bottom) / 2.0), pal.fg, 12.0);
    }
    let x = |t: i64| (t - f.to_us) as f64 / 1e6;
    let y = |us: u32| ys.map(us);
    draw_shades(&p, &f.shades, f.to_us, span_s, pal);
    // Probes sent but not reported yet: a shaded band up to "now".
    if let Some(t) = f.pending_from_us {
        p.band(x(t), 0.0, pal.fg, 0.08);
    }
    let width = if o.compact { 1.0 } else { 1.5 };
    p.paths(
        f.lines
            .iter()
            .filter(|l| l.len() > 1)
            .map(|l| l.iter().map(|&(t, r)| (x(t), y(r)))),
        (pal.line, 1.0),
        width,
        None,
    );
    // A lone answered probe between two losses has no segment: a dot.
    p.dots(
        f.lines
            .iter()
            .filter(|l| l.len() == 1)
            .map(|l| (x(l[0].0), y(l[0].1))),
        pal.line,
        1.5,
    );
    // Lost probes: red ticks along the bottom of the plot.
    let tick_top = p.bottom - p.height() * if o.compact { 0.25 } else { 0.1 };
    p.verticals_px(
        f.lost_ticks.iter().map(|&t| (x(t), p.bottom, tick_top)),
        pal.lost,
        2.0,
    );
    // Late replies: a full-height mark with its RTT.
    p.verticals_px(
        f.late.iter().map(|&(t, _)| (x(t), p.bottom, p.top)),
        pal.late,
        1.5,
    );
    let span_us = f.to_us - f.from_us;
    draw_bursts(&p, &bursts(&f.announces, span_us), f.to_us, pal, !o.compact);
    if !o.compact {
        for &(t, rtt) in &f.late {
            let xt = p.sx(x(t));
            let anchor = if x(t) > -span_s * 0.2 {
                Anchor::RightTop
            } else {
                Anchor::LeftTop
            };
            let label = format!(" late {} ", format::duration(u64::from(rtt)));
            p.text(&label, (xt, p.top), anchor, pal.late, 12.0);
        }
    }
    if !o.compact {
        shade_labels(&p, &f.shades, f.to_us, tick_top - p.px(3.0), pal, o);
    }
    if f.points == 0 && !o.compact {
        let mid = ((p.left + p.right) / 2.0, (p.top + p.bottom) / 2.0);
        p.text(
            "no samples in this window",
            mid,
            Anchor::Center,
            pal.fg,
            14.0,
        );
    }
    p.finish()
}

/// Vertical grid lines at round local times and, with `labels`, their
/// clock labels under the plot; as many as fit the width.
pub(super) fn time_grid(
    p: &Plot,
    from_us: i64,
    to_us: i64,
    pal: &Palette,
    o: &ChartOpts<'_>,
    labels: bool,
) {
    let span_s = ((to_us - from_us) as f64 / 1e6).max(1e-3);
    let sample = time_label("00:00:00.000", span_s);
    let room = p.text_width(sample, 12.0) + p.px(24.0);
    let max = ((p.right - p.left) / room.max(1.0)).floor() as usize;
    let ticks = time_ticks(from_us, to_us, (o.tz)(to_us), max.clamp(2, 8));
    let x = |t: i64| p.sx((t - to_us) as f64 / 1e6);
    p.segments_px(
        ticks.iter().map(|&t| ((x(t), p.top), (x(t), p.bottom))),
        pal.grid,
        1.0,
    );
    if labels {
        for &t in &ticks {
            let c = format::clock(t, (o.tz)(t));
            let at = (x(t), p.bottom + p.px(6.0));
            p.text(time_label(&c, span_s), at, Anchor::CenterTop, pal.fg, 12.0);
        }
    }
}

/// The axis lines, left and bottom, over the grid.
pub(super) fn axes(p: &Plot, pal: &Palette) {
    p.segments_px(
        [
            ((p.left, p.top), (p.left, p.bottom)),
            ((p.left, p.bottom), (p.right, p.bottom)),
        ],
        pal.fg,
        1.0,
    );
}

/// Horizontal grid lines at `ticks` (data y) with labels left of the plot.
pub(super) fn y_grid(
    p: &Plot,
    ticks: &[f64],
    label: impl Fn(f64) -> String,
    pal: &Palette,
    size_css: f64,
) {
    p.segments_px(
        ticks
            .iter()
            .map(|&v| ((p.left, p.sy(v)), (p.right, p.sy(v)))),
        pal.grid,
        1.0,
    );
    for &v in ticks {
        let at = (p.left - p.px(6.0), p.sy(v));
        p.text(&label(v), at, Anchor::RightMiddle, pal.fg, size_css);
    }
}

/// Shades detected migrations (red) and possible ones (yellow) across the
/// plot, each at least two CSS pixels wide so a short one stays visible.
pub(super) fn draw_bands(
    p: &Plot,
    bands: &[(i64, i64, Light)],
    to_us: i64,
    span_s: f64,
    pal: &Palette,
) {
    let x = |t: i64| (t - to_us) as f64 / 1e6;
    for &(a, b, level) in bands {
        let c = band_color(pal, level);
        let (xa, xb) = (x(a).max(-span_s), x(b).min(0.0));
        let xb = xb.max(xa + span_s / 600.0);
        p.band(xa, xb, c, 0.16);
    }
}

/// The band colour of a level: red for migrations, yellow otherwise.
fn band_color(pal: &Palette, level: Light) -> super::Rgb {
    if level == Light::Red {
        pal.lost
    } else {
        pal.band_yellow
    }
}

/// Shades each of `shades` (as [`draw_bands`]).
fn draw_shades(p: &Plot, shades: &[Shade], to_us: i64, span_s: f64, pal: &Palette) {
    let x = |t: i64| (t - to_us) as f64 / 1e6;
    for s in shades {
        let (xa, xb) = (x(s.from_us).max(-span_s), x(s.to_us).min(0.0));
        let xb = xb.max(xa + span_s / 600.0);
        p.band(xa, xb, band_color(pal, s.level), 0.16);
    }
}

/// Each shade's reason at height `y` (device px, text bottom), from its
/// left edge (or ending at its right edge near the plot's right side);
/// a label that would overlap the previous one is left out (the event
/// log and the tooltip have it).
fn shade_labels(p: &Plot, shades: &[Shade], to_us: i64, y: f64, pal: &Palette, o: &ChartOpts<'_>) {
    let x = |t: i64| p.sx((t - to_us) as f64 / 1e6);
    let gap = p.px(4.0);
    let mut free_from = p.left;
    for s in shades {
        let text = s.label(o.tz);
        let w = p.text_width(&text, 11.0);
        let (xa, xb) = (x(s.from_us).max(p.left), x(s.to_us).min(p.right));
        let (at, anchor, start) = if xa + gap + w <= p.right {
            (xa + gap, Anchor::LeftBottom, xa + gap)
        } else {
            (xb - gap, Anchor::RightBottom, xb - gap - w)
        };
        if start < free_from || start < p.left {
            continue;
        }
        let c = if s.level == Light::Red {
            pal.lost
        } else {
            pal.late
        };
        p.text(&text, (at, y), anchor, c, 11.0);
        free_from = start + w + gap;
    }
}
