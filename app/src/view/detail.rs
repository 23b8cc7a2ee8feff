//! The selected target in detail: its light and verdict, the chart with
//! its controls, exports and diagnostics; and the last-migration line a
//! tile shares with it.

use super::{click, light_class, probes, rx, Tc};
use crate::cmd::{cmd, Cmd, ExportKind};
use crate::format;
use crate::ui::{TileView, Ui, ViewMode};
use crate::viewport::{Span, YAxis};
use leptos::ev;
use leptos::prelude::*;
use migwatch_shared::Light;
use wasm_bindgen::JsCast;

/// "last migration: 14:02:07, downtime 392 ms (clock step)" until the
/// user acknowledges it.
#[component]
pub(super) fn LastMigration(c: Tc) -> impl IntoView {
    let key = c.1.key;
    view! {
        <p
            class="last-migration"
            hidden=rx(c, |(_, t)| t.tile.with(|v| v.summary.last_migration.is_empty()))
        >
            <span class="lm-text">
                {rx(c, |(_, t)| t.tile.with(|v| v.summary.last_migration.clone()))}
            </span>
            <button
                type="button"
                class="link ack"
                title="Stop showing this migration here (it stays in the event log)"
                on:click=click(key, Cmd::Acknowledge)
            >
                "OK"
            </button>
        </p>
    }
}

/// The selected target's light.
fn sel_light(u: Ui) -> Option<Light> {
    u.selected().and_then(|t| t.tile.with(|v| v.summary.light))
}

/// The selected target in detail: light, chart with controls, exports,
/// diagnostics.
#[component]
pub(super) fn Detail(ui: Ui) -> impl IntoView {
    let sel = move || ui.selected();
    let with_tile =
        move |f: fn(&TileView) -> String| move || sel().map(|t| t.tile.with(f)).unwrap_or_default();
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
            hidden=rx(ui, |u| u.mode.get() == ViewMode::Grid)
        >
            <section
                id="light"
                class="light"
                role="status"
                aria-live="polite"
                aria-atomic="true"
                data-light=rx(ui, |u| light_class(sel_light(u)).to_string())
            >
                <div class="lamps" aria-hidden="true">
                    <span class="lamp lamp-red"></span>
                    <span class="lamp lamp-yellow"></span>
                    <span class="lamp lamp-green"></span>
                </div>
                <div class="verdict">
                    <p class="word-line">
                        <span id="light-label" class="word">
                            {rx(ui, |u| format::light_word(sel_light(u)).to_string())}
                        </span>
                        <span class="meaning">
                            {rx(ui, |u| format::light_meaning(sel_light(u)).to_string())}
                        </span>
                    </p>
                    <p id="headline" class="headline">{with_tile(|v| v.summary.headline.clone())}</p>
                    {move || sel().map(|t| view! { <LastMigration c=(ui, t) /> })}
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
                        aria-pressed=rx(ui, |u| (!u.chart.get().following).to_string())
                        on:click=click(0, |_| Cmd::TogglePause)
                        title="Pause to look at history (zoom with the wheel, drag to pan); resume to follow the newest data"
                    >
                        {rx(ui, |u| if u.chart.get().following { "Pause" } else { "Resume" }.to_string())}
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
                            <option value="auto" selected=rx(ui, |u| u.chart.get().y == YAxis::Auto)>
                                "auto"
                            </option>
                            <option value="fixed" selected=rx(ui, |u| matches!(u.chart.get().y, YAxis::Fixed(_)))>
                                "fixed"
                            </option>
                            <option value="log" selected=rx(ui, |u| u.chart.get().y == YAxis::Log)>
                                "log"
                            </option>
                        </select>
                    </label>
                    <label class="inline" hidden=rx(ui, |u| !matches!(u.chart.get().y, YAxis::Fixed(_)))>
                            <input
                                id="ymax"
                                type="number"
                                min="0.01"
                                step="any"
                                prop:value=rx(ui, |u| match u.chart.get().y {
                                    YAxis::Fixed(ms) => ms.to_string(),
                                    _ => String::new(),
                                })
                                on:change=move |e| {
                                    // The browser's number (NaN when empty): no
                                    // float parser in the page's wasm.
                                    let v = event_target::<web_sys::HtmlInputElement>(&e)
                                        .value_as_number();
                                    if v.is_finite() && v > 0.0 {
                                        cmd(Cmd::YAxis(YAxis::Fixed(v)));
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
                            {rx(ui, |u| {
                                u.selected()
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
                            })}
                        </span>
                    </summary>
                    <p class="diag-line">{with_tile(|v| v.summary.diag_line())}</p>
                </details>
            </div>
        </section>
    }
}
