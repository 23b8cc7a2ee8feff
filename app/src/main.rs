//! migwatch's page: follows one sidecar's event stream, runs the migration
//! detector on it and shows a traffic light and a live RTT chart.
//!
//! Modules: `store` (sample ring, decimation, stats), `model` (store +
//! detector + diagnostics → summary), `format` (plain words), `source`
//! (which sidecar, reconnect policy, `EventSource`), `chart` (plotters),
//! `view` (components), `live` (wiring, once per animation frame).

mod chart;
mod format;
mod live;
mod model;
mod source;
mod store;
mod view;

use leptos::prelude::*;

fn main() {
    console_error_panic_hook::set_once();
    let ui = view::Ui::default();
    leptos::mount::mount_to_body(move || view! { <view::Page ui=ui /> });
    live::start(ui);
}
