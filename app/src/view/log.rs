//! The event log: migrations and outages (with every other yellow) in two
//! sections, newest first; a row jumps the chart to its event; the rows
//! only this browser remembers are marked, with a control to forget them.

use super::{click, rx};
use crate::cmd::{cmd, Cmd};
use crate::format::{self, LogRow, RowSource};
use crate::ui::Ui;
use leptos::ev;
use leptos::prelude::*;
use migwatch_shared::Light;

/// Every detected event, newest first, in two sections: migrations (red)
/// and outages and other yellows (not a migration, not confirmed, or a
/// yellow light no event explains). A row jumps the chart to it.
#[component]
pub(super) fn EventLog(ui: Ui) -> impl IntoView {
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
            <p
                class="log-kept"
                hidden=rx(ui, |u| !u.log.with(|rows| rows.iter().any(|r| r.source == RowSource::Browser)))
            >
                <span class="lr-from">
                    "Rows marked \"from this browser\": the sidecar no longer holds them."
                </span>
                " "
                <button
                    type="button"
                    id="forget"
                    class="link"
                    title="Forget every event this browser remembers (kept in its localStorage)"
                    on:click=click(0, |_| Cmd::ForgetHistory)
                >
                    "Forget"
                </button>
            </p>
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

/// A row's identity in the keyed list: what changes what it shows (its
/// target, id, level, end, evidence and source), hashed (FNV-1a) into the
/// tiles' key type, so both lists share one keyed-diff instance (page
/// weight).
fn row_key(r: &LogRow) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&r.key.to_le_bytes());
    eat(&r.id.to_le_bytes());
    eat(r.level.name().as_bytes());
    eat(&r.end_us.to_le_bytes());
    for e in &r.evidence {
        eat(e.as_bytes());
        eat(&[0]);
    }
    eat(r.source.name().as_bytes());
    h
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
                    key=row_key
                    children=move |r| {
                        let (key, a, b) = (r.key, r.start_us, r.end_us);
                        let go = move || cmd(Cmd::Jump { key, start_us: a, end_us: b });
                        view! {
                            <li
                                class="log-row"
                                data-level=r.level.name()
                                data-key=r.key
                                data-source=r.source.name()
                                data-kind=r.kind.name()
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
                                <span class="mono lr-downtime">{r.downtime_text()}</span>
                                <span class="mono lr-target">{r.target.clone()}</span>
                                <span class="lr-evidence">
                                    {r.evidence.join("; ")}
                                </span>
                            </li>
                        }
                    }
                />
            </ul>
        </section>
    }
}
