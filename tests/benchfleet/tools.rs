//! One measured run of each tool over the fleet: the sidecar (one process,
//! all targets), `fping -l` over the same list at the same total rate, and
//! N single-target sidecars. Each run warms up, then measures a fixed
//! window; every child is killed by PID when its guard drops.

use crate::measure::{self, Counts, Cpu, Snapshot};
use anyhow::{bail, Context, Result};
use migwatch_shared::wire::Event;
use migwatch_tests::benchlib::stats;
use migwatch_tests::benchlib::tools::{fping_totals, ms_arg, ping_times_us};
use migwatch_tests::benchlib::Guard;
use migwatch_tests::procstat;
use migwatch_tests::sidecar::{EventStream, Sidecar};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Targets whose streams are read for lateness from `sent_us` (first,
/// thirds, last).
const STREAMED: usize = 4;

/// Probes per second above which fping 5.1 runs out of sequence numbers
/// within its 10 s expiry (65 536 / 10 s, with a margin).
const FPING_SEQ_RATE: f64 = 6_000.0;
/// fping's window when it must run short (1 s warm-up before it): about
/// 5 s at 10 kHz uses 50 000 of its 65 536 sequence numbers.
const FPING_SHORT_WINDOW: Duration = Duration::from_secs(4);

/// What one run measured over its window.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// `sidecar`, `fping` or `N sidecars`.
    pub tool: String,
    /// Targets.
    pub n: usize,
    /// Echo rate per target, Hz.
    pub hz: u32,
    /// Round (tools alternate order between rounds).
    pub round: u32,
    /// `/proc/loadavg` at the window's start.
    pub load: String,
    /// Fraction of both CPUs busy during the window (everything).
    pub machine_busy: f64,
    /// Length of the counters' window (request start to request start of
    /// the two scrapes), s.
    pub win: f64,
    /// Length of the CPU window, s (inside the counters' one).
    pub cpu_win: f64,
    /// Counters over the window (fping: estimated from its totals).
    pub counts: Counts,
    /// Lost / sent (echo).
    pub loss: f64,
    /// Lateness p99 and max against the exact schedule, and p99 against
    /// the fitted line, from the streamed targets' `sent_us` (µs).
    pub stream_late: Option<(f64, f64, f64)>,
    /// CPU seconds over the window: (ticks user+sys, sys, schedstat run, runqueue wait).
    pub cpu: (f64, f64, f64, f64),
    /// RSS at the window's end (summed over processes), kB.
    pub rss_kb: u64,
    /// Per thread name CPU seconds over the window (one sidecar only).
    pub threads: Vec<(String, f64)>,
    /// RTT medians of the first streamed target: (sidecar, ping -i 0.01), µs.
    pub rtt: Option<(f64, f64, usize, usize)>,
    /// Anything odd.
    pub notes: Vec<String>,
}

impl Run {
    /// Echo rate held over the window, as a fraction of the asked rate.
    pub fn rate_frac(&self) -> f64 {
        self.counts.echo as f64 / (self.win * self.n as f64 * self.hz as f64)
    }

    /// Requests (echo and timestamp) sent during the CPU window, from the
    /// counters' rate.
    fn in_cpu_window(&self, n: u64) -> f64 {
        (n as f64 * self.cpu_win / self.win).max(1.0)
    }

    /// CPU per ICMP request (echo and timestamp), µs, by ticks.
    pub fn cpu_per_probe(&self) -> f64 {
        self.cpu.0 * 1e6 / self.in_cpu_window(self.counts.echo + self.counts.clock)
    }

    /// CPU per echo request, µs, by ticks.
    pub fn cpu_per_echo(&self) -> f64 {
        self.cpu.0 * 1e6 / self.in_cpu_window(self.counts.echo)
    }

    /// CPU per ICMP request, µs, by schedstat.
    pub fn run_per_probe(&self) -> f64 {
        self.cpu.2 * 1e6 / self.in_cpu_window(self.counts.echo + self.counts.clock)
    }
}

/// The targets file for `n` targets named `t0000`...
pub fn targets_file(addrs: &[Ipv4Addr]) -> Result<String> {
    let mut s = String::from("# written by mw-bench-fleet\n");
    for (i, a) in addrs.iter().enumerate() {
        s.push_str(&format!(
            "[[target]]\naddress = \"{a}\"\nname = \"t{i:04}\"\nlabels = {{ bench = \"fleet\" }}\n\n"
        ));
    }
    let path = migwatch_tests::out_dir().join(format!("bench-fleet-{}.toml", addrs.len()));
    std::fs::write(&path, s)?;
    Ok(path.to_string_lossy().into_owned())
}

/// `--interval` for `hz`.
pub fn interval(hz: u32) -> String {
    format!("{}us", 1_000_000 / hz)
}

/// Starts one sidecar over all `addrs` at `hz` each.
pub fn start_fleet_sidecar(addrs: &[Ipv4Addr], hz: u32) -> Result<Sidecar> {
    let file = targets_file(addrs)?;
    Sidecar::start_with(
        &format!("fleet{}", addrs.len()),
        &["--targets-file", &file, "--interval", &interval(hz)],
    )
}

/// Samples (seq, sent_us, rtt_us) read from one target's stream until `stop`.
type Samples = Vec<(u64, i64, Option<u32>)>;

fn read_stream(base: String, name: String, stop: Arc<AtomicBool>) -> Result<Samples> {
    let s = EventStream::open(&format!("{base}/targets/{name}"), "")?;
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(r) = s.next(Duration::from_millis(100))? {
            if let Event::Sample(x) = r.event {
                out.push((x.seq, x.sent_us, x.rtt_us));
            }
        }
    }
    Ok(out)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The median `time=` of a `ping` output, µs, and how many replies.
fn ping_median(text: &str) -> (f64, usize) {
    let v = stats::sorted(ping_times_us(text));
    (stats::pct(&v, 0.5), v.len())
}

/// The window a run measures, with its start state.
struct Window {
    load: String,
    busy0: (u64, u64),
}

impl Window {
    fn open() -> Result<Window> {
        Ok(Window {
            load: procstat::loadavg(),
            busy0: procstat::machine_ticks()?,
        })
    }
}

/// One sidecar over all targets: a warm-up, then `win` measured; `ping`
/// runs to the first streamed target during the window.
pub fn sidecar_run(addrs: &[Ipv4Addr], hz: u32, warmup: Duration, win: Duration) -> Result<Run> {
    let n = addrs.len();
    let sc = start_fleet_sidecar(addrs, hz)?;
    let pid = sc.pid();
    std::thread::sleep(warmup);
    let picks: Vec<usize> = (0..STREAMED.min(n))
        .map(|k| k * (n - 1) / (STREAMED.min(n) - 1).max(1))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = picks
        .iter()
        .map(|&i| {
            let (base, name, stop) = (sc.base.clone(), format!("t{i:04}"), stop.clone());
            std::thread::spawn(move || read_stream(base, name, stop))
        })
        .collect();
    // Streams connect and replay their history first; the window starts
    // after that so replay work is not counted.
    std::thread::sleep(Duration::from_millis(500));
    let ping_out = migwatch_tests::out_dir().join(format!("bench-fleet-ping-{n}-{hz}.txt"));
    let w = Window::open()?;
    let s0 = Instant::now();
    let (m0, c0, th0) = (
        Snapshot::parse(&sc.get("/metrics")?)?,
        Cpu::of(&[pid])?,
        measure::threads_by_name(pid)?,
    );
    let us0 = now_us();
    let mut ping = Guard(
        Command::new("ping")
            .args(["-n", "-i", "0.01", &addrs[picks[0]].to_string()])
            .stdout(std::fs::File::create(&ping_out)?)
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run ping")?,
    );
    let elapsed = stats::window(win);
    let (c1, th1, rss) = (
        Cpu::of(&[pid])?,
        measure::threads_by_name(pid)?,
        procstat::rss_kb(pid)?,
    );
    let s1 = Instant::now();
    let m1 = Snapshot::parse(&sc.get("/metrics")?)?;
    let us1 = now_us();
    let busy = procstat::machine_busy(w.busy0, procstat::machine_ticks()?);
    ping.interrupt(Duration::from_secs(2))?;
    stop.store(true, Ordering::Relaxed);
    let mut run = Run {
        tool: "sidecar".into(),
        n,
        hz,
        load: w.load,
        machine_busy: busy,
        win: (s1 - s0).as_secs_f64(),
        cpu_win: elapsed.as_secs_f64(),
        counts: Counts::between(&m0, &m1),
        cpu: c1.since(&c0),
        rss_kb: rss,
        threads: measure::thread_deltas(&th0, &th1),
        ..Run::default()
    };
    run.loss = run.counts.lost as f64 / run.counts.echo.max(1) as f64;
    let period = 1e6 / hz as f64;
    let (mut sched, mut fit, mut first_rtts) = (Vec::new(), Vec::new(), Vec::new());
    for (k, r) in readers.into_iter().enumerate() {
        let samples = match r.join() {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                run.notes.push(format!("stream t{:04}: {e:#}", picks[k]));
                continue;
            }
            Err(_) => bail!("a stream reader panicked"),
        };
        let inside: Vec<_> = samples
            .into_iter()
            .filter(|s| s.1 >= us0 && s.1 <= us1)
            .collect();
        let points: Vec<(u64, f64)> = inside.iter().map(|s| (s.0, s.1 as f64)).collect();
        sched.extend(stats::lateness_vs_schedule(&points, period));
        fit.extend(stats::lateness_vs_fit(&points));
        if k == 0 {
            first_rtts = inside.iter().filter_map(|s| s.2).map(f64::from).collect();
        }
    }
    let (sched, fit) = (stats::sorted(sched), stats::sorted(fit));
    if !sched.is_empty() {
        run.stream_late = Some((
            stats::pct(&sched, 0.99),
            sched.last().copied().unwrap_or(f64::NAN),
            stats::pct(&fit, 0.99),
        ));
    }
    let (ping_med, ping_n) = ping_median(&std::fs::read_to_string(&ping_out).unwrap_or_default());
    let first_rtts = stats::sorted(first_rtts);
    run.rtt = Some((
        stats::pct(&first_rtts, 0.5),
        ping_med,
        first_rtts.len(),
        ping_n,
    ));
    let errs = run.counts.send_errors + run.counts.skipped;
    if errs > 0 {
        run.notes.push(format!(
            "{} send errors, {} skipped slots",
            run.counts.send_errors, run.counts.skipped
        ));
    }
    Ok(run)
}

/// `-p` or `-i` in ms as fping takes them.
/// The fping command line for `n` targets at `hz` each: every target every
/// 1/hz, any two pings at least `spread`/(n·hz) apart.
pub fn fping_args(n: usize, hz: u32, spread: f64) -> Vec<String> {
    let p = 1000.0 / hz as f64;
    vec![
        "-l".into(),
        "-q".into(),
        "-p".into(),
        ms_arg(p),
        "-i".into(),
        ms_arg(p * spread / n as f64),
    ]
}

/// `fping -l -q -p P -i I` over `addrs` for a warm-up and the window. Its
/// probe count over the window is estimated from its totals and run time
/// (it prints them only at exit).
pub fn fping_run(
    addrs: &[Ipv4Addr],
    hz: u32,
    spread: f64,
    warmup: Duration,
    win: Duration,
) -> Result<Run> {
    let n = addrs.len();
    let err_path =
        migwatch_tests::out_dir().join(format!("bench-fleet-fping-{n}-{hz}-{spread}.txt"));
    let args = fping_args(n, hz, spread);
    // fping 5.1 keeps each sequence number for 10 s and has 65 536 of
    // them for all targets: above ~6 500 probes/s it aborts ("not enough
    // sequence numbers available") within 10 s. Above that rate it gets a
    // run short enough to finish.
    let short = (n as f64 * hz as f64) > FPING_SEQ_RATE;
    let (warmup, win) = if short {
        (Duration::from_secs(1), win.min(FPING_SHORT_WINDOW))
    } else {
        (warmup, win)
    };
    let started = Instant::now();
    let mut fp = Guard(
        Command::new("fping")
            .args(&args)
            .args(addrs.iter().map(|a| a.to_string()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()
            .context("cannot run fping")?,
    );
    let pid = fp.pid();
    std::thread::sleep(warmup);
    let w = Window::open()?;
    let c0 = Cpu::of(&[pid])?;
    let elapsed = stats::window(win);
    let (c1, rss) = (Cpu::of(&[pid])?, procstat::rss_kb(pid));
    let busy = procstat::machine_busy(w.busy0, procstat::machine_ticks()?);
    let total = started.elapsed();
    if let Some(status) = fp.0.try_wait()? {
        bail!(
            "fping {} exited ({status}) before the window ended: {}",
            args.join(" "),
            std::fs::read_to_string(&err_path)?
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    let rss = rss?;
    fp.interrupt(Duration::from_secs(5))?;
    let (xmt, rcv) = fping_totals(&std::fs::read_to_string(&err_path)?).unwrap_or((0, 0));
    if xmt == 0 {
        bail!(
            "fping {} sent nothing: {}",
            args.join(" "),
            std::fs::read_to_string(&err_path)?
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    let share = elapsed.as_secs_f64() / total.as_secs_f64();
    let mut run = Run {
        tool: format!("fping -i {}", if spread == 0.0 { "0" } else { "P/N" }),
        n,
        hz,
        load: w.load,
        machine_busy: busy,
        win: elapsed.as_secs_f64(),
        cpu_win: elapsed.as_secs_f64(),
        cpu: c1.since(&c0),
        rss_kb: rss,
        loss: 1.0 - rcv as f64 / xmt as f64,
        ..Run::default()
    };
    run.counts.echo = (xmt as f64 * share).round() as u64;
    run.counts.replies = (rcv as f64 * share).round() as u64;
    run.counts.lost = xmt - rcv;
    run.notes.push(format!(
        "fping {} ...: {xmt} sent / {rcv} answered over its whole {:.1} s run{}",
        args.join(" "),
        total.as_secs_f64(),
        if short {
            " (short run: fping 5.1's sequence-number limit)"
        } else {
            ""
        }
    ));
    Ok(run)
}

/// `n` single-target sidecars (`--probe-priority normal`, so 100 of them do
/// not hold the CPUs at real-time priority), one per address.
pub fn multi_run(addrs: &[Ipv4Addr], hz: u32, warmup: Duration, win: Duration) -> Result<Run> {
    let n = addrs.len();
    let iv = interval(hz);
    // Started in parallel: each waits until it serves.
    let started: Vec<Result<Sidecar>> = std::thread::scope(|s| {
        let hs: Vec<_> = addrs
            .iter()
            .map(|a| {
                let iv = iv.clone();
                s.spawn(move || {
                    let t = a.to_string();
                    Sidecar::start(&t, &["--interval", &iv, "--probe-priority", "normal"])
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("start panicked")))
            })
            .collect()
    });
    let mut scs = Vec::with_capacity(n);
    for s in started {
        scs.push(s?);
    }
    let pids: Vec<u32> = scs.iter().map(Sidecar::pid).collect();
    std::thread::sleep(warmup);
    let scrape = |scs: &[Sidecar]| -> Result<Snapshot> {
        let mut all = Snapshot::default();
        for sc in scs {
            all.merge(&Snapshot::parse(&sc.get("/metrics")?)?);
        }
        Ok(all)
    };
    let w = Window::open()?;
    let s0 = Instant::now();
    let (m0, c0) = (scrape(&scs)?, Cpu::of(&pids)?);
    let elapsed = stats::window(win);
    let (c1, rss) = (Cpu::of(&pids)?, measure::rss_kb(&pids)?);
    let s1 = Instant::now();
    let m1 = scrape(&scs)?;
    let busy = procstat::machine_busy(w.busy0, procstat::machine_ticks()?);
    let mut run = Run {
        tool: format!("{n} sidecars"),
        n,
        hz,
        load: w.load,
        machine_busy: busy,
        win: (s1 - s0).as_secs_f64(),
        cpu_win: elapsed.as_secs_f64(),
        counts: Counts::between(&m0, &m1),
        cpu: c1.since(&c0),
        rss_kb: rss,
        ..Run::default()
    };
    run.loss = run.counts.lost as f64 / run.counts.echo.max(1) as f64;
    Ok(run)
}
