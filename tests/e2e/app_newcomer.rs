//! A newcomer's first minute and a late visitor, on the real page: `?demo`
//! replays the bundled recording and turns red with the downtime in the
//! headline; the headline is never clipped; the state words pass WCAG AA
//! contrast as rendered; a phone-sized window has no sideways scroll and a
//! wide one uses its width; a page served without a sidecar offers the
//! demo instead of retrying; a page opened after a migration lists it, and
//! a reload keeps it; a migration in the sidecar's first second is judged
//! alike by the sidecar and by the page.

use crate::app_common::{dist, free_port, page_guest, wait_sidecar_green};
use crate::faults::{wait_metric, wait_record};
use crate::require_root;
use migwatch_tests::browser::Browser;
use migwatch_tests::sidecar::Sidecar;
use migwatch_tests::{out_dir, wait_for};
use serde_json::Value;
use std::time::Duration;

/// `[light, headline, headline clipped?, log downtimes of migrations]`.
const READ_DETAIL: &str = "
    const l = document.getElementById('light');
    const h = document.getElementById('headline');
    if (!l || !h || l.closest('[hidden]')) return null;
    const clipped = h.scrollWidth > h.clientWidth || h.scrollHeight > h.clientHeight
        || l.scrollHeight > l.clientHeight;
    const dt = Array.from(document.querySelectorAll('#log-migrations .lr-downtime'))
        .map(e => e.textContent);
    return [l.dataset.light || '', h.textContent, clipped, dt];
";

#[derive(Debug)]
struct Detail {
    light: String,
    headline: String,
    clipped: bool,
    downtimes: Vec<String>,
}

fn detail(b: &Browser) -> Option<Detail> {
    let v = b.eval(READ_DETAIL).ok()?;
    Some(Detail {
        light: v.get(0)?.as_str()?.into(),
        headline: v.get(1)?.as_str()?.into(),
        clipped: v.get(2)?.as_bool()?,
        downtimes: v
            .get(3)?
            .as_array()?
            .iter()
            .filter_map(|d| d.as_str().map(String::from))
            .collect(),
    })
}

/// WCAG contrast of every visible state word against the first opaque
/// background behind it, from the rendered colours: `[[text, ratio]]`.
const CONTRAST: &str = "
    const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    const lum = c => { const m = c.match(/[\\d.]+/g).map(Number);
        return 0.2126 * lin(m[0]) + 0.7152 * lin(m[1]) + 0.0722 * lin(m[2]); };
    const bg = el => { for (; el; el = el.parentElement) {
        const c = getComputedStyle(el).backgroundColor; const m = c.match(/[\\d.]+/g);
        if (m && (m.length < 4 || Number(m[3]) > 0.5)) return c; }
        return 'rgb(255, 255, 255)'; };
    const els = Array.from(document.querySelectorAll(
        '#light-label, .tile-word, .overall-word, .colours dt, .last-migration'))
        .filter(e => e.offsetParent !== null);
    return els.map(e => { const a = lum(getComputedStyle(e).color), b = lum(bg(e));
        return [e.textContent.trim(), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]; });
";

fn contrasts(b: &Browser) -> anyhow::Result<Vec<(String, f64)>> {
    let v = b.eval(CONTRAST)?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_f64()?)))
                .collect()
        })
        .unwrap_or_default())
}

/// `[scrollWidth, clientWidth, main's width]` of the page.
fn widths(b: &Browser) -> anyhow::Result<(f64, f64, f64)> {
    let v: Value = b.eval(
        "const d = document.documentElement; const m = document.querySelector('main');
         return [d.scrollWidth, d.clientWidth, m.getBoundingClientRect().width];",
    )?;
    let n = |i: usize| v.get(i).and_then(Value::as_f64).unwrap_or(f64::NAN);
    Ok((n(0), n(1), n(2)))
}

#[test]
fn page_demo_turns_red_with_the_downtime_unclipped_readable_and_fits_phone_and_wide_screens(
) -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    let sc = Sidecar::start("127.0.0.1", &["--interval", "10ms", "--web-root", &dist])?;
    for (w, h) in [(1440, 900), (390, 844), (2560, 1440)] {
        let b = Browser::start(w, h, false)?;
        b.goto(&format!("{}/?demo", sc.base))?;
        let red = wait_for(
            "the demo to turn red with the downtime",
            Duration::from_secs(60),
            Duration::from_millis(100),
            // Red comes at the first announce, during the outage; the
            // downtime joins the headline once the probes are answered.
            || detail(&b).filter(|d| d.light == "red" && d.headline.starts_with("Red: downtime ")),
        )?;
        assert!(!red.clipped, "{w}×{h}: the headline is clipped: {red:?}");
        // Labelled a recording, in the tile and the notice.
        let label = b.eval(
            "return document.querySelector('#tiles .tile').dataset.source + ' | ' +
                document.getElementById('notice').textContent",
        )?;
        let label = label.as_str().unwrap_or_default();
        assert!(
            label.contains("demo.jsonl") && label.contains("recording"),
            "{label}"
        );
        let (scroll, client, main) = widths(&b)?;
        assert!(
            scroll <= client,
            "{w}×{h}: horizontal scroll ({scroll} > {client})"
        );
        if w >= 2560 {
            assert!(main > 2000.0, "{w}×{h}: main is only {main} px wide");
        }
        for (word, ratio) in contrasts(&b)? {
            assert!(ratio >= 4.5, "{w}×{h}: {word:?} has contrast {ratio:.2}");
        }
        // The migration is listed, with its downtime from the clock step
        // once the readings after the resume agree on it.
        let d = wait_for(
            "the demo's migration in the log, downtime from the clock step",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || detail(&b).filter(|d| d.downtimes.iter().any(|x| x.ends_with("(clock step)"))),
        )?;
        assert_eq!(d.downtimes.len(), 1, "{w}×{h}: {d:?}");
        // The chart's tooltip names the exact probe under the pointer.
        let hover = b.eval(
            "const c = document.getElementById('chart'); const r = c.getBoundingClientRect();
             c.dispatchEvent(new PointerEvent('pointermove', {bubbles: true,
                 clientX: r.left + r.width / 2, clientY: r.top + r.height / 2}));
             return c.dataset.hover || '';",
        )?;
        let hover = hover.as_str().unwrap_or_default();
        assert!(
            hover.contains(" · probe #") && (hover.contains("RTT ") || hover.contains("lost")),
            "{w}×{h}: tooltip {hover:?}"
        );
        b.eval("window.scrollTo(0, 0); return 1;")?;
        b.screenshot(&out_dir().join(format!("app-demo-{w}x{h}.png")))?;
    }
    Ok(())
}

#[test]
fn page_served_without_a_sidecar_offers_the_demo_instead_of_retrying() -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    let port = free_port()?;
    // A plain web server for the page: its origin is not a sidecar.
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&dist)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = (|| -> anyhow::Result<()> {
        let base = format!("http://127.0.0.1:{port}");
        wait_for(
            "the static server",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        )?;
        let b = Browser::start(1280, 800, false)?;
        b.goto(&format!("{base}/"))?;
        let state = wait_for(
            "the welcome panel",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                let v = b
                    .eval(
                        "const w = document.getElementById('welcome');
                         return w && !w.hidden ? document.querySelectorAll('#tiles .tile').length : null;",
                    )
                    .ok()?;
                v.as_u64()
            },
        )?;
        assert_eq!(state, 0, "no tile for a sidecar that is not there");
        b.screenshot(&out_dir().join("app-welcome.png"))?;
        // The demo button starts the recording.
        b.eval("document.getElementById('demo').click(); return 1;")?;
        wait_for(
            "the demo tile",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || {
                b.eval("const t = document.querySelector('#tiles .tile'); return t ? t.dataset.source : null;")
                    .ok()?
                    .as_str()
                    .filter(|s| s.contains("demo.jsonl"))
                    .map(String::from)
            },
        )?;
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}

#[test]
fn page_opened_after_a_migration_lists_it_and_a_reload_keeps_it() -> anyhow::Result<()> {
    require_root!();
    let mut pg = page_guest()?;
    let (sc, guest) = (&pg.sc, &mut pg.guest);
    // Let the sidecar build a baseline, migrate, and let the red decay:
    // the sidecar's own detector says when it has judged it.
    wait_sidecar_green(sc)?;
    guest.cmd("migrate 300")?;
    wait_record(
        sc,
        "the sidecar to record the migration",
        "\"level\":\"red\"",
        Duration::from_secs(20),
    )?;
    let b = Browser::start(1280, 900, false)?;
    b.goto(&format!("{}/", sc.base))?;
    let listed = |b: &Browser| {
        wait_for(
            "the earlier migration in the log",
            Duration::from_secs(20),
            Duration::from_millis(100),
            // Fed the history in one burst, the page's detector judges it
            // as the live one did: one event, its downtime from the clock
            // step (10 of 10 runs, 5 under CPU load, since the stop comes
            // after a baseline and five clock readings).
            || detail(b).filter(|d| d.downtimes.len() == 1),
        )
        .map_err(|e| {
            let rows = b.eval(
                "return Array.from(document.querySelectorAll('#log .log-row'))
                    .map(r => [r.dataset.level, r.dataset.source, r.dataset.kind, r.textContent])",
            );
            anyhow::anyhow!("{e}: {:?}; rows {rows:?}", detail(b))
        })
    };
    let d = listed(&b)?;
    assert!(d.downtimes[0].ends_with("(clock step)"), "{d:?}");
    b.screenshot(&out_dir().join("app-late-visitor.png"))?;
    // The verdict stays: the tile and the detail keep the last migration.
    let last = b.eval(
        "const e = document.querySelector('#light .last-migration');
         return e && !e.hidden ? e.textContent : null;",
    )?;
    assert!(
        last.as_str()
            .is_some_and(|t| t.starts_with("last migration: ") && t.contains("downtime ")),
        "{last} / {d:?}"
    );
    b.eval("location.reload(); return 1;")?;
    let again = listed(&b)?;
    // The same event, at the same time.
    assert_eq!(
        again.downtimes.len(),
        d.downtimes.len(),
        "{again:?} / {d:?}"
    );
    Ok(())
}

/// A migration in the sidecar's first second, right after its first clock
/// reading: no echo baseline yet, and one reading for the clock's level.
/// The sidecar's own detector and the page, fed the history in one burst,
/// judge it alike: one red event, its downtime from the same source (the
/// clock step's when that first reading was precise; the stop and its
/// step were two events, the step a yellow *paused*, before a lone
/// reading counted as a level).
#[test]
fn page_and_sidecar_judge_a_migration_in_the_first_second_alike() -> anyhow::Result<()> {
    require_root!();
    let mut pg = page_guest()?;
    let (sc, guest) = (&pg.sc, &mut pg.guest);
    let within = Duration::from_secs(20);
    wait_metric(sc, "migwatch_clock_replies_total", 0.0, 1.0, within)?;
    guest.cmd("migrate 300")?;
    wait_record(
        sc,
        "the sidecar to record the migration",
        "\"level\":\"red\"",
        within,
    )?;
    // The clock channel has its chance: 20 more readings (4 s, past the
    // 2.5 s an outage waits for its channels).
    let n = crate::icmp::metric(sc, "migwatch_clock_replies_total")?;
    wait_metric(sc, "migwatch_clock_replies_total", n, 20.0, within)?;
    let records = sc.get("/migrations")?;
    let v: Value = serde_json::from_str(&records)?;
    let recs = v["migrations"].as_array().cloned().unwrap_or_default();
    assert_eq!(recs.len(), 1, "{records}");
    assert_eq!(recs[0]["level"], "red", "{records}");
    let source = match recs[0]["downtime_from"].as_str() {
        Some("clock_step") => "clock step",
        Some("late_reply") => "late reply",
        _ => "lost probes",
    };
    let b = Browser::start(1280, 900, false)?;
    b.goto(&format!("{}/", sc.base))?;
    let d = wait_for(
        "the migration in the page's log",
        within,
        Duration::from_millis(100),
        || detail(&b).filter(|d| !d.downtimes.is_empty()),
    )?;
    assert_eq!(d.downtimes.len(), 1, "{d:?}");
    assert!(
        d.downtimes[0].ends_with(&format!("({source})")),
        "{d:?} / {records}"
    );
    // The page's log leads with the sidecar's verdict: one detector, the
    // same probes. (With an announce, "migrated"; without an announce
    // channel, "migrated or paused".)
    let words = b.eval(
        "const e = document.querySelector('#log-migrations .lr-evidence'); return e ? e.textContent : null;",
    )?;
    let said = recs[0]["explanation"].as_str().unwrap_or_default();
    let want = if said.starts_with("migrated or paused:") {
        "migrated or paused (no announce channel to tell); "
    } else if said.starts_with("migrated:") {
        "migrated; "
    } else {
        anyhow::bail!("the sidecar's record is no migration: {records}")
    };
    assert!(
        words.as_str().is_some_and(|w| w.starts_with(want)),
        "{words} / {records}"
    );
    eprintln!("a migration in the first second: {}", d.downtimes[0]);
    Ok(())
}
