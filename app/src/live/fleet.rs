//! A sidecar with many targets: asking it for its list, spreading the
//! browser's connections over the targets, and the sidecar's own lights
//! for the targets that go without a stream (`/overview`).

use super::target::{Source, Target};
use super::{app, App};
use crate::fleet::{self, TargetRef};
use crate::overview::{self, Overview, OVERVIEW_POLL_MS, OVERVIEW_SECONDS};
use crate::source::{fetch_json, fetch_text, infos_from_json, Conn, FetchError};
use crate::store::capacity_for;
use crate::ui::ViewMode;
use crate::urlstate::SidecarRef;
use leptos::prelude::*;
use leptos::task::spawn_local;
use migwatch_shared::Info;
use std::rc::Rc;
use std::time::Duration;

impl App {
    /// The ring size for a target probed every `interval_ms`: the history
    /// chosen, within the page-wide budget shared by all targets.
    pub(super) fn capacity(&self, interval_ms: f64) -> usize {
        let own = capacity_for(interval_ms, self.ui.history.get_untracked().secs());
        fleet::share_capacity(own, self.targets.borrow().len())
    }

    /// Starts following a sidecar: one placeholder tile until `/targets`
    /// says what it watches.
    pub(super) fn add_sidecar(&self, s: SidecarRef, implicit: bool) {
        let cap = self.capacity(10.0);
        let tr = TargetRef {
            sidecar: s.clone(),
            name: None,
        };
        let t = self.new_target(s.label(), Source::Sidecar(tr), cap, None);
        t.discovering.set(true);
        t.implicit.set(implicit);
        t.connect();
    }

    /// `GET /targets`: the placeholder becomes the first target and the
    /// others are added after it. A sidecar without `/targets` (404) is an
    /// older one with a single target on `/info` and `/events`.
    pub(super) fn discover(&self, t: Rc<Target>) {
        let Some(tr) = t.target_ref() else { return };
        let g = t.generation.get().wrapping_add(1);
        t.generation.set(g);
        spawn_local(async move {
            let got = fetch_json(&tr.sidecar.targets_url(), infos_from_json).await;
            let Some(a) = app() else { return };
            if t.generation.get() != g || t.removed.get() {
                return;
            }
            match got {
                Ok(list) if !list.is_empty() => a.found_targets(&t, &tr.sidecar, list),
                Ok(_) => t.fail("the sidecar watches no target (GET /targets is empty)".into()),
                Err(FetchError::Status(404)) => {
                    t.discovering.set(false);
                    t.connect();
                }
                Err(FetchError::Decode(_)) if t.implicit.get() => a.not_a_sidecar(t.key),
                Err(e) => t.fail(format!("sidecar unreachable: {}", e.words("/targets"))),
            }
        });
    }

    fn found_targets(&self, t: &Rc<Target>, s: &SidecarRef, list: Vec<Info>) {
        let name = |i: &Info| (!i.name.is_empty()).then(|| i.name.clone());
        let mut list = list.into_iter();
        let Some(first) = list.next() else { return };
        *t.source.borrow_mut() = Source::Sidecar(TargetRef {
            sidecar: s.clone(),
            name: name(&first),
        });
        *t.info.borrow_mut() = Some(first);
        t.discovering.set(false);
        let at = self
            .targets
            .borrow()
            .iter()
            .position(|x| x.key == t.key)
            .map_or(usize::MAX, |i| i + 1);
        let cap = self.capacity(10.0);
        for (i, info) in list.enumerate() {
            let tr = TargetRef {
                sidecar: s.clone(),
                name: name(&info),
            };
            let label = info.target.clone();
            let nt = self.new_target(label, Source::Sidecar(tr), cap, Some(at.saturating_add(i)));
            // No connection yet: the rebalance below gives it one, or
            // parks it.
            nt.streamed.set(false);
            *nt.info.borrow_mut() = Some(info);
            nt.mark();
        }
        self.apply_pending_selection();
        self.rebalance();
        // The placeholder was already streaming-eligible: connect it now
        // unless the rebalance parked it.
        if t.streamed.get() {
            t.connect();
        }
        self.sync_url();
        self.schedule();
    }

    /// The page's own origin answered, but not as a sidecar: drop it and
    /// offer the demo instead of retrying forever.
    pub(super) fn not_a_sidecar(&self, key: u32) {
        self.remove(key);
        self.ui.no_sidecar.set(self.targets.borrow().is_empty());
    }

    /// Gives the browser's connections per sidecar origin to the selected
    /// target first, then in page order; the others are parked (light and
    /// sparkline from `/overview`) until a connection is free for them.
    pub(super) fn rebalance(&self) {
        let targets: Vec<Rc<Target>> = self.targets.borrow().clone();
        let sel = match self.ui.mode.get_untracked() {
            ViewMode::Single(k) => Some(k),
            ViewMode::Grid => None,
        };
        let refs: Vec<Option<TargetRef>> = targets.iter().map(|t| t.target_ref()).collect();
        let origins: Vec<Option<String>> = refs
            .iter()
            .map(|r| r.as_ref().map(|r| r.sidecar.origin()))
            .collect();
        let input: Vec<(Option<&str>, bool)> = targets
            .iter()
            .zip(&origins)
            .map(|(t, o)| (o.as_deref(), Some(t.key) == sel))
            .collect();
        let want = fleet::assign_streams(&input);
        // Park first, so the connections are free before new streams open.
        for (t, w) in targets.iter().zip(&want) {
            let parked = !t.streamed.get() && *t.conn.borrow() == Conn::Limited;
            if !w && !parked && !t.discovering.get() && t.target_ref().is_some() {
                t.park();
                if let Some(r) = t.target_ref() {
                    self.poll_remote(r.sidecar);
                }
            }
        }
        for (t, w) in targets.iter().zip(&want) {
            if *w && !t.streamed.get() {
                t.streamed.set(true);
                t.connect();
            }
        }
    }

    /// Reads the sidecar's `/overview` every [`OVERVIEW_POLL_MS`] while it
    /// has parked targets: one request for all their lights, reasons and
    /// sparklines. An older sidecar without it (404) is read from
    /// `/metrics` instead (lights only) every [`fleet::METRICS_POLL_MS`].
    fn poll_remote(&self, s: SidecarRef) {
        {
            // A list, not a set: a page has few sidecars.
            let mut polling = self.polling.borrow_mut();
            if polling.contains(&s.base) {
                return;
            }
            polling.push(s.base.clone());
        }
        spawn_local(async move {
            let mut metrics_only = false;
            loop {
                let Some(a) = app() else { return };
                let parked: Vec<Rc<Target>> = a
                    .targets
                    .borrow()
                    .iter()
                    .filter(|t| {
                        !t.streamed.get()
                            && t.target_ref().is_some_and(|r| r.sidecar.base == s.base)
                    })
                    .cloned()
                    .collect();
                if parked.is_empty() {
                    a.polling.borrow_mut().retain(|b| *b != s.base);
                    return;
                }
                drop(a);
                let mut got = None;
                if !metrics_only {
                    let url = s.url("/overview", &[("seconds", OVERVIEW_SECONDS.to_string())]);
                    match fetch_json(&url, Overview::from_json).await {
                        Ok(o) => got = Some(overview::remotes(&o)),
                        Err(FetchError::Status(404)) => metrics_only = true,
                        Err(_) => got = Some(Default::default()),
                    }
                }
                if metrics_only {
                    let text = fetch_text(&s.metrics_url()).await;
                    let lights = text
                        .map(|t| fleet::lights_from_metrics(&t))
                        .unwrap_or_default();
                    got = Some(overview::remotes_from_lights(lights));
                }
                let remotes = got.unwrap_or_default();
                for t in parked {
                    let name = t.target_ref().and_then(|r| r.name).unwrap_or_default();
                    let r = overview::find(&remotes, &name).cloned();
                    let changed = *t.remote.borrow() != r;
                    if changed {
                        *t.remote.borrow_mut() = r;
                    }
                    if changed || *t.conn.borrow() != Conn::Limited {
                        t.mark();
                    }
                }
                sleep(if metrics_only {
                    fleet::METRICS_POLL_MS
                } else {
                    OVERVIEW_POLL_MS
                })
                .await;
            }
        });
    }
}

/// Waits `ms` milliseconds.
async fn sleep(ms: u32) {
    let (tx, rx) = futures_channel();
    set_timeout(tx, Duration::from_millis(u64::from(ms)));
    let _ = rx.await;
}

/// A one-shot wake-up built on a JS promise (no extra crate).
fn futures_channel() -> (impl FnOnce(), wasm_bindgen_futures::JsFuture) {
    let mut resolve = None;
    let p = js_sys::Promise::new(&mut |res, _| resolve = Some(res));
    let fire = move || {
        if let Some(r) = resolve {
            let _ = r.call0(&wasm_bindgen::JsValue::NULL);
        }
    };
    (fire, wasm_bindgen_futures::JsFuture::from(p))
}
