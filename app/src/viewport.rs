//! Which stretch of time the chart shows and how its y axis is scaled:
//! the window length, following "now" or paused at a point in history,
//! zoom and pan. Plain Rust, unit tested natively.

/// The window lengths offered by the buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Span {
    /// 30 seconds (default).
    #[default]
    S30,
    /// 5 minutes.
    M5,
    /// 1 hour.
    H1,
}

impl Span {
    /// Every choice, in button order.
    pub const ALL: [Span; 3] = [Span::S30, Span::M5, Span::H1];

    /// Length in µs.
    pub fn us(self) -> i64 {
        match self {
            Span::S30 => 30_000_000,
            Span::M5 => 300_000_000,
            Span::H1 => 3_600_000_000,
        }
    }

    /// `30s`, `5m`, `1h` (URL and button text).
    pub fn name(self) -> &'static str {
        match self {
            Span::S30 => "30s",
            Span::M5 => "5m",
            Span::H1 => "1h",
        }
    }

    /// From its name.
    pub fn from_name(s: &str) -> Option<Span> {
        Span::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// The shortest window zooming can reach, µs.
pub const MIN_SPAN_US: i64 = 200_000;
/// The longest window zooming can reach, µs.
pub const MAX_SPAN_US: i64 = 2 * 3_600_000_000;

/// How the y axis is scaled.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum YAxis {
    /// 0 to a little above the highest RTT in view (default).
    #[default]
    Auto,
    /// 0 to this many ms.
    Fixed(f64),
    /// Logarithmic, from the lowest to the highest RTT in view.
    Log,
}

impl YAxis {
    /// `auto`, `fixed`, `log`.
    pub fn name(self) -> &'static str {
        match self {
            YAxis::Auto => "auto",
            YAxis::Fixed(_) => "fixed",
            YAxis::Log => "log",
        }
    }
}

/// The chart's view of time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    /// Window length, µs.
    pub span_us: i64,
    /// `None`: follow the newest data. `Some(t)`: paused, the window ends
    /// at `t`.
    pub end_us: Option<i64>,
    /// The y axis.
    pub y: YAxis,
}

impl Default for Viewport {
    fn default() -> Self {
        Viewport::new(Span::default())
    }
}

impl Viewport {
    /// Following the newest data over `span`.
    pub fn new(span: Span) -> Viewport {
        Viewport {
            span_us: span.us(),
            end_us: None,
            y: YAxis::Auto,
        }
    }

    /// Whether the view follows the newest data.
    pub fn following(&self) -> bool {
        self.end_us.is_none()
    }

    /// `[from, to]` in unix µs when the newest data is at `newest_us`.
    pub fn range(&self, newest_us: i64) -> (i64, i64) {
        let to = self.end_us.unwrap_or(newest_us);
        (to.saturating_sub(self.span_us), to)
    }

    /// Chooses a window length from the buttons; the end stays as it is.
    pub fn set_span(&mut self, span: Span) {
        self.span_us = span.us();
    }

    /// The button matching the current length, if any (not after a zoom).
    pub fn span(&self) -> Option<Span> {
        Span::ALL.into_iter().find(|s| s.us() == self.span_us)
    }

    /// Freezes the window where it is now.
    pub fn pause(&mut self, newest_us: i64) {
        if self.end_us.is_none() {
            self.end_us = Some(newest_us);
        }
    }

    /// Follows the newest data again.
    pub fn resume(&mut self) {
        self.end_us = None;
    }

    /// Zooms by `factor` (< 1 zooms in) keeping the time under the pointer
    /// (`at`, 0 = left edge, 1 = right edge) where it is. Zooming in while
    /// following with the pointer near the right edge keeps following;
    /// otherwise the view pauses.
    pub fn zoom(&mut self, factor: f64, at: f64, newest_us: i64) {
        if !(factor.is_finite() && factor > 0.0) {
            return;
        }
        let at = if at.is_finite() {
            at.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let (from, _) = self.range(newest_us);
        let anchor = from as f64 + at * self.span_us as f64;
        let span = ((self.span_us as f64 * factor).round() as i64).clamp(MIN_SPAN_US, MAX_SPAN_US);
        if self.following() && at > 0.95 {
            self.span_us = span;
            return;
        }
        let end = (anchor + (1.0 - at) * span as f64).round() as i64;
        self.span_us = span;
        self.end_us = Some(end);
        self.snap(newest_us);
    }

    /// Moves the window by `frac` of its length (positive: later). Reaching
    /// the newest data follows it again.
    pub fn pan(&mut self, frac: f64, newest_us: i64) {
        if !frac.is_finite() {
            return;
        }
        let (_, to) = self.range(newest_us);
        let shift = (frac * self.span_us as f64).round() as i64;
        self.end_us = Some(to.saturating_add(shift));
        self.snap(newest_us);
    }

    /// Shows `[start, end]` with some context either side, paused.
    pub fn jump_to(&mut self, start_us: i64, end_us: i64) {
        let len = end_us.saturating_sub(start_us).max(0);
        let span = (len.saturating_mul(6)).clamp(2_000_000, MAX_SPAN_US);
        let mid = start_us + len / 2;
        self.span_us = span;
        self.end_us = Some(mid + span / 2);
    }

    fn snap(&mut self, newest_us: i64) {
        if self.end_us.is_some_and(|e| e >= newest_us) {
            self.end_us = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_000_000_000_000;

    #[test]
    fn spans_have_names_and_lengths() {
        for s in Span::ALL {
            assert_eq!(Span::from_name(s.name()), Some(s));
        }
        assert_eq!(Span::H1.us(), 3_600_000_000);
        assert_eq!(Span::from_name("2h"), None);
    }

    #[test]
    fn following_tracks_the_newest_and_pause_freezes() {
        let mut v = Viewport::new(Span::S30);
        assert_eq!(v.range(NOW), (NOW - 30_000_000, NOW));
        v.pause(NOW);
        assert!(!v.following());
        assert_eq!(v.range(NOW + 5_000_000), (NOW - 30_000_000, NOW));
        v.pause(NOW + 9);
        assert_eq!(v.end_us, Some(NOW));
        v.resume();
        assert_eq!(v.range(NOW + 1), (NOW + 1 - 30_000_000, NOW + 1));
        v.set_span(Span::H1);
        assert_eq!(v.span(), Some(Span::H1));
    }

    #[test]
    fn zoom_keeps_the_time_under_the_pointer() {
        let mut v = Viewport::new(Span::S30);
        // Zoom in at the middle: pauses, middle stays.
        v.zoom(0.5, 0.5, NOW);
        assert_eq!(v.span_us, 15_000_000);
        let (a, b) = v.range(NOW);
        assert_eq!((a + b) / 2, NOW - 15_000_000);
        assert_eq!(v.span(), None);
        // At the right edge while following: keeps following.
        let mut f = Viewport::new(Span::S30);
        f.zoom(0.5, 1.0, NOW);
        assert!(f.following());
        assert_eq!(f.span_us, 15_000_000);
        // Bounded both ways; nonsense ignored.
        f.zoom(1e-9, 1.0, NOW);
        assert_eq!(f.span_us, MIN_SPAN_US);
        f.zoom(1e9, 1.0, NOW);
        assert_eq!(f.span_us, MAX_SPAN_US);
        f.zoom(f64::NAN, 0.5, NOW);
        assert_eq!(f.span_us, MAX_SPAN_US);
    }

    #[test]
    fn pan_moves_and_snaps_back_to_following() {
        let mut v = Viewport::new(Span::S30);
        v.pan(-0.5, NOW);
        assert_eq!(v.end_us, Some(NOW - 15_000_000));
        v.pan(0.25, NOW);
        assert_eq!(v.end_us, Some(NOW - 7_500_000));
        v.pan(1.0, NOW);
        assert!(v.following());
    }

    #[test]
    fn jump_shows_an_interval_with_context() {
        let mut v = Viewport::new(Span::H1);
        v.jump_to(NOW, NOW + 500_000);
        assert_eq!(v.span_us, 3_000_000);
        let (a, b) = v.range(NOW + 99_000_000);
        assert!(a < NOW && b > NOW + 500_000);
        v.jump_to(NOW, NOW);
        assert_eq!(v.span_us, 2_000_000);
    }
}
