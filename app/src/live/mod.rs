//! The running page: its targets, the commands it carries out, and the
//! render step that runs at most once per animation frame.
//!
//! State flow: `Stream` listener → [`crate::model::Model::ingest`] (store +
//! detector) → `schedule` → on the next animation frame `render` feeds due
//! replay events, recomputes each changed target's
//! [`crate::model::Summary`], redraws the charts that changed and sets the
//! overall light, the title, the favicon and the event log. Connection
//! changes take the same path because the light depends on them.
//!
//! `target` holds one target's connection, `fleet` a sidecar's target
//! list and the connection budget, `eventlog` the event log and what
//! this browser remembers of it, `commands` the user's commands,
//! `demo` the bundled recording, `draw` the canvases.

#[cfg(feature = "bench")]
pub mod bench_hooks;
mod commands;
mod demo;
mod draw;
mod eventlog;
mod fleet;
mod target;

pub use draw::{fit_canvas, now_ms, tz_offset};

use crate::chart::Palette;
use crate::format;
use crate::history::{self, History};
use crate::ui::{ChartUi, Notice, TargetUi, TileView, Ui, ViewMode};
use crate::urlstate::{self, Layout, PageState, SidecarRef};
use crate::viewport::Viewport;
use draw::{document, read_palette};
use leptos::prelude::*;
use migwatch_shared::Light;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use target::{Source, Target};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// localStorage key of the sidecar list.
const STORAGE_KEY: &str = "migwatch.sidecars";

/// With more targets than this, a tile that is not the one in detail is
/// recomputed at most every [`SLOW_TILE_MS`] and its sparkline redrawn at
/// most every [`SPARK_MS`]: a hundred tiles at 60 frames a second would
/// not fit the 8 ms frame budget, and nobody reads a tile faster.
const FEW_TARGETS: usize = 8;
/// See [`FEW_TARGETS`], ms.
const SLOW_TILE_MS: f64 = 200.0;
/// See [`FEW_TARGETS`], ms.
const SPARK_MS: f64 = 500.0;

thread_local! {
    static APP: RefCell<Option<Rc<App>>> = const { RefCell::new(None) };
}

fn app() -> Option<Rc<App>> {
    APP.with(|a| a.borrow().clone())
}

/// Asks for one render on the next animation frame.
fn schedule() {
    if let Some(a) = app() {
        a.schedule();
    }
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
    /// Sidecars (base URLs) whose `/metrics` is being polled.
    polling: RefCell<Vec<String>>,
    /// The URL's selection (sidecar index, target name), until the
    /// sidecar's target list has arrived.
    pending_sel: RefCell<Option<(usize, Option<String>)>>,
    /// The URL chose grid or single: discovery must not change it.
    layout_given: Cell<bool>,
    /// The event log rows this browser remembers (`localStorage`).
    history: RefCell<History>,
    /// The page's and the sidecars' rows last noted in `history`.
    noted: RefCell<Vec<format::LogRow>>,
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
    let demo = parsed.state.demo;
    let sidecars = if demo {
        Vec::new()
    } else {
        urlstate::choose_sidecars(&parsed.state.sidecars, &saved, &origin)
    };
    let implicit = parsed.state.sidecars.is_empty() && saved.is_empty();
    if !parsed.errors.is_empty() {
        ui.notice.set(Some(Notice {
            kind: "error",
            text: format!("Ignored in the page URL: {}", parsed.errors.join("; ")),
        }));
    }
    ui.history.set(parsed.state.history);
    ui.filter.set(parsed.state.filter.clone());
    ui.overlay.set(parsed.state.overlay.clone());
    let mut vp = Viewport::new(parsed.state.span);
    if let Some((a, b)) = parsed.state.range {
        vp.jump_to(a.saturating_mul(1000), b.saturating_mul(1000));
    }
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
        polling: RefCell::default(),
        pending_sel: RefCell::new(None),
        layout_given: Cell::new(parsed.state.layout.is_some()),
        history: RefCell::new(
            storage()
                .and_then(|s| s.get_item(history::STORAGE_KEY).ok().flatten())
                .map(|s| History::from_text(&s))
                .unwrap_or_default(),
        ),
        noted: RefCell::default(),
    });
    APP.with(|a| *a.borrow_mut() = Some(this.clone()));
    crate::cmd::set_handler(|c| {
        if let Some(a) = app() {
            a.handle(c);
        }
    });
    this.publish_chart_ui();

    let state = PageState {
        sidecars: sidecars.clone(),
        ..parsed.state
    };
    for s in sidecars {
        this.add_sidecar(s, implicit);
    }
    let mode = match state.effective_layout() {
        Layout::Single(i) => {
            *this.pending_sel.borrow_mut() = Some((i, state.target.clone()));
            this.targets
                .borrow()
                .get(i)
                .map_or(ViewMode::Grid, |t| ViewMode::Single(t.key))
        }
        Layout::Grid => ViewMode::Grid,
    };
    ui.mode.set(mode);
    if demo || this.targets.borrow().is_empty() {
        ui.no_sidecar.set(true);
    }
    if demo {
        this.start_demo();
    }

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
    // The welcome words are static HTML (no wasm weight): move them in.
    if let Some(d) = document() {
        if let (Some(slot), Some(body)) = (
            d.get_element_by_id("welcome"),
            d.get_element_by_id("welcome-body"),
        ) {
            let _ = body.remove_attribute("hidden");
            let _ = slot.append_child(&body);
        }
        if let Some(b) = d.get_element_by_id("demo") {
            on_page_event(&b, "click", || crate::cmd::cmd(crate::cmd::Cmd::Demo));
        }
    }
    #[cfg(feature = "bench")]
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

impl App {
    /// A new target, at `at` in the page's list (`None`: the end).
    fn new_target(
        &self,
        label: String,
        source: Source,
        capacity: usize,
        at: Option<usize>,
    ) -> Rc<Target> {
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        let src_text = match &source {
            Source::Sidecar(s) => s.sidecar.base.clone(),
            Source::File(n) => format!("file: {n}"),
        };
        let tile = RwSignal::new(TileView {
            label,
            source: src_text,
            ..TileView::default()
        });
        let tui = TargetUi { key, tile };
        let t = Rc::new(Target::new(key, source, tui, capacity));
        {
            let mut ts = self.targets.borrow_mut();
            let i = at.unwrap_or(ts.len()).min(ts.len());
            ts.insert(i, t.clone());
        }
        self.ui.targets.update(|v| {
            let i = at.unwrap_or(v.len()).min(v.len());
            v.insert(i, tui);
        });
        self.ui.no_sidecar.set(false);
        t
    }

    /// The sidecars followed, in page order, each once.
    fn sidecars(&self) -> Vec<SidecarRef> {
        let mut out: Vec<SidecarRef> = Vec::new();
        for t in self.targets.borrow().iter() {
            if let Some(r) = t.target_ref() {
                if !out.contains(&r.sidecar) {
                    out.push(r.sidecar);
                }
            }
        }
        out
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
        let (layout, target) = match mode {
            ViewMode::Grid => (Some(Layout::Grid), None),
            ViewMode::Single(k) => {
                let tr = self.find(k).and_then(|t| t.target_ref());
                let idx = tr
                    .as_ref()
                    .and_then(|r| sidecars.iter().position(|s| *s == r.sidecar));
                (
                    Some(Layout::Single(idx.unwrap_or(0))),
                    tr.and_then(|r| r.name),
                )
            }
        };
        let vp = self.vp.get();
        let range = vp
            .end_us
            .filter(|_| !vp.following())
            .map(|end| ((end - vp.span_us) / 1000, end / 1000));
        let demo = self
            .targets
            .borrow()
            .iter()
            .any(|t| matches!(&*t.source.borrow(), Source::File(n) if n == demo::NAME));
        let st = PageState {
            sidecars,
            layout,
            span: vp.span().unwrap_or_default(),
            history: self.ui.history.get_untracked(),
            target,
            filter: self.ui.filter.get_untracked(),
            range,
            demo,
            overlay: self.ui.overlay.get_untracked(),
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

    /// After a sidecar listed its targets: the URL's `sel`/`t` picks one,
    /// and a sidecar with several targets opens as a grid unless the URL
    /// said otherwise.
    fn apply_pending_selection(&self) {
        let sidecars = self.sidecars();
        let pending = self.pending_sel.borrow().clone();
        if let Some((i, name)) = pending {
            let Some(s) = sidecars.get(i) else { return };
            let hit = self.targets.borrow().iter().find_map(|t| {
                let r = t.target_ref()?;
                (r.sidecar == *s && (name.is_none() || r.name == name)).then_some(t.key)
            });
            if let Some(k) = hit {
                if self.layout_given.get() {
                    self.ui.mode.set(ViewMode::Single(k));
                }
            }
        }
        if !self.layout_given.get() && self.targets.borrow().len() > 1 {
            self.ui.mode.set(ViewMode::Grid);
        }
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

    /// Stops following a target.
    fn remove(&self, key: u32) -> bool {
        let removed = {
            let mut ts = self.targets.borrow_mut();
            ts.iter().position(|t| t.key == key).map(|i| ts.remove(i))
        };
        let Some(t) = removed else { return false };
        t.removed.set(true);
        t.generation.set(t.generation.get().wrapping_add(1));
        // Dropping the stream drops its listeners, which hold the target:
        // the cycle ends here.
        let s = t.stream.borrow_mut().take();
        drop(s);
        self.ui.targets.update(|v| v.retain(|x| x.key != key));
        if self.ui.mode.get_untracked() == ViewMode::Single(key) {
            let first = self.targets.borrow().first().map(|t| t.key);
            self.ui
                .mode
                .set(first.map_or(ViewMode::Grid, ViewMode::Single));
        }
        self.rebalance();
        self.schedule();
        true
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
        #[cfg(feature = "bench")]
        let t0 = now_ms();
        self.render_targets();
        #[cfg(feature = "bench")]
        bench_hooks::record(now_ms() - t0);
    }

    fn render_targets(&self) {
        let targets: Vec<Rc<Target>> = self.targets.borrow().clone();
        let mut again = false;
        let now = now_ms();
        for t in &targets {
            again |= t.step_replay(now);
        }
        let mode = self.ui.mode.get_untracked();
        let many = targets.len() > FEW_TARGETS;
        let mut any_dirty = false;
        let alerts = self.ui.alerts.get_untracked();
        // An overlay redraws when any of its targets has news.
        let chart_dirty = self.chart_dirty.get()
            || (self.ui.overlay.with_untracked(|o| !o.is_empty())
                && targets.iter().any(|t| t.dirty.get()));
        for (i, t) in targets.iter().enumerate() {
            let shown = mode == ViewMode::Single(t.key);
            let dirty = t.dirty.get();
            if dirty {
                if many && !shown && now - t.published_ms.get() < SLOW_TILE_MS {
                    // Later: keep it dirty and come back.
                    again = true;
                } else {
                    any_dirty = true;
                    t.published_ms.set(now);
                    let light = t.publish(i);
                    let prev = t.last_light.replace(light);
                    if alerts
                        && light == Some(Light::Red)
                        && prev != Some(Light::Red)
                        && t.target_ref().is_some()
                    {
                        self.alert(t);
                    }
                    t.dirty.set(false);
                }
            }
            if shown {
                if dirty || chart_dirty {
                    self.draw_main(t);
                }
            } else if mode == ViewMode::Grid {
                let due = !many || now - t.spark_ms.get() >= SPARK_MS;
                if chart_dirty || (dirty && due) {
                    t.spark_ms.set(now);
                    self.draw_spark(t, true);
                } else if dirty {
                    again = true;
                }
            }
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
        self.publish_log(targets);
    }

    fn alert(&self, t: &Target) {
        let what = t.tui.tile.with_untracked(|v| v.summary.headline.clone());
        let target = t.title();
        if web_sys::Notification::permission() == web_sys::NotificationPermission::Granted {
            let opts = web_sys::NotificationOptions::new();
            opts.set_body(&what);
            let _ = web_sys::Notification::new_with_options(
                &format!("migwatch: migration of {target}"),
                &opts,
            );
        }
        if let Some(ctx) = self.audio.borrow().as_ref() {
            draw::beep(ctx);
        }
    }
}
