//! `migwatch-sidecar watch`: the prober and detector in the foreground, as
//! a migration test pipeline runs it. A scripted migration (the guest
//! responder: a 300 ms stop, its clock standing still, RARP and gratuitous
//! ARP after) makes `--until-migration` exit 0 with the downtime from the
//! clock step; a plain outage makes `--timeout` exit 3.

use crate::app_common::GuestResponder;
use crate::require_root;
use migwatch_tests::netns::TargetNs;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `watch`, with its stderr lines and stdout JSON lines.
struct Watch {
    child: Child,
    err: mpsc::Receiver<String>,
    out: mpsc::Receiver<String>,
}

impl Watch {
    fn start(args: &[&str]) -> anyhow::Result<Watch> {
        let mut child = Command::new(migwatch_tests::sidecar::binary()?)
            .arg("watch")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let err = lines(Box::new(child.stderr.take().expect("piped")));
        let out = lines(Box::new(child.stdout.take().expect("piped")));
        Ok(Watch { child, err, out })
    }

    /// Waits for a stderr line containing `what`.
    fn wait_err(&self, what: &str, t: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + t;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(l) if l.contains(what) => return Ok(l),
                Ok(_) => {}
                Err(_) => anyhow::bail!("no {what:?} on watch's stderr within {t:?}"),
            }
        }
    }

    /// Waits for the exit; its code and every stdout line.
    fn wait_exit(&mut self, t: Duration) -> anyhow::Result<(i32, Vec<Value>)> {
        let deadline = Instant::now() + t;
        let code = loop {
            if let Some(s) = self.child.try_wait()? {
                break s.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                anyhow::bail!("watch did not exit within {t:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends with the pipe; take what it read.
        let mut lines = Vec::new();
        while let Ok(l) = self.out.recv_timeout(Duration::from_secs(1)) {
            lines.push(serde_json::from_str(&l)?);
        }
        Ok((code, lines))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A guest (echo, timestamp, announces) in `ns` and `watch
/// --until-migration --timeout TIMEOUT` on it with every channel at test
/// speed, once its baseline is ready (within `ready`).
fn guest_and_watch(
    ns: &TargetNs,
    timeout: &str,
    ready: Duration,
) -> anyhow::Result<(GuestResponder, Watch)> {
    let guest = GuestResponder::start(ns)?;
    let target = ns.target.to_string();
    let w = Watch::start(&[
        "--target",
        &target,
        "--interval",
        "10ms",
        "--probe-timeout",
        "500ms",
        "--clock-interval",
        "100ms",
        "--capture-iface",
        &ns.host_if,
        "--until-migration",
        "--timeout",
        timeout,
    ])?;
    w.wait_err("baseline ready", ready)?;
    Ok((guest, w))
}

#[test]
fn watch_until_migration_exits_0_with_the_clock_step_downtime() -> anyhow::Result<()> {
    require_root!();
    let ns = TargetNs::create()?;
    let (mut guest, mut w) = guest_and_watch(&ns, "60s", Duration::from_secs(20))?;
    let target = ns.target.to_string();
    guest.cmd("migrate 300")?;
    let (code, lines) = w.wait_exit(Duration::from_secs(30))?;
    assert_eq!(code, 0, "lines: {lines:?}");
    // The last line is the final estimate of the migration.
    let red = lines
        .last()
        .filter(|l| l["level"] == "red")
        .ok_or_else(|| anyhow::anyhow!("the last line is not red: {lines:?}"))?;
    assert_eq!(red["target"], target.as_str());
    assert_eq!(red["downtime_from"], "clock_step", "{red}");
    let d = red["downtime_ms"].as_f64().unwrap_or(0.0);
    assert!((d - 300.0).abs() <= 5.0, "downtime {d} ms, want 300 ± 5");
    Ok(())
}

#[test]
fn watch_times_out_with_exit_3_on_a_plain_outage() -> anyhow::Result<()> {
    require_root!();
    let ns = TargetNs::create()?;
    let (mut guest, mut w) = guest_and_watch(&ns, "12s", Duration::from_secs(12))?;
    // A path outage: requests dropped, the guest's clock runs on.
    guest.cmd("blackout 300")?;
    let (code, lines) = w.wait_exit(Duration::from_secs(30))?;
    assert_eq!(code, 3, "lines: {lines:?}");
    assert!(lines.iter().all(|l| l["level"] != "red"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l["level"] == "yellow"),
        "the outage was not reported: {lines:?}"
    );
    Ok(())
}
