//! Replaying trace files in the page, without a sidecar's data: a
//! committed fixture fills the event log with its migration, a malformed
//! file names its line. Also the light and dark screenshots.

use crate::app_common::{dist, import, notice, open_page, tile};
use crate::require_root;
use migwatch_shared::{trace, Detector, Light};
use migwatch_tests::browser::Browser;
use migwatch_tests::sidecar::Sidecar;
use migwatch_tests::{out_dir, repo_root, wait_for};
use std::time::Duration;

/// The committed fixture: 30 s at 10 ms with one 420 ms stop-and-copy.
const FIXTURE: &str = "tests/fixtures/page-migration.jsonl";

/// The migrations the detector finds in `text`, natively.
fn expected(text: &str) -> Vec<(Light, i64, i64)> {
    let mut d = Detector::default();
    for ev in trace::read(text).expect("the fixture reads") {
        d.push(&ev);
    }
    d.finish();
    d.migrations()
        .iter()
        .map(|m| (m.level, m.start_us, m.downtime_us))
        .collect()
}

fn log_rows(b: &Browser) -> Vec<(String, String)> {
    b.eval(
        "return Array.from(document.querySelectorAll('#log .log-row[data-kind=event]'))
            .map(r => [r.dataset.level, r.textContent]);",
    )
    .ok()
    .and_then(|v| serde_json::from_value(v).ok())
    .unwrap_or_default()
}

#[test]
fn page_replays_a_fixture_into_the_event_log_and_rejects_a_malformed_file() -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    let text = std::fs::read_to_string(repo_root().join(FIXTURE))?;
    let want = expected(&text);
    assert!(
        want.iter().any(|m| m.0 == Light::Red),
        "the fixture should hold a red migration: {want:?}"
    );
    // Any sidecar serves the page; the replay needs none of its data.
    let sc = Sidecar::start("127.0.0.1", &["--interval", "10ms", "--web-root", &dist])?;
    for dark in [false, true] {
        let b = Browser::start(1280, 800, dark)?;
        open_page(&b, &sc.base)?;
        import(&b, "page-migration.jsonl", &text)?;
        let src = "file: page-migration.jsonl";
        let t = wait_for(
            "the replay to finish",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || tile(&b, src).filter(|t| t.conn == "replay" && t.migrations as usize == want.len()),
        )?;
        assert!(t.samples >= 2900, "{t:?}");
        let rows = wait_for(
            "the event log",
            Duration::from_secs(5),
            Duration::from_millis(50),
            || Some(log_rows(&b)).filter(|r| r.len() == want.len()),
        )?;
        let reds = rows.iter().filter(|r| r.0 == "red").count();
        assert_eq!(reds, want.iter().filter(|m| m.0 == Light::Red).count());
        assert!(rows.iter().any(|r| r.1.contains("probes lost")), "{rows:?}");
        // Clicking the red row jumps the chart there: paused, around it.
        b.eval("document.querySelector('#log .log-row[data-level=red]').click(); return 1;")?;
        let (from, to, bands) = wait_for(
            "the chart to jump",
            Duration::from_secs(5),
            Duration::from_millis(50),
            || {
                let v = b
                    .eval(
                        "const c = document.getElementById('chart');
                         return c ? [c.dataset.from || '', c.dataset.to || '', c.dataset.bands || ''] : null;",
                    )
                    .ok()?;
                let n = |i: usize| v.get(i)?.as_str()?.parse::<i64>().ok();
                let (f, t, k) = (n(0)?, n(1)?, n(2)?);
                (t - f <= 20_000_000 && k >= 1).then_some((f, t, k))
            },
        )?;
        let red = want.iter().find(|m| m.0 == Light::Red).map_or(0, |m| m.1);
        assert!(
            from < red && red < to,
            "{from} < {red} < {to}, {bands} bands"
        );
        let paused =
            b.eval("return document.getElementById('pause').getAttribute('aria-pressed')")?;
        assert_eq!(paused.as_str(), Some("true"));
        let scheme = if dark { "dark" } else { "light" };
        b.eval("window.scrollTo(0, 0); return 1;")?;
        b.screenshot(&out_dir().join(format!("app-replay-{scheme}.png")))?;
        b.eval("document.getElementById('chart').scrollIntoView({block: 'start'}); return 1;")?;
        b.screenshot(&out_dir().join(format!("app-replay-chart-{scheme}.png")))?;
        b.eval("document.getElementById('log').scrollIntoView({block: 'end'}); return 1;")?;
        b.screenshot(&out_dir().join(format!("app-replay-log-{scheme}.png")))?;

        // A malformed file: a clear error naming the line; nothing added.
        let bad = "{\"type\":\"sample\",\"seq\":0,\"sent_us\":1763000000000000,\"rtt_us\":250}\n{\"type\":\"sample\",\"seq\":1,\"sent_us\":oops}\n";
        import(&b, "broken.jsonl", bad)?;
        let (kind, msg) = wait_for(
            "the import error",
            Duration::from_secs(5),
            Duration::from_millis(50),
            || notice(&b).filter(|n| n.1.contains("broken.jsonl")),
        )?;
        assert_eq!(kind, "error");
        assert!(msg.contains("broken.jsonl: line 2"), "{msg}");
        assert!(tile(&b, "file: broken.jsonl").is_none());
        b.screenshot(&out_dir().join(format!("app-import-error-{scheme}.png")))?;
    }
    // The phone layout, dark.
    let b = Browser::start(390, 844, true)?;
    b.goto(&format!("{}/", sc.base))?;
    wait_for(
        "green on a phone",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || tile(&b, &sc.base).filter(|t| t.light == "green"),
    )?;
    let overflow = b.eval("return document.documentElement.scrollWidth > window.innerWidth")?;
    assert_eq!(
        overflow.as_bool(),
        Some(false),
        "the page scrolls sideways on a phone"
    );
    b.screenshot(&out_dir().join("app-phone-dark.png"))?;
    Ok(())
}
