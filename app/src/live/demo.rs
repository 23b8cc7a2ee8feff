//! The bundled demo: a recording of a real lab migration and a decoy,
//! fetched only when asked for (it is not part of the page's weight) and
//! replayed like an imported trace, at the speed chosen (1× unless 10×).

use super::{app, App};
use crate::replay::Speed;
use crate::source::fetch_text;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The recording's file name, next to `index.html`; also the target's
/// label, so nobody takes it for live data.
pub(super) const NAME: &str = "demo.jsonl";

impl App {
    /// Fetches and replays the recording (once: a second click while it
    /// is on the page only shows it).
    pub(super) fn start_demo(&self) {
        self.ui.no_sidecar.set(false);
        let speed = match self.ui.speed.get_untracked() {
            Speed::X10 => Speed::X10,
            _ => Speed::X1,
        };
        spawn_local(async move {
            let got = fetch_text(NAME).await;
            let Some(a) = app() else { return };
            match got {
                Ok(text) => {
                    a.replay_text(NAME, &text, speed);
                    a.notice(
                        "info",
                        format!(
                            "A recording, not live data: a real QEMU live migration from the lab, then a decoy link flap, replayed at {}.",
                            if speed == Speed::X10 { "10×" } else { "1×" }
                        ),
                    );
                    a.sync_url();
                }
                Err(e) => {
                    a.notice("error", format!("Cannot load the demo: {}", e.words(NAME)));
                    a.ui.no_sidecar.set(a.targets.borrow().is_empty());
                }
            }
        });
    }
}
