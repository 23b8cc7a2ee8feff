//! What the fleet benchmark reads: the sidecar's `/metrics` summed over its
//! targets, CPU split into user and system time for a set of processes,
//! thread CPU by name, and the statistics the tables print.

use anyhow::{bail, Context, Result};
use migwatch_tests::procstat;
use std::collections::HashMap;

/// One `/metrics` scrape: every family summed over its label sets, and the
/// process-wide send-lateness histogram.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    sums: HashMap<String, f64>,
    /// (upper bound in µs, cumulative count)
    pub lateness: Vec<(f64, u64)>,
}

impl Snapshot {
    /// Parses the Prometheus text of one scrape.
    pub fn parse(text: &str) -> Result<Snapshot> {
        let mut s = Snapshot::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            if let Some(le) = series
                .strip_prefix("migwatch_send_lateness_seconds_bucket{le=\"")
                .and_then(|x| x.strip_suffix("\"}"))
            {
                let bound = le.parse::<f64>().map_or(f64::INFINITY, |b| b * 1e6);
                s.lateness.push((bound, v as u64));
                continue;
            }
            let family = series.split('{').next().unwrap_or(series);
            *s.sums.entry(family.to_string()).or_default() += v;
        }
        if s.lateness.is_empty() {
            bail!("no migwatch_send_lateness_seconds histogram in /metrics");
        }
        Ok(s)
    }

    /// `migwatch_NAME` summed over all targets.
    pub fn get(&self, name: &str) -> u64 {
        self.sums
            .get(&format!("migwatch_{name}"))
            .copied()
            .unwrap_or(0.0) as u64
    }

    /// Adds another process's scrape into this one (N separate sidecars).
    pub fn merge(&mut self, other: &Snapshot) {
        for (k, v) in &other.sums {
            *self.sums.entry(k.clone()).or_default() += v;
        }
        if self.lateness.is_empty() {
            self.lateness = other.lateness.clone();
        } else {
            for (a, b) in self.lateness.iter_mut().zip(&other.lateness) {
                a.1 += b.1;
            }
        }
    }
}

/// Counters between two scrapes.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Echo requests sent.
    pub echo: u64,
    /// Timestamp requests sent.
    pub clock: u64,
    /// Echo replies in time.
    pub replies: u64,
    /// Echo probes past their timeout.
    pub lost: u64,
    /// Slots skipped after a stall.
    pub skipped: u64,
    /// Send errors.
    pub send_errors: u64,
    /// Lateness histogram: (bound µs, cumulative count).
    pub lateness: Vec<(f64, u64)>,
}

impl Counts {
    /// `b - a`.
    pub fn between(a: &Snapshot, b: &Snapshot) -> Counts {
        let d = |n: &str| b.get(n).saturating_sub(a.get(n));
        Counts {
            echo: d("probes_sent_total"),
            clock: d("clock_probes_sent_total"),
            replies: d("replies_total"),
            lost: d("lost_total"),
            skipped: d("skipped_total"),
            send_errors: d("probe_send_errors_total"),
            lateness: b
                .lateness
                .iter()
                .zip(&a.lateness)
                .map(|(&(le, nb), &(_, na))| (le, nb.saturating_sub(na)))
                .collect(),
        }
    }

    /// The histogram bucket bound the `q` quantile of lateness falls under.
    pub fn lateness_bound(&self, q: f64) -> f64 {
        let n = self.lateness.last().map_or(0, |x| x.1);
        let need = (q * n as f64).ceil() as u64;
        self.lateness
            .iter()
            .find(|b| b.1 >= need)
            .map_or(f64::INFINITY, |b| b.0)
    }
}

/// CPU of a set of processes, split by mode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    /// utime, clock ticks.
    pub user: u64,
    /// stime, clock ticks.
    pub sys: u64,
    /// Live threads' schedstat run time, ns.
    pub run_ns: u64,
    /// Live threads' runqueue wait, ns.
    pub wait_ns: u64,
}

impl Cpu {
    /// Sum over `pids` now.
    pub fn of(pids: &[u32]) -> Result<Cpu> {
        let mut c = Cpu::default();
        for &pid in pids {
            let (u, s) = user_sys(pid)?;
            let p = procstat::cpu(pid)?;
            c.user += u;
            c.sys += s;
            c.run_ns += p.run_ns;
            c.wait_ns += p.wait_ns;
        }
        Ok(c)
    }

    /// `self - a` in seconds: (user+sys by ticks, sys by ticks, schedstat run, wait).
    pub fn since(&self, a: &Cpu) -> (f64, f64, f64, f64) {
        let t = procstat::clk_tck() as f64;
        (
            (self.user + self.sys).saturating_sub(a.user + a.sys) as f64 / t,
            self.sys.saturating_sub(a.sys) as f64 / t,
            self.run_ns.saturating_sub(a.run_ns) as f64 / 1e9,
            self.wait_ns.saturating_sub(a.wait_ns) as f64 / 1e9,
        )
    }
}

/// `utime` and `stime` of a process, in ticks.
fn user_sys(pid: u32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("no process {pid}"))?;
    // Fields after the command name, which may hold spaces: utime and stime
    // are fields 14 and 15 (1-based), i.e. 11 and 12 after the ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    match (f.get(11), f.get(12)) {
        (Some(&u), Some(&s)) => Ok((u, s)),
        _ => bail!("malformed /proc/{pid}/stat"),
    }
}

/// Run time (ns) of each thread name of `pid`, summed over threads of the
/// same name (tokio's workers share one).
pub fn threads_by_name(pid: u32) -> Result<HashMap<String, u64>> {
    let mut m = HashMap::new();
    for t in procstat::threads(pid)? {
        *m.entry(t.name).or_default() += t.run_ns;
    }
    Ok(m)
}

/// Per-name run time between two [`threads_by_name`] readings, seconds,
/// largest first.
pub fn thread_deltas(a: &HashMap<String, u64>, b: &HashMap<String, u64>) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = b
        .iter()
        .map(|(k, nb)| {
            let na = a.get(k).copied().unwrap_or(0);
            (k.clone(), nb.saturating_sub(na) as f64 / 1e9)
        })
        .collect();
    v.sort_by(|x, y| y.1.total_cmp(&x.1));
    v
}

/// Sum of the RSS of `pids`, kB.
pub fn rss_kb(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&p| procstat::rss_kb(p)).sum()
}
