//! `mw-bench`: measures the release sidecar against iputils `ping` and
//! `fping` on a veth path into a namespace it creates, and prints the
//! results as Markdown tables (copied into `docs/BENCHMARKS.md`).
//!
//! ```text
//! mw-bench [--sidecar PATH] [--responder PATH] [--only rtt,rate,cost,fanout,loss] [--out FILE]
//! ```
//!
//! Needs root. It only ever sends to the namespace addresses it creates
//! (198.18.0.0/15); every namespace and child process is owned by a guard
//! that removes or kills it (by name or PID) on drop, also on failure.

use anyhow::{bail, Context, Result};
use migwatch_shared::wire::{Event, Sample};
use migwatch_tests::netns::TargetNs;
use migwatch_tests::procstat;
use migwatch_tests::sidecar::{EventStream, Sidecar};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rates of the rate sweep, Hz. The sidecar's shortest interval is 50 µs.
const RATES: [u32; 5] = [1_000, 2_000, 5_000, 10_000, 20_000];
/// Extra fping-only rates, to find its ceiling above the sidecar's range.
const FPING_ONLY_RATES: [u32; 2] = [40_000, 50_000];
/// Measured window of each rate step.
const RATE_WINDOW: Duration = Duration::from_secs(3);
/// On time means sent within this of the schedule, at p99.
const ON_TIME_US: f64 = 100.0;
/// Blackouts of the loss-accounting test, ms.
const BLACKOUTS_MS: [u64; 3] = [100, 300, 1000];
/// Rounds of the side-by-side cost measurement.
const COST_ROUNDS: u32 = 3;
/// SSE clients of the fan-out test.
const CLIENTS: usize = 100;

/// The sidecar's prober thread: it sends and receives (the receiver
/// thread `probe-rx` and the scheduler `probe-sched` were merged into it).
const PROBE_THREAD: &str = "probe";

const SECTIONS: [&str; 5] = ["rtt", "rate", "cost", "fanout", "loss"];

struct Opts {
    responder: Option<PathBuf>,
    only: Vec<String>,
    out: Option<PathBuf>,
}

fn usage() -> String {
    format!(
        "usage: mw-bench [--sidecar PATH] [--responder PATH] [--only {}] [--out FILE]",
        SECTIONS.join(",")
    )
}

fn parse_opts() -> Result<Opts> {
    let mut opts = Opts {
        responder: None,
        only: SECTIONS.iter().map(|s| s.to_string()).collect(),
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{a} needs a value\n{}", usage()))
        };
        match a.as_str() {
            // The harness reads the sidecar's path from this variable; set
            // it before any thread starts.
            "--sidecar" => std::env::set_var("MIGWATCH_SIDECAR", value()?),
            "--responder" => opts.responder = Some(PathBuf::from(value()?)),
            "--out" => opts.out = Some(PathBuf::from(value()?)),
            "--only" => {
                let v = value()?;
                opts.only = v.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = opts.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    bail!("unknown section {bad:?}\n{}", usage());
                }
            }
            "-h" | "--help" => {
                println!("{}", usage());
                opts.only.clear();
            }
            _ => bail!("unknown argument {a:?}\n{}", usage()),
        }
    }
    // Default to the binaries built next to this one (target/release/).
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if std::env::var_os("MIGWATCH_SIDECAR").is_none() {
        if let Some(p) = here.as_ref().map(|d| d.join("migwatch-sidecar")) {
            if p.is_file() {
                std::env::set_var("MIGWATCH_SIDECAR", p);
            }
        }
    }
    if opts.responder.is_none() {
        opts.responder = here.map(|d| d.join("mw-responder"));
    }
    Ok(opts)
}

/// One benchmark section, writing into the report.
type Section<'a> = dyn Fn(&mut Report) -> Result<()> + 'a;

/// Markdown collected as it is printed.
#[derive(Default)]
struct Report {
    md: String,
}

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        self.md.push_str(s.as_ref());
        self.md.push('\n');
    }

    fn table(&mut self, head: &[&str], rows: &[Vec<String>]) {
        self.line(format!("| {} |", head.join(" | ")));
        self.line(format!("|{}", "---|".repeat(head.len())));
        for r in rows {
            self.line(format!("| {} |", r.join(" | ")));
        }
        self.line("");
    }
}

fn main() {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mw-bench: error: {e:#}");
            1
        }
    };
    // Every guard has been dropped by now.
    std::process::exit(code);
}

fn run() -> Result<()> {
    let opts = parse_opts()?;
    if opts.only.is_empty() {
        return Ok(());
    }
    if !migwatch_tests::have_root() {
        bail!("mw-bench needs root (network namespaces, raw ICMP)");
    }
    let sidecar_bin = migwatch_tests::sidecar::binary()?;
    let mut r = Report::default();
    machine(&mut r, &sidecar_bin)?;
    let ns = TargetNs::create()?;
    r.line(format!(
        "Path: veth {} ({}) -> namespace {} ({}).\n",
        ns.host_if, ns.host_addr, ns.name, ns.target
    ));
    let sections: [(&str, &Section); 5] = [
        ("rtt", &|r| bench_rtt(&ns, r)),
        ("rate", &|r| bench_rate(&ns, r)),
        ("cost", &|r| bench_cost(&ns, r)),
        ("fanout", &|r| bench_fanout(&ns, r)),
        ("loss", &|r| bench_loss(opts.responder.as_deref(), r)),
    ];
    for (name, f) in sections {
        if !opts.only.iter().any(|s| s == name) {
            continue;
        }
        let busy0 = procstat::machine_ticks()?;
        let t = Instant::now();
        if let Err(e) = f(&mut r) {
            r.line(format!("**{name} failed:** {e:#}\n"));
        }
        let busy = procstat::machine_busy(busy0, procstat::machine_ticks()?);
        r.line(format!(
            "_{name}: {:.0} s; machine {:.0} % busy (all CPUs) during it; load average after: {}_\n",
            t.elapsed().as_secs_f64(),
            busy * 100.0,
            procstat::loadavg()
        ));
    }
    if let Some(path) = opts.out {
        std::fs::write(&path, &r.md).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("mw-bench: wrote {}", path.display());
    }
    Ok(())
}

fn first_line(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

fn machine(r: &mut Report, sidecar: &Path) -> Result<()> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rev = first_line(&[
        "git",
        "-C",
        &migwatch_tests::repo_root().to_string_lossy(),
        "describe",
        "--always",
        "--dirty",
    ]);
    r.line(format!(
        "Machine: {nproc} CPUs, {model}, Linux {}; {}; load average at start: {}",
        kernel.trim(),
        first_line(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]),
        procstat::loadavg()
    ));
    r.line(format!(
        "Sidecar: {} (git {rev}); reference tools: {}, {}\n",
        sidecar.display(),
        first_line(&["ping", "-V"]),
        first_line(&["fping", "-v"])
    ));
    Ok(())
}

// ---------------------------------------------------------------- helpers

/// A child process killed (by PID) and reaped on drop.
struct Guard(Child);

impl Guard {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGINT, so ping and fping print their summaries, then waits up to `t`.
    fn interrupt(&mut self, t: Duration) -> Result<()> {
        migwatch_tests::netns::sh(&["kill", "-INT", &self.pid().to_string()])?;
        self.wait(t).map(|_| ())
    }

    /// Waits up to `t` for the exit; kills it after that.
    fn wait(&mut self, t: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + t;
        loop {
            if let Some(s) = self.0.try_wait()? {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                let _ = self.0.kill();
                bail!("pid {} did not exit within {t:?}; killed", self.pid());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Send lateness against the straight-line schedule that the earliest
/// sends define. `points` are (probe index, send time in µs). The line
/// goes through the earliest send of the first and of the last quarter,
/// so a tool whose period is slightly off (or a clock being slewed) is
/// judged on its jitter, and its rate is reported separately.
fn lateness_vs_fit(points: &[(u64, f64)]) -> Vec<f64> {
    if points.len() < 8 {
        return Vec::new();
    }
    let (k0, t0) = points[0];
    let (kn, tn) = points[points.len() - 1];
    let period = (tn - t0) / (kn - k0).max(1) as f64;
    let resid: Vec<(f64, f64)> = points
        .iter()
        .map(|&(k, t)| ((k - k0) as f64, t - t0 - (k - k0) as f64 * period))
        .collect();
    let q = resid.len() / 4;
    let lowest = |s: &[(f64, f64)]| {
        s.iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0.0, 0.0))
    };
    let (ka, ra) = lowest(&resid[..q]);
    let (kb, rb) = lowest(&resid[resid.len() - q..]);
    let slope = if kb > ka { (rb - ra) / (kb - ka) } else { 0.0 };
    resid
        .iter()
        .map(|&(k, r)| r - (ra + slope * (k - ka)))
        .collect()
}

/// Achieved rate from (probe index, send time µs) points.
fn rate_of(points: &[(u64, f64)]) -> f64 {
    match (points.first(), points.last()) {
        (Some(&(k0, t0)), Some(&(kn, tn))) if tn > t0 => (kn - k0) as f64 / (tn - t0) * 1e6,
        _ => f64::NAN,
    }
}

fn us(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

fn hz(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.0} Hz")
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

// ---------------------------------------------------------------- /metrics

/// One parsed `/metrics` scrape.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    values: HashMap<String, f64>,
    /// Send lateness histogram: (upper bound in µs, cumulative count).
    lateness: Vec<(f64, u64)>,
}

impl Snapshot {
    fn take(sc: &Sidecar) -> Result<Snapshot> {
        let text = sc.get("/metrics")?;
        let mut s = Snapshot::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            if let Some(le) = name
                .strip_prefix("migwatch_send_lateness_seconds_bucket{le=\"")
                .and_then(|x| x.strip_suffix("\"}"))
            {
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse::<f64>().unwrap_or(f64::INFINITY) * 1e6
                };
                s.lateness.push((bound, v as u64));
            } else {
                s.values.insert(name.to_string(), v);
            }
        }
        if s.lateness.is_empty() {
            bail!("no send-lateness histogram in /metrics");
        }
        Ok(s)
    }

    /// ICMP requests sent: echo probes and timestamp (clock) probes, the
    /// sidecar's work per unit when its cost is set against fping's.
    fn requests(&self) -> u64 {
        self.get("probes_sent_total") + self.get("clock_probes_sent_total")
    }

    fn get(&self, name: &str) -> u64 {
        self.values
            .get(&format!("migwatch_{name}"))
            .copied()
            .unwrap_or(0.0) as u64
    }

    /// Schedule slots used so far: the next probe's seq.
    fn slots(&self) -> u64 {
        self.get("probes_sent_total")
            + self.get("probe_send_errors_total")
            + self.get("skipped_total")
    }

    fn lateness_sum_us(&self) -> f64 {
        self.values
            .get("migwatch_send_lateness_seconds_sum")
            .copied()
            .unwrap_or(0.0)
            * 1e6
    }
}

/// The send-lateness histogram between two scrapes.
struct Lateness {
    /// (upper bound µs, cumulative count)
    buckets: Vec<(f64, u64)>,
    mean_us: f64,
}

impl Lateness {
    fn between(a: &Snapshot, b: &Snapshot) -> Lateness {
        let buckets: Vec<(f64, u64)> = b
            .lateness
            .iter()
            .zip(&a.lateness)
            .map(|(&(le, nb), &(_, na))| (le, nb.saturating_sub(na)))
            .collect();
        let n = buckets.last().map_or(0, |x| x.1);
        Lateness {
            mean_us: (b.lateness_sum_us() - a.lateness_sum_us()) / n.max(1) as f64,
            buckets,
        }
    }

    fn count(&self) -> u64 {
        self.buckets.last().map_or(0, |x| x.1)
    }

    /// Fraction of sends at most `le` µs late (`le` must be a bucket bound).
    fn frac_le(&self, le: f64) -> f64 {
        let n = self.buckets.iter().find(|b| b.0 >= le).map_or(0, |b| b.1);
        n as f64 / self.count().max(1) as f64
    }

    /// The bucket bound the `q` quantile falls under.
    fn quantile_bound(&self, q: f64) -> f64 {
        let need = (q * self.count() as f64).ceil() as u64;
        self.buckets
            .iter()
            .find(|b| b.1 >= need)
            .map_or(f64::INFINITY, |b| b.0)
    }

    fn p99_text(&self) -> String {
        let b = self.quantile_bound(0.99);
        if b.is_infinite() {
            "> 1 s".into()
        } else {
            format!("≤ {b:.0} µs")
        }
    }
}

/// Reads the stream from `?since=0` until every seq in `range` has its
/// sample, or `timeout` passes. Returns the samples and the number of
/// `late` events in the range.
fn samples_for(
    sc: &Sidecar,
    range: Range<u64>,
    timeout: Duration,
) -> Result<(BTreeMap<u64, Sample>, u64)> {
    let stream = EventStream::open(&sc.base, "?since=0")?;
    let deadline = Instant::now() + timeout;
    let need = range.end.saturating_sub(range.start) as usize;
    let (mut got, mut late) = (BTreeMap::new(), 0);
    while got.len() < need {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match stream.next(left)?.map(|r| r.event) {
            Some(Event::Sample(s)) if range.contains(&s.seq) => {
                got.insert(s.seq, s);
            }
            Some(Event::Late(l)) if range.contains(&l.seq) => late += 1,
            _ => {}
        }
    }
    Ok((got, late))
}

// ---------------------------------------------------------------- fping / ping

/// The end of fping's summary line: `xmt/rcv/%loss = 5/4/20%, ...`.
fn fping_summary(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr.lines().find(|l| l.contains("xmt/rcv/%loss"))?;
    let mut it = line.split_once("= ")?.1.split('/');
    Some((
        it.next()?.trim().parse().ok()?,
        it.next()?.trim().parse().ok()?,
    ))
}

/// One `fping -D` line: `[ts] addr : [seq], 64 bytes, 0.045 ms (...)`.
/// Returns (seq, send time µs) for answered probes.
fn fping_line(line: &str) -> Option<(u64, f64)> {
    let ts: f64 = line.strip_prefix('[')?.split_once(']')?.0.parse().ok()?;
    let seq: u64 = line.split_once(" : [")?.1.split_once(']')?.0.parse().ok()?;
    let rtt_ms: f64 = line
        .split_once(" bytes, ")?
        .1
        .split_once(" ms")?
        .0
        .parse()
        .ok()?;
    Some((seq, ts * 1e6 - rtt_ms * 1e3))
}

/// `-p` (and `-i`) values in ms, as fping takes them.
fn period_ms(rate_hz: u32) -> String {
    let p = 1000.0 / f64::from(rate_hz);
    let s = format!("{p:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// One fping run.
struct FpingRun {
    xmt: u64,
    rcv: u64,
    /// Achieved rate from its own reply timestamps.
    rate: f64,
    /// Lateness against a fitted schedule, sorted.
    late: Vec<f64>,
    wall: Duration,
    note: String,
}

fn fping_rate(target: &str, rate_hz: u32, count: u64, extra: &[&str]) -> Result<FpingRun> {
    let out = migwatch_tests::out_dir().join(format!("bench-fping-{rate_hz}.txt"));
    let p = period_ms(rate_hz);
    let mut args = vec!["-p", &p];
    args.extend_from_slice(extra);
    let count_s = count.to_string();
    args.extend_from_slice(&["-c", &count_s, "-D", target]);
    let t = Instant::now();
    let mut g = Guard(
        Command::new("fping")
            .args(&args)
            .stdout(std::fs::File::create(&out)?)
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run fping")?,
    );
    let limit = Duration::from_secs_f64(count as f64 / f64::from(rate_hz) * 200.0 + 5.0)
        .min(Duration::from_secs(60));
    let status = g.wait(limit)?;
    let wall = t.elapsed();
    let stderr = g.stderr();
    let text = std::fs::read_to_string(&out)?;
    let points: Vec<(u64, f64)> = text.lines().filter_map(fping_line).collect();
    let Some((xmt, rcv)) = fping_summary(&stderr) else {
        bail!(
            "fping {} refused or failed ({status}): {}",
            args.join(" "),
            stderr.trim()
        );
    };
    let note = stderr
        .lines()
        .filter(|l| !l.contains("xmt/rcv") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Ok(FpingRun {
        xmt,
        rcv,
        rate: rate_of(&points),
        late: sorted(lateness_vs_fit(&points)),
        wall,
        note,
    })
}

/// `N packets transmitted, M received` from ping's summary.
fn ping_summary(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .filter_map(|f| f.split_whitespace().next()?.parse::<u64>().ok());
    Some((nums.next()?, nums.next()?))
}

// ---------------------------------------------------------------- 1. RTT

fn bench_rtt(ns: &TargetNs, r: &mut Report) -> Result<()> {
    const COUNT: u64 = 1500;
    r.line(format!(
        "### RTT accuracy (100 Hz, both running at the same time on the same path, {COUNT} probes each)\n"
    ));
    let target = ns.target.to_string();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut unpinned = f64::NAN;
    let mut balanced = Vec::new();
    // Unpinned, then every (sidecar CPU, ping CPU) pair of CPUs 0 and 1:
    // on a VM the two vCPUs differ by several µs per round trip, which
    // decides the unpinned figure by where the scheduler happens to put
    // each tool; the four pinned runs weigh each tool on each CPU equally.
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(2) as u32;
    let pins =
        std::iter::once(None).chain((0..cpus).flat_map(|a| (0..cpus).map(move |b| Some((a, b)))));
    for pin in pins {
        let placement = match pin {
            None => "as the scheduler places them".to_string(),
            Some((a, b)) if a == b => format!("both pinned to CPU {a}"),
            Some((a, b)) => format!("sidecar on CPU {a}, ping on CPU {b}"),
        };
        let (a, b, blocks, ping_hz) = rtt_run(&target, pin, COUNT)?;
        let diff = |f: fn(&[f64]) -> f64| f(&a) - f(&b);
        let med = diff(|v| pct(v, 0.5));
        let row = |name: &str, v: &[f64]| {
            vec![
                name.to_string(),
                placement.clone(),
                v.len().to_string(),
                us(v[0]),
                us(pct(v, 0.5)),
                us(mean(v)),
                us(pct(v, 0.99)),
            ]
        };
        rows.push(row("migwatch-sidecar", &a));
        rows.push(row("ping (iputils)", &b));
        rows.push(vec![
            "**difference (sidecar − ping)**".into(),
            placement.clone(),
            String::new(),
            us(diff(|v| v[0])),
            format!("**{}**", us(med)),
            us(diff(mean)),
            us(diff(|v| pct(v, 0.99))),
        ]);
        notes.push(format!(
            "{placement}: ping ran at {ping_hz:.0} Hz; median difference per quarter of the run {} µs",
            blocks.join(", ")
        ));
        match pin {
            None => unpinned = med,
            Some(_) => balanced.push(med),
        }
    }
    r.table(
        &[
            "tool",
            "placement",
            "replies",
            "min",
            "median",
            "mean",
            "p99",
        ],
        &rows,
    );
    for n in notes {
        r.line(format!("* {n}"));
    }
    let med = mean(&balanced);
    r.line(format!(
        "\nGoal: median within 2 µs of ping (mean of the {} pinned placements, each tool on each CPU equally): **{}** ({:+.1} µs; unpinned this run: {:+.1} µs).\n",
        balanced.len(),
        yes(med.abs() <= 2.0),
        med,
        unpinned
    ));
    Ok(())
}

/// Sorted sidecar and ping RTTs (µs), the median difference per quarter of
/// the run, and ping's achieved rate.
type RttRun = (Vec<f64>, Vec<f64>, Vec<String>, f64);

/// One concurrent RTT run. With `pin` = (a, b), every sidecar thread runs
/// on CPU a and ping on CPU b.
fn rtt_run(target: &str, pin: Option<(u32, u32)>, count: u64) -> Result<RttRun> {
    const BLOCKS: usize = 4;
    let sc = Sidecar::start(target, &["--interval", "10ms"])?;
    if let Some((c, _)) = pin {
        let (c, pid) = (c.to_string(), sc.pid().to_string());
        migwatch_tests::netns::sh(&["taskset", "-a", "-p", "-c", &c, &pid])?;
    }
    let stream = EventStream::open(&sc.base, "")?;
    // The first sample proves it probes.
    stream.collect_until(Duration::from_secs(5), |g| !g.is_empty())?;
    // iputils ping paces `-i 0.01` at ~60 Hz here (it rounds its wait up
    // to the next tick), and `-i 0.0099` at ~105 Hz: take the latter.
    let mut cmd = match pin {
        Some((_, c)) => {
            let mut t = Command::new("taskset");
            t.args(["-c", &c.to_string(), "ping"]);
            t
        }
        None => Command::new("ping"),
    };
    let started = Instant::now();
    let mut ping = Guard(
        cmd.args(["-n", "-i", "0.0099", "-c", &count.to_string(), target])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run ping")?,
    );
    let stdout = ping.0.stdout.take().context("no ping stdout")?;
    let reader = std::thread::spawn(move || {
        let mut rtts = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(v) = line
                .split_once("time=")
                .and_then(|(_, t)| t.split_whitespace().next()?.parse::<f64>().ok())
            {
                rtts.push(v * 1e3);
            }
        }
        rtts
    });
    let deadline = Instant::now() + Duration::from_secs(count / 50 + 10);
    let mut ours = Vec::new();
    while ping.0.try_wait()?.is_none() {
        if Instant::now() > deadline {
            bail!("ping did not finish");
        }
        if let Some(Event::Sample(Sample {
            rtt_us: Some(v), ..
        })) = stream.next(Duration::from_millis(100))?.map(|x| x.event)
        {
            ours.push(f64::from(v));
        }
    }
    let ping_hz = count as f64 / started.elapsed().as_secs_f64();
    let theirs = reader.join().unwrap_or_default();
    if ours.len() < BLOCKS * 10 || theirs.len() < BLOCKS * 10 {
        bail!(
            "too few RTTs: sidecar {}, ping {}",
            ours.len(),
            theirs.len()
        );
    }
    // Median difference per quarter of the run (in time order): how much
    // the comparison moves with the machine's load.
    let quarter = |v: &[f64], i: usize| {
        let n = v.len() / BLOCKS;
        pct(&sorted(v[i * n..(i + 1) * n].to_vec()), 0.5)
    };
    let blocks = (0..BLOCKS)
        .map(|i| format!("{:+.0}", quarter(&ours, i) - quarter(&theirs, i)))
        .collect();
    Ok((sorted(ours), sorted(theirs), blocks, ping_hz))
}

// ---------------------------------------------------------------- 2. Rate

/// What one thread did between two readings.
#[derive(Debug, Clone, Default)]
struct ThreadDelta {
    name: String,
    run_ns: u64,
    wait_ns: u64,
    slices: u64,
}

fn thread_deltas(a: &[procstat::ThreadCpu], b: &[procstat::ThreadCpu]) -> Vec<ThreadDelta> {
    b.iter()
        .filter_map(|tb| {
            let ta = a.iter().find(|t| t.tid == tb.tid)?;
            Some(ThreadDelta {
                name: tb.name.clone(),
                run_ns: tb.run_ns.saturating_sub(ta.run_ns),
                wait_ns: tb.wait_ns.saturating_sub(ta.wait_ns),
                slices: tb.slices.saturating_sub(ta.slices),
            })
        })
        .collect()
}

fn named(ts: &[ThreadDelta], name: &str) -> ThreadDelta {
    ts.iter()
        .filter(|t| t.name == name)
        .fold(ThreadDelta::default(), |acc, t| ThreadDelta {
            name: name.to_string(),
            run_ns: acc.run_ns + t.run_ns,
            wait_ns: acc.wait_ns + t.wait_ns,
            slices: acc.slices + t.slices,
        })
}

/// What the sidecar did over one measured window.
struct SidecarRate {
    sent: u64,
    lost: u64,
    late: u64,
    /// Achieved rate (from the events' send times, else from the counter).
    rate: f64,
    hist: Lateness,
    /// Lateness from the events' send times vs a fitted line, sorted.
    ev_late: Vec<f64>,
    /// Share of a core, whole process.
    cpu: f64,
    /// The prober thread (`probe`).
    sched: ThreadDelta,
    skipped: u64,
}

/// Runs the sidecar at `rate_hz` and measures a `window`. With `events`,
/// also reads every sample of the window back from the stream. With `rt`,
/// all its threads are switched to SCHED_FIFO 50 (`chrt`) first.
fn sidecar_rate(
    target: &str,
    rate_hz: u32,
    window: Duration,
    events: bool,
    rt: bool,
) -> Result<SidecarRate> {
    let interval = format!("{}us", 1_000_000 / rate_hz);
    // A deep client queue, so the bench's own after-the-fact reader of the
    // whole history is never cut off.
    let sc = Sidecar::start(
        target,
        &["--interval", &interval, "--client-queue", "100000"],
    )?;
    let pid = sc.pid();
    if rt {
        migwatch_tests::netns::sh(&["chrt", "-a", "-f", "-p", "50", &pid.to_string()])?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let (c0, th0, m0) = (
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
        Snapshot::take(&sc)?,
    );
    let t0 = Instant::now();
    std::thread::sleep(window);
    let (c1, th1, m1) = (
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
        Snapshot::take(&sc)?,
    );
    let dt = t0.elapsed().as_secs_f64();
    let range = m0.slots()..m1.slots();
    let sent = range.end - range.start;
    let (mut lost, mut late, mut rate, mut ev_late) = (
        m1.get("lost_total") - m0.get("lost_total"),
        0,
        (m1.get("probes_sent_total") - m0.get("probes_sent_total")) as f64 / dt,
        Vec::new(),
    );
    if events {
        // Wait out the timeout (1 s) so every probe in the window is resolved.
        std::thread::sleep(Duration::from_millis(1200));
        let (samples, l) = samples_for(&sc, range.clone(), Duration::from_secs(20))?;
        let points: Vec<(u64, f64)> = samples
            .values()
            .map(|s| (s.seq, s.sent_us as f64))
            .collect();
        let missing = sent.saturating_sub(samples.len() as u64);
        lost = samples.values().filter(|s| s.rtt_us.is_none()).count() as u64 + missing;
        late = l;
        rate = rate_of(&points);
        ev_late = sorted(lateness_vs_fit(&points));
    }
    Ok(SidecarRate {
        sent,
        lost,
        late,
        rate,
        hist: Lateness::between(&m0, &m1),
        ev_late,
        cpu: c1.run_since(&c0).as_secs_f64() / dt,
        sched: named(&thread_deltas(&th0, &th1), PROBE_THREAD),
        skipped: m1.get("skipped_total") - m0.get("skipped_total"),
    })
}

/// Meets the rate criterion: p99 on time, no loss, rate within 1 %.
fn sustained(s: &SidecarRate, rate_hz: u32) -> bool {
    s.hist.frac_le(ON_TIME_US) >= 0.99
        && s.lost == 0
        && s.rate >= 0.99 * f64::from(rate_hz)
        && s.skipped == 0
}

fn bench_rate(ns: &TargetNs, r: &mut Report) -> Result<()> {
    r.line(format!(
        "### Rate ({} s window per step; sidecar, then fping)\n",
        RATE_WINDOW.as_secs()
    ));
    let target = ns.target.to_string();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut plain: Vec<(u32, SidecarRate)> = Vec::new();
    let (mut sc_pass, mut fp_pass) = (Vec::new(), Vec::new());
    for &rate in RATES.iter().chain(&FPING_ONLY_RATES) {
        let mut row = vec![format!("{rate}")];
        let mut sc_rate = f64::NAN;
        if RATES.contains(&rate) {
            match sidecar_rate(&target, rate, RATE_WINDOW, true, false) {
                Ok(s) => {
                    if sustained(&s, rate) {
                        sc_pass.push(rate);
                    }
                    sc_rate = s.rate;
                    row.extend([
                        hz(s.rate),
                        format!("{}/{}", s.lost, s.sent),
                        s.hist.p99_text(),
                        format!("{:.2} %", s.hist.frac_le(ON_TIME_US) * 100.0),
                        format!(
                            "{} / {}",
                            us(pct(&s.ev_late, 0.99)),
                            us(s.ev_late.last().copied().unwrap_or(f64::NAN))
                        ),
                        format!("{:.0} %", s.cpu * 100.0),
                    ]);
                    if s.late > 0 || s.skipped > 0 {
                        notes.push(format!(
                            "{rate} Hz: sidecar {} late replies, {} skipped slots",
                            s.late, s.skipped
                        ));
                    }
                    plain.push((rate, s));
                }
                Err(e) => {
                    row.extend(vec!["-".to_string(); 6]);
                    notes.push(format!("{rate} Hz sidecar: {e:#}"));
                }
            }
        } else {
            row.push("n/a (its shortest interval is 50 µs)".to_string());
            row.extend(vec![String::new(); 5]);
        }
        let count = (f64::from(rate) * RATE_WINDOW.as_secs_f64()).min(65_000.0) as u64;
        match fping_rate(&target, rate, count, &["-i", "0"]) {
            Ok(f) => {
                let p99 = pct(&f.late, 0.99);
                if f.rcv == f.xmt && f.rate >= 0.99 * f64::from(rate) && p99 <= ON_TIME_US {
                    fp_pass.push(rate);
                }
                row.extend([
                    hz(f.rate),
                    format!("{}/{}", f.xmt - f.rcv, f.xmt),
                    format!(
                        "{} / {}",
                        us(p99),
                        us(f.late.last().copied().unwrap_or(f64::NAN))
                    ),
                    if sc_rate.is_nan() {
                        "-".into()
                    } else {
                        format!("{:.2}", sc_rate / f.rate)
                    },
                ]);
                if !f.note.is_empty() {
                    notes.push(format!("{rate} Hz fping: {}", f.note));
                }
            }
            Err(e) => {
                row.extend(vec!["-".to_string(); 4]);
                notes.push(format!("{rate} Hz fping: {e:#}"));
            }
        }
        rows.push(row);
    }
    r.table(
        &[
            "rate Hz",
            "sidecar rate",
            "lost/sent",
            "lateness p99 (its histogram)",
            "sends ≤ 100 µs late",
            "p99 / max vs fitted line",
            "sidecar CPU (of one core)",
            "`fping -i 0` rate",
            "fping lost/sent",
            "fping p99 / max vs fitted line",
            "rate ratio sidecar/fping",
        ],
        &rows,
    );
    // fping as the brief writes it, with its default -i (10 ms).
    match fping_rate(&target, 1000, 200, &[]) {
        Ok(f) => notes.push(format!(
            "`fping -p 1 -c 200` (default `-i`) ran at {} ({}/{} answered in {:.2} s): its default 10 ms minimum gap between any two pings caps it at 100 Hz whatever `-p` says, so the table uses `-p P -i 0 -c N`. fping refuses no period as root; it aborts past 65 535 probes per run",
            hz(f.rate),
            f.rcv,
            f.xmt,
            f.wall.as_secs_f64()
        )),
        Err(e) => notes.push(format!("fping -p 1 -c 200: {e:#}")),
    }
    for n in notes {
        r.line(format!("* {n}"));
    }
    r.line("* \"vs fitted line\": lateness of each send against the straight line through the earliest sends, from the sidecar's `sent_us` on the stream and from fping's `-D` reply time minus its RTT (10 µs resolution). The histogram column is the sidecar's own lateness against its absolute schedule; its buckets are 10/25/50/100/250/500/1000/2500 µs, so p99 is given as a bucket bound.");
    r.line("");
    // The highest passing rate, and the highest below which every tested
    // rate passed too.
    let summary = |pass: &[u32], tested: &[u32]| {
        let best = pass.iter().copied().max().unwrap_or(0);
        let upto = tested
            .iter()
            .take_while(|t| pass.contains(t))
            .last()
            .copied()
            .unwrap_or(0);
        let list: Vec<String> = pass.iter().map(|p| p.to_string()).collect();
        (best, upto, list.join(", "))
    };
    let all: Vec<u32> = RATES.iter().chain(&FPING_ONLY_RATES).copied().collect();
    let (sc_best, sc_upto, sc_list) = summary(&sc_pass, &RATES);
    let (fp_best, fp_upto, fp_list) = summary(&fp_pass, &all);
    r.line(format!(
        "Criterion: p99 lateness ≤ 100 µs, 0 loss, rate within 1 %. Sidecar meets it at [{sc_list}] Hz: highest **{sc_best} Hz**, every tested rate up to {sc_upto} Hz. fping (`-i 0`) at [{fp_list}] Hz: highest **{fp_best} Hz**, every rate up to {fp_upto} Hz. Goal ≥ 10 kHz: **{}**; goal 2× fping's ceiling: **{}** (×{:.1}).\n",
        yes(sc_best >= 10_000),
        yes(fp_best > 0 && sc_best >= 2 * fp_best),
        f64::from(sc_best) / f64::from(fp_best.max(1))
    ));

    // Where the lateness comes from: the sidecar as is, and with its
    // threads under SCHED_FIFO, plus the default 100 Hz.
    r.line("#### Sidecar send lateness: as is vs SCHED_FIFO (`chrt -a -f -p 50`)\n");
    let mut rows = Vec::new();
    let cells = |s: &SidecarRate| {
        let per_wake = s.sched.wait_ns as f64 / s.sched.slices.max(1) as f64 / 1e3;
        vec![
            format!("{:.1} %", s.hist.frac_le(10.0) * 100.0),
            format!("{:.1} %", s.hist.frac_le(25.0) * 100.0),
            format!("{:.2} %", s.hist.frac_le(ON_TIME_US) * 100.0),
            us(s.hist.mean_us),
            format!(
                "{:.1} / {}",
                s.sched.slices as f64 / s.sent.max(1) as f64,
                us(per_wake)
            ),
        ]
    };
    let mut rt_best = 0;
    for rate in std::iter::once(100).chain(RATES) {
        let mut row = vec![format!("{rate}")];
        let window = if rate < 1000 {
            Duration::from_secs(5)
        } else {
            RATE_WINDOW
        };
        let base = match plain.iter().position(|(r, _)| *r == rate) {
            Some(i) => Ok(plain.swap_remove(i).1),
            None => sidecar_rate(&target, rate, window, false, false),
        };
        match base {
            Ok(s) => row.extend(cells(&s)),
            Err(e) => {
                row.extend(vec!["-".to_string(); 5]);
                r.line(format!("* {rate} Hz: {e:#}"));
            }
        }
        match sidecar_rate(&target, rate, window, false, true) {
            Ok(s) => {
                if sustained(&s, rate) && rate >= 1000 {
                    rt_best = rate;
                }
                row.extend(cells(&s));
            }
            Err(e) => {
                row.extend(vec!["-".to_string(); 5]);
                r.line(format!("* {rate} Hz SCHED_FIFO: {e:#}"));
            }
        }
        rows.push(row);
    }
    r.table(
        &[
            "rate Hz",
            "≤ 10 µs",
            "≤ 25 µs",
            "≤ 100 µs",
            "mean",
            "`probe` thread wakeups per probe / runqueue wait per wakeup",
            "FIFO ≤ 10 µs",
            "FIFO ≤ 25 µs",
            "FIFO ≤ 100 µs",
            "FIFO mean",
            "FIFO wakeups / wait",
        ],
        &rows,
    );
    r.line(format!(
        "With SCHED_FIFO the highest rate meeting the criterion was {rt_best} Hz. Runqueue wait is the time the thread was runnable but another task held the CPU (`/proc/PID/task/TID/schedstat`); lateness that remains with zero wait is timer and idle-exit latency.\n"
    ));
    Ok(())
}

// ---------------------------------------------------------------- 3. Cost

fn bench_cost(ns: &TargetNs, r: &mut Report) -> Result<()> {
    r.line("### Cost (sidecar and fping at the same rate on the same path: together, then each alone)\n");
    let target = ns.target.to_string();
    let mut rows = Vec::new();
    let mut per_thread = Vec::new();
    let mut goals = Vec::new();
    let mut first_rss = String::new();
    // CPU ratios per rate, one per round: single windows swing by ±30 %
    // on a shared machine, so the rates alternate over COST_ROUNDS rounds.
    let mut ratios: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    let mut alone: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    let mut alone_rows = Vec::new();
    let plan = (1..=COST_ROUNDS).flat_map(|round| {
        [
            // At 100 Hz a probe costs 100–200 µs and the process is idle
            // between probes: a longer window evens out the wake-ups.
            (round, 100u32, Duration::from_secs(30)),
            (round, 1000, Duration::from_secs(5)),
        ]
    });
    for (round, rate, window) in plan {
        let interval = format!("{}us", 1_000_000 / rate);
        let sc = Sidecar::start(&target, &["--interval", &interval])?;
        let p = period_ms(rate);
        let mut fp = Guard(
            Command::new("fping")
                .args(["-p", &p, "-i", "0", "-l", "-q", &target])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot run fping")?,
        );
        let fp_start = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let (sp, fpid) = (sc.pid(), fp.pid());
        let (s0, f0, m0) = (
            procstat::cpu(sp)?,
            procstat::cpu(fpid)?,
            Snapshot::take(&sc)?,
        );
        let (st0, ft0) = (procstat::threads(sp)?, procstat::threads(fpid)?);
        let t0 = Instant::now();
        std::thread::sleep(window);
        let (s1, f1, m1) = (
            procstat::cpu(sp)?,
            procstat::cpu(fpid)?,
            Snapshot::take(&sc)?,
        );
        let (st1, ft1) = (procstat::threads(sp)?, procstat::threads(fpid)?);
        let dt = t0.elapsed().as_secs_f64();
        let (srss, frss) = (procstat::rss_kb(sp)?, procstat::rss_kb(fpid)?);
        fp.interrupt(Duration::from_secs(3))?;
        let fp_wall = fp_start.elapsed().as_secs_f64();
        let (fx, fr) = fping_summary(&fp.stderr()).context("no fping summary")?;
        let s_probes = (m1.requests() - m0.requests()) as f64;
        // fping's count over the window, from its own total and run time.
        let f_probes = fx as f64 / fp_wall * dt;
        let per_k = |d: Duration, n: f64| d.as_secs_f64() * 1e3 / n * 1000.0;
        let (s_ms, f_ms) = (
            per_k(s1.run_since(&s0), s_probes),
            per_k(f1.run_since(&f0), f_probes),
        );
        if first_rss.is_empty() {
            first_rss = mb(srss);
        }
        rows.push(vec![
            format!("{rate}"),
            format!("{round}"),
            format!(
                "{:.1} ms ({:.0} ms)",
                s_ms,
                per_k(s1.ticks_since(&s0), s_probes)
            ),
            format!(
                "{:.1} ms ({:.0} ms)",
                f_ms,
                per_k(f1.ticks_since(&f0), f_probes)
            ),
            format!("{:.2}", s_ms / f_ms),
            format!(
                "{:.2} % / {:.2} %",
                s1.run_since(&s0).as_secs_f64() / dt * 100.0,
                f1.run_since(&f0).as_secs_f64() / dt * 100.0
            ),
            mb(srss),
            mb(frss),
            format!("{:.1}", srss as f64 / frss.max(1) as f64),
            format!("{}/{}", fx - fr, fx),
        ]);
        let (sd, fd) = (thread_deltas(&st0, &st1), thread_deltas(&ft0, &ft1));
        let cell = |t: &ThreadDelta, n: f64| {
            format!(
                "{:.0} µs / {:.1}",
                t.run_ns as f64 / n / 1e3,
                t.slices as f64 / n
            )
        };
        let fping_all = fd.iter().fold(ThreadDelta::default(), |a, t| ThreadDelta {
            name: String::new(),
            run_ns: a.run_ns + t.run_ns,
            wait_ns: a.wait_ns + t.wait_ns,
            slices: a.slices + t.slices,
        });
        let rest = sd
            .iter()
            .filter(|t| ![PROBE_THREAD, "hub-pump"].contains(&t.name.as_str()))
            .fold(ThreadDelta::default(), |a, t| ThreadDelta {
                name: String::new(),
                run_ns: a.run_ns + t.run_ns,
                wait_ns: a.wait_ns + t.wait_ns,
                slices: a.slices + t.slices,
            });
        per_thread.push(vec![
            format!("{rate}"),
            format!("{round}"),
            cell(&named(&sd, PROBE_THREAD), s_probes),
            cell(&named(&sd, "hub-pump"), s_probes),
            cell(&rest, s_probes),
            cell(&fping_all, f_probes),
        ]);
        ratios.entry(rate).or_default().push(s_ms / f_ms);
        // The same rate with each tool alone, one after the other: running
        // together, each also wakes for every reply to the other (a raw
        // ICMP socket sees all echo replies), which neither does in use.
        let (sa, fa) = cost_alone(&target, rate, window, round)?;
        alone_rows.push(vec![
            format!("{rate}"),
            format!("{round}"),
            format!("{sa:.1} ms"),
            format!("{fa:.1} ms"),
            format!("{:.2}", sa / fa),
        ]);
        alone.entry(rate).or_default().push(sa / fa);
    }
    for (how, all) in [("running together", &ratios), ("each alone", &alone)] {
        for (rate, rs) in all {
            let met = rs.iter().filter(|x| **x <= 1.0).count();
            let mut sorted = rs.clone();
            sorted.sort_by(f64::total_cmp);
            goals.push(format!(
                "CPU per probe no worse than fping at {rate} Hz, {how}: **{}** in {met} of {} rounds (ratios {}; median ×{:.2})",
                if met == rs.len() { "met" } else { "MISSED" },
                rs.len(),
                rs.iter().map(|x| format!("×{x:.2}")).collect::<Vec<_>>().join(", "),
                sorted[sorted.len() / 2]
            ));
        }
    }
    r.table(
        &[
            "rate Hz",
            "round",
            "sidecar CPU / 1000 probes (by ticks)",
            "fping CPU / 1000 probes (by ticks)",
            "CPU ratio",
            "share of a core sidecar / fping",
            "sidecar RSS",
            "fping RSS",
            "RSS ratio",
            "fping lost/sent",
        ],
        &rows,
    );
    r.line("CPU is thread run time from `/proc/PID/task/*/schedstat` (ns); in brackets `utime+stime` from `/proc/PID/stat` (10 ms ticks, coarse). RSS is `VmRSS` at the end of the window, seconds after start. Both include the kernel's work for the probe's whole round trip on the veth path, which runs inside the sender's `sendto`. The sidecar's probes are all the ICMP requests it sends: echo and its timestamp (clock) requests, one per 200 ms.\n");
    r.line("Each alone, one after the other (same rate and window, the sidecar first in odd rounds, fping first in even ones; CPU per 1000 probes by `schedstat`):\n");
    r.table(
        &[
            "rate Hz",
            "round",
            "sidecar alone",
            "fping alone",
            "CPU ratio",
        ],
        &alone_rows,
    );
    r.line("Per probe, by thread, running together (CPU time / times scheduled in):\n");
    r.table(
        &[
            "rate Hz",
            "round",
            "probe (sends and receives)",
            "hub-pump",
            "other sidecar threads",
            "fping (one thread)",
        ],
        &per_thread,
    );
    // The ring grows to `--history` worth of events (10 min by default):
    // fill the same number of events quickly at a higher rate.
    let mut full = Vec::new();
    for (label, events, interval_us, history) in [
        ("100 Hz × 10 min", 60_000u64, 100u64, "6s"),
        ("1 kHz × 10 min", 600_000, 50, "30s"),
    ] {
        let interval = format!("{interval_us}us");
        let sc = Sidecar::start(&target, &["--interval", &interval, "--history", history])?;
        let pid = sc.pid();
        let fill = Duration::from_micros(events * interval_us) + Duration::from_secs(1);
        let start_rss = procstat::rss_kb(pid)?;
        std::thread::sleep(fill);
        let m = Snapshot::take(&sc)?;
        let (rss, hwm) = (procstat::rss_kb(pid)?, procstat::status_kb(pid, "VmHWM")?);
        full.push(vec![
            label.to_string(),
            format!("{events}"),
            format!(
                "`--interval {interval} --history {history}`, {:.0} s",
                fill.as_secs_f64()
            ),
            format!("{}", m.slots()),
            mb(start_rss),
            mb(rss),
            mb(hwm),
        ]);
        if label.starts_with("100 Hz") {
            goals.push(format!(
                "RSS ≤ 15 MB at 100 Hz: **{}** ({} once the ring holds its 10 minutes; {first_rss} in the first seconds)",
                yes(rss <= 15 * 1024),
                mb(rss),
            ));
        }
    }
    r.line("RSS with a full history ring (as many events as 10 minutes at the nominal rate, filled faster; a ring entry is 24 bytes, a sample inline and rarer events boxed). The faster interval also sizes the outstanding-probe table for that interval (65 536 slots, 2 MiB, where 100 Hz needs 4 096, 128 KiB), so the 100 Hz row overstates by about 1.9 MB:\n");
    r.table(
        &[
            "equivalent to",
            "events in ring",
            "run",
            "probes sent",
            "RSS at start",
            "RSS, ring full",
            "VmHWM",
        ],
        &full,
    );
    for g in goals {
        r.line(format!("* {g}"));
    }
    r.line("");
    Ok(())
}

/// CPU per 1000 probes of the sidecar alone, then of fping alone, at
/// `rate` over `window` each.
fn cost_alone(target: &str, rate: u32, window: Duration, round: u32) -> Result<(f64, f64)> {
    let per_k = |d: Duration, n: f64| d.as_secs_f64() * 1e6 / n.max(1.0);
    let sidecar = || -> Result<f64> {
        let interval = format!("{}us", 1_000_000 / rate);
        let sc = Sidecar::start(target, &["--interval", &interval])?;
        std::thread::sleep(Duration::from_secs(1));
        let (c0, m0) = (procstat::cpu(sc.pid())?, Snapshot::take(&sc)?);
        std::thread::sleep(window);
        let (c1, m1) = (procstat::cpu(sc.pid())?, Snapshot::take(&sc)?);
        let n = (m1.requests() - m0.requests()) as f64;
        Ok(per_k(c1.run_since(&c0), n))
    };
    let fping = || -> Result<f64> {
        let mut fp = Guard(
            Command::new("fping")
                .args(["-p", &period_ms(rate), "-i", "0", "-l", "-q", target])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("cannot run fping")?,
        );
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let c0 = procstat::cpu(fp.pid())?;
        let t0 = Instant::now();
        std::thread::sleep(window);
        let c1 = procstat::cpu(fp.pid())?;
        let dt = t0.elapsed().as_secs_f64();
        fp.interrupt(Duration::from_secs(3))?;
        let wall = start.elapsed().as_secs_f64();
        let (sent, _) = fping_summary(&fp.stderr()).context("no fping summary")?;
        Ok(per_k(c1.run_since(&c0), sent as f64 / wall * dt))
    };
    // Alternate which goes first, so a drift in the machine's load over
    // the pair favours neither.
    if round % 2 == 1 {
        let s = sidecar()?;
        Ok((s, fping()?))
    } else {
        let f = fping()?;
        Ok((sidecar()?, f))
    }
}

// ---------------------------------------------------------------- 4. Fan-out

/// `http://127.0.0.1:PORT` → the socket address.
fn addr_of(base: &str) -> Result<SocketAddr> {
    base.trim_start_matches("http://")
        .parse()
        .with_context(|| format!("cannot parse {base}"))
}

const GET_EVENTS: &[u8] =
    b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";

/// Light SSE clients: one small thread each that only counts bytes.
struct Readers {
    stop: Arc<AtomicBool>,
    bytes: Vec<Arc<AtomicU64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Readers {
    fn start(addr: SocketAddr, n: usize) -> Result<Readers> {
        let mut rd = Readers {
            stop: Arc::new(AtomicBool::new(false)),
            bytes: Vec::new(),
            threads: Vec::new(),
        };
        for _ in 0..n {
            let mut s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            s.write_all(GET_EVENTS)?;
            let (stop, count) = (rd.stop.clone(), Arc::new(AtomicU64::new(0)));
            rd.bytes.push(count.clone());
            rd.threads
                .push(
                    std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || {
                            let mut buf = [0u8; 8192];
                            while !stop.load(Ordering::Relaxed) {
                                match s.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        count.fetch_add(n as u64, Ordering::Relaxed);
                                    }
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            std::io::ErrorKind::WouldBlock
                                                | std::io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => return,
                                }
                            }
                        })?,
                );
        }
        Ok(rd)
    }

    fn counts(&self) -> Vec<u64> {
        self.bytes
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Clients that send the request and never read, with a small receive
/// buffer so they stall quickly.
fn stalled_clients(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut v = Vec::new();
    for _ in 0..n {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_recv_buffer_size(4096)?;
        s.connect(&addr.into())?;
        let mut s: TcpStream = s.into();
        s.write_all(GET_EVENTS)?;
        v.push(s);
    }
    Ok(v)
}

fn wait_metric(sc: &Sidecar, name: &str, want: impl Fn(u64) -> bool, t: Duration) -> Result<u64> {
    migwatch_tests::wait_for(name, t, Duration::from_millis(100), || {
        Snapshot::take(sc)
            .ok()
            .map(|m| m.get(name))
            .filter(|v| want(*v))
    })
}

/// One fan-out window: lateness, CPU, the probe thread, loss, overflows.
struct FanWindow {
    late: Lateness,
    cpu: f64,
    sched: ThreadDelta,
    /// The HTTP side (tokio workers), share of a core.
    http_cpu: f64,
    sent: u64,
    lost: u64,
    overflows: u64,
}

fn fan_window(sc: &Sidecar, window: Duration) -> Result<FanWindow> {
    let pid = sc.pid();
    let (c0, t0, m0) = (
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
        Snapshot::take(sc)?,
    );
    let t = Instant::now();
    std::thread::sleep(window);
    let (c1, t1, m1) = (
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
        Snapshot::take(sc)?,
    );
    let d = thread_deltas(&t0, &t1);
    let secs = t.elapsed().as_secs_f64();
    Ok(FanWindow {
        late: Lateness::between(&m0, &m1),
        cpu: c1.run_since(&c0).as_secs_f64() / secs,
        sched: named(&d, PROBE_THREAD),
        http_cpu: named(&d, "tokio-rt-worker").run_ns as f64 / 1e9 / secs,
        sent: m1.get("probes_sent_total") - m0.get("probes_sent_total"),
        lost: m1.get("lost_total") - m0.get("lost_total"),
        overflows: m1.get("overflow_disconnects_total") - m0.get("overflow_disconnects_total"),
    })
}

fn bench_fanout(ns: &TargetNs, r: &mut Report) -> Result<()> {
    const WINDOW: Duration = Duration::from_secs(5);
    r.line(format!(
        "### Fan-out (one sidecar at 1 kHz, per-client queue capped at 128 KiB; {} s windows)\n",
        WINDOW.as_secs()
    ));
    let sc = Sidecar::start(&ns.target.to_string(), &["--interval", "1ms"])?;
    let pid = sc.pid();
    let addr = addr_of(&sc.base)?;
    std::thread::sleep(Duration::from_secs(1));
    let row = |name: &str, w: &FanWindow, rss: u64, extra: String| {
        vec![
            name.to_string(),
            format!("{:.1} %", w.late.frac_le(25.0) * 100.0),
            format!("{:.2} %", w.late.frac_le(ON_TIME_US) * 100.0),
            w.late.p99_text(),
            us(w.late.mean_us),
            us(w.sched.wait_ns as f64 / w.sched.slices.max(1) as f64 / 1e3),
            format!("{:.1} % ({:.1} %)", w.cpu * 100.0, w.http_cpu * 100.0),
            format!("{}/{}", w.lost, w.sent),
            w.overflows.to_string(),
            mb(rss),
            extra,
        ]
    };
    let mut rows = Vec::new();
    let base = fan_window(&sc, WINDOW)?;
    rows.push(row(
        "0 clients",
        &base,
        procstat::rss_kb(pid)?,
        String::new(),
    ));

    let readers = Readers::start(addr, CLIENTS)?;
    wait_metric(
        &sc,
        "clients",
        |v| v >= CLIENTS as u64,
        Duration::from_secs(10),
    )?;
    let b0 = readers.counts();
    let me0 = procstat::cpu(std::process::id())?;
    let with = fan_window(&sc, WINDOW)?;
    let me = procstat::cpu(std::process::id())?.run_since(&me0);
    let b1 = readers.counts();
    let per: Vec<f64> = b0
        .iter()
        .zip(&b1)
        .map(|(a, b)| (b - a) as f64 / WINDOW.as_secs_f64() / 1e3)
        .collect();
    let (lo, hi) = per
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
    rows.push(row(
        &format!("{CLIENTS} reading clients"),
        &with,
        procstat::rss_kb(pid)?,
        format!(
            "each client received {lo:.0}–{hi:.0} kB/s; the bench's reader threads used {:.1} % of a core",
            me.as_secs_f64() / WINDOW.as_secs_f64() * 100.0
        ),
    ));
    drop(readers);
    wait_metric(&sc, "clients", |v| v == 0, Duration::from_secs(10))?;
    // The baseline again, so the machine's own drift during the test shows
    // (the clients' effect is judged against the mean of the two).
    let base2 = fan_window(&sc, WINDOW)?;
    rows.push(row(
        "0 clients again",
        &base2,
        procstat::rss_kb(pid)?,
        String::new(),
    ));

    let rss_before = procstat::rss_kb(pid)?;
    let ovf_before = Snapshot::take(&sc)?.get("overflow_disconnects_total");
    let stalled = stalled_clients(addr, CLIENTS)?;
    let (m0, c0, th0) = (
        Snapshot::take(&sc)?,
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
    );
    let t = Instant::now();
    let mut peak = rss_before;
    let mut trace = Vec::new();
    let mut cut_off_after = None;
    // Until every stalled client is cut off, or 40 s.
    while t.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_secs(2));
        let rss = procstat::rss_kb(pid)?;
        peak = peak.max(rss);
        let ovf = Snapshot::take(&sc)?.get("overflow_disconnects_total") - ovf_before;
        trace.push(format!(
            "{:.0} s: {}, {ovf} cut off",
            t.elapsed().as_secs_f64(),
            mb(rss)
        ));
        if ovf >= CLIENTS as u64 {
            cut_off_after = Some(t.elapsed());
            break;
        }
    }
    let (m1, c1, th1) = (
        Snapshot::take(&sc)?,
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
    );
    let d = thread_deltas(&th0, &th1);
    let secs = t.elapsed().as_secs_f64();
    let stalled_w = FanWindow {
        late: Lateness::between(&m0, &m1),
        cpu: c1.run_since(&c0).as_secs_f64() / secs,
        sched: named(&d, PROBE_THREAD),
        http_cpu: named(&d, "tokio-rt-worker").run_ns as f64 / 1e9 / secs,
        sent: m1.get("probes_sent_total") - m0.get("probes_sent_total"),
        lost: m1.get("lost_total") - m0.get("lost_total"),
        overflows: m1.get("overflow_disconnects_total") - ovf_before,
    };
    let rss_cut = procstat::rss_kb(pid)?;
    std::thread::sleep(Duration::from_secs(2));
    let rss_cut_later = procstat::rss_kb(pid)?;
    drop(stalled);
    std::thread::sleep(Duration::from_secs(3));
    let rss_after = procstat::rss_kb(pid)?;
    let per_client = (peak.saturating_sub(rss_before)) as f64 / CLIENTS as f64 / 1024.0;
    rows.push(row(
        &format!("{CLIENTS} stalled clients"),
        &stalled_w,
        rss_cut,
        format!(
            "cut off after {}",
            cut_off_after.map_or("> 40 s".into(), |d| format!("{:.0} s", d.as_secs_f64()))
        ),
    ));
    r.table(
        &[
            "clients",
            "sends ≤ 25 µs late",
            "≤ 100 µs",
            "p99 (histogram)",
            "mean lateness",
            "`probe` thread runqueue wait per wakeup",
            "sidecar CPU (of it HTTP workers)",
            "lost/sent",
            "overflows",
            "RSS",
            "notes",
        ],
        &rows,
    );
    r.line(format!(
        "Stalled clients (4 KB receive buffer, never read), RSS over time: {}. RSS: {} before → peak {} (≈ {per_client:.2} MB per stalled client) → {} 2 s after all were cut off → {} 3 s after they closed.\n",
        trace.join("; "),
        mb(rss_before),
        mb(peak),
        mb(rss_cut_later),
        mb(rss_after)
    ));
    let base_share = (base.late.frac_le(ON_TIME_US) + base2.late.frac_le(ON_TIME_US)) / 2.0;
    let base_mean = (base.late.mean_us + base2.late.mean_us) / 2.0;
    let unchanged = with.late.frac_le(ON_TIME_US) >= base_share - 0.005
        && with.late.mean_us <= base_mean + 10.0;
    r.line(format!(
        "* Zero overflows with {CLIENTS} reading clients: **{}** ({}).\n* Send lateness unchanged with {CLIENTS} reading clients (share ≤ 100 µs within 0.5 points of the two 0-client windows' mean, mean lateness within 10 µs of theirs): **{}** ({:.2} % and {:.2} % → {:.2} %, mean {} and {} → {}).\n* {CLIENTS} stalled clients all cut off and RSS bounded (peak within 32 MB of the start): **{}** ({}/{CLIENTS} cut off, peak {} vs {} before).\n",
        yes(with.overflows == 0),
        with.overflows,
        yes(unchanged),
        base.late.frac_le(ON_TIME_US) * 100.0,
        base2.late.frac_le(ON_TIME_US) * 100.0,
        with.late.frac_le(ON_TIME_US) * 100.0,
        us(base.late.mean_us),
        us(base2.late.mean_us),
        us(with.late.mean_us),
        yes(stalled_w.overflows >= CLIENTS as u64 && peak <= rss_before + 32 * 1024),
        stalled_w.overflows,
        mb(peak),
        mb(rss_before)
    ));
    Ok(())
}

// ---------------------------------------------------------------- 5. Loss

fn bench_loss(responder: Option<&Path>, r: &mut Report) -> Result<()> {
    r.line("### Exact loss accounting (1 kHz; `mw-responder` blackouts; fping and ping run alongside)\n");
    let bin = responder.context("no mw-responder path: pass --responder PATH")?;
    if !bin.is_file() {
        bail!(
            "{} does not exist: cargo build --release -p migwatch-tests --bins",
            bin.display()
        );
    }
    let ns = TargetNs::create()?;
    let mut resp = ns.responder(bin)?;
    let target = ns.target.to_string();
    let sc = Sidecar::start(&target, &["--interval", "1ms"])?;
    let stream = EventStream::open(&sc.base, "")?;
    std::thread::sleep(Duration::from_secs(1));
    let mut runs = Vec::new();
    for t in BLACKOUTS_MS {
        // The tools run 300 ms before and 1.2 s after the blackout.
        let count = (t + 1500).to_string();
        let spawn = |cmd: &str, args: &[&str]| -> Result<Guard> {
            Ok(Guard(
                Command::new(cmd)
                    .args(args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .with_context(|| format!("cannot run {cmd}"))?,
            ))
        };
        let mut fp = spawn(
            "fping",
            &["-p", "1", "-i", "0", "-c", &count, "-q", &target],
        )?;
        let mut pg = spawn("ping", &["-n", "-q", "-i", "0.001", "-c", &count, &target])?;
        std::thread::sleep(Duration::from_millis(300));
        let seq0 = Snapshot::take(&sc)?.slots();
        resp.cmd(&format!("blackout {t}"))?;
        std::thread::sleep(Duration::from_millis(t + 1500));
        let seq1 = Snapshot::take(&sc)?.slots();
        let _ = fp.wait(Duration::from_secs(5));
        let fsum = fping_summary(&fp.stderr());
        // ping slows down without replies: stop it if it is still going.
        if pg.0.try_wait()?.is_none() {
            let _ = pg.interrupt(Duration::from_secs(3));
        }
        let mut ptext = String::new();
        if let Some(mut o) = pg.0.stdout.take() {
            let _ = o.read_to_string(&mut ptext);
        }
        runs.push((
            t,
            seq0.saturating_sub(200),
            seq1,
            fsum,
            ping_summary(&ptext),
        ));
    }
    // Lost samples come a timeout (1 s) after their send.
    let last = runs.last().map_or(0, |x| x.2);
    let mut samples: BTreeMap<u64, Option<u32>> = BTreeMap::new();
    let mut late = 0u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while samples.range(last..).next().is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("the stream did not resolve seq {last}");
        }
        match stream.next(left)?.map(|x| x.event) {
            Some(Event::Sample(s)) => {
                samples.insert(s.seq, s.rtt_us);
            }
            Some(Event::Late(_)) => late += 1,
            _ => {}
        }
    }
    let mut rows = Vec::new();
    let mut all_ok = true;
    for (t, lo, hi, fsum, psum) in runs {
        let lost: Vec<u64> = samples
            .range(lo..hi)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| *k)
            .collect();
        let bursts = 1 + lost.windows(2).filter(|w| w[1] != w[0] + 1).count();
        let bursts = if lost.is_empty() { 0 } else { bursts };
        let ok = bursts == 1 && (lost.len() as u64).abs_diff(t) <= 1;
        all_ok &= ok;
        let tool = |s: Option<(u64, u64)>| {
            s.map_or("-".into(), |(x, rcv)| format!("{} (of {x} sent)", x - rcv))
        };
        rows.push(vec![
            format!("{t} ms"),
            format!("{}", lost.len()),
            format!("{bursts}"),
            match (lost.first(), lost.last()) {
                (Some(a), Some(b)) => format!("{a}..={b}"),
                _ => "-".into(),
            },
            yes(ok).to_string(),
            tool(fsum),
            tool(psum),
        ]);
    }
    r.table(
        &[
            "blackout",
            "sidecar lost seqs",
            "bursts",
            "seqs",
            "T ± 1",
            "fping -p 1 lost",
            "ping -i 0.001 lost",
        ],
        &rows,
    );
    r.line(format!(
        "Goal: a T ms blackout loses T ± 1 seqs: **{}**. Late replies during the test: {late}.\n",
        yes(all_ok)
    ));
    drop(resp);
    Ok(())
}
