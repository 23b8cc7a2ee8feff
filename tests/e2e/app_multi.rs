//! Several sidecars on one page: lights per target, "no data" for a dead
//! sidecar, reconnecting by itself when it comes back.

use crate::app_common::{dist, free_port, overall, tile, tiles};
use crate::require_root;
use migwatch_tests::browser::Browser;
use migwatch_tests::netns::TargetNs;
use migwatch_tests::sidecar::Sidecar;
use migwatch_tests::{out_dir, wait_for};
use std::time::{Duration, Instant};

#[test]
fn page_two_sidecars_an_outage_on_one_changes_only_its_light_and_a_dead_one_is_no_data(
) -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    let (ns_a, ns_b) = (TargetNs::create()?, TargetNs::create()?);
    let a = Sidecar::start(
        &ns_a.target.to_string(),
        &[
            "--interval",
            "10ms",
            "--timeout",
            "200ms",
            "--web-root",
            &dist,
        ],
    )?;
    let port_b = free_port()?;
    let listen_b = format!("127.0.0.1:{port_b}");
    let flags_b = [
        "--interval",
        "10ms",
        "--timeout",
        "200ms",
        "--listen",
        listen_b.as_str(),
        "--allow-origin",
        "*",
    ];
    let mut b_side = Some(Sidecar::start(&ns_b.target.to_string(), &flags_b)?);
    let base_b = format!("http://{listen_b}");
    let br = Browser::start(1280, 800, false)?;
    br.goto(&format!("{}/?s={}&s={}&view=grid", a.base, a.base, base_b))?;

    let green = |s: &str| tile(&br, s).is_some_and(|t| t.light == "green" && t.samples >= 100);
    wait_for(
        "both tiles green",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || (green(&a.base) && green(&base_b)).then_some(()),
    )?;
    assert_eq!(tiles(&br).len(), 2);
    assert_eq!(overall(&br).as_deref(), Some("green"));
    br.screenshot(&out_dir().join("app-grid-light.png"))?;

    // An outage on B: B leaves green, A stays green all along.
    ns_b.link_down()?;
    let t0 = Instant::now();
    let mut b_left = None;
    while t0.elapsed() < Duration::from_millis(1500) {
        let ta = tile(&br, &a.base);
        assert_eq!(
            ta.as_ref().map(|t| t.light.as_str()),
            Some("green"),
            "A changed during B's outage: {ta:?}"
        );
        if let Some(tb) = tile(&br, &base_b).filter(|t| t.light != "green") {
            b_left.get_or_insert((tb.light, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    ns_b.link_up()?;
    let (lb, after) = b_left.expect("B's light never left green during its outage");
    assert!(lb == "yellow" || lb == "red", "B went {lb:?}");
    assert!(
        after < Duration::from_secs(1),
        "B left green after {after:?}"
    );
    let o = overall(&br);
    assert!(
        matches!(o.as_deref(), Some("yellow" | "red")),
        "overall light {o:?}"
    );
    let title = br.eval("return document.title")?;
    assert!(
        title.as_str().is_some_and(|t| !t.contains("GREEN")),
        "title {title:?}"
    );
    br.screenshot(&out_dir().join("app-grid-outage.png"))?;

    // Kill B: its tile is grey "no data", never red; A is untouched.
    drop(b_side.take());
    wait_for(
        "B's tile to show no data",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || tile(&br, &base_b).filter(|t| t.light == "nodata" && t.conn != "live"),
    )?;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        let tb = tile(&br, &base_b);
        assert_eq!(
            tb.as_ref().map(|t| t.light.as_str()),
            Some("nodata"),
            "{tb:?}"
        );
        assert_eq!(
            tile(&br, &a.base).map(|t| t.light),
            Some("green".to_string())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    br.screenshot(&out_dir().join("app-grid-dead-sidecar.png"))?;

    // Restart B on the same port: the page reconnects by itself and
    // follows the new run.
    b_side = Some(Sidecar::start(&ns_b.target.to_string(), &flags_b)?);
    wait_for(
        "B to reconnect by itself and go green",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || tile(&br, &base_b).filter(|t| t.conn == "live" && t.light == "green" && t.samples >= 50),
    )?;
    drop(b_side);
    Ok(())
}
