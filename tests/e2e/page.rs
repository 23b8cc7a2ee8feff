//! The real page, served by the real sidecar, in headless Chromium.

use crate::require_root;
use migwatch_tests::browser::Browser;
use migwatch_tests::netns::TargetNs;
use migwatch_tests::sidecar::Sidecar;
use migwatch_tests::{out_dir, repo_root, wait_for};
use std::time::{Duration, Instant};

const READ_STATE: &str = "
    const l = document.getElementById('light');
    const c = document.getElementById('chart');
    if (!l || !c) return null;
    return [l.dataset.light || '', Number(c.dataset.samples || 0), Number(c.dataset.drawn || 0)];
";

fn state(b: &Browser) -> Option<(String, u64, u64)> {
    let v = b.eval(READ_STATE).ok()?;
    Some((
        v.get(0)?.as_str()?.to_string(),
        v.get(1)?.as_u64()?,
        v.get(2)?.as_u64()?,
    ))
}

#[test]
fn live_page_goes_green_leaves_green_on_an_outage_and_returns() -> anyhow::Result<()> {
    require_root!();
    let dist = repo_root().join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "dist/ is not built: run `trunk build --release` (scripts/test.sh does)"
    );
    let ns = TargetNs::create()?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        &[
            "--interval",
            "10ms",
            "--timeout",
            "200ms",
            "--web-root",
            &dist.display().to_string(),
        ],
    )?;
    let b = Browser::start(1280, 800, false)?;
    b.goto(&format!("{}/", sc.base))?;

    let (_, samples, drawn) = wait_for(
        "a green light and a drawn chart",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || state(&b).filter(|(l, s, d)| l == "green" && *s >= 100 && *d >= 100),
    )?;
    assert!(drawn <= samples);
    b.screenshot(&out_dir().join("page-live.png"))?;

    // A 1 s outage: the light must leave green within 1 s of its start.
    ns.link_down()?;
    let t0 = Instant::now();
    let left = wait_for(
        "the light to leave green",
        Duration::from_secs(1),
        Duration::from_millis(20),
        || {
            state(&b)
                .filter(|(l, _, _)| l != "green")
                .map(|s| (s, t0.elapsed()))
        },
    );
    std::thread::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed()));
    ns.link_up()?;
    let ((light, _, _), after) = left?;
    assert!(light == "yellow" || light == "red", "light went {light:?}");
    assert!(after < Duration::from_secs(1));
    b.screenshot(&out_dir().join("page-outage.png"))?;

    // It returns to green once the hold has passed and replies flow again.
    wait_for(
        "the light to return to green",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || state(&b).filter(|(l, _, _)| l == "green"),
    )?;
    Ok(())
}
