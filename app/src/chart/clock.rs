//! The clock track under the RTT chart: the guest clock's offset relative
//! to the first readings in view, as steps, on the same time axis and with
//! the same left and right margins, so a step lines up with the outage
//! above it.

use super::marks::{bursts, draw_bursts, step_points};
use super::paint::{Anchor, Plot};
use super::rtt::{axes, draw_bands, time_grid, y_grid};
use super::ticks::linear_ticks;
use super::{ChartOpts, Palette, PLOT_LEFT_CSS, PLOT_RIGHT_CSS};
use crate::signals::ClockFrame;
use web_sys::HtmlCanvasElement;

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

/// Draws the clock track `f` on `canvas` at its current backing size.
pub fn draw_clock(
    canvas: HtmlCanvasElement,
    f: &ClockFrame,
    pal: &Palette,
    o: &ChartOpts<'_>,
) -> Result<(), String> {
    let span_s = ((f.to_us - f.from_us) as f64 / 1e6).max(1e-3);
    let (y_lo, y_hi) = clock_range(f);
    let p = Plot::open(
        &canvas,
        pal.bg,
        o.dpr,
        (PLOT_LEFT_CSS, 6.0, PLOT_RIGHT_CSS, 6.0),
        (-span_s, 0.0),
        (y_lo, y_hi),
    )?;
    let decimals = if y_hi - y_lo < 10.0 { 1 } else { 0 };
    time_grid(&p, f.from_us, f.to_us, pal, o, false);
    y_grid(
        &p,
        &linear_ticks(y_lo, y_hi, 3),
        |v| format!("{v:.decimals$}"),
        pal,
        11.0,
    );
    axes(&p, pal);
    p.text_up(
        "clock (ms)",
        (p.px(18.0), (p.top + p.bottom) / 2.0),
        pal.fg,
        11.0,
    );
    let x = |t: i64| (t - f.to_us) as f64 / 1e6;
    draw_bands(&p, &f.bands, f.to_us, span_s, pal);
    let span_us = f.to_us - f.from_us;
    draw_bursts(&p, &bursts(&f.announces, span_us), f.to_us, pal, false);
    if f.readings > 0 {
        // The zero: the offset of the first readings in view.
        p.paths(
            [[(-span_s, 0.0), (0.0, 0.0)]],
            (pal.fg, 0.5),
            1.0,
            Some((3.0, 3.0)),
        );
        let steps = step_points(&f.points);
        p.paths(
            [steps.iter().map(|&(t, v)| (x(t), v))],
            (pal.clock, 1.0),
            1.5,
            None,
        );
        if f.points.len() <= 600 {
            p.dots(f.points.iter().map(|&(t, v)| (x(t), v)), pal.clock, 1.5);
        }
    }
    if f.readings == 0 {
        let text = if f.held == 0 {
            "no clock readings (target doesn't answer ICMP Timestamp / disabled)"
        } else {
            "no clock readings in this window"
        };
        let mid = ((p.left + p.right) / 2.0, (p.top + p.bottom) / 2.0);
        p.text(text, mid, Anchor::Center, pal.fg, 12.0);
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
