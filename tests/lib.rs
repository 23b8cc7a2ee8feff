//! Harness for migwatch's end-to-end tests: throwaway network namespaces
//! with a target host, the real sidecar as a child process, an SSE reader,
//! and a minimal WebDriver client for the real Chromium.
//!
//! Everything started here is owned by a guard whose `Drop` removes it
//! (namespace by name, processes by PID), so a failing test cleans up too.
#![forbid(unsafe_code)]

pub mod benchlib;
pub mod browser;
pub mod fleet;
pub mod netns;
pub mod procstat;
pub mod promstack;
pub mod sidecar;
pub mod tcpproxy;
pub mod webhook;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Where tests put artifacts (screenshots, logs): `tests/out/`.
pub fn out_dir() -> PathBuf {
    let d = repo_root().join("tests").join("out");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Polls `cond` every `every` until it returns `Some`, or fails after
/// `timeout` with `what` in the message.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut cond: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}

/// True when this process may create namespaces and raw sockets (root).
pub fn have_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
