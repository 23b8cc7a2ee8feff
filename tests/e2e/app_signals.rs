//! The confirming signals on the real page: a scripted guest (the
//! responder) is "live-migrated" for 300 ms. Its clock stands still for the
//! stop and it announces its MAC afterwards; the real sidecar reads its
//! clock (ICMP Timestamp) and captures the announces on the monitor-side
//! veth; the page must go red, name the clock step (≈ 300 ms) and the
//! announce, draw the announce markers and the clock track. And a real lab
//! recording (QEMU, tests/fixtures/lab-dirty-clock-announce.jsonl)
//! replayed in the page draws the same way.

use crate::app_common::{dist, import, open_page, page_guest, tile, wait_sidecar_green};
use crate::require_root;
use migwatch_shared::wire::Event;
use migwatch_tests::browser::Browser;
use migwatch_tests::sidecar::{EventStream, Received, Sidecar};
use migwatch_tests::{out_dir, wait_for};
use serde_json::Value;
use std::time::Duration;

/// What the detail view says, through its `data-*` attributes and text.
#[derive(Debug, Clone, Default)]
struct Page {
    light: String,
    headline: String,
    reasons: Vec<String>,
    /// `#chart`: announce markers drawn (all, RARP, GARP).
    announces: (u64, u64, u64),
    /// `#clock-chart`: readings received and drawn.
    clock_readings: u64,
    clock_drawn: u64,
    /// `#clock-chart`: the largest step in view, and the lowest offset
    /// relative to the first readings in view, ms.
    clock_step_ms: Option<f64>,
    clock_low_ms: Option<f64>,
    /// The event log's downtime cells.
    downtimes: Vec<String>,
}

const READ_PAGE: &str = "
    const l = document.getElementById('light');
    const c = document.getElementById('chart');
    const k = document.getElementById('clock-chart');
    if (!l || !c || !k) return null;
    const h = document.getElementById('headline');
    const rs = Array.from(document.querySelectorAll('#reasons li')).map(li => li.textContent);
    const dt = Array.from(document.querySelectorAll('#log .log-row[data-kind=event] .lr-downtime')).map(td => td.textContent);
    const d = (e, n) => e.getAttribute(n) || '';
    return [l.dataset.light || '', h ? h.textContent : '', rs,
        d(c, 'data-announces'), d(c, 'data-rarp'), d(c, 'data-garp'),
        d(k, 'data-clock-readings'), d(k, 'data-drawn'), d(k, 'data-clock-step-ms'),
        d(k, 'data-low-ms'), dt];
";

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn page(b: &Browser) -> Option<Page> {
    let v = b.eval(READ_PAGE).ok()?;
    let s = |i: usize| v.get(i).and_then(Value::as_str).unwrap_or_default();
    let n = |i: usize| s(i).parse::<u64>().unwrap_or(0);
    let f = |i: usize| s(i).parse::<f64>().ok();
    v.is_array().then(|| Page {
        light: s(0).to_string(),
        headline: s(1).to_string(),
        reasons: strings(&v[2]),
        announces: (n(3), n(4), n(5)),
        clock_readings: n(6),
        clock_drawn: n(7),
        clock_step_ms: f(8),
        clock_low_ms: f(9),
        downtimes: strings(&v[10]),
    })
}

/// The ms in "guest clock stepped back 300.4 ms (3 readings)".
fn clock_step_reason(p: &Page) -> Option<f64> {
    p.reasons.iter().find_map(|r| {
        r.strip_prefix("guest clock stepped back ")?
            .split(" ms")
            .next()?
            .parse()
            .ok()
    })
}

#[test]
fn page_a_migrated_guest_is_red_by_its_clock_step_with_announce_markers_and_a_clock_track(
) -> anyhow::Result<()> {
    require_root!();
    let mut pg = page_guest()?;
    let (sc, guest) = (&pg.sc, &mut pg.guest);
    // The stream too, to check what the sidecar measured independently of
    // the page.
    let stream = EventStream::open(&sc.base, "?since=0")?;
    wait_sidecar_green(sc)?;
    let b = Browser::start(1280, 1100, false)?;
    b.goto(&format!("{}/", sc.base))?;

    // Green, with the clock track drawn and flat (the guest clock runs with
    // ours), and no announce yet. The page shows the sidecar's history, so
    // a start-up transient of the responder must first leave the 30 s
    // window.
    let before = wait_for(
        "a green light and a flat clock track",
        Duration::from_secs(60),
        Duration::from_millis(50),
        // The chart is drawn on the next frame after a reading arrives.
        || {
            page(&b).filter(|p| {
                p.light == "green"
                    && p.clock_readings >= 30
                    && p.clock_drawn >= 30
                    && p.clock_step_ms.is_some_and(|s| s.abs() < 3.0)
            })
        },
    )
    .map_err(|e| {
        let _ = b.screenshot(&out_dir().join("app-signals-before-failed.png"));
        anyhow::anyhow!("{e}: {:?}", page(&b))
    })?;
    assert_eq!(before.announces, (0, 0, 0), "{before:?}");
    b.screenshot(&out_dir().join("app-signals-before.png"))?;

    guest.cmd("migrate 300")?;

    let red = wait_for(
        "the light to go red",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || page(&b).filter(|p| p.light == "red"),
    )?;
    assert!(red.headline.starts_with("Red: "), "{red:?}");
    // The clock step is named once readings after the resume agree on it.
    let p = wait_for(
        "the reasons to name the clock step",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || page(&b).filter(|p| p.light == "red" && clock_step_reason(p).is_some()),
    )?;
    let step = clock_step_reason(&p).unwrap_or_default();
    assert!((step - 300.0).abs() <= 3.0, "clock step {step} ms: {p:?}");
    assert!(
        p.headline.contains("guest clock stepped back") && p.headline.ends_with(": migrated."),
        "{p:?}"
    );
    // Every announce of the burst (5 RARP, 5 gratuitous ARP over 800 ms)
    // is drawn, and named.
    let p = wait_for(
        "the announce markers",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            page(&b).filter(|p| {
                p.announces.1 >= 5
                    && p.announces.2 >= 5
                    && p.reasons.iter().any(|r| r.contains("announced again"))
            })
        },
    )?;
    assert_eq!(p.light, "red", "{p:?}");
    assert_eq!(p.announces.0, p.announces.1 + p.announces.2);
    assert!(
        p.reasons
            .iter()
            .any(|r| r.ends_with("announced again: 5 RARP + 5 gratuitous ARP")),
        "{p:?}"
    );
    // The clock track shows the step: the largest change in view, and the
    // lowest point relative to the first readings in view.
    let cs = p.clock_step_ms.unwrap_or_default();
    assert!((cs + 300.0).abs() <= 5.0, "clock track step {cs} ms: {p:?}");
    let low = p.clock_low_ms.unwrap_or_default();
    assert!(
        (low + 300.0).abs() <= 5.0,
        "clock track low {low} ms: {p:?}"
    );
    // New readings arrived and the track is drawn (its 30 s window can be
    // full already, the page having shown the sidecar's history).
    assert!(
        p.clock_readings > before.clock_readings && p.clock_drawn >= 30,
        "{p:?}"
    );
    // The event log gives the downtime from the clock step.
    let p = wait_for(
        "the event log to give the downtime from the clock step",
        Duration::from_secs(3),
        Duration::from_millis(50),
        || page(&b).filter(|p| p.downtimes.iter().any(|d| d.ends_with("(clock step)"))),
    )?;
    b.screenshot(&out_dir().join("app-signals-migration.png"))?;
    assert_eq!(p.downtimes.len(), 1, "{p:?}");

    // What the sidecar measured: every clock reading after the resume lags
    // by the stop (so the kernel's own timestamp replies, which would read
    // 0, were dropped in the namespace), and the burst came in full.
    // (offset, RTT) of each clock reading, µs.
    let readings_of = |got: &[Received]| -> Vec<(i64, i64)> {
        got.iter()
            .filter_map(|r| match r.event {
                Event::Clock(c) => Some((c.offset_us, i64::from(c.rtt_us))),
                _ => None,
            })
            .collect()
    };
    let announces_of = |got: &[Received]| {
        got.iter()
            .filter(|r| matches!(r.event, Event::Announce(_)))
            .count()
    };
    // Everything from the start, up to 10 readings after the step.
    let got = stream.collect_until(Duration::from_secs(10), |got| {
        let o = readings_of(got);
        let Some(&(first, _)) = o.first() else {
            return false;
        };
        let lagged = o.iter().filter(|&&(x, _)| x - first < -150_000).count();
        announces_of(got) >= 10 && lagged >= 10
    })?;
    let readings = readings_of(&got);
    let median = |v: &[(i64, i64)]| -> i64 {
        let mut o: Vec<i64> = v.iter().map(|r| r.0).collect();
        o.sort_unstable();
        o.get(o.len() / 2).copied().unwrap_or_default()
    };
    // One reading is good to ±0.5 ms (whole-ms target stamps) plus half its
    // RTT (the responder may answer late on a busy machine), so the test
    // compares medians, and each reading within its own bound.
    let i = readings
        .iter()
        .position(|&(o, _)| o - readings[0].0 < -150_000)
        .unwrap_or(readings.len());
    let before = median(&readings[..i.min(5)]);
    let after = median(&readings[i..]);
    assert!(
        ((after - before) + 300_000).abs() <= 1_500,
        "offset {before} → {after} µs (medians)"
    );
    assert!(
        readings[i..]
            .iter()
            .all(|&(o, rtt)| ((o - before) + 300_000).abs() <= 1_500 + rtt / 2),
        "after the step, (offset, rtt) µs, from {before}: {:?}",
        &readings[i..]
    );
    assert_eq!(announces_of(&got), 10);
    assert!(
        guest.kernel_replies_dropped()? > 0,
        "the kernel's timestamp replies never reached the drop rule"
    );
    Ok(())
}

#[test]
fn page_replays_a_lab_trace_with_its_clock_step_and_announces() -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    let text = std::fs::read_to_string(
        migwatch_tests::repo_root().join("tests/fixtures/lab-dirty-clock-announce.jsonl"),
    )?;
    // Any sidecar serves the page; the replay needs none of its data.
    let sc = Sidecar::start(
        "127.0.0.1",
        &[
            "--interval",
            "10ms",
            "--clock-interval",
            "off",
            "--web-root",
            &dist,
        ],
    )?;
    let b = Browser::start(1280, 1100, false)?;
    open_page(&b, &sc.base)?;
    import(&b, "lab-dirty.jsonl", &text)?;
    let t = wait_for(
        "the replay to finish",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || tile(&b, "file: lab-dirty.jsonl").filter(|t| t.conn == "replay" && t.migrations == 1),
    )?;
    assert_eq!(t.light, "red", "{t:?}");
    // QEMU's STOP→RESUME was 368.7 ms; the guest answers in whole ms.
    let p = wait_for(
        "the replayed trace drawn with its signals",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            page(&b)
                .filter(|p| p.light == "red" && p.clock_drawn == 20 && p.announces == (10, 5, 5))
        },
    )?;
    let step = clock_step_reason(&p).unwrap_or_default();
    assert!((step - 369.0).abs() <= 4.0, "clock step {step} ms: {p:?}");
    let cs = p.clock_step_ms.unwrap_or_default();
    assert!((cs + 369.0).abs() <= 5.0, "clock track step {cs} ms: {p:?}");
    assert!(
        p.downtimes.iter().any(|d| d.ends_with("(clock step)")),
        "{p:?}"
    );
    b.screenshot(&out_dir().join("app-signals-replay.png"))?;
    Ok(())
}
