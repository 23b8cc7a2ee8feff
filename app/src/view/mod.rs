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

/// A reactive value read through a plain `fn` from a `Copy` context.
/// Every closure made here for one context and value type is one type, so
/// Leptos's view machinery (a render effect, the text, attribute, class
/// or property update) is compiled once per pair instead of once per
/// closure: a closure type of its own costs the page ~0.5 KB of wasm
/// (docs/BENCHMARKS.md, page weight).
pub(crate) fn rx<C: Copy + 'static, T: 'static>(
    c: C,
    f: fn(C) -> T,
) -> impl Fn() -> T + Copy + 'static {
    move || f(c)
}

/// A click that sends `f(key)`: one handler type for every such button
/// (see [`rx`]).
pub(crate) fn click(key: u32, f: fn(u32) -> Cmd) -> impl Fn(ev::MouseEvent) + Copy + 'static {
    move |_| cmd(f(key))
}

/// A tile's context: the page's signals and the target's.
type Tc = (Ui, TargetUi);

/// A fact from the target's `/info`, `—` before it came.
fn info(t: TargetUi, f: fn(&Info) -> String) -> String {
    t.tile
        .with(|v| v.info.as_ref().map_or_else(|| "—".to_string(), f))
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
            class:dragging=rx(ui, |u| u.dragging.get())
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
                    class:grid=rx(ui, |u| u.mode.get() == ViewMode::Grid)
                    class:strip=rx(ui, |u| u.mode.get() != ViewMode::Grid)
                    class:many=rx(ui, |u| u.targets.with(|t| t.len() > MANY_TILES))
                    aria-label="targets"
                >
                    <For
                        each=move || ui.targets.get()
                        key=|t| u64::from(t.key)
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
            hidden=rx(ui, |u| !u.no_sidecar.get())
        ></section>
    }
}

/// Over the grid: the filter, and how many tiles it shows.
#[component]
fn GridBar(ui: Ui) -> impl IntoView {
    let count = |u: Ui| {
        let q = u.filter.get();
        u.targets.with(|ts| {
            let shown = ts
                .iter()
                .filter(|t| t.tile.with(|v| tile_matches(&q, v)))
                .count();
            format!("{shown} of {} targets, worst first", ts.len())
        })
    };
    view! {
        <div
            class="gridbar"
            hidden=rx(ui, |u| u.mode.get() != ViewMode::Grid || u.targets.with(|t| t.len() < 2))
        >
            <label class="inline">
                <span class="sr-only">"Filter targets"</span>
                <input
                    id="filter"
                    type="search"
                    placeholder="filter: name, address or label (rack=a7)"
                    autocomplete="off"
                    spellcheck="false"
                    prop:value=rx(ui, |u| u.filter.get())
                    on:input=move |e| cmd(Cmd::Filter(event_target_value(&e)))
                />
            </label>
            <span id="filter-count" class="hint">
                {rx(ui, count)}
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
    let overall_word = |ui: Ui| {
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
                data-light=rx(ui, |u| light_class(u.overall.get()).to_string())
                title="the worst light over all targets"
            >
                <span class="dot" aria-hidden="true"></span>
                <span class="overall-word">{rx(ui, overall_word)}</span>
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
                        aria-pressed=rx(ui, |u| (u.mode.get() == ViewMode::Grid).to_string())
                        on:click=click(0, |_| Cmd::Grid)
                    >
                        "Grid"
                    </button>
                    <button
                        id="view-single"
                        type="button"
                        aria-pressed=rx(ui, |u| (u.mode.get() != ViewMode::Grid).to_string())
                        on:click=click(0, |_| Cmd::SingleFirst)
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
                                prop:checked=rx(ui, |u| u.alerts.get())
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
            data-kind=rx(ui, |u| u.notice.with(|n| n.as_ref().map_or("", |n| n.kind)).to_string())
            hidden=rx(ui, |u| u.notice.with(Option::is_none))
        >
            <span class="notice-text">
                {rx(ui, |u| u.notice.with(|n| n.as_ref().map(|n| n.text.clone()).unwrap_or_default()))}
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
    let key = t.key;
    let c: Tc = (ui, t);
    view! {
        <article
            class="tile"
            class:selected=rx(c, |(u, t)| u.mode.get() == ViewMode::Single(t.key))
            style:order=rx(c, |(_, t)| t.tile.with(|v| v.order.to_string()))
            hidden=rx(c, |(u, t)| {
                let q = u.filter.get();
                !q.is_empty() && !t.tile.with(|v| tile_matches(&q, v))
            })
            data-key=key
            data-source=rx(c, |(_, t)| t.tile.with(|v| v.source.clone()))
            data-name=rx(c, |(_, t)| t.tile.with(|v| v.title()))
            data-light=rx(c, |(_, t)| light_class(t.tile.with(|v| v.summary.light)).to_string())
            data-conn=rx(c, |(_, t)| t.tile.with(|v| v.conn.name()).to_string())
            data-samples=rx(c, |(_, t)| t.tile.with(|v| v.summary.samples.to_string()))
            data-lost=rx(c, |(_, t)| t.tile.with(|v| v.summary.lost.to_string()))
            data-held=rx(c, |(_, t)| t.tile.with(|v| v.summary.held.to_string()))
            data-first-seq=rx(c, |(_, t)| t.tile.with(|v| v.summary.first_seq.map(|q| q.to_string()).unwrap_or_default()))
            data-last-seq=rx(c, |(_, t)| t.tile.with(|v| v.summary.last_seq.map(|q| q.to_string()).unwrap_or_default()))
            data-last-id=rx(c, |(_, t)| t.tile.with(|v| v.summary.last_id.map(|q| q.to_string()).unwrap_or_default()))
            data-migrations=rx(c, |(_, t)| t.tile.with(|v| v.summary.migrations.to_string()))
            data-clock-readings=rx(c, |(_, t)| t.tile.with(|v| v.summary.clock_readings.to_string()))
            data-announces=rx(c, |(_, t)| t.tile.with(|v| v.summary.announces.to_string()))
            data-remote=rx(c, |(_, t)| t.tile.with(|v| v.summary.remote_from).to_string())
        >
            <header class="tile-head">
                <span class="lamp" aria-hidden="true"></span>
                <button
                    type="button"
                    class="tile-title"
                    title="Show this target in detail"
                    aria-pressed=rx(c, |(u, t)| (u.mode.get() == ViewMode::Single(t.key)).to_string())
                    on:click=click(key, Cmd::Select)
                >
                    <span class="tile-target">{rx(c, |(_, t)| t.tile.with(|v| v.title()))}</span>
                    <span class="tile-word" role="status" aria-live="polite">
                        {rx(c, |(_, t)| format::light_word(t.tile.with(|v| v.summary.light)).to_string())}
                    </span>
                </button>
                <button
                    type="button"
                    class="icon remove"
                    title="Remove this target"
                    aria-label="Remove this target"
                    on:click=click(key, Cmd::Remove)
                >
                    "×"
                </button>
            </header>
            <p class="tile-headline" title=rx(c, |(_, t)| t.tile.with(|v| v.summary.headline.clone()))>
                {rx(c, |(_, t)| {
                    t.tile.with(|v| {
                        if v.summary.headline.is_empty() {
                            format::light_meaning(v.summary.light).to_string()
                        } else {
                            v.summary.headline.clone()
                        }
                    })
                })}
            </p>
            <LastMigration c=c />
            <canvas
                id=format!("spark-{key}")
                class="spark"
                role="img"
                aria-label="RTT of the last 30 seconds"
                hidden=rx(c, |(_, t)| t.tile.with(|v| v.summary.remote_spark.is_some()))
            ></canvas>
            <RemoteSpark tile=t.tile />
            <dl class="facts">
                <div>
                    <dt>"probes"</dt>
                    <dd class="f-interval">{rx(c, |(_, t)| info(t, probes))}</dd>
                </div>
                <div>
                    <dt>"run"</dt>
                    <dd class="f-run mono" title=rx(c, |(_, t)| info(t, |i| i.run_id.clone()))>
                        {rx(c, |(_, t)| info(t, |i| i.run_id.clone()))}
                    </dd>
                </div>
                <div>
                    <dt>"source"</dt>
                    <dd class="f-source mono" title=rx(c, |(_, t)| t.tile.with(|v| v.source.clone()))>
                        {rx(c, |(_, t)| t.tile.with(|v| v.label.clone()))}
                    </dd>
                </div>
            </dl>
            <footer
                class="conn"
                data-state=rx(c, |(_, t)| t.tile.with(|v| v.conn.name()).to_string())
                title=rx(c, |(_, t)| t.tile.with(|v| v.conn.text()))
            >
                <span class="dot" aria-hidden="true"></span>
                <span class="conn-text">{rx(c, |(_, t)| t.tile.with(|v| v.conn.text()))}</span>
                <button
                    type="button"
                    class="link"
                    hidden=rx(c, |(_, t)| !t.tile.with(|v| matches!(v.conn, Conn::Failed { .. })))
                    on:click=click(key, Cmd::Reconnect)
                >
                    "Reconnect now"
                </button>
                <button
                    type="button"
                    class="icon overlay"
                    title="Overlay this target's RTT on the detail chart (pick 2 to 4)"
                    aria-label="Overlay on the detail chart"
                    aria-pressed=rx(c, |(u, t)| {
                        let n = t.tile.with(|v| v.overlay_name());
                        u.overlay.with(|o| o.contains(&n)).to_string()
                    })
                    on:click=click(key, Cmd::Overlay)
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
