//! History beyond what the sidecar holds, on the real page: a page that
//! saw a migration keeps it in the browser; after the sidecar restarts (a
//! new run, its history empty) a reload still lists the migration, marked
//! "from this browser", and "Forget" drops it. On the way: the guest's
//! clock readings alone never made a yellow. And a brief yellow (an RTT
//! peak, no probe lost) stays in the log after the light is green again.

use crate::app_common::{
    dist, free_port, guest_flags, import, open_page, tile, wait_sidecar_green, GuestResponder,
};
use crate::require_root;
use migwatch_tests::browser::Browser;
use migwatch_tests::netns::TargetNs;
use migwatch_tests::sidecar::Sidecar;
use migwatch_tests::{out_dir, wait_for};
use serde_json::Value;
use std::time::Duration;

/// The migrations section's rows: `[source, downtime text, evidence]`.
const MIGRATIONS: &str = "
    return Array.from(document.querySelectorAll('#log-migrations .log-row')).map(r => [
        r.dataset.source || '', r.querySelector('.lr-downtime').textContent,
        r.querySelector('.lr-evidence').textContent]);
";

fn migrations(b: &Browser) -> Option<Vec<(String, String, String)>> {
    let v: Value = b.eval(MIGRATIONS).ok()?;
    serde_json::from_value(v).ok()
}

/// `run_id` of the sidecar's (first) target.
fn run_id(sc: &Sidecar) -> Option<String> {
    let v: Value = serde_json::from_str(&sc.get("/info").ok()?).ok()?;
    v.get("run_id")?.as_str().map(String::from)
}

#[test]
fn page_keeps_a_migration_the_restarted_sidecar_no_longer_holds() -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    let ns = TargetNs::create()?;
    let mut guest = GuestResponder::start(&ns)?;
    // The same address both runs: the page's origin and the history's key.
    let listen = format!("127.0.0.1:{}", free_port()?);
    let target = ns.target.to_string();
    let flags = guest_flags(&ns, &["--web-root", &dist, "--listen", &listen]);
    let mut sc = Sidecar::start(&target, &flags)?;
    let base = sc.base.clone();
    wait_sidecar_green(&sc)?;
    let b = Browser::start(1280, 900, false)?;
    b.goto(&format!("{base}/"))?;
    // The page sees the migration live.
    wait_for(
        "the page's stream",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            b.eval("const t = document.querySelector('#tiles .tile'); return t && t.dataset.conn === 'live' ? 1 : null;")
                .ok()?
                .as_u64()
        },
    )?;
    guest.cmd("migrate 300")?;
    let seen = wait_for(
        "the migration in the page's log",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || migrations(&b).filter(|m| m.len() == 1),
    )?;
    assert_ne!(seen[0].0, "browser", "{seen:?}");
    // The guest's clock was read 10 times a second all along: no yellow
    // came from its readings' noise alone, without a lost probe.
    let outages: Value = b.eval(
        "return Array.from(document.querySelectorAll('#log-outages .log-row')).map(r => r.textContent)",
    )?;
    let noise: Vec<&str> = outages
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|t| {
            (t.contains("clock stepped") || t.contains("clock jumped")) && !t.contains("lost")
        })
        .collect();
    assert!(noise.is_empty(), "yellow from clock noise: {noise:?}");
    let stored = b.eval("return localStorage.getItem('migwatch.history.v1') || ''")?;
    assert!(
        stored.as_str().is_some_and(|s| s.contains("\tr\t")),
        "the browser remembers it: {stored}"
    );
    let first_run = run_id(&sc);

    // A new run of the sidecar on the same address: its history is empty.
    sc.terminate()?;
    let sc2 = Sidecar::start(&target, &flags)?;
    assert_eq!(sc2.base, base);
    assert_ne!(run_id(&sc2), first_run, "a restart is a new run");
    let held = sc2.get("/migrations")?;
    assert!(!held.contains("\"level\":\"red\""), "{held}");

    b.eval("location.reload(); return 1;")?;
    let kept = wait_for(
        "the earlier migration, from this browser",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || migrations(&b).filter(|m| m.len() == 1 && m[0].0 == "browser"),
    )
    .map_err(|e| {
        let _ = b.screenshot(&out_dir().join("app-history-failed.png"));
        let stored = b.eval(
            "return [localStorage.getItem('migwatch.history.v1'), document.getElementById('log').innerText,
                Array.from(document.querySelectorAll('#tiles .tile')).map(t => t.dataset.name)]",
        );
        anyhow::anyhow!("{e}: {:?}; stored, log, tiles: {stored:?}", migrations(&b))
    })?;
    // Its downtime as the page last said it (the clock refines it for
    // 3 s after the stop, so it need not be the first words seen).
    assert!(
        kept[0].1.starts_with("downtime ") && kept[0].1.contains(" ms ("),
        "{kept:?} / {seen:?}"
    );
    assert!(kept[0].2.contains("from this browser"), "{kept:?}");
    b.screenshot(&out_dir().join("app-history-kept.png"))?;

    // Forget drops it (the new run detected nothing).
    b.eval("document.getElementById('forget').click(); return 1;")?;
    wait_for(
        "the log without it",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || migrations(&b).filter(Vec::is_empty),
    )?;
    let stored = b.eval("return localStorage.getItem('migwatch.history.v1')")?;
    assert!(
        stored.is_null() || !stored.as_str().unwrap_or("").contains("\tr\t"),
        "{stored}"
    );
    drop(sc2);
    Ok(())
}

#[test]
fn page_logs_a_brief_rtt_peak_after_the_light_is_green_again() -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    // 15 s of 10 ms probes at 0.25 ms; 1 s of them at 30 ms, none lost.
    let mut text = String::new();
    for q in 0..1500u64 {
        let rtt = if (500..600).contains(&q) { 30_000 } else { 250 };
        text.push_str(&format!(
            "{{\"type\":\"sample\",\"seq\":{q},\"sent_us\":{},\"rtt_us\":{rtt}}}\n",
            1_763_000_000_000_000u64 + q * 10_000
        ));
    }
    // Any sidecar serves the page; the replay needs none of its data.
    let sc = Sidecar::start("127.0.0.1", &["--interval", "10ms", "--web-root", &dist])?;
    let b = Browser::start(1280, 900, false)?;
    open_page(&b, &sc.base)?;
    import(&b, "rtt-peak.jsonl", &text)?;
    let src = "file: rtt-peak.jsonl";
    let t = wait_for(
        "the replay to finish",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || tile(&b, src).filter(|t| t.conn == "replay" && t.samples >= 1500),
    )?;
    assert_eq!(t.light, "green", "the peak is over: {t:?}");
    let rows = wait_for(
        "the RTT peak in the log",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let v: Value = b
                .eval(
                    "return Array.from(document.querySelectorAll('#log-outages .log-row[data-kind=yellow]'))
                        .map(r => r.textContent).filter(t => t.includes('RTT peak 30.0 ms'))",
                )
                .ok()?;
            let rows: Vec<String> = serde_json::from_value(v).ok()?;
            (!rows.is_empty()).then_some(rows)
        },
    )?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains("yellow for ") && rows[0].contains("an RTT peak"),
        "its span and its verdict in the headline's words: {rows:?}"
    );
    Ok(())
}
