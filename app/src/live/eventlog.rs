//! The event log: every target's detected events and yellow spans, the
//! sidecars' own older records, and the rows only this browser remembers
//! (`localStorage`, see [`crate::history`]), merged without duplicates.

use super::draw::tz_offset;
use super::target::Target;
use super::{storage, App};
use crate::format;
use crate::history;
use crate::log;
use leptos::prelude::*;
use std::rc::Rc;

/// Rows the event log keeps (both sections together).
const LOG_ROWS: usize = 200;

impl App {
    /// Recomputes the event log.
    pub(super) fn publish_log(&self, targets: &[Rc<Target>]) {
        let mut rows: Vec<format::LogRow> = Vec::new();
        let mut side: Vec<format::LogRow> = Vec::new();
        for t in targets {
            let m = t.model.borrow();
            let label = t.title();
            rows.extend(
                m.migrations()
                    .iter()
                    .rev()
                    .take(LOG_ROWS)
                    .map(|mg| format::log_row(t.key, &label, mg, &tz_offset)),
            );
            rows.extend(
                m.yellow_spans()
                    .rev()
                    .take(LOG_ROWS)
                    .map(|y| format::yellow_row(t.key, &label, y, &tz_offset)),
            );
            // Only what happened before the history this page holds: within
            // it, the page's own detector has seen the same probes.
            let oldest = m.store.oldest_us();
            side.extend(
                t.records
                    .borrow()
                    .iter()
                    .filter(|r| log::before_history(r, oldest))
                    .take(LOG_ROWS)
                    .map(|r| log::record_row(t.key, &label, r, &tz_offset)),
            );
        }
        let rows = log::merge(rows, side, LOG_ROWS);
        if *self.noted.borrow() != rows {
            self.remember(targets, &rows);
            *self.noted.borrow_mut() = rows.clone();
        }
        // What only this browser remembers: the sidecar restarted, or no
        // longer holds it. Rows of another run are other events, always
        // shown (a new run's first yellow may start within a second of the
        // old run's last event); this run's are the same events as the
        // page's and the sidecar's when they start within a second.
        let mut same_run: Vec<format::LogRow> = Vec::new();
        let mut other_runs: Vec<format::LogRow> = Vec::new();
        {
            let h = self.history.borrow();
            for t in targets {
                let Some(k) = history_key(t) else { continue };
                let run = t.info.borrow().as_ref().map(|i| i.run_id.clone());
                let label = t.title();
                for r in h.rows(&k).iter().rev().take(LOG_ROWS) {
                    if run.as_deref() == Some(r.run.as_str()) {
                        same_run.push(r.row(t.key, &label));
                    } else {
                        other_runs.push(r.row(t.key, &label));
                    }
                }
            }
        }
        let mut rows = log::merge(rows, same_run, usize::MAX);
        rows.extend(other_runs);
        let rows = log::merge(rows, Vec::new(), LOG_ROWS);
        if self.ui.log.with_untracked(|r| *r != rows) {
            self.ui.log.set(rows);
        }
    }

    /// Notes the log's rows in this browser's history, per target and run,
    /// and stores it.
    fn remember(&self, targets: &[Rc<Target>], rows: &[format::LogRow]) {
        let mut changed = false;
        {
            let mut h = self.history.borrow_mut();
            for t in targets {
                let (Some(k), Some(run)) = (
                    history_key(t),
                    t.info.borrow().as_ref().map(|i| i.run_id.clone()),
                ) else {
                    continue;
                };
                let mine: Vec<format::LogRow> =
                    rows.iter().filter(|r| r.key == t.key).cloned().collect();
                if !mine.is_empty() {
                    changed |= h.note(&k, &run, &mine);
                }
            }
        }
        if changed {
            self.store_history();
        }
    }

    fn store_history(&self) {
        if let Some(st) = storage() {
            let h = self.history.borrow();
            let _ = if h.is_empty() {
                st.remove_item(history::STORAGE_KEY)
            } else {
                st.set_item(history::STORAGE_KEY, &h.to_text())
            };
        }
    }

    /// Forgets what this browser remembers; the rows the page and the
    /// sidecars still hold stay in the log (and are remembered again).
    pub(super) fn forget_history(&self) {
        self.history.borrow_mut().forget();
        self.noted.borrow_mut().clear();
        self.store_history();
        let targets: Vec<Rc<Target>> = self.targets.borrow().clone();
        self.publish_overall(&targets);
    }
}

/// A sidecar target's key in this browser's history (none for a file, or
/// before the sidecar said the target's name).
fn history_key(t: &Target) -> Option<String> {
    let r = t.target_ref()?;
    let name = match r.name {
        Some(n) => n,
        None => t.info.borrow().as_ref().map(|i| i.target.clone())?,
    };
    Some(history::target_key(&r.sidecar.base, &name))
}
