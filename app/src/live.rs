//! The running page: one [`Target`] per sidecar (or imported trace), the
//! commands the view sends, and the render step that runs at most once per
//! animation frame.
//!
//! State flow: `Stream` listener → [`Model::ingest`] (store + detector) →
//! `schedule` → on the next animation frame `render` feeds due replay
//! events, recomputes each changed target's [`crate::model::Summary`],
//! redraws the charts that changed and sets the overall light, the title,
//! the favicon and the event log. Connection changes take the same path
//! because the light depends on them.

use crate::chart::{self, ChartOpts, Palette};
use crate::format;
use crate::model::Model;
use crate::replay::{self, Replay, Speed};
use crate::source::{fetch_info, Conn, Resume, Stream, StreamEvent};
use crate::store::{capacity_for, MAX_CAPACITY};
use crate::urlstate::{self, History, Layout, PageState, SidecarRef};
use crate::view::{ChartUi, Notice, TargetUi, TileView, Ui, ViewMode};
use crate::viewport::{Span, Viewport, YAxis};
use leptos::prelude::*;
use leptos::task::spawn_local;
use migwatch_shared::wire::AnnounceKind;
use migwatch_shared::{Event, Info, Light};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

/// localStorage key of the sidecar list.
const STORAGE_KEY: &str = "migwatch.sidecars";

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
    /// Show the first target in detail.
    SingleFirst,
    /// Show all targets as a grid.
    Grid,
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
    /// Download a target's data.
    Export(u32, ExportKind),
    /// Notification and sound on red.
    Alerts(bool),
    /// History kept per target.
    History(History),
}

thread_local! {
    static APP: RefCell<Option<Rc<App>>> = const { RefCell::new(None) };
}

fn app() -> Option<Rc<App>> {
    APP.with(|a| a.borrow().clone())
}

/// Carries out a user command.
pub fn cmd(c: Cmd) {
    if let Some(a) = app() {
        a.handle(c);
    }
}

/// Asks for one render on the next animation frame.
fn schedule() {
    if let Some(a) = app() {
        a.schedule();
    }
}

/// Where a target's events come from.
enum Source {
    Sidecar(SidecarRef),
    File(String),
}

/// One watched target.
struct Target {
    key: u32,
    label: String,
    source: Source,
    tui: TargetUi,
    model: RefCell<Model>,
    resume: RefCell<Resume>,
    stream: RefCell<Option<Stream>>,
    /// Bumped on every connection attempt, so late answers to an older
    /// attempt (a slow `/info`, a stale stream) are ignored.
    generation: Cell<u32>,
    /// The stream had an error since it last opened: on its next open the
    /// browser has reconnected by itself, maybe to a restarted sidecar.
    errored: Cell<bool>,
    /// Events received after such a reopen, held until `/info` says the
    /// run is the same (applied) or new (dropped, and we start over).
    held: RefCell<Option<Vec<(String, String, String)>>>,
    conn: RefCell<Conn>,
    info: RefCell<Option<Info>>,
    replay: RefCell<Option<Replay>>,
    dirty: Cell<bool>,
    last_light: Cell<Option<Light>>,
    removed: Cell<bool>,
}

/// Everything the running page holds. Lives as long as the page.
struct App {
    ui: Ui,
    targets: RefCell<Vec<Rc<Target>>>,
    next_key: Cell<u32>,
    vp: Cell<Viewport>,
    chart_dirty: Cell<bool>,
    frame_pending: Cell<bool>,
    palette: Cell<Palette>,
    title: RefCell<String>,
    favicon: Cell<Option<Option<Light>>>,
    logged_draw_error: Cell<bool>,
    audio: RefCell<Option<web_sys::AudioContext>>,
}

/// Starts the page: reads the URL, follows its sidecars. Call once, after
/// the view is mounted.
pub fn start(ui: Ui) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let loc = window.location();
    let origin = loc.origin().unwrap_or_default();
    let parsed = PageState::parse(&loc.search().unwrap_or_default());
    let saved = storage()
        .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
        .map(|s| urlstate::saved_from_string(&s))
        .unwrap_or_default();
    let sidecars = urlstate::choose_sidecars(&parsed.state.sidecars, &saved, &origin);
    if !parsed.errors.is_empty() {
        ui.notice.set(Some(Notice {
            kind: "error",
            text: format!("Ignored in the page URL: {}", parsed.errors.join("; ")),
        }));
    }
    ui.history.set(parsed.state.history);
    let vp = Viewport::new(parsed.state.span);
    let this = Rc::new(App {
        ui,
        targets: RefCell::default(),
        next_key: Cell::new(1),
        vp: Cell::new(vp),
        chart_dirty: Cell::new(true),
        frame_pending: Cell::new(false),
        palette: Cell::new(read_palette()),
        title: RefCell::new(String::new()),
        favicon: Cell::new(None),
        logged_draw_error: Cell::new(false),
        audio: RefCell::new(None),
    });
    APP.with(|a| *a.borrow_mut() = Some(this.clone()));
    this.publish_chart_ui();

    let state = PageState {
        sidecars: sidecars.clone(),
        ..parsed.state
    };
    for s in sidecars {
        this.add_sidecar(s);
    }
    let mode = match state.effective_layout() {
        Layout::Single(i) => this
            .targets
            .borrow()
            .get(i)
            .map_or(ViewMode::Grid, |t| ViewMode::Single(t.key)),
        Layout::Grid => ViewMode::Grid,
    };
    ui.mode.set(mode);

    // Redraw on resize (also fires when devicePixelRatio changes with zoom)
    // and re-read the chart colours when the colour scheme flips.
    on_page_event(&window, "resize", || {
        if let Some(a) = app() {
            a.chart_dirty.set(true);
            a.schedule();
        }
    });
    if let Ok(Some(mq)) = window.match_media("(prefers-color-scheme: dark)") {
        on_page_event(&mq, "change", || {
            if let Some(a) = app() {
                a.palette.set(read_palette());
                a.chart_dirty.set(true);
                a.schedule();
            }
        });
    }
    crate::bench::install();
    this.sync_url();
    this.schedule();
}

/// Adds a listener that lives as long as the page.
fn on_page_event(target: &web_sys::EventTarget, name: &str, f: impl Fn() + 'static) {
    let c = Closure::<dyn Fn()>::new(f);
    if target
        .add_event_listener_with_callback(name, c.as_ref().unchecked_ref())
        .is_ok()
    {
        c.forget();
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn read_palette() -> Palette {
    let style = web_sys::window().and_then(|w| {
        let root = w.document()?.document_element()?;
        w.get_computed_style(&root).ok().flatten()
    });
    match style {
        Some(st) => Palette::from_css(|name| st.get_property_value(name).unwrap_or_default()),
        None => Palette::default(),
    }
}

/// Minutes to add to UTC for local time at unix µs `t`.
pub fn tz_offset(t_us: i64) -> i32 {
    let d = js_sys::Date::new(&JsValue::from_f64(t_us as f64 / 1000.0));
    -(d.get_timezone_offset() as i32)
}

/// `performance.now()` in ms.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

impl App {
    fn new_target(&self, label: String, source: Source, capacity: usize) -> Rc<Target> {
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        let conn = match source {
            Source::Sidecar(_) => Conn::Connecting,
            Source::File(_) => Conn::Replay { percent: 0 },
        };
        let src_text = match &source {
            Source::Sidecar(s) => s.base.clone(),
            Source::File(n) => format!("file: {n}"),
        };
        let tile = RwSignal::new(TileView {
            label: label.clone(),
            source: src_text,
            info: None,
            conn: conn.clone(),
            summary: Default::default(),
        });
        let t = Rc::new(Target {
            key,
            label,
            source,
            tui: TargetUi { key, tile },
            model: RefCell::new(Model::new(capacity)),
            resume: RefCell::default(),
            stream: RefCell::new(None),
            generation: Cell::new(0),
            errored: Cell::new(false),
            held: RefCell::new(None),
            conn: RefCell::new(conn),
            info: RefCell::new(None),
            replay: RefCell::new(None),
            dirty: Cell::new(true),
            last_light: Cell::new(None),
            removed: Cell::new(false),
        });
        self.targets.borrow_mut().push(t.clone());
        self.ui.targets.update(|v| v.push(t.tui));
        t
    }

    fn add_sidecar(&self, s: SidecarRef) {
        let cap = capacity_for(10.0, self.ui.history.get_untracked().secs());
        let t = self.new_target(s.label(), Source::Sidecar(s), cap);
        t.connect();
    }

    fn sidecars(&self) -> Vec<SidecarRef> {
        self.targets
            .borrow()
            .iter()
            .filter_map(|t| match &t.source {
                Source::Sidecar(s) => Some(s.clone()),
                Source::File(_) => None,
            })
            .collect()
    }

    fn save_sidecars(&self) {
        if let Some(st) = storage() {
            let _ = st.set_item(STORAGE_KEY, &urlstate::saved_to_string(&self.sidecars()));
        }
    }

    /// Writes the state into the address bar (no reload, no history entry).
    fn sync_url(&self) {
        let mode = self.ui.mode.get_untracked();
        let sidecars = self.sidecars();
        let layout = match mode {
            ViewMode::Grid => Some(Layout::Grid),
            ViewMode::Single(k) => {
                let ts = self.targets.borrow();
                let idx = ts
                    .iter()
                    .filter(|t| matches!(t.source, Source::Sidecar(_)))
                    .position(|t| t.key == k);
                Some(Layout::Single(idx.unwrap_or(0)))
            }
        };
        let st = PageState {
            sidecars,
            layout,
            span: self.vp.get().span().unwrap_or_default(),
            history: self.ui.history.get_untracked(),
        };
        let Some(w) = web_sys::window() else { return };
        let path = w.location().pathname().unwrap_or_default();
        let url = format!("{path}{}", st.to_query());
        if let Ok(h) = w.history() {
            let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&url));
        }
    }

    fn find(&self, key: u32) -> Option<Rc<Target>> {
        self.targets.borrow().iter().find(|t| t.key == key).cloned()
    }

    /// The target the detail chart shows.
    fn selected(&self) -> Option<Rc<Target>> {
        match self.ui.mode.get_untracked() {
            ViewMode::Single(k) => self.find(k),
            ViewMode::Grid => None,
        }
    }

    fn selected_newest(&self) -> Option<i64> {
        self.selected().and_then(|t| t.model.borrow().newest_us())
    }

    fn publish_chart_ui(&self) {
        let vp = self.vp.get();
        let c = ChartUi {
            span: vp.span(),
            following: vp.following(),
            y: vp.y,
        };
        if self.ui.chart.get_untracked() != c {
            self.ui.chart.set(c);
        }
        self.chart_dirty.set(true);
        self.schedule();
    }

    fn notice(&self, kind: &'static str, text: String) {
        self.ui.notice.set(Some(Notice { kind, text }));
    }

    fn handle(&self, c: Cmd) {
        let mut vp = self.vp.get();
        match c {
            Cmd::Add(raw) => match SidecarRef::parse(&raw) {
                Ok(s) if self.sidecars().contains(&s) => {
                    self.notice("info", format!("{} is already on the page", s.label()));
                }
                Ok(s) => {
                    let was_empty = self.targets.borrow().is_empty();
                    self.add_sidecar(s);
                    if was_empty {
                        if let Some(t) = self.targets.borrow().last() {
                            self.ui.mode.set(ViewMode::Single(t.key));
                        }
                    }
                    self.save_sidecars();
                    self.sync_url();
                }
                Err(e) => self.notice("error", format!("Cannot add the sidecar: {e}")),
            },
            Cmd::Remove(key) => {
                let removed = {
                    let mut ts = self.targets.borrow_mut();
                    ts.iter().position(|t| t.key == key).map(|i| ts.remove(i))
                };
                if let Some(t) = removed {
                    t.removed.set(true);
                    t.generation.set(t.generation.get().wrapping_add(1));
                    // Dropping the stream drops its listeners, which hold
                    // the target: the cycle ends here.
                    let s = t.stream.borrow_mut().take();
                    drop(s);
                    self.ui.targets.update(|v| v.retain(|x| x.key != key));
                    if self.ui.mode.get_untracked() == ViewMode::Single(key) {
                        let first = self.targets.borrow().first().map(|t| t.key);
                        self.ui
                            .mode
                            .set(first.map_or(ViewMode::Grid, ViewMode::Single));
                    }
                    self.save_sidecars();
                    self.sync_url();
                }
            }
            Cmd::Select(key) => {
                self.ui.mode.set(ViewMode::Single(key));
                self.sync_url();
            }
            Cmd::SingleFirst => {
                if !matches!(self.ui.mode.get_untracked(), ViewMode::Single(_)) {
                    let first = self.targets.borrow().first().map(|t| t.key);
                    if let Some(k) = first {
                        self.ui.mode.set(ViewMode::Single(k));
                    }
                    self.sync_url();
                }
            }
            Cmd::Grid => {
                self.ui.mode.set(ViewMode::Grid);
                self.sync_url();
            }
            Cmd::Span(s) => {
                vp.set_span(s);
                self.vp.set(vp);
                self.sync_url();
            }
            Cmd::TogglePause => {
                if vp.following() {
                    if let Some(n) = self.selected_newest() {
                        vp.pause(n);
                    }
                } else {
                    vp.resume();
                }
                self.vp.set(vp);
            }
            Cmd::Follow => {
                vp.resume();
                self.vp.set(vp);
            }
            Cmd::YAxis(y) => {
                vp.y = y;
                self.vp.set(vp);
            }
            Cmd::Zoom { factor, at } => {
                if let Some(n) = self.selected_newest() {
                    vp.zoom(factor, at, n);
                    self.vp.set(vp);
                }
            }
            Cmd::Pan(frac) => {
                if let Some(n) = self.selected_newest() {
                    vp.pan(frac, n);
                    self.vp.set(vp);
                }
            }
            Cmd::Jump {
                key,
                start_us,
                end_us,
            } => {
                self.ui.mode.set(ViewMode::Single(key));
                vp.jump_to(start_us, end_us);
                self.vp.set(vp);
                self.sync_url();
                // Bring the chart into view.
                if let Some(c) = document().and_then(|d| d.get_element_by_id("detail")) {
                    c.scroll_into_view();
                }
            }
            Cmd::Reconnect(key) => {
                if let Some(t) = self.find(key) {
                    t.resume.borrow_mut().backoff.reset();
                    t.connect();
                }
            }
            Cmd::Import(file) => self.import(file),
            Cmd::Export(key, kind) => {
                if let Some(t) = self.find(key) {
                    t.export(kind);
                }
            }
            Cmd::Alerts(on) => {
                self.ui.alerts.set(on);
                if on {
                    // Asked only here, on the user's click.
                    if let Ok(p) = web_sys::Notification::request_permission() {
                        let _ = p;
                    }
                    if self.audio.borrow().is_none() {
                        *self.audio.borrow_mut() = web_sys::AudioContext::new().ok();
                    }
                }
            }
            Cmd::History(h) => {
                self.ui.history.set(h);
                for t in self.targets.borrow().iter() {
                    if matches!(t.source, Source::Sidecar(_)) {
                        let iv = t.info.borrow().as_ref().map_or(10.0, |i| i.interval_ms);
                        t.model
                            .borrow_mut()
                            .set_capacity(capacity_for(iv, h.secs()));
                        t.dirty.set(true);
                    }
                }
                self.sync_url();
            }
        }
        self.publish_chart_ui();
    }

    fn import(&self, file: web_sys::File) {
        let name = file.name();
        if file.size() > replay::MAX_BYTES {
            self.notice(
                "error",
                format!("Cannot import {name}: the file is larger than 256 MB"),
            );
            return;
        }
        let speed = self.ui.speed.get_untracked();
        spawn_local(async move {
            let text = wasm_bindgen_futures::JsFuture::from(file.text()).await;
            let Some(a) = app() else { return };
            let text = match text.ok().and_then(|t| t.as_string()) {
                Some(t) => t,
                None => {
                    a.notice("error", format!("Cannot read {name}"));
                    return;
                }
            };
            match replay::parse(&name, &text) {
                Ok(events) => {
                    let samples = events
                        .iter()
                        .filter(|e| matches!(e, Event::Sample(_)))
                        .count();
                    let cap = samples.clamp(1_000, MAX_CAPACITY);
                    let t = a.new_target(name.clone(), Source::File(name.clone()), cap);
                    *t.replay.borrow_mut() = Some(Replay::new(events, speed));
                    a.ui.mode.set(ViewMode::Single(t.key));
                    a.vp.set(Viewport {
                        y: a.vp.get().y,
                        ..Viewport::new(a.vp.get().span().unwrap_or_default())
                    });
                    a.notice(
                        "info",
                        format!(
                            "Replaying {name} ({samples} samples, {}).",
                            match speed {
                                Speed::Instant => "instantly",
                                Speed::X1 => "at 1× speed",
                                Speed::X10 => "at 10× speed",
                            }
                        ),
                    );
                    a.publish_chart_ui();
                }
                Err(e) => a.notice("error", format!("Cannot import {e}")),
            }
        });
    }

    /// Asks for one render on the next animation frame; events arriving
    /// before it are batched into it.
    fn schedule(&self) {
        if self.frame_pending.replace(true) {
            return;
        }
        request_animation_frame(|| {
            if let Some(a) = app() {
                a.frame_pending.set(false);
                a.render();
            }
        });
    }

    fn render(&self) {
        let targets: Vec<Rc<Target>> = self.targets.borrow().clone();
        let mut again = false;
        let now = now_ms();
        for t in &targets {
            again |= t.step_replay(now);
        }
        let mode = self.ui.mode.get_untracked();
        let mut any_dirty = false;
        let alerts = self.ui.alerts.get_untracked();
        for t in &targets {
            let dirty = t.dirty.get();
            any_dirty |= dirty;
            if dirty {
                let light = t.publish();
                let prev = t.last_light.replace(light);
                if alerts && light == Some(Light::Red) && prev != Some(Light::Red) {
                    if let Source::Sidecar(_) = t.source {
                        self.alert(t);
                    }
                }
            }
            let draw_main = mode == ViewMode::Single(t.key);
            if draw_main {
                if dirty || self.chart_dirty.get() {
                    self.draw_main(t);
                }
            } else if mode == ViewMode::Grid {
                self.draw_spark(t, dirty || self.chart_dirty.get());
            }
            t.dirty.set(false);
        }
        self.chart_dirty.set(false);
        if any_dirty {
            self.publish_overall(&targets);
        }
        if again {
            self.schedule();
        }
    }

    fn publish_overall(&self, targets: &[Rc<Target>]) {
        let overall = format::worst(targets.iter().map(|t| t.last_light.get()));
        if self.ui.overall.get_untracked() != overall {
            self.ui.overall.set(overall);
        }
        let t = format::title(overall);
        if *self.title.borrow() != t {
            if let Some(d) = document() {
                d.set_title(&t);
            }
            *self.title.borrow_mut() = t;
        }
        if self.favicon.get() != Some(overall) {
            self.favicon.set(Some(overall));
            let link = document()
                .and_then(|d| d.query_selector("link[rel~='icon']").ok().flatten())
                .and_then(|e| e.dyn_into::<web_sys::HtmlLinkElement>().ok());
            if let Some(l) = link {
                l.set_href(&format::favicon(overall));
            }
        }
        let mut rows: Vec<format::LogRow> = Vec::new();
        for t in targets {
            let m = t.model.borrow();
            let label = t
                .info
                .borrow()
                .as_ref()
                .map_or_else(|| t.label.clone(), |i| i.target.clone());
            rows.extend(
                m.migrations()
                    .iter()
                    .rev()
                    .take(200)
                    .map(|mg| format::log_row(t.key, &label, mg, &tz_offset)),
            );
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.start_us));
        rows.truncate(200);
        if self.ui.log.with_untracked(|r| *r != rows) {
            self.ui.log.set(rows);
        }
    }

    fn alert(&self, t: &Target) {
        let what = t.tui.tile.with_untracked(|v| v.summary.headline.clone());
        let target = t
            .info
            .borrow()
            .as_ref()
            .map_or_else(|| t.label.clone(), |i| i.target.clone());
        if web_sys::Notification::permission() == web_sys::NotificationPermission::Granted {
            let opts = web_sys::NotificationOptions::new();
            opts.set_body(&what);
            let _ = web_sys::Notification::new_with_options(
                &format!("migwatch: migration of {target}"),
                &opts,
            );
        }
        if let Some(ctx) = self.audio.borrow().as_ref() {
            beep(ctx);
        }
    }

    fn draw_main(&self, t: &Target) {
        let Some(canvas) = canvas_by_id("chart") else {
            return;
        };
        let (columns, dpr) = fit_canvas(&canvas);
        let vp = self.vp.get();
        let frame = t.model.borrow().frame(&vp, columns);
        let opts = ChartOpts {
            y: vp.y,
            compact: false,
            dpr,
            tz: &tz_offset,
        };
        let drawn = match chart::draw(canvas.clone(), &frame, &self.palette.get(), &opts) {
            Ok(()) => frame.points,
            Err(e) => {
                if !self.logged_draw_error.replace(true) {
                    leptos::logging::error!("chart: {e}");
                }
                0
            }
        };
        let (samples, lost) = t
            .tui
            .tile
            .with_untracked(|v| (v.summary.samples, v.summary.lost));
        let set = |k: &str, v: String| {
            let _ = canvas.set_attribute(k, &v);
        };
        set("data-key", t.key.to_string());
        set("data-samples", samples.to_string());
        set("data-lost", lost.to_string());
        set("data-drawn", drawn.to_string());
        set("data-vertices", frame.vertices().to_string());
        set("data-from", frame.from_us.to_string());
        set("data-to", frame.to_us.to_string());
        set("data-bands", frame.bands.len().to_string());
        let rarp = frame
            .announces
            .iter()
            .filter(|m| m.kind == AnnounceKind::Rarp)
            .count();
        set("data-announces", frame.announces.len().to_string());
        set("data-rarp", rarp.to_string());
        set("data-garp", (frame.announces.len() - rarp).to_string());
        self.draw_clock(t, &frame);
    }

    /// The clock track under the main chart, over the same window.
    fn draw_clock(&self, t: &Target, frame: &crate::store::Frame) {
        let Some(canvas) = canvas_by_id("clock-chart") else {
            return;
        };
        let (columns, dpr) = fit_canvas(&canvas);
        let m = t.model.borrow();
        let cf = m.clock_frame(frame, columns);
        let opts = ChartOpts {
            y: YAxis::Auto,
            compact: false,
            dpr,
            tz: &tz_offset,
        };
        let drawn = match chart::draw_clock(canvas.clone(), &cf, &self.palette.get(), &opts) {
            Ok(()) => cf.readings,
            Err(e) => {
                if !self.logged_draw_error.replace(true) {
                    leptos::logging::error!("clock chart: {e}");
                }
                0
            }
        };
        let set = |k: &str, v: String| {
            let _ = canvas.set_attribute(k, &v);
        };
        let ms = |v: f64| {
            if cf.readings > 0 && v.is_finite() {
                format!("{v:.1}")
            } else {
                String::new()
            }
        };
        set("data-key", t.key.to_string());
        set("data-clock-readings", m.signals.totals().clock.to_string());
        set("data-drawn", drawn.to_string());
        set("data-low-ms", ms(cf.low_ms));
        set("data-high-ms", ms(cf.high_ms));
        set(
            "data-clock-step-ms",
            cf.step_us
                .map(|s| format!("{:.1}", s as f64 / 1000.0))
                .unwrap_or_default(),
        );
        set("data-announces", cf.announces.len().to_string());
        set("data-from", cf.from_us.to_string());
        set("data-to", cf.to_us.to_string());
    }

    fn draw_spark(&self, t: &Target, dirty: bool) {
        let Some(canvas) = canvas_by_id(&format!("spark-{}", t.key)) else {
            return;
        };
        if canvas.client_width() == 0 {
            return;
        }
        let (columns, dpr) = fit_canvas(&canvas);
        if !dirty && canvas.get_attribute("data-drawn").is_some() {
            return;
        }
        let frame = t.model.borrow().frame(&Viewport::new(Span::S30), columns);
        let opts = ChartOpts {
            y: YAxis::Auto,
            compact: true,
            dpr,
            tz: &tz_offset,
        };
        if chart::draw(canvas.clone(), &frame, &self.palette.get(), &opts).is_ok() {
            let _ = canvas.set_attribute("data-drawn", &frame.points.to_string());
        }
    }
}

/// A short two-tone beep.
fn beep(ctx: &web_sys::AudioContext) {
    let run = || -> Result<(), JsValue> {
        let _ = ctx.resume();
        let osc = ctx.create_oscillator()?;
        let gain = ctx.create_gain()?;
        let t = ctx.current_time();
        osc.frequency().set_value_at_time(880.0, t)?;
        osc.frequency().set_value_at_time(660.0, t + 0.15)?;
        gain.gain().set_value_at_time(0.15, t)?;
        gain.gain().linear_ramp_to_value_at_time(0.0, t + 0.35)?;
        osc.connect_with_audio_node(&gain)?;
        gain.connect_with_audio_node(&ctx.destination())?;
        osc.start()?;
        osc.stop_with_when(t + 0.4)?;
        Ok(())
    };
    let _ = run();
}

fn document() -> Option<web_sys::Document> {
    web_sys::window()?.document()
}

fn canvas_by_id(id: &str) -> Option<HtmlCanvasElement> {
    document()?
        .get_element_by_id(id)?
        .dyn_into::<HtmlCanvasElement>()
        .ok()
}

/// Sets the canvas backing store to its CSS size × devicePixelRatio (only
/// when that changed: resizing clears it). Returns the backing width and
/// the ratio.
pub fn fit_canvas(canvas: &HtmlCanvasElement) -> (u32, f64) {
    let dpr = web_sys::window()
        .map(|w| w.device_pixel_ratio())
        .filter(|d| d.is_finite() && *d > 0.0)
        .unwrap_or(1.0);
    let w = (f64::from(canvas.client_width()) * dpr).round().max(1.0) as u32;
    let h = (f64::from(canvas.client_height()) * dpr).round().max(1.0) as u32;
    if canvas.width() != w {
        canvas.set_width(w);
        let _ = canvas.remove_attribute("data-drawn");
    }
    if canvas.height() != h {
        canvas.set_height(h);
        let _ = canvas.remove_attribute("data-drawn");
    }
    (w, dpr)
}

/// Saves `text` as a download named `name`.
fn download(name: &str, text: &str, mime: &str) -> Result<(), JsValue> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let a = document()
        .ok_or("no document")?
        .create_element("a")?
        .dyn_into::<web_sys::HtmlAnchorElement>()?;
    a.set_href(&url);
    a.set_download(name);
    a.click();
    set_timeout(
        move || {
            let _ = web_sys::Url::revoke_object_url(&url);
        },
        Duration::from_secs(10),
    );
    Ok(())
}

impl Target {
    fn sidecar(&self) -> Option<&SidecarRef> {
        match &self.source {
            Source::Sidecar(s) => Some(s),
            Source::File(_) => None,
        }
    }

    fn mark(&self) {
        self.dirty.set(true);
        schedule();
    }

    fn set_conn(&self, c: Conn) {
        if *self.conn.borrow() != c {
            *self.conn.borrow_mut() = c;
            self.mark();
        }
    }

    /// Recomputes the tile; returns the light.
    fn publish(&self) -> Option<Light> {
        let conn = self.conn.borrow().clone();
        let mut summary = self.model.borrow().summary(conn.has_data(), &tz_offset);
        summary.last_id = self.resume.borrow().last_id();
        let light = summary.light;
        let info = self.info.borrow().clone();
        let changed = self
            .tui
            .tile
            .with_untracked(|v| v.summary != summary || v.conn != conn || v.info != info);
        if changed {
            self.tui.tile.update(|v| {
                v.summary = summary;
                v.conn = conn;
                v.info = info;
            });
        }
        light
    }

    /// Feeds the replay's due events; returns whether more are to come.
    fn step_replay(&self, now: f64) -> bool {
        let mut r = self.replay.borrow_mut();
        let Some(r) = r.as_mut() else { return false };
        if r.done() {
            return false;
        }
        {
            let mut m = self.model.borrow_mut();
            for ev in r.due(now) {
                m.apply(ev);
            }
            if r.done() {
                m.finish();
            }
        }
        let percent = (r.progress() * 100.0).floor() as u8;
        *self.conn.borrow_mut() = Conn::Replay { percent };
        self.dirty.set(true);
        !r.done()
    }

    fn export(&self, kind: ExportKind) {
        let m = self.model.borrow();
        let label = self
            .info
            .borrow()
            .as_ref()
            .map_or_else(|| self.label.clone(), |i| i.target.clone());
        let t = m.newest_us().unwrap_or(0);
        let (what, ext, mime, text) = match kind {
            ExportKind::TraceJsonl => ("trace", "jsonl", "application/x-ndjson", m.export_jsonl()),
            ExportKind::TraceCsv => ("trace", "csv", "text/csv", m.export_csv()),
            ExportKind::MigrationsJsonl => (
                "migrations",
                "jsonl",
                "application/x-ndjson",
                m.migrations_jsonl(),
            ),
            ExportKind::MigrationsCsv => (
                "migrations",
                "csv",
                "text/csv",
                m.migrations_csv(&tz_offset),
            ),
        };
        let name = replay::export_name(what, &label, t, ext);
        if let Err(e) = download(&name, &text, mime) {
            leptos::logging::error!("export: {e:?}");
        }
    }

    /// Fetches `/info`, then opens the stream as the resume plan says.
    fn connect(self: &Rc<Self>) {
        let Some(s) = self.sidecar().cloned() else {
            return;
        };
        if self.removed.get() {
            return;
        }
        let g = self.generation.get().wrapping_add(1);
        self.generation.set(g);
        if let Some(old) = self.stream.borrow().as_ref() {
            old.close();
        }
        let this = self.clone();
        spawn_local(async move {
            let info = fetch_info(&s.info_url()).await;
            if this.generation.get() != g || this.removed.get() {
                return;
            }
            match info {
                Ok(info) => this.open(&s, info, g),
                Err(e) => this.fail(format!("sidecar unreachable: {e}")),
            }
        });
    }

    fn open(self: &Rc<Self>, s: &SidecarRef, info: Info, g: u32) {
        let plan = self.resume.borrow_mut().plan(&info.run_id);
        {
            let mut m = self.model.borrow_mut();
            if plan.reset {
                m.new_run();
            }
            let h = app().map_or(3600.0, |a| a.ui.history.get_untracked().secs());
            m.set_capacity(capacity_for(info.interval_ms, h));
            m.set_announce_channel(info.capture_iface.is_some());
        }
        *self.info.borrow_mut() = Some(info);
        *self.held.borrow_mut() = None;
        let this = self.clone();
        let on: Rc<dyn Fn(StreamEvent)> = Rc::new(move |ev| this.on_stream(g, ev));
        match Stream::open(&s.events_url(plan.since), on) {
            Ok(st) => {
                // Replaces (and closes) the previous stream. Safe here: this
                // runs from a future, never inside that stream's listener.
                *self.stream.borrow_mut() = Some(st);
                self.errored.set(false);
            }
            Err(e) => self.fail(format!("cannot open the event stream: {e}")),
        }
        self.mark();
    }

    /// Gives up on the current attempt and tries again after the backoff.
    fn fail(self: &Rc<Self>, reason: String) {
        if let Some(s) = self.stream.borrow().as_ref() {
            s.close();
        }
        let delay = self.resume.borrow_mut().backoff.next_delay();
        self.set_conn(Conn::Failed {
            reason,
            retry_ms: Some(delay),
        });
        let g = self.generation.get();
        let this = self.clone();
        set_timeout(
            move || {
                if this.generation.get() == g {
                    this.connect();
                }
            },
            Duration::from_millis(u64::from(delay)),
        );
    }

    /// After the browser reconnected by itself: if the sidecar restarted,
    /// start over with the new run; if not, apply what came meanwhile.
    fn verify_run(self: &Rc<Self>, g: u32) {
        let Some(s) = self.sidecar().cloned() else {
            return;
        };
        let this = self.clone();
        spawn_local(async move {
            let info = fetch_info(&s.info_url()).await;
            if this.generation.get() != g || this.removed.get() {
                return;
            }
            match info {
                Ok(info) if this.resume.borrow().is_new_run(&info.run_id) => this.connect(),
                // Same run (or /info failed but the stream is open): the
                // held events are this run's.
                _ => {
                    let held = this.held.borrow_mut().take().unwrap_or_default();
                    for (name, data, id) in held {
                        this.take_event(&name, &data, &id);
                    }
                    this.mark();
                }
            }
        });
    }

    fn take_event(&self, name: &str, data: &str, id: &str) {
        self.resume.borrow_mut().saw_id(id);
        if name.is_empty() {
            self.model.borrow_mut().unnamed();
        } else {
            self.model.borrow_mut().ingest(name, data);
        }
    }

    fn on_stream(self: &Rc<Self>, g: u32, ev: StreamEvent) {
        if self.generation.get() != g || self.removed.get() {
            return;
        }
        match ev {
            StreamEvent::Open => {
                self.resume.borrow_mut().backoff.reset();
                self.set_conn(Conn::Live);
                if self.errored.replace(false) {
                    *self.held.borrow_mut() = Some(Vec::new());
                    self.verify_run(g);
                }
            }
            StreamEvent::Error { closed: true } => {
                self.fail("the sidecar refused or closed the event stream".into());
            }
            StreamEvent::Error { closed: false } => {
                self.errored.set(true);
                self.set_conn(Conn::Reconnecting);
            }
            StreamEvent::Named { kind, data, id } => {
                if let Some(h) = self.held.borrow_mut().as_mut() {
                    h.push((kind.name().to_string(), data, id));
                    return;
                }
                self.take_event(kind.name(), &data, &id);
                self.mark();
            }
            StreamEvent::Unnamed { id } => {
                if let Some(h) = self.held.borrow_mut().as_mut() {
                    h.push((String::new(), String::new(), id));
                    return;
                }
                self.take_event("", "", &id);
                self.mark();
            }
        }
    }
}
