//! Components. They only render signals; everything they show is computed
//! elsewhere (`model`, `source`, `format`) and pushed in by `live`.

use crate::format;
use crate::model::Summary;
use crate::source::Conn;
use leptos::prelude::*;
use migwatch_shared::Info;

/// The signals the page renders. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// The sidecar's base URL (or what was wrong with `?s=`).
    pub sidecar: RwSignal<String>,
    /// The sidecar's `/info`, once it answered.
    pub info: RwSignal<Option<Info>>,
    /// The link to the sidecar.
    pub conn: RwSignal<Conn>,
    /// Light, reasons, stats and diagnostics, once per frame.
    pub summary: RwSignal<Summary>,
}

impl Default for Ui {
    /// Signals in their "nothing known yet" state.
    fn default() -> Self {
        Ui {
            sidecar: RwSignal::new(String::new()),
            info: RwSignal::new(None),
            conn: RwSignal::new(Conn::Connecting),
            summary: RwSignal::new(Summary::default()),
        }
    }
}

/// `every 10 ms, timeout 1 s`.
fn probes(i: &Info) -> String {
    // `as` saturates; a negative or NaN timeout shows as 0.
    let timeout_us = (i.timeout_ms * 1000.0) as u64;
    format!(
        "{}, timeout {}",
        format::interval(i.interval_ms),
        format::duration(timeout_us)
    )
}

/// The whole page.
#[component]
pub fn Page(ui: Ui) -> impl IntoView {
    let info = move |f: fn(&Info) -> String| {
        move || {
            ui.info
                .with(|i| i.as_ref().map_or_else(|| "—".to_string(), f))
        }
    };
    let light = move || ui.summary.with(|s| s.light);
    view! {
        <header class="top">
            <h1 class="brand">
                <span class="logo" aria-hidden="true"></span>
                "migwatch"
            </h1>
            <dl class="info">
                <div>
                    <dt>"target"</dt>
                    <dd id="target" title=info(|i| i.target.clone())>
                        {info(|i| i.target.clone())}
                    </dd>
                </div>
                <div>
                    <dt>"probes"</dt>
                    <dd id="interval" title=info(probes)>
                        {info(probes)}
                    </dd>
                </div>
                <div>
                    <dt>"run"</dt>
                    <dd id="run-id" title=info(|i| i.run_id.clone())>
                        {info(|i| i.run_id.clone())}
                    </dd>
                </div>
                <div>
                    <dt>"sidecar"</dt>
                    <dd
                        id="sidecar"
                        title=move || {
                            let v = ui.info.with(|i| i.as_ref().map(|i| i.version.clone()));
                            format!("{} (version {})", ui.sidecar.get(), v.as_deref().unwrap_or("?"))
                        }
                    >
                        {move || ui.sidecar.get()}
                    </dd>
                </div>
            </dl>
            <p
                id="conn"
                class="conn"
                data-state=move || ui.conn.with(Conn::name)
                title=move || ui.conn.with(Conn::text)
            >
                <span class="dot" aria-hidden="true"></span>
                <span class="conn-text">{move || ui.conn.with(Conn::text)}</span>
            </p>
        </header>
        <main>
            <section
                id="light"
                class="light"
                role="status"
                aria-live="polite"
                aria-atomic="true"
                data-light=move || ui.summary.with(Summary::light_name)
            >
                <div class="lamps" aria-hidden="true">
                    <span class="lamp lamp-red"></span>
                    <span class="lamp lamp-yellow"></span>
                    <span class="lamp lamp-green"></span>
                </div>
                <div class="verdict">
                    <p id="light-label" class="word">{move || format::light_word(light())}</p>
                    <p class="meaning">{move || format::light_meaning(light())}</p>
                    <ul id="reasons" class="reasons">
                        {move || {
                            ui.summary
                                .with(|s| {
                                    s.reasons
                                        .iter()
                                        .map(|r| view! { <li>{r.clone()}</li> })
                                        .collect_view()
                                })
                        }}
                    </ul>
                </div>
            </section>
            <section class="chart-box">
                <canvas
                    id="chart"
                    role="img"
                    aria-label="Round-trip time of the last 30 seconds; lost probes as red ticks, late replies as orange marks, probes awaiting a reply shaded"
                ></canvas>
                <p class="legend" aria-hidden="true">
                    <span><i class="key key-line"></i>"RTT"</span>
                    <span><i class="key key-lost"></i>"lost probe"</span>
                    <span><i class="key key-late"></i>"late reply"</span>
                    <span><i class="key key-pending"></i>"awaiting reply"</span>
                </p>
            </section>
            <p
                id="stats"
                class="stats"
                data-samples=move || ui.summary.with(|s| s.samples.to_string())
                data-lost=move || ui.summary.with(|s| s.lost.to_string())
                data-late=move || ui.summary.with(|s| s.late.to_string())
            >
                {move || ui.summary.with(|s| s.stats.clone())}
            </p>
            <p
                id="diag"
                class="diag"
                data-unknown=move || ui.summary.with(|s| s.unknown.to_string())
                data-malformed=move || ui.summary.with(|s| s.malformed.to_string())
                data-last-id=move || ui.summary.with(|s| s.last_id.map(|i| i.to_string()))
            >
                {move || ui.summary.with(|s| s.diag.clone())}
            </p>
        </main>
    }
}
