//! The state the page renders, as Leptos signals: what each tile shows,
//! the chart controls, the event log, messages. The running page (`live`)
//! writes them once per animation frame; the components (`view`) only read
//! them and send [`crate::cmd::Cmd`]s back.

use crate::format::LogRow;
use crate::model::Summary;
use crate::replay::Speed;
use crate::source::Conn;
use crate::urlstate::History;
use crate::viewport::{Span, YAxis};
use leptos::prelude::*;
use migwatch_shared::{Info, Light};

/// Single target or grid, by target key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewMode {
    /// All targets as tiles with small charts.
    Grid,
    /// One target in detail (its key); the others as a strip of tiles.
    Single(u32),
}

/// What a tile shows about one target.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TileView {
    /// Short name: `host:port` or the file name.
    pub label: String,
    /// Sidecar URL (without token) or `file: NAME`.
    pub source: String,
    /// `/info`, once it answered (none for replays).
    pub info: Option<Info>,
    /// The link state, kept apart from the light.
    pub conn: Conn,
    /// Light, reasons, stats, diagnostics.
    pub summary: Summary,
    /// The target's name at its sidecar (empty for an old sidecar or a
    /// file).
    pub name: String,
    /// Its position in the grid (CSS `order`): worst first.
    pub order: u32,
}

impl TileView {
    /// The name shown: the sidecar's name for it, else its address, else
    /// the label.
    pub fn title(&self) -> String {
        match &self.info {
            Some(i) if !i.name.is_empty() => i.name.clone(),
            Some(i) => i.target.clone(),
            None if !self.name.is_empty() => self.name.clone(),
            None => self.label.clone(),
        }
    }

    /// Its name in `overlay=`: the sidecar's name for it, else the name
    /// shown (an older sidecar's address, a file).
    pub fn overlay_name(&self) -> String {
        if self.name.is_empty() {
            self.title()
        } else {
            self.name.clone()
        }
    }
}

/// One target's signals.
#[derive(Debug, Clone, Copy)]
pub struct TargetUi {
    /// Stable key for this page's lifetime.
    pub key: u32,
    /// What its tile shows.
    pub tile: RwSignal<TileView>,
}

/// The chart controls' state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartUi {
    /// The window button lit (`None` after a zoom).
    pub span: Option<Span>,
    /// Following the newest data.
    pub following: bool,
    /// The y axis.
    pub y: YAxis,
}

/// A message over the page: an import error, a bad URL value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `error` or `info`.
    pub kind: &'static str,
    /// The words.
    pub text: String,
}

/// The signals the page renders. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// The targets, in order (changes on add and remove only).
    pub targets: RwSignal<Vec<TargetUi>>,
    /// Grid or single.
    pub mode: RwSignal<ViewMode>,
    /// The worst light over all targets.
    pub overall: RwSignal<Option<Light>>,
    /// The chart controls.
    pub chart: RwSignal<ChartUi>,
    /// Detected migrations of every target, newest first.
    pub log: RwSignal<Vec<LogRow>>,
    /// A message over the page.
    pub notice: RwSignal<Option<Notice>>,
    /// Notification and sound on red.
    pub alerts: RwSignal<bool>,
    /// History kept per target.
    pub history: RwSignal<History>,
    /// Replay speed for the next import.
    pub speed: RwSignal<Speed>,
    /// A file is being dragged over the page.
    pub dragging: RwSignal<bool>,
    /// The grid's filter (words matched against names and labels).
    pub filter: RwSignal<String>,
    /// No sidecar to follow: the page offers the demo instead.
    pub no_sidecar: RwSignal<bool>,
    /// Targets (by name) overlaid on the detail chart (`overlay=` in the
    /// URL, 2 to 4 drawn).
    pub overlay: RwSignal<Vec<String>>,
}

impl Default for Ui {
    /// Signals in their "nothing known yet" state.
    fn default() -> Self {
        Ui {
            targets: RwSignal::new(Vec::new()),
            mode: RwSignal::new(ViewMode::Grid),
            overall: RwSignal::new(None),
            chart: RwSignal::new(ChartUi {
                span: Some(Span::S30),
                following: true,
                y: YAxis::Auto,
            }),
            log: RwSignal::new(Vec::new()),
            notice: RwSignal::new(None),
            alerts: RwSignal::new(false),
            history: RwSignal::new(History::default()),
            speed: RwSignal::new(Speed::default()),
            dragging: RwSignal::new(false),
            filter: RwSignal::new(String::new()),
            no_sidecar: RwSignal::new(false),
            overlay: RwSignal::new(Vec::new()),
        }
    }
}

impl Ui {
    /// The target shown in single view.
    pub fn selected(&self) -> Option<TargetUi> {
        match self.mode.get() {
            ViewMode::Single(k) => self
                .targets
                .with(|ts| ts.iter().find(|t| t.key == k).copied()),
            ViewMode::Grid => None,
        }
    }
}
