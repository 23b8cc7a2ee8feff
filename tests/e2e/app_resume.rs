//! Dropping the connection mid-stream (a proxy restart) loses no seq.

use crate::app_common::{dist, tile};
use crate::require_root;
use migwatch_tests::browser::Browser;
use migwatch_tests::netns::TargetNs;
use migwatch_tests::sidecar::Sidecar;
use migwatch_tests::tcpproxy::TcpProxy;
use migwatch_tests::wait_for;
use std::time::Duration;

#[test]
fn page_resumes_after_a_dropped_connection_without_losing_a_seq() -> anyhow::Result<()> {
    require_root!();
    let dist = dist();
    let ns = TargetNs::create()?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        &[
            "--interval",
            "10ms",
            "--timeout",
            "200ms",
            "--web-root",
            &dist,
            "--allow-origin",
            "*",
        ],
    )?;
    let mut proxy = TcpProxy::start(&sc.base)?;
    let via = proxy.base();
    let br = Browser::start(1280, 800, false)?;
    br.goto(&format!("{}/?s={via}", sc.base))?;
    let before = wait_for(
        "samples through the proxy",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || tile(&br, &via).filter(|t| t.conn == "live" && t.samples >= 200),
    )?;
    assert!(before.no_holes(), "{before:?}");

    // Cut every connection, stay away for 1.5 s, come back on the port.
    proxy.stop();
    wait_for(
        "the tile to notice the drop",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || tile(&br, &via).filter(|t| t.conn != "live" && t.light == "nodata"),
    )?;
    std::thread::sleep(Duration::from_millis(1500));
    let gone = tile(&br, &via).map_or(0, |t| t.samples);
    proxy.restart()?;
    let after = wait_for(
        "the stream to resume",
        Duration::from_secs(20),
        Duration::from_millis(50),
        // 150 probes were sent during the 1.5 s away; expect them all and
        // more.
        || tile(&br, &via).filter(|t| t.conn == "live" && t.samples >= gone + 300),
    )?;
    assert!(
        after.no_holes(),
        "a seq was lost across the reconnect: {after:?}"
    );
    assert_eq!(
        after.first_seq, before.first_seq,
        "history was dropped: {after:?}"
    );
    assert!(
        proxy.accepted() >= 3,
        "the browser did not reconnect through the proxy"
    );
    let gaps = br.eval("return document.getElementById('diag').dataset.malformed")?;
    assert_eq!(gaps.as_str(), Some("0"));
    Ok(())
}
