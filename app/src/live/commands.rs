//! The user's commands, carried out on the running page.

use super::draw::{document, tz_offset};
use super::target::Source;
use super::{app, App};
use crate::cmd::Cmd;
use crate::replay::{self, Replay, Speed};
use crate::store::MAX_CAPACITY;
use crate::ui::ViewMode;
use crate::urlstate::SidecarRef;
use crate::viewport::Viewport;
use leptos::prelude::*;
use leptos::task::spawn_local;
use migwatch_shared::Event;

impl App {
    pub(super) fn handle(&self, c: Cmd) {
        let mut vp = self.vp.get();
        match c {
            Cmd::Add(raw) => match SidecarRef::parse(&raw) {
                Ok(s) if self.sidecars().contains(&s) => {
                    self.notice("info", format!("{} is already on the page", s.label()));
                }
                Ok(s) => {
                    let was_empty = self.targets.borrow().is_empty();
                    self.add_sidecar(s, false);
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
                if self.remove(key) {
                    self.save_sidecars();
                    self.sync_url();
                }
            }
            Cmd::Select(key) => {
                self.ui.mode.set(ViewMode::Single(key));
                self.rebalance();
                self.sync_url();
            }
            Cmd::Overlay(key) => {
                if let Some(t) = self.find(key) {
                    let name = t.overlay_name();
                    self.ui
                        .overlay
                        .update(|o| *o = crate::chart::toggle_overlay(o, &name));
                    self.chart_dirty.set(true);
                    t.mark();
                    self.sync_url();
                }
            }
            Cmd::Filter(q) => {
                if self.ui.filter.get_untracked() != q {
                    self.ui.filter.set(q);
                    self.sync_url();
                }
            }
            Cmd::Demo => self.start_demo(),
            Cmd::Hover(frac) => {
                self.hover(frac);
                return;
            }
            Cmd::ForgetHistory => self.forget_history(),
            Cmd::Acknowledge(key) => {
                if let Some(t) = self.find(key) {
                    t.model.borrow_mut().acknowledge();
                    t.mark();
                }
            }
            Cmd::SingleFirst => {
                if !matches!(self.ui.mode.get_untracked(), ViewMode::Single(_)) {
                    let first = self.targets.borrow().first().map(|t| t.key);
                    if let Some(k) = first {
                        self.ui.mode.set(ViewMode::Single(k));
                    }
                    self.rebalance();
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
                self.sync_url();
            }
            Cmd::Follow => {
                vp.resume();
                self.vp.set(vp);
                self.sync_url();
            }
            Cmd::YAxis(y) => {
                vp.y = y;
                self.vp.set(vp);
            }
            Cmd::Zoom { factor, at } => {
                if let Some(n) = self.selected_newest() {
                    vp.zoom(factor, at, n);
                    self.vp.set(vp);
                    self.sync_url();
                }
            }
            Cmd::Pan(frac) => {
                if let Some(n) = self.selected_newest() {
                    vp.pan(frac, n);
                    self.vp.set(vp);
                    self.sync_url();
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
                self.rebalance();
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
                    if t.target_ref().is_some() {
                        let iv = t.info.borrow().as_ref().map_or(10.0, |i| i.interval_ms);
                        t.model.borrow_mut().set_capacity(self.capacity(iv));
                        t.dirty.set(true);
                    }
                }
                self.sync_url();
            }
        }
        self.publish_chart_ui();
    }

    /// Names the probe nearest the pointer in the chart's tooltip.
    fn hover(&self, frac: f64) {
        let Some(t) = self.selected() else { return };
        let Some(canvas) = document().and_then(|d| d.get_element_by_id("chart")) else {
            return;
        };
        let m = t.model.borrow();
        let Some(newest) = m.newest_us() else { return };
        let (from, to) = self.vp.get().range(newest);
        let at = from + ((to - from) as f64 * frac) as i64;
        let words = m.store.nearest(at).map_or_else(String::new, |p| {
            crate::format::sample_words(p.seq, p.sent_us, p.rtt_us(), p.late_us(), &tz_offset)
        });
        let _ = canvas.set_attribute("title", &words);
        let _ = canvas.set_attribute("data-hover", &words);
    }

    pub(super) fn import(&self, file: web_sys::File) {
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
            a.replay_text(&name, &text, speed);
        });
    }

    /// Replays a trace (an imported file or the demo recording) as a new
    /// target shown in detail.
    pub(super) fn replay_text(&self, name: &str, text: &str, speed: Speed) {
        let a = self;
        let name = name.to_string();
        {
            match replay::parse(&name, text) {
                Ok(events) => {
                    let samples = events
                        .iter()
                        .filter(|e| matches!(e, Event::Sample(_)))
                        .count();
                    let cap = samples.clamp(1_000, MAX_CAPACITY);
                    let t = a.new_target(name.clone(), Source::File(name.clone()), cap, None);
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
        }
    }
}
