//! CPU time, memory and scheduling delay of a process, read from `/proc`,
//! for benchmarks that compare the sidecar with reference tools.
//!
//! Two CPU clocks: `utime + stime` from `/proc/PID/stat` (clock ticks,
//! includes exited threads, coarse) and the per-thread `schedstat` run time
//! (nanoseconds, live threads only). The latter also gives the time each
//! thread spent runnable but waiting for a CPU, which tells scheduling
//! noise from other load apart from the process's own slowness.

use anyhow::{bail, Context, Result};
use std::time::Duration;

/// CPU use of one process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu {
    /// `utime + stime`, in clock ticks.
    pub ticks: u64,
    /// Sum of the live threads' run time, ns.
    pub run_ns: u64,
    /// Sum of the live threads' runqueue wait, ns.
    pub wait_ns: u64,
}

impl Cpu {
    /// CPU used between `earlier` and `self`, by the tick clock.
    pub fn ticks_since(&self, earlier: &Cpu) -> Duration {
        let ticks = self.ticks.saturating_sub(earlier.ticks);
        Duration::from_secs_f64(ticks as f64 / clk_tck() as f64)
    }

    /// CPU used between `earlier` and `self`, by the schedstat clock.
    pub fn run_since(&self, earlier: &Cpu) -> Duration {
        Duration::from_nanos(self.run_ns.saturating_sub(earlier.run_ns))
    }

    /// Runqueue wait between `earlier` and `self`.
    pub fn wait_since(&self, earlier: &Cpu) -> Duration {
        Duration::from_nanos(self.wait_ns.saturating_sub(earlier.wait_ns))
    }
}

/// One thread's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCpu {
    /// Thread id.
    pub tid: u32,
    /// `comm`: the thread's name.
    pub name: String,
    /// Run time, ns.
    pub run_ns: u64,
    /// Runqueue wait, ns.
    pub wait_ns: u64,
    /// Times it was scheduled in.
    pub slices: u64,
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if that fails).
pub fn clk_tck() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// `utime + stime` of a process, in ticks.
fn stat_ticks(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("no process {pid}"))?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. utime and stime are fields 14 and 15 (1-based).
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no field {n} in /proc/{pid}/stat"))
    };
    Ok(field(14)? + field(15)?)
}

/// Every live thread of `pid` with its schedstat counters.
pub fn threads(pid: u32) -> Result<Vec<ThreadCpu>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {dir}"))? {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread may exit between the listing and these reads.
        let (Ok(sched), Ok(comm)) = (
            std::fs::read_to_string(entry.path().join("schedstat")),
            std::fs::read_to_string(entry.path().join("comm")),
        ) else {
            continue;
        };
        let v: Vec<u64> = sched
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 3 {
            bail!("malformed schedstat for thread {tid}: {sched:?}");
        }
        out.push(ThreadCpu {
            tid,
            name: comm.trim().to_string(),
            run_ns: v[0],
            wait_ns: v[1],
            slices: v[2],
        });
    }
    Ok(out)
}

/// The process's CPU counters now.
pub fn cpu(pid: u32) -> Result<Cpu> {
    let ticks = stat_ticks(pid)?;
    let ts = threads(pid)?;
    Ok(Cpu {
        ticks,
        run_ns: ts.iter().map(|t| t.run_ns).sum(),
        wait_ns: ts.iter().map(|t| t.wait_ns).sum(),
    })
}

/// A `/proc/PID/status` field in kB (`VmRSS`, `VmHWM`, ...).
pub fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("no process {pid}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Resident set size in kB.
pub fn rss_kb(pid: u32) -> Result<u64> {
    status_kb(pid, "VmRSS")
}

/// `/proc/loadavg`'s three load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// Whole-machine CPU counters from `/proc/stat`: (busy, total) ticks.
pub fn machine_ticks() -> Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let line = text.lines().next().context("empty /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        bail!("malformed /proc/stat: {line:?}");
    }
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait
    let idle = v[3] + v[4];
    Ok((total - idle, total))
}

/// Fraction of all CPUs busy between two [`machine_ticks`] readings.
pub fn machine_busy(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total > 0.0 {
        busy / total
    } else {
        0.0
    }
}
