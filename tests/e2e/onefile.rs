//! One file: the sidecar binary alone, copied to an empty folder, serves
//! the page built into it, and every file the page references.

use crate::require_root;
use migwatch_tests::wait_for;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn the_lone_binary_in_an_empty_folder_serves_the_page_built_into_it() -> anyhow::Result<()> {
    require_root!();
    let dir = std::env::temp_dir().join(format!("mw-onefile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let bin = dir.join("migwatch-sidecar");
    std::fs::copy(migwatch_tests::sidecar::binary()?, &bin)?;
    let log = migwatch_tests::out_dir().join("sidecar-onefile.log");
    let mut child = Command::new(&bin)
        .args([
            "--target",
            "127.0.0.1",
            "--interval",
            "50ms",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--log-format", "json"])
        .env_remove("MIGWATCH_WEB_ROOT")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let result = (|| -> anyhow::Result<()> {
        let mut line = String::new();
        BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
        )
        .read_line(&mut line)?;
        let base = line
            .trim()
            .strip_prefix("migwatch: open ")
            .ok_or_else(|| anyhow::anyhow!("unexpected {line:?}; log: {}", log.display()))?
            .trim_end_matches('/')
            .to_string();
        let page = ureq::get(&format!("{base}/")).call()?;
        assert_eq!(page.content_type(), "text/html");
        let html = page.into_string()?;
        assert!(html.contains("<script type=\"module\">"), "{html}");
        // Every file the page names: the loader, the WASM, the CSS, the icon.
        let refs: Vec<&str> = html
            .split(['"', '\''])
            .filter(|s| s.starts_with('/') && s.len() > 1 && !s.contains(' '))
            .collect();
        assert!(refs.iter().any(|r| r.ends_with(".wasm")), "{refs:?}");
        for r in &refs {
            let resp = ureq::get(&format!("{base}{r}")).call()?;
            assert_eq!(resp.status(), 200, "{r}");
            if r.ends_with(".wasm") {
                assert_eq!(resp.content_type(), "application/wasm");
            }
        }
        eprintln!(
            "the lone binary served / and {} referenced files",
            refs.len()
        );
        // A client comes and goes: one JSON log line each.
        let mut events = ureq::get(&format!("{base}/events")).call()?.into_reader();
        let mut first = [0u8; 16];
        events.read_exact(&mut first)?;
        drop(events);
        let lines = wait_for(
            "the disconnect's log line",
            Duration::from_secs(5),
            Duration::from_millis(50),
            || {
                let text = std::fs::read_to_string(&log).ok()?;
                text.contains("client disconnected").then_some(text)
            },
        )?;
        let mut messages = Vec::new();
        for l in lines.lines() {
            let v: serde_json::Value = serde_json::from_str(l)
                .map_err(|e| anyhow::anyhow!("log line is not JSON ({e}): {l}"))?;
            messages.push(v["message"].as_str().unwrap_or_default().to_string());
        }
        for want in [
            "serving the page built into the binary",
            "client connected",
            "client disconnected",
            "privileges dropped: running with no capabilities",
        ] {
            assert!(
                messages.iter().any(|m| m == want),
                "no {want:?} in {messages:?}"
            );
        }
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The sidecar binary alone in an empty folder, started there with `args`
/// (no `--web-root`: the page comes from inside it). Killed on drop.
struct Lone {
    child: std::process::Child,
    dir: std::path::PathBuf,
    base: String,
}

impl Lone {
    fn start(tag: &str, args: &[&str]) -> anyhow::Result<Lone> {
        let dir = std::env::temp_dir().join(format!("mw-lone-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let bin = dir.join("migwatch-sidecar");
        std::fs::copy(migwatch_tests::sidecar::binary()?, &bin)?;
        let log = migwatch_tests::out_dir().join(format!("sidecar-lone-{tag}.log"));
        let mut child = Command::new(&bin)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("MIGWATCH_WEB_ROOT")
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out).read_line(&mut line)?;
        }
        let mut lone = Lone {
            child,
            dir,
            base: String::new(),
        };
        lone.base = line
            .trim()
            .strip_prefix("migwatch: open ")
            .ok_or_else(|| anyhow::anyhow!("unexpected {line:?}; log: {}", log.display()))?
            .trim_end_matches('/')
            .to_string();
        Ok(lone)
    }
}

impl Drop for Lone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The detail view's light, as the page shows it.
fn light(b: &migwatch_tests::browser::Browser) -> Option<String> {
    b.eval("const l = document.getElementById('light'); return l ? (l.dataset.light || '') : null;")
        .ok()?
        .as_str()
        .map(String::from)
}

#[test]
fn the_lone_binary_serves_a_page_that_turns_red_on_a_scripted_migration() -> anyhow::Result<()> {
    require_root!();
    let ns = migwatch_tests::netns::TargetNs::create()?;
    let mut guest = crate::app_common::GuestResponder::start(&ns)?;
    let target = ns.target.to_string();
    let mut flags = vec!["--target", target.as_str()];
    flags.extend(crate::app_common::guest_flags(&ns, &[]));
    let lone = Lone::start("red", &flags)?;
    let b = migwatch_tests::browser::Browser::start(1280, 900, false)?;
    b.goto(&format!("{}/", lone.base))?;
    wait_for(
        "the page's green light",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || light(&b).filter(|l| l == "green"),
    )?;
    guest.cmd("migrate 300")?;
    wait_for(
        "the page's red light",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || light(&b).filter(|l| l == "red"),
    )?;
    b.screenshot(&migwatch_tests::out_dir().join("onefile-red.png"))?;
    Ok(())
}
