//! The running page: wires the sidecar's stream into the model and the
//! model into the chart and the signals, at most once per animation frame.
//!
//! State flow: `Stream` listener → [`Model::ingest`] (store + detector) →
//! `schedule` → on the next animation frame `render` decimates the window,
//! draws the canvas, sets its `data-*` counts and pushes one [`Summary`]
//! into the signals the view renders. Connection changes take the same path
//! because the light depends on them.

use crate::chart::{self, Palette};
use crate::format;
use crate::model::Model;
use crate::source::{events_url, fetch_info, sidecar_base, Conn, Resume, Stream, StreamEvent};
use crate::store::capacity_for;
use crate::view::Ui;
use leptos::prelude::*;
use leptos::task::spawn_local;
use migwatch_shared::{Info, Light};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlCanvasElement;

/// Everything the running page holds. Lives as long as the page.
struct Live {
    ui: Ui,
    /// `None` when `?s=` was unusable.
    base: Option<String>,
    canvas: Option<HtmlCanvasElement>,
    model: RefCell<Model>,
    resume: RefCell<Resume>,
    stream: RefCell<Option<Stream>>,
    /// Bumped on every connection attempt, so late answers to an older
    /// attempt (a slow `/info`, a stale stream) are ignored.
    generation: Cell<u32>,
    /// The current stream had an error since it last opened: on its next
    /// open the browser has reconnected by itself, maybe to a restarted
    /// sidecar, so the run id is checked again.
    errored: Cell<bool>,
    frame_pending: Cell<bool>,
    palette: Cell<Palette>,
    title: RefCell<String>,
    logged_draw_error: Cell<bool>,
}

/// Starts following the sidecar named in the page URL. Call once, after
/// the view is mounted (it looks up `#chart`).
pub fn start(ui: Ui) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let loc = window.location();
    let origin = loc.origin().unwrap_or_default();
    let s = loc
        .search()
        .ok()
        .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok())
        .and_then(|p| p.get("s"));
    let base = match sidecar_base(s.as_deref(), &origin) {
        Ok(b) => {
            ui.sidecar.set(b.clone());
            Some(b)
        }
        Err(e) => {
            ui.sidecar.set(s.unwrap_or_default());
            ui.conn.set(Conn::Failed {
                reason: e,
                retry_ms: None,
            });
            None
        }
    };
    let canvas = window
        .document()
        .and_then(|d| d.get_element_by_id("chart"))
        .and_then(|e| e.dyn_into::<HtmlCanvasElement>().ok());

    let live = Rc::new(Live {
        ui,
        base,
        canvas,
        model: RefCell::default(),
        resume: RefCell::default(),
        stream: RefCell::new(None),
        generation: Cell::new(0),
        errored: Cell::new(false),
        frame_pending: Cell::new(false),
        palette: Cell::new(read_palette()),
        title: RefCell::new(String::new()),
        logged_draw_error: Cell::new(false),
    });

    // Redraw on resize (also fires when devicePixelRatio changes with zoom)
    // and re-read the chart colours when the colour scheme flips.
    {
        let l = live.clone();
        on_page_event(&window, "resize", move || l.schedule());
    }
    if let Ok(Some(mq)) = window.match_media("(prefers-color-scheme: dark)") {
        let l = live.clone();
        on_page_event(&mq, "change", move || {
            l.palette.set(read_palette());
            l.schedule();
        });
    }

    live.schedule();
    live.connect();
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
fn tz_offset(t_us: i64) -> i32 {
    let d = js_sys::Date::new(&JsValue::from_f64(t_us as f64 / 1000.0));
    -(d.get_timezone_offset() as i32)
}

impl Live {
    /// Fetches `/info`, then opens the stream as the resume plan says.
    fn connect(self: &Rc<Self>) {
        let Some(base) = self.base.clone() else {
            return;
        };
        let g = self.generation.get().wrapping_add(1);
        self.generation.set(g);
        let this = self.clone();
        spawn_local(async move {
            let info = fetch_info(&base).await;
            if this.generation.get() != g {
                return;
            }
            match info {
                Ok(info) => this.open(&base, info, g),
                Err(e) => this.fail(format!("sidecar unreachable: {e}")),
            }
        });
    }

    fn open(self: &Rc<Self>, base: &str, info: Info, g: u32) {
        let plan = self.resume.borrow_mut().plan(&info.run_id);
        {
            let mut m = self.model.borrow_mut();
            if plan.reset {
                m.new_run();
            }
            m.store.set_capacity(capacity_for(info.interval_ms));
        }
        self.ui.info.set(Some(info));
        let this = self.clone();
        let on: Rc<dyn Fn(StreamEvent)> = Rc::new(move |ev| this.on_stream(g, ev));
        match Stream::open(&events_url(base, plan.since), on) {
            Ok(s) => {
                // Replaces (and closes) the previous stream. Safe here: this
                // runs from a future, never inside that stream's listener.
                *self.stream.borrow_mut() = Some(s);
                self.errored.set(false);
            }
            Err(e) => self.fail(format!("cannot open the event stream: {e}")),
        }
        self.schedule();
    }

    /// Gives up on the current attempt and tries again after the backoff.
    fn fail(self: &Rc<Self>, reason: String) {
        if let Some(s) = self.stream.borrow().as_ref() {
            s.close();
        }
        let delay = self.resume.borrow_mut().backoff.next();
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
    /// start over with the new run.
    fn verify_run(self: &Rc<Self>, g: u32) {
        let Some(base) = self.base.clone() else {
            return;
        };
        let this = self.clone();
        spawn_local(async move {
            if let Ok(info) = fetch_info(&base).await {
                let new = this.resume.borrow().is_new_run(&info.run_id);
                if new && this.generation.get() == g {
                    this.connect();
                }
            }
        });
    }

    fn on_stream(self: &Rc<Self>, g: u32, ev: StreamEvent) {
        if self.generation.get() != g {
            return;
        }
        match ev {
            StreamEvent::Open => {
                self.resume.borrow_mut().backoff.reset();
                self.set_conn(Conn::Live);
                if self.errored.replace(false) {
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
                self.resume.borrow_mut().saw_id(&id);
                self.model.borrow_mut().ingest(kind.name(), &data);
                self.schedule();
            }
            StreamEvent::Unnamed { id } => {
                self.resume.borrow_mut().saw_id(&id);
                self.model.borrow_mut().unnamed();
                self.schedule();
            }
        }
    }

    fn set_conn(self: &Rc<Self>, c: Conn) {
        if self.ui.conn.with_untracked(|old| *old != c) {
            self.ui.conn.set(c);
            self.schedule();
        }
    }

    /// Asks for one render on the next animation frame; events arriving
    /// before it are batched into it.
    fn schedule(self: &Rc<Self>) {
        if self.frame_pending.replace(true) {
            return;
        }
        let this = self.clone();
        request_animation_frame(move || {
            this.frame_pending.set(false);
            this.render();
        });
    }

    fn render(&self) {
        let live = self.ui.conn.with_untracked(|c| *c == Conn::Live);
        let (columns, dpr) = self.canvas.as_ref().map_or((1, 1.0), fit_canvas);
        let (frame, summary) = {
            let m = self.model.borrow();
            let frame = m.frame(columns);
            let mut summary = m.summary(&frame, live, &tz_offset);
            summary.last_id = self.resume.borrow().last_id();
            (frame, summary)
        };
        if let Some(canvas) = &self.canvas {
            let drawn = match chart::draw(canvas.clone(), &frame, &self.palette.get(), dpr) {
                Ok(()) => frame.points,
                Err(e) => {
                    if !self.logged_draw_error.replace(true) {
                        leptos::logging::error!("chart: {e}");
                    }
                    0
                }
            };
            let set = |k: &str, v: u64| {
                let _ = canvas.set_attribute(k, &v.to_string());
            };
            set("data-samples", summary.samples);
            set("data-lost", summary.lost);
            set("data-drawn", drawn as u64);
            set("data-vertices", frame.vertices() as u64);
        }
        self.set_title(summary.light);
        if self.ui.summary.with_untracked(|s| *s != summary) {
            self.ui.summary.set(summary);
        }
    }

    fn set_title(&self, light: Option<Light>) {
        let t = format::title(light);
        if *self.title.borrow() != t {
            if let Some(d) = web_sys::window().and_then(|w| w.document()) {
                d.set_title(&t);
            }
            *self.title.borrow_mut() = t;
        }
    }
}

/// Sets the canvas backing store to its CSS size × devicePixelRatio (only
/// when that changed: resizing clears it). Returns the backing width and
/// the ratio.
fn fit_canvas(canvas: &HtmlCanvasElement) -> (u32, f64) {
    let dpr = web_sys::window()
        .map(|w| w.device_pixel_ratio())
        .filter(|d| d.is_finite() && *d > 0.0)
        .unwrap_or(1.0);
    let w = (f64::from(canvas.client_width()) * dpr).round().max(1.0) as u32;
    let h = (f64::from(canvas.client_height()) * dpr).round().max(1.0) as u32;
    if canvas.width() != w {
        canvas.set_width(w);
    }
    if canvas.height() != h {
        canvas.set_height(h);
    }
    (w, dpr)
}
