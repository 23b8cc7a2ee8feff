//! migwatch's page: follows several sidecars' event streams (or replays
//! trace files), runs the migration detector on each and shows a traffic
//! light per target, an overall light, live RTT charts and an event log.
//!
//! Plain-Rust logic, unit tested natively: `store` (sample ring,
//! decimation), `signals` (clock readings and announces, the clock track),
//! `model` (store + signals + raw events + detector → summary, export),
//! `format` (plain words), `urlstate` (URL and saved state), `viewport`
//! (window, pause, zoom, pan, y axis), `replay` (trace import and pacing),
//! `source` (reconnect policy), `sort` (one small sort), `fleet` (target URLs, connection budget,
//! grid order and filter), `json` (the sidecar's answers read field by field), `overview` (the sidecar's lights and
//! sparklines for targets without a stream), `log` (event log), `history` (what this browser remembers of
//! the log). Commands: `cmd` (views →
//! commands ← app state). Browser glue: `source`'s `Stream`, `chart`
//! (plotters), `ui` (signals), `view` (components), `live` (wiring, once
//! per animation frame), `bench` (measurement hooks, only with the `bench`
//! feature).

#[cfg(feature = "bench")]
pub mod bench;
pub mod chart;
pub mod cmd;
pub mod fleet;
pub mod format;
pub mod history;
pub mod json;
pub mod live;
pub mod log;
pub mod model;
pub mod overview;
pub mod replay;
pub mod signals;
pub mod sort;
pub mod source;
pub mod store;
pub mod synth;
pub mod ui;
pub mod urlstate;
pub mod view;
pub mod viewport;

use leptos::prelude::*;

/// Mounts the page and starts following the sidecars in its URL.
pub fn run() {
    // A panic's message on the console (what console_error_panic_hook
    // did, without its JS stack capture: less wasm for the page).
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&info.to_string().into());
    }));
    let ui = ui::Ui::default();
    leptos::mount::mount_to_body(move || view! { <view::Page ui=ui /> });
    live::start(ui);
}
