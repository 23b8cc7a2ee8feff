//! Components. They only render signals and turn user input into
//! [`Cmd`]s; everything they show is computed elsewhere (`model`, `source`,
//! `format`) and pushed in by `live` once per animation frame.
//!
//! `detail` holds the selected target's view, `log` the event log.

mod detail;
mod log;

use detail::{Detail, LastMigration};
use log::EventLog;

use crate::cmd::{cmd, Cmd};
use crate::format;
use crate::model::Summary;
use crate::replay::Speed;
use crate::source::Conn;
use crate::ui::{TargetUi, TileView, Ui, ViewMode};
use crate::urlstate::History;
use leptos::ev;
use leptos::prelude::*;
use migwatch_shared::{Info, Light};
use wasm_bindgen::JsCast;

/// `every 10 ms, timeout 1 s`.
pub(crate) fn probes(i: &Info) -> String {
    // `as` saturates; a negative or NaN timeout shows as 0.
    let timeout_us = (i.timeout_ms * 1000.0) as u64;
    format!(
        "{}, timeout {}",
        format::interval(i.interval_ms),
        format::duration(timeout_us)
    )
}

pub(crate) fn light_class(l: Option<Light>) -> &'static str {
    l.map_or("nodata", Light::name)
}

/// Above this many targets the grid shows compact tiles (light, name,
/// verdict, sparkline): 100 targets fit on two screens at 1440×900.
const MANY_TILES: usize = 12;

/// The whole page.
#[component]
pub fn Page(
    /// The signals to render.
    ui: Ui,
) -> impl IntoView {
    let grid = move || ui.mode.get() == ViewMode::Grid;
    let on_drop = move |e: ev::DragEvent| {
        e.prevent_default();
        ui.dragging.set(false);
        let file = e
            .data_transfer()
            .and_then(|dt| dt.files())
            .and_then(|f| f.get(0));
        if let Some(f) = file {
            cmd(Cmd::Import(f));
        }
    };
    view! {
        <div
            class="page"
            class:dragging=move || ui.dragging.get()
            on:dragover=move |e: ev::DragEvent| {
                e.prevent_default();
                ui.dragging.set(true);
            }
            on:dragleave=move |e: ev::DragEvent| {
                if e.related_target().is_none() {
                    ui.dragging.set(false);
                }
            }
            on:drop=on_drop
        >
            <Header ui=ui />
            <main>
                <Notices ui=ui />
                <Welcome ui=ui />
                <GridBar ui=ui />
                <section
                    id="tiles"
                    class="tiles"
                    class:grid=grid
                    class:strip=move || !grid()
                    class:many=move || ui.targets.with(|t| t.len() > MANY_TILES)
                    aria-label="targets"
                >
                    <For
                        each=move || ui.targets.get()
                        key=|t| t.key
                        children=move |t| view! { <Tile ui=ui t=t /> }
                    />
                </section>
                <Detail ui=ui />
                <EventLog ui=ui />
            </main>
            <div class="drop-hint" aria-hidden="true">
                "Drop a trace file to replay it"
            </div>
        </div>
    }
}

/// Shown when there is nothing to follow: what the page is, the demo,
/// what the colours mean, where the docs are. The words are static HTML in
/// `index.html` (`#welcome-body`, moved in here at start): they cost the
/// page's wasm nothing.
#[component]
fn Welcome(ui: Ui) -> impl IntoView {
    view! {
        <section
            id="welcome"
            class="welcome"
            aria-label="getting started"
            hidden=move || !ui.no_sidecar.get()
        ></section>
    }
}

/// Over the grid: the filter, and how many tiles it shows.
#[component]
fn GridBar(ui: Ui) -> impl IntoView {
    let shown = move || {
        let q = ui.filter.get();
        ui.targets.with(|ts| {
            ts.iter()
                .filter(|t| t.tile.with(|v| tile_matches(&q, v)))
                .count()
        })
    };
    view! {
        <div
            class="gridbar"
            hidden=move || ui.mode.get() != ViewMode::Grid || ui.targets.with(|t| t.len() < 2)
        >
            <label class="inline">
                <span class="sr-only">"Filter targets"</span>
                <input
                    id="filter"
                    type="search"
                    placeholder="filter: name, address or label (rack=a7)"
                    autocomplete="off"
                    spellcheck="false"
                    prop:value=move || ui.filter.get()
                    on:input=move |e| cmd(Cmd::Filter(event_target_value(&e)))
                />
            </label>
            <span id="filter-count" class="hint">
                {move || format!("{} of {} targets, worst first", shown(), ui.targets.with(Vec::len))}
            </span>
        </div>
    }
}

/// Whether a tile passes the grid's filter.
fn tile_matches(q: &str, v: &TileView) -> bool {
    let empty = std::collections::BTreeMap::new();
    let (addr, labels) = v
        .info
        .as_ref()
        .map_or(("", &empty), |i| (i.target.as_str(), &i.labels));
    crate::fleet::matches_filter(q, &v.title(), addr, labels)
}

#[component]
fn Header(ui: Ui) -> impl IntoView {
    let add_input = NodeRef::<leptos::html::Input>::new();
    let submit = move |e: ev::SubmitEvent| {
        e.prevent_default();
        if let Some(inp) = add_input.get() {
            let v = inp.value();
            if !v.trim().is_empty() {
                cmd(Cmd::Add(v));
                inp.set_value("");
            }
        }
    };
    let on_file = move |e: ev::Event| {
        let input = e
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok());
        if let Some(input) = input {
            if let Some(f) = input.files().and_then(|fs| fs.get(0)) {
                cmd(Cmd::Import(f));
            }
            // The same file can be picked again.
            input.set_value("");
        }
    };
    let overall_word = move || {
        let (n, nodata) = ui.targets.with(|ts| {
            let nodata = ts
                .iter()
                .filter(|t| t.tile.with(|v| v.summary.light.is_none()))
                .count();
            (ts.len(), nodata)
        });
        let l = ui.overall.get();
        match (n, nodata) {
            (0, _) => "no targets".to_string(),
            (1, _) => format::light_word(l).to_string(),
            (n, 0) => format!("{} · {n} targets", format::light_word(l)),
            (n, k) if k == n => format!("NO DATA · {n} targets"),
            (n, k) => format!("{} · {n} targets, {k} without data", format::light_word(l)),
        }
    };
    view! {
        <header class="top">
            <h1 class="brand">
                <span class="logo" aria-hidden="true"></span>
                "migwatch"
            </h1>
            <p
                id="overall"
                class="overall"
                role="status"
                aria-live="polite"
                data-light=move || light_class(ui.overall.get())
                title="the worst light over all targets"
            >
                <span class="dot" aria-hidden="true"></span>
                <span class="overall-word">{overall_word}</span>
            </p>
            <form class="add" on:submit=submit>
                <label class="sr-only" for="add-url">"Sidecar URL"</label>
                <input
                    id="add-url"
                    node_ref=add_input
                    type="text"
                    inputmode="url"
                    autocomplete="off"
                    spellcheck="false"
                    placeholder="add sidecar: http://192.0.2.10:8080"
                />
                <button type="submit">"Add"</button>
            </form>
            <div class="tools">
                <div class="seg" role="group" aria-label="layout">
                    <button
                        id="view-grid"
                        type="button"
                        aria-pressed=move || (ui.mode.get() == ViewMode::Grid).to_string()
                        on:click=move |_| cmd(Cmd::Grid)
                    >
                        "Grid"
                    </button>
                    <button
                        id="view-single"
                        type="button"
                        aria-pressed=move || (ui.mode.get() != ViewMode::Grid).to_string()
                        on:click=move |_| cmd(Cmd::SingleFirst)
                    >
                        "Single"
                    </button>
                </div>
                <label class="file-btn" title="Replay a trace file (JSON lines or CSV); or drop it on the page">
                    <input
                        id="import"
                        type="file"
                        accept=".jsonl,.json,.ndjson,.csv,text/csv,application/json"
                        on:change=on_file
                    />
                    "Import trace…"
                </label>
                <label class="inline">
                    <span class="sr-only">"Replay speed"</span>
                    <select
                        id="speed"
                        title="Replay speed"
                        on:change=move |e| {
                            if let Some(s) = Speed::from_name(&event_target_value(&e)) {
                                ui.speed.set(s);
                            }
                        }
                    >
                        {Speed::ALL
                            .into_iter()
                            .map(|s| {
                                let text = match s {
                                    Speed::Instant => "replay instantly",
                                    Speed::X1 => "replay at 1×",
                                    Speed::X10 => "replay at 10×",
                                };
                                view! {
                                    <option value=s.name() selected=move || ui.speed.get() == s>
                                        {text}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <details class="settings">
                    <summary>"Settings"</summary>
                    <div class="settings-body">
                        <label class="check">
                            <input
                                id="alerts"
                                type="checkbox"
                                prop:checked=move || ui.alerts.get()
                                on:change=move |e| cmd(Cmd::Alerts(event_target_checked(&e)))
                            />
                            "Notify and beep on red"
                        </label>
                        <label>
                            "History per target "
                            <select
                                id="history"
                                on:change=move |e| {
                                    if let Some(h) = History::from_name(&event_target_value(&e)) {
                                        cmd(Cmd::History(h));
                                    }
                                }
                            >
                                {History::ALL
                                    .into_iter()
                                    .map(|h| {
                                        let text = match h {
                                            History::M10 => "10 minutes",
                                            History::H1 => "1 hour",
                                            History::H2 => "2 hours",
                                        };
                                        view! {
                                            <option value=h.name() selected=move || ui.history.get() == h>
                                                {text}
                                            </option>
                                        }
                                    })
                                    .collect_view()}
                            </select>
                        </label>
                    </div>
                </details>
            </div>
        </header>
    }
}

#[component]
fn Notices(ui: Ui) -> impl IntoView {
    view! {
        <p
            id="notice"
            class="notice"
            role="alert"
            data-kind=move || ui.notice.with(|n| n.as_ref().map_or("", |n| n.kind))
            hidden=move || ui.notice.with(Option::is_none)
        >
            <span class="notice-text">
                {move || ui.notice.with(|n| n.as_ref().map(|n| n.text.clone()).unwrap_or_default())}
            </span>
            <button type="button" class="link" on:click=move |_| ui.notice.set(None)>
                "Dismiss"
            </button>
        </p>
    }
}

/// One target: its light, what it watches, the link state.
#[component]
fn Tile(ui: Ui, t: TargetUi) -> impl IntoView {
    let tile = t.tile;
    let key = t.key;
    let s = move |f: fn(&Summary) -> String| move || tile.with(|v| f(&v.summary));
    let light = move || tile.with(|v| v.summary.light);
    let info = move |f: fn(&Info) -> String| {
        move || tile.with(|v| v.info.as_ref().map_or_else(|| "—".to_string(), f))
    };
    let selected = move || ui.mode.get() == ViewMode::Single(key);
    let conn_name = move || tile.with(|v| v.conn.name());
    let failed = move || tile.with(|v| matches!(v.conn, Conn::Failed { .. }));
    let overlaid = move || {
        let n = tile.with(|v| v.overlay_name());
        ui.overlay.with(|o| o.contains(&n))
    };
    let hidden = move || {
        let q = ui.filter.get();
        !q.is_empty() && !tile.with(|v| tile_matches(&q, v))
    };
    view! {
        <article
            class="tile"
            class:selected=selected
            style:order=move || tile.with(|v| v.order.to_string())
            hidden=hidden
            data-key=key
            data-source=move || tile.with(|v| v.source.clone())
            data-name=move || tile.with(|v| v.title())
            data-light=move || light_class(light())
            data-conn=conn_name
            data-samples=s(|s| s.samples.to_string())
            data-lost=s(|s| s.lost.to_string())
            data-held=s(|s| s.held.to_string())
            data-first-seq=s(|s| s.first_seq.map(|q| q.to_string()).unwrap_or_default())
            data-last-seq=s(|s| s.last_seq.map(|q| q.to_string()).unwrap_or_default())
            data-last-id=s(|s| s.last_id.map(|q| q.to_string()).unwrap_or_default())
            data-migrations=s(|s| s.migrations.to_string())
            data-clock-readings=s(|s| s.clock_readings.to_string())
            data-announces=s(|s| s.announces.to_string())
            data-remote=move || tile.with(|v| v.summary.remote_from)
        >
            <header class="tile-head">
                <span class="lamp" aria-hidden="true"></span>
                <button
                    type="button"
                    class="tile-title"
                    title="Show this target in detail"
                    aria-pressed=move || selected().to_string()
                    on:click=move |_| cmd(Cmd::Select(key))
                >
                    <span class="tile-target">{move || tile.with(|v| v.title())}</span>
                    <span class="tile-word" role="status" aria-live="polite">
                        {move || format::light_word(light())}
                    </span>
                </button>
                <button
                    type="button"
                    class="icon remove"
                    title="Remove this target"
                    aria-label="Remove this target"
                    on:click=move |_| cmd(Cmd::Remove(key))
                >
                    "×"
                </button>
            </header>
            <p class="tile-headline" title=s(|s| s.headline.clone())>
                {move || {
                    tile.with(|v| {
                        if v.summary.headline.is_empty() {
                            format::light_meaning(v.summary.light).to_string()
                        } else {
                            v.summary.headline.clone()
                        }
                    })
                }}
            </p>
            <LastMigration key=key tile=tile />
            <canvas
                id=format!("spark-{key}")
                class="spark"
                role="img"
                aria-label="RTT of the last 30 seconds"
                hidden=move || tile.with(|v| v.summary.remote_spark.is_some())
            ></canvas>
            <RemoteSpark tile=tile />
            <dl class="facts">
                <div>
                    <dt>"probes"</dt>
                    <dd class="f-interval">{info(probes)}</dd>
                </div>
                <div>
                    <dt>"run"</dt>
                    <dd class="f-run mono" title=info(|i| i.run_id.clone())>
                        {info(|i| i.run_id.clone())}
                    </dd>
                </div>
                <div>
                    <dt>"source"</dt>
                    <dd class="f-source mono" title=move || tile.with(|v| v.source.clone())>
                        {move || tile.with(|v| v.label.clone())}
                    </dd>
                </div>
            </dl>
            <footer class="conn" data-state=conn_name title=move || tile.with(|v| v.conn.text())>
                <span class="dot" aria-hidden="true"></span>
                <span class="conn-text">{move || tile.with(|v| v.conn.text())}</span>
                <button
                    type="button"
                    class="link"
                    hidden=move || !failed()
                    on:click=move |_| cmd(Cmd::Reconnect(key))
                >
                    "Reconnect now"
                </button>
                <button
                    type="button"
                    class="icon overlay"
                    title="Overlay this target's RTT on the detail chart (pick 2 to 4)"
                    aria-label="Overlay on the detail chart"
                    aria-pressed=move || overlaid().to_string()
                    on:click=move |_| cmd(Cmd::Overlay(key))
                >
                    "⊕"
                </button>
            </footer>
        </article>
    }
}

/// A target without a live stream: the sidecar's per-second sparkline
/// (`/overview`) as inline SVG, lost seconds as bars.
#[component]
fn RemoteSpark(tile: RwSignal<TileView>) -> impl IntoView {
    let spark = move || tile.with(|v| v.summary.remote_spark.clone());
    move || {
        spark().map(|sp| {
            let label = format!(
                "The sidecar's per-second RTT of the last {} s (top {}), {} s with lost probes",
                sp.seconds, sp.top, sp.lost_seconds
            );
            view! {
                <div
                    class="spark spark-remote"
                    role="img"
                    aria-label=label.clone()
                    title=label
                    data-seconds=sp.seconds
                    data-lost-seconds=sp.lost_seconds
                    inner_html=sp.svg()
                ></div>
            }
        })
    }
}
