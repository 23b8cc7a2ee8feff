//! Components. They only render signals and turn user input into
//! [`Cmd`]s; everything they show is computed elsewhere (`model`, `source`,
//! `format`) and pushed in by `live` once per animation frame.

use crate::cmd::{cmd, Cmd, ExportKind};
use crate::format::{self, LogRow};
use crate::model::Summary;
use crate::replay::Speed;
use crate::source::Conn;
use crate::ui::{TargetUi, TileView, Ui, ViewMode};
use crate::urlstate::History;
use crate::viewport::{Span, YAxis};
use leptos::ev;
use leptos::prelude::*;
use migwatch_shared::{Info, Light};
use wasm_bindgen::JsCast;

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

fn light_class(l: Option<Light>) -> &'static str {
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
            ></canvas>
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
            </footer>
        </article>
    }
}

/// "last migration: 14:02:07, downtime 392 ms (clock step)" until the
/// user acknowledges it.
#[component]
fn LastMigration(key: u32, tile: RwSignal<TileView>) -> impl IntoView {
    let words = move || tile.with(|v| v.summary.last_migration.clone());
    view! {
        <p class="last-migration" hidden=move || words().is_empty()>
            <span class="lm-text">{words}</span>
            <button
                type="button"
                class="link ack"
                title="Stop showing this migration here (it stays in the event log)"
                on:click=move |_| cmd(Cmd::Acknowledge(key))
            >
                "OK"
            </button>
        </p>
    }
}

/// The selected target in detail: light, chart with controls, exports,
/// diagnostics.
#[component]
fn Detail(ui: Ui) -> impl IntoView {
    let sel = move || ui.selected();
    let with_tile =
        move |f: fn(&TileView) -> String| move || sel().map(|t| t.tile.with(f)).unwrap_or_default();
    let light = move || sel().and_then(|t| t.tile.with(|v| v.summary.light));
    let reasons = move || {
        sel()
            .map(|t| t.tile.with(|v| v.summary.reasons.clone()))
            .unwrap_or_default()
    };
    let key = move || sel().map(|t| t.key);
    let export = move |what: ExportKind| {
        move |_| {
            if let Some(k) = key() {
                cmd(Cmd::Export(k, what));
            }
        }
    };
    let chart = ui.chart;
    let fixed_ms = move || match chart.get().y {
        YAxis::Fixed(ms) => ms.to_string(),
        _ => String::new(),
    };
    let (drag, set_drag) = signal(None::<(f64, f64)>);
    // Opens the panel when trouble first shows, and otherwise leaves it
    // as the user set it (a memo only fires on change).
    let trouble =
        Memo::new(move |_| sel().is_some_and(|t| t.tile.with(|v| v.summary.has_trouble())));
    view! {
        <section
            id="detail"
            class="detail"
            aria-label="selected target"
            hidden=move || ui.mode.get() == ViewMode::Grid
        >
            <section
                id="light"
                class="light"
                role="status"
                aria-live="polite"
                aria-atomic="true"
                data-light=move || light_class(light())
            >
                <div class="lamps" aria-hidden="true">
                    <span class="lamp lamp-red"></span>
                    <span class="lamp lamp-yellow"></span>
                    <span class="lamp lamp-green"></span>
                </div>
                <div class="verdict">
                    <p class="word-line">
                        <span id="light-label" class="word">{move || format::light_word(light())}</span>
                        <span class="meaning">{move || format::light_meaning(light())}</span>
                    </p>
                    <p id="headline" class="headline">{with_tile(|v| v.summary.headline.clone())}</p>
                    {move || sel().map(|t| view! { <LastMigration key=t.key tile=t.tile /> })}
                    <ul id="reasons" class="reasons">
                        {move || reasons().into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}
                    </ul>
                </div>
                <dl class="facts detail-facts">
                    <div>
                        <dt>"target"</dt>
                        <dd id="target">
                            {with_tile(|v| v.info.as_ref().map_or_else(|| v.label.clone(), |i| i.target.clone()))}
                        </dd>
                    </div>
                    <div>
                        <dt>"name"</dt>
                        <dd id="target-name">{with_tile(TileView::title)}</dd>
                    </div>
                    <div>
                        <dt>"probes"</dt>
                        <dd id="interval">{with_tile(|v| v.info.as_ref().map_or_else(|| "—".into(), probes))}</dd>
                    </div>
                    <div>
                        <dt>"run"</dt>
                        <dd id="run-id" class="mono">
                            {with_tile(|v| v.info.as_ref().map_or_else(|| "—".into(), |i| i.run_id.clone()))}
                        </dd>
                    </div>
                    <div>
                        <dt>"link"</dt>
                        <dd id="conn" data-state=with_tile(|v| v.conn.name().to_string())>
                            {with_tile(|v| v.conn.text())}
                        </dd>
                    </div>
                </dl>
            </section>
            <section class="chart-box">
                <div class="toolbar" role="toolbar" aria-label="chart">
                    <div class="seg" role="group" aria-label="window">
                        {Span::ALL
                            .into_iter()
                            .map(|s| {
                                let text = match s {
                                    Span::S30 => "30 s",
                                    Span::M5 => "5 min",
                                    Span::H1 => "1 h",
                                };
                                view! {
                                    <button
                                        type="button"
                                        data-span=s.name()
                                        aria-pressed=move || (chart.get().span == Some(s)).to_string()
                                        on:click=move |_| cmd(Cmd::Span(s))
                                    >
                                        {text}
                                    </button>
                                }
                            })
                            .collect_view()}
                    </div>
                    <button
                        id="pause"
                        type="button"
                        aria-pressed=move || (!chart.get().following).to_string()
                        on:click=move |_| cmd(Cmd::TogglePause)
                        title="Pause to look at history (zoom with the wheel, drag to pan); resume to follow the newest data"
                    >
                        {move || if chart.get().following { "Pause" } else { "Resume" }}
                    </button>
                    <label class="inline">
                        "y axis "
                        <select
                            id="yaxis"
                            on:change=move |e| {
                                let y = match event_target_value(&e).as_str() {
                                    "log" => YAxis::Log,
                                    "fixed" => YAxis::Fixed(10.0),
                                    _ => YAxis::Auto,
                                };
                                cmd(Cmd::YAxis(y));
                            }
                        >
                            <option value="auto" selected=move || chart.get().y == YAxis::Auto>
                                "auto"
                            </option>
                            <option value="fixed" selected=move || matches!(chart.get().y, YAxis::Fixed(_))>
                                "fixed"
                            </option>
                            <option value="log" selected=move || chart.get().y == YAxis::Log>
                                "log"
                            </option>
                        </select>
                    </label>
                    <label class="inline" hidden=move || !matches!(chart.get().y, YAxis::Fixed(_))>
                            <input
                                id="ymax"
                                type="number"
                                min="0.01"
                                step="any"
                                prop:value=fixed_ms
                                on:change=move |e| {
                                    if let Ok(v) = event_target_value(&e).parse::<f64>() {
                                        if v.is_finite() && v > 0.0 {
                                            cmd(Cmd::YAxis(YAxis::Fixed(v)));
                                        }
                                    }
                                }
                            />
                            " ms"
                        </label>
                    <span class="spacer"></span>
                    <span class="hint">"wheel: zoom · drag: pan"</span>
                </div>
                <canvas
                    id="chart"
                    tabindex="0"
                    role="img"
                    aria-label="Round-trip time; lost probes as red ticks under a broken line, late replies as orange marks, detected migrations shaded. Arrow keys pan, + and - zoom."
                    on:wheel=move |e: ev::WheelEvent| {
                        e.prevent_default();
                        let w = f64::from(e.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).map_or(1, |el| el.client_width().max(1)));
                        let at = f64::from(e.offset_x()) / w;
                        let factor = (e.delta_y() / 500.0).exp().clamp(0.25, 4.0);
                        cmd(Cmd::Zoom { factor, at });
                    }
                    on:pointerdown=move |e: ev::PointerEvent| {
                        let w = f64::from(e.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).map_or(1, |el| el.client_width().max(1)));
                        set_drag.set(Some((f64::from(e.client_x()), w)));
                    }
                    on:pointermove=move |e: ev::PointerEvent| {
                        if drag.get_untracked().is_none() {
                            let w = f64::from(e.target().and_then(|t| t.dyn_into::<web_sys::Element>().ok()).map_or(1, |el| el.client_width().max(1)));
                            cmd(Cmd::Hover(crate::chart::plot_fraction(f64::from(e.offset_x()), w)));
                        }
                        if let Some((x0, w)) = drag.get_untracked() {
                            let x = f64::from(e.client_x());
                            if (x - x0).abs() >= 2.0 {
                                cmd(Cmd::Pan(-(x - x0) / w));
                                set_drag.set(Some((x, w)));
                            }
                        }
                    }
                    on:pointerup=move |_| set_drag.set(None)
                    on:pointerleave=move |_| set_drag.set(None)
                    on:keydown=move |e: ev::KeyboardEvent| {
                        let c = match e.key().as_str() {
                            "ArrowLeft" => Some(Cmd::Pan(-0.2)),
                            "ArrowRight" => Some(Cmd::Pan(0.2)),
                            "+" | "=" => Some(Cmd::Zoom { factor: 0.5, at: 0.5 }),
                            "-" => Some(Cmd::Zoom { factor: 2.0, at: 0.5 }),
                            "Home" | "End" => Some(Cmd::Follow),
                            _ => None,
                        };
                        if let Some(c) = c {
                            e.prevent_default();
                            cmd(c);
                        }
                    }
                ></canvas>
                <canvas
                    id="clock-chart"
                    role="img"
                    aria-label="The target's clock offset from ours, in ms relative to the first readings in view: a live migration stops the guest's clock, so it steps down by about the downtime. Layer-2 announces of the target as purple marks."
                ></canvas>
                <p class="legend" aria-hidden="true">
                    <span><i class="key key-line"></i>"RTT"</span>
                    <span><i class="key key-lost"></i>"lost probe"</span>
                    <span><i class="key key-late"></i>"late reply"</span>
                    <span><i class="key key-band-red"></i>"migration"</span>
                    <span><i class="key key-band-yellow"></i>"possible migration"</span>
                    <span><i class="key key-pending"></i>"awaiting reply"</span>
                    <span><i class="key key-rarp"></i>"RARP announce"</span>
                    <span><i class="key key-garp"></i>"gratuitous ARP"</span>
                    <span><i class="key key-clock"></i>"guest clock (lower track)"</span>
                </p>
            </section>
            <p id="stats" class="stats">{with_tile(|v| v.summary.stats.clone())}</p>
            <div class="below">
                <div class="exports" role="group" aria-label="export">
                    <span class="label">"Export"</span>
                    <button type="button" id="export-jsonl" on:click=export(ExportKind::TraceJsonl)>
                        "trace .jsonl"
                    </button>
                    <button type="button" id="export-csv" on:click=export(ExportKind::TraceCsv)>
                        "trace .csv"
                    </button>
                    <button type="button" on:click=export(ExportKind::MigrationsJsonl)>
                        "migrations .jsonl"
                    </button>
                    <button type="button" on:click=export(ExportKind::MigrationsCsv)>
                        "migrations .csv"
                    </button>
                </div>
                <details
                    id="diag"
                    class="diag"
                    prop:open=move || trouble.get()
                    data-unknown=with_tile(|v| v.summary.unknown.to_string())
                    data-malformed=with_tile(|v| v.summary.malformed.to_string())
                    data-last-id=with_tile(|v| v.summary.last_id.map(|i| i.to_string()).unwrap_or_default())
                >
                    <summary>
                        "Diagnostics "
                        <span class="diag-count">
                            {move || {
                                sel()
                                    .map(|t| {
                                        t.tile
                                            .with(|v| {
                                                let s = &v.summary;
                                                let n = s.unknown + s.malformed;
                                                if n == 0 {
                                                    "(all events fine)".to_string()
                                                } else {
                                                    format!("({n} bad events)")
                                                }
                                            })
                                    })
                                    .unwrap_or_default()
                            }}
                        </span>
                    </summary>
                    <p class="diag-line">{with_tile(|v| v.summary.diag_line())}</p>
                </details>
            </div>
        </section>
    }
}

/// Every detected event, newest first, in two sections: migrations (red)
/// and outages (yellow: not a migration, or not confirmed). A row jumps
/// the chart to it.
#[component]
fn EventLog(ui: Ui) -> impl IntoView {
    let many = move || ui.targets.with(|t| t.len() > 1);
    let part = move |red: bool| {
        move || {
            ui.log.with(|rows| {
                rows.iter()
                    .filter(|r| (r.level == Light::Red) == red)
                    .cloned()
                    .collect::<Vec<_>>()
            })
        }
    };
    view! {
        <section id="log" class="log" aria-label="detected events">
            <LogPart
                id="log-migrations"
                title="Migrations"
                empty="None so far."
                rows=Signal::derive(part(true))
                many=Signal::derive(many)
            />
            <LogPart
                id="log-outages"
                title="Outages and other yellows"
                empty="None so far."
                rows=Signal::derive(part(false))
                many=Signal::derive(many)
            />
        </section>
    }
}

#[component]
fn LogPart(
    id: &'static str,
    title: &'static str,
    empty: &'static str,
    rows: Signal<Vec<LogRow>>,
    many: Signal<bool>,
) -> impl IntoView {
    view! {
        <section id=id class="log-part">
            <h2>
                {title} " "
                <span class="count" aria-live="polite">{move || rows.with(Vec::len)}</span>
            </h2>
            <p class="empty" hidden=move || rows.with(|l| !l.is_empty())>
                {empty}
            </p>
            <ul class="log-list" class:multi=move || many.get() hidden=move || rows.with(Vec::is_empty)>
                <For
                    each=move || rows.get()
                    key=|r| (r.key, r.id, r.level.name(), r.end_us, r.evidence.len(), r.from_sidecar)
                    children=move |r| {
                        let (key, a, b) = (r.key, r.start_us, r.end_us);
                        let go = move || cmd(Cmd::Jump { key, start_us: a, end_us: b });
                        view! {
                            <li
                                class="log-row"
                                data-level=r.level.name()
                                data-key=r.key
                                data-source=if r.from_sidecar { "sidecar" } else { "page" }
                                tabindex="0"
                                title="Show on the chart"
                                on:click=move |_| go()
                                on:keydown=move |e: ev::KeyboardEvent| {
                                    if e.key() == "Enter" || e.key() == " " {
                                        e.prevent_default();
                                        go();
                                    }
                                }
                            >
                                <span class="badge" data-level=r.level.name()>
                                    {format::light_word(Some(r.level))}
                                </span>
                                <span class="mono lr-when">{format!("{}–{}", r.start, r.end)}</span>
                                <span class="mono lr-downtime">{format!("downtime {}", r.downtime)}</span>
                                <span class="mono lr-target">{r.target.clone()}</span>
                                <span class="lr-evidence">
                                    {r.evidence.join("; ")}
                                    {r.from_sidecar.then_some(" (from the sidecar's list: before this page's history)")}
                                </span>
                            </li>
                        }
                    }
                />
            </ul>
        </section>
    }
}
