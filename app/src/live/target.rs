//! One watched target: where its events come from, its connection (info,
//! stream with history, resume after a reconnect or restart), the
//! sidecar's own migration list, and what its tile shows.

use super::draw::{download, tz_offset};
use super::{app, schedule};
use crate::cmd::ExportKind;
use crate::fleet::{grid_order, TargetRef};
use crate::format;
use crate::log::{SidecarRecord, SidecarRecords};
use crate::model::Model;
use crate::overview::Remote;
use crate::replay::{self, Replay};
use crate::source::{fetch_json, info_from_json, Conn, FetchError, Resume, Stream, StreamEvent};
use crate::store::capacity_for;
use crate::ui::TargetUi;
use leptos::prelude::*;
use leptos::task::spawn_local;
use migwatch_shared::{Info, Light};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// Where a target's events come from.
pub(super) enum Source {
    /// A sidecar's target.
    Sidecar(TargetRef),
    /// An imported trace, or the bundled demo recording.
    File(String),
}

/// One watched target.
pub(super) struct Target {
    pub(super) key: u32,
    pub(super) source: RefCell<Source>,
    pub(super) tui: TargetUi,
    pub(super) model: RefCell<Model>,
    pub(super) resume: RefCell<Resume>,
    pub(super) stream: RefCell<Option<Stream>>,
    /// Bumped on every connection attempt, so late answers to an older
    /// attempt (a slow `/info`, a stale stream) are ignored.
    pub(super) generation: Cell<u32>,
    /// The stream had an error since it last opened: on its next open the
    /// browser has reconnected by itself, maybe to a restarted sidecar.
    errored: Cell<bool>,
    /// Events received after such a reopen, held until `/info` says the
    /// run is the same (applied) or new (dropped, and we start over).
    held: RefCell<Option<Vec<(String, String, String)>>>,
    pub(super) conn: RefCell<Conn>,
    pub(super) info: RefCell<Option<Info>>,
    pub(super) replay: RefCell<Option<Replay>>,
    pub(super) dirty: Cell<bool>,
    pub(super) last_light: Cell<Option<Light>>,
    pub(super) removed: Cell<bool>,
    /// A sidecar's placeholder until `/targets` answers: connecting means
    /// asking for the target list.
    pub(super) discovering: Cell<bool>,
    /// The sidecar came from the page's own origin, not from the user: if
    /// it turns out not to be a sidecar, it goes away instead of retrying.
    pub(super) implicit: Cell<bool>,
    /// It may hold one of the browser's connections to its sidecar.
    pub(super) streamed: Cell<bool>,
    /// The sidecar's own light, reasons and sparkline (`/overview`, or
    /// `/metrics` from an older sidecar), for a target without stream.
    pub(super) remote: RefCell<Option<Remote>>,
    /// The sidecar's own detected events (`/migrations`), newest first.
    pub(super) records: RefCell<Vec<SidecarRecord>>,
    /// When its tile was last recomputed, `performance.now()` ms.
    pub(super) published_ms: Cell<f64>,
    /// When its sparkline was last drawn, ms.
    pub(super) spark_ms: Cell<f64>,
}

impl Target {
    pub(super) fn new(key: u32, source: Source, tui: TargetUi, cap: usize) -> Self {
        let conn = match source {
            Source::Sidecar(_) => Conn::Connecting,
            Source::File(_) => Conn::Replay { percent: 0 },
        };
        Target {
            key,
            source: RefCell::new(source),
            tui,
            model: RefCell::new(Model::new(cap)),
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
            discovering: Cell::new(false),
            implicit: Cell::new(false),
            streamed: Cell::new(true),
            remote: RefCell::new(None),
            records: RefCell::default(),
            published_ms: Cell::new(f64::NEG_INFINITY),
            spark_ms: Cell::new(f64::NEG_INFINITY),
        }
    }

    /// The sidecar target it follows (none for a file).
    pub(super) fn target_ref(&self) -> Option<TargetRef> {
        match &*self.source.borrow() {
            Source::Sidecar(t) => Some(t.clone()),
            Source::File(_) => None,
        }
    }

    /// Its name in `overlay=` (what its tile shows: [`TileView::overlay_name`]).
    ///
    /// [`TileView::overlay_name`]: crate::ui::TileView::overlay_name
    pub(super) fn overlay_name(&self) -> String {
        self.tui.tile.with_untracked(|v| v.overlay_name())
    }

    /// The name shown for it.
    pub(super) fn title(&self) -> String {
        self.tui.tile.with_untracked(|v| v.title())
    }

    pub(super) fn mark(&self) {
        self.dirty.set(true);
        schedule();
    }

    pub(super) fn set_conn(&self, c: Conn) {
        if *self.conn.borrow() != c {
            *self.conn.borrow_mut() = c;
            self.mark();
        }
    }

    /// Recomputes the tile (`index`: its place in the page's list);
    /// returns the light.
    pub(super) fn publish(&self, index: usize) -> Option<Light> {
        let conn = self.conn.borrow().clone();
        let mut summary = self.model.borrow().summary(conn.has_data(), &tz_offset);
        summary.last_id = self.resume.borrow().last_id();
        if conn == Conn::Limited {
            let remote = self.remote.borrow().clone().unwrap_or_default();
            summary.light = remote.light;
            summary.headline = match (remote.light, remote.reasons.is_empty()) {
                (Some(l), true) => format!(
                    "{}: the sidecar's own light; open this target for its chart.",
                    format::light_word(Some(l))
                ),
                (Some(l), false) => format!(
                    "{}: {} (the sidecar's own detector); open this target for its chart.",
                    format::light_word(Some(l)),
                    remote.reasons.join(", ")
                ),
                (None, _) => {
                    "No live stream here, and the sidecar has no light for it yet.".to_string()
                }
            };
            summary.remote_from = if remote.spark.is_some() {
                "overview"
            } else {
                "metrics"
            };
            summary.remote_spark = remote.spark;
        }
        let light = summary.light;
        let info = self.info.borrow().clone();
        let name = self.target_ref().and_then(|t| t.name).unwrap_or_default();
        let order = grid_order(light, index);
        let changed = self.tui.tile.with_untracked(|v| {
            v.summary != summary
                || v.conn != conn
                || v.info != info
                || v.name != name
                || v.order != order
        });
        if changed {
            self.tui.tile.update(|v| {
                v.summary = summary;
                v.conn = conn;
                v.info = info;
                v.name = name;
                v.order = order;
            });
        }
        light
    }

    /// Feeds the replay's due events; returns whether more are to come.
    pub(super) fn step_replay(&self, now: f64) -> bool {
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

    pub(super) fn export(&self, kind: ExportKind) {
        let m = self.model.borrow();
        let label = self.title();
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

    /// Stops streaming (the browser's connections to its sidecar are
    /// needed by other targets); the light comes from `/metrics` meanwhile.
    pub(super) fn park(&self) {
        self.streamed.set(false);
        self.generation.set(self.generation.get().wrapping_add(1));
        let s = self.stream.borrow_mut().take();
        drop(s);
        self.set_conn(Conn::Limited);
    }

    /// Asks for the target list (a placeholder), or fetches `/info` and
    /// then opens the stream as the resume plan says.
    pub(super) fn connect(self: &Rc<Self>) {
        if self.removed.get() {
            return;
        }
        if self.discovering.get() {
            if let Some(a) = app() {
                a.discover(self.clone());
            }
            return;
        }
        let Some(tr) = self.target_ref() else {
            return;
        };
        if !self.streamed.get() {
            self.set_conn(Conn::Limited);
            return;
        }
        let g = self.generation.get().wrapping_add(1);
        self.generation.set(g);
        if let Some(old) = self.stream.borrow().as_ref() {
            old.close();
        }
        let this = self.clone();
        spawn_local(async move {
            let info = fetch_json(&tr.info_url(), info_from_json).await;
            if this.generation.get() != g || this.removed.get() {
                return;
            }
            match info {
                Ok(info) => this.open(&tr, info, g),
                Err(FetchError::Status(404) | FetchError::Decode(_)) if this.implicit.get() => {
                    if let Some(a) = app() {
                        a.not_a_sidecar(this.key);
                    }
                }
                Err(e) => this.fail(format!("sidecar unreachable: {}", e.words("/info"))),
            }
        });
    }

    /// Opens the stream: after the last event id on a resume, else from
    /// `since=0`, everything the sidecar still holds (its `--history`, 10
    /// minutes by default), so a late visitor sees earlier migrations.
    pub(super) fn open(self: &Rc<Self>, tr: &TargetRef, info: Info, g: u32) {
        let plan = self.resume.borrow_mut().plan(&info.run_id);
        {
            let mut m = self.model.borrow_mut();
            if plan.reset {
                m.new_run();
            }
            let cap = app().map_or(capacity_for(info.interval_ms, 3600.0), |a| {
                a.capacity(info.interval_ms)
            });
            m.set_capacity(cap);
            m.apply_info(&info);
        }
        *self.info.borrow_mut() = Some(info);
        *self.held.borrow_mut() = None;
        let this = self.clone();
        let on: Rc<dyn Fn(StreamEvent)> = Rc::new(move |ev| this.on_stream(g, ev));
        match Stream::open(&tr.events_url(plan.since.unwrap_or(0)), on) {
            Ok(st) => {
                // Replaces (and closes) the previous stream. Safe here: this
                // runs from a future, never inside that stream's listener.
                *self.stream.borrow_mut() = Some(st);
                self.errored.set(false);
            }
            Err(e) => self.fail(format!("cannot open the event stream: {e}")),
        }
        self.fetch_records(tr.clone(), g);
        self.mark();
    }

    /// The sidecar's own detected events (older sidecars answer 404: the
    /// page's own detection is all there is then).
    fn fetch_records(self: &Rc<Self>, tr: TargetRef, g: u32) {
        let this = self.clone();
        spawn_local(async move {
            let got = fetch_json(&tr.migrations_url(), SidecarRecords::from_json).await;
            if this.generation.get() != g || this.removed.get() {
                return;
            }
            if let Ok(m) = got {
                *this.records.borrow_mut() = m.migrations;
                this.mark();
            }
        });
    }

    /// Gives up on the current attempt and tries again after the backoff.
    pub(super) fn fail(self: &Rc<Self>, reason: String) {
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
        let Some(tr) = self.target_ref() else {
            return;
        };
        let this = self.clone();
        spawn_local(async move {
            let info = fetch_json(&tr.info_url(), info_from_json).await;
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
