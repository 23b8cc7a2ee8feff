//! What the user can ask for, and the one way to ask: views build a [`Cmd`]
//! and call [`cmd`]; the running page registers the handler at start with
//! [`set_handler`]. Dependencies run one way: views → commands ← app state,
//! so the views never see the app's state and the app never imports views'
//! internals.

use crate::urlstate::History;
use crate::viewport::{Span, YAxis};
use std::cell::RefCell;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// The held events as JSON lines.
    TraceJsonl,
    /// The held samples as CSV.
    TraceCsv,
    /// The detected migrations as JSON lines.
    MigrationsJsonl,
    /// The detected migrations as CSV.
    MigrationsCsv,
}

/// What the user asked for.
#[derive(Debug)]
pub enum Cmd {
    /// Follow another sidecar (the URL as typed).
    Add(String),
    /// Stop following a target.
    Remove(u32),
    /// Show one target in detail.
    Select(u32),
    /// Add a target to the detail chart's overlay, or take it off.
    Overlay(u32),
    /// Show the first target in detail.
    SingleFirst,
    /// Show all targets as a grid.
    Grid,
    /// Show only the targets whose name or labels contain this.
    Filter(String),
    /// Chart window length.
    Span(Span),
    /// Pause or resume following the newest data.
    TogglePause,
    /// Follow the newest data.
    Follow,
    /// Y axis scale.
    YAxis(YAxis),
    /// Zoom by `factor` around `at` (0..1 across the chart).
    Zoom {
        /// < 1 zooms in.
        factor: f64,
        /// Where the pointer is, 0 = left edge.
        at: f64,
    },
    /// The pointer is over the chart at this fraction of its plot area
    /// (0 = left edge): its tooltip names the nearest probe.
    Hover(f64),
    /// Pan by a fraction of the window (positive: later).
    Pan(f64),
    /// Show a time interval of a target.
    Jump {
        /// The target.
        key: u32,
        /// Start, unix µs.
        start_us: i64,
        /// End, unix µs.
        end_us: i64,
    },
    /// Reconnect now instead of waiting for the backoff.
    Reconnect(u32),
    /// Replay a trace file.
    Import(web_sys::File),
    /// Replay the bundled demo recording.
    Demo,
    /// Download a target's data.
    Export(u32, ExportKind),
    /// Notification and sound on red.
    Alerts(bool),
    /// History kept per target.
    History(History),
    /// The user has seen the last migration of a target: its tile and
    /// headline stop repeating it.
    Acknowledge(u32),
    /// Forget the event log rows this browser remembers.
    ForgetHistory,
}

type Handler = Box<dyn Fn(Cmd)>;

thread_local! {
    static HANDLER: RefCell<Option<Handler>> = const { RefCell::new(None) };
}

/// Registers what carries out commands (the running page, once).
pub fn set_handler(h: impl Fn(Cmd) + 'static) {
    HANDLER.with(|x| *x.borrow_mut() = Some(Box::new(h)));
}

/// Carries out a user command; does nothing before the page started.
pub fn cmd(c: Cmd) {
    HANDLER.with(|x| {
        if let Some(h) = x.borrow().as_ref() {
            h(c);
        }
    });
}
