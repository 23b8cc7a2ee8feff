//! The real sidecar as a child process, and a client for its SSE stream.

use anyhow::{bail, Context, Result};
use migwatch_shared::wire::Event;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Path of the sidecar binary: `$MIGWATCH_SIDECAR`, else the debug build in
/// the workspace's target folder (`scripts/test.sh` builds it first).
pub fn binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("MIGWATCH_SIDECAR") {
        return Ok(PathBuf::from(p));
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| crate::repo_root().join("target"));
    let p = target.join("debug").join("migwatch-sidecar");
    if !p.is_file() {
        bail!(
            "{} does not exist: build it with `cargo build -p migwatch-sidecar` (scripts/test.sh does)",
            p.display()
        );
    }
    Ok(p)
}

/// A running sidecar. Killed (by PID) on drop.
pub struct Sidecar {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    stderr_log: PathBuf,
}

impl Sidecar {
    /// Starts the sidecar with these extra flags, on a free loopback port,
    /// and waits until it prints the URL it serves.
    pub fn start(target: &str, flags: &[&str]) -> Result<Sidecar> {
        let mut args = vec!["--target", target];
        args.extend_from_slice(flags);
        Sidecar::start_with(target, &args)
    }

    /// Starts the sidecar with exactly these flags (plus a free loopback
    /// port); `tag` names its log file.
    pub fn start_with(tag: &str, flags: &[&str]) -> Result<Sidecar> {
        Sidecar::start_with_env(tag, flags, &[])
    }

    /// Like [`Sidecar::start_with`], with these environment variables set
    /// for the sidecar alone (e.g. `LD_PRELOAD` of libfaketime).
    pub fn start_with_env(tag: &str, flags: &[&str], env: &[(&str, &str)]) -> Result<Sidecar> {
        let log = crate::out_dir().join(format!(
            "sidecar-{}-{}.log",
            tag,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros())
        ));
        let mut child = Command::new(binary()?)
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .envs(env.iter().copied())
            .current_dir(crate::repo_root())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start the sidecar")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("migwatch: open ") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
            }
        });
        let mut sc = Sidecar {
            child,
            base: String::new(),
            stderr_log: log,
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(base) => sc.base = base,
            Err(_) => bail!(
                "the sidecar did not start within 10 s; its log: {}",
                sc.log()
            ),
        }
        Ok(sc)
    }

    /// The sidecar's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Sends a signal (`HUP`, `STOP`, `CONT`, ...) to it.
    pub fn signal(&self, name: &str) -> Result<()> {
        crate::netns::sh(&["kill", &format!("-{name}"), &self.child.id().to_string()])?;
        Ok(())
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GETs a path and returns the body.
    pub fn get(&self, path: &str) -> Result<String> {
        Ok(ureq::get(&format!("{}{path}", self.base))
            .call()?
            .into_string()?)
    }

    /// Sends SIGTERM and waits for the exit, returning how long it took.
    pub fn terminate(&mut self) -> Result<Duration> {
        let t = Instant::now();
        crate::netns::sh(&["kill", "-TERM", &self.child.id().to_string()])?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("sidecar exited with {status}; log: {}", self.log());
        }
        Ok(t.elapsed())
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One event as read from the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Received {
    /// Its `id:`.
    pub id: u64,
    /// The decoded event.
    pub event: Event,
}

/// A background reader of `GET /events`, yielding decoded events.
pub struct EventStream {
    rx: Receiver<Result<Received, String>>,
}

impl EventStream {
    /// Opens `{base}/events{query}`.
    pub fn open(base: &str, query: &str) -> Result<EventStream> {
        let resp = ureq::get(&format!("{base}/events{query}")).call()?;
        let ctype = resp.header("content-type").unwrap_or("").to_string();
        if !ctype.starts_with("text/event-stream") {
            bail!("/events answered with content-type {ctype:?}");
        }
        let reader = resp.into_reader();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || parse_sse(reader, |r| tx.send(r).is_ok()));
        Ok(EventStream { rx })
    }

    /// The next event, or `None` after `timeout`.
    pub fn next(&self, timeout: Duration) -> Result<Option<Received>> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(r)) => Ok(Some(r)),
            Ok(Err(e)) => bail!("bad event on the stream: {e}"),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => bail!("the stream ended"),
        }
    }

    /// Collects events until `done` says so, failing after `timeout`.
    pub fn collect_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Result<Vec<Received>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out after {timeout:?} with {} events", got.len());
            }
            if let Some(r) = self.next(left)? {
                got.push(r);
            }
        }
        Ok(got)
    }
}

/// Parses an SSE byte stream into events, calling `emit` for each (until it
/// returns false).
pub fn parse_sse(reader: impl Read, mut emit: impl FnMut(Result<Received, String>) -> bool) {
    let (mut id, mut name, mut data) = (None::<u64>, String::new(), String::new());
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { return };
        if line.is_empty() {
            if !name.is_empty() || !data.is_empty() {
                let r = match (id, Event::parse(&name, &data)) {
                    (Some(id), Ok(event)) => Ok(Received { id, event }),
                    (None, _) => Err(format!("event without id: {name} {data}")),
                    (_, Err(e)) => Err(e.to_string()),
                };
                if !emit(r) {
                    return;
                }
            }
            (id, name, data) = (None, String::new(), String::new());
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("event: ") {
            name = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
        // `retry:` and `:` comments carry no event.
    }
}
