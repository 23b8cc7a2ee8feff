//! `mw-bench-fleet`: one sidecar watching 10, 100 and 1000 targets against
//! `fping -l` over the same list at the same total rate and against N
//! single-target sidecars, then the sidecar's memory plateau, `/metrics`
//! size and scrape time and its detector's CPU at 1000 targets. Prints
//! Markdown tables (copied into docs/BENCHMARKS.md, "Fleet").
//!
//! ```text
//! mw-bench-fleet [--sidecar PATH] [--only scale,plateau] [--sizes 10,100,1000] [--rounds N]
//!                [--window SECS] [--plateau SECS] [--out FILE]
//! ```
//!
//! Needs root. It sends only to 127.0.0.1 and to the addresses of the one
//! namespace it creates (`mwbfleet`, see `benchfleet/ns.rs`); the namespace
//! and every child process are owned by guards that remove them (by name,
//! by PID) on drop, also on failure.

#[path = "benchfleet/measure.rs"]
mod measure;
#[path = "benchfleet/ns.rs"]
mod ns;
#[path = "benchfleet/plateau.rs"]
mod plateau;
#[path = "benchfleet/tools.rs"]
mod tools;

use anyhow::{bail, Context, Result};
use migwatch_tests::benchlib::stats::{mb, median, us};
use migwatch_tests::benchlib::{report, Report};
use std::path::PathBuf;
use std::time::Duration;
use tools::Run;

/// (targets, Hz per target) of the scale section.
const CONFIGS: [(usize, u32); 5] = [(10, 10), (10, 100), (100, 10), (100, 100), (1000, 10)];
/// N separate sidecars are run at these (targets, Hz) only: 100 sidecars at
/// 100 Hz each receive 10 000 replies/s on each of 100 sockets (10⁶
/// deliveries/s): in a trial they lost 98 % and held both CPUs, starving
/// everything else on the machine for minutes.
const MULTI: [(usize, u32); 3] = [(10, 10), (10, 100), (100, 10)];
/// Warm-up before each measured window (streams start, ARP, detectors).
const WARMUP: Duration = Duration::from_secs(3);
/// The lateness goal at 1000 × 10 Hz, µs (p99).
const LATENESS_GOAL_US: f64 = 1000.0;
/// The RTT goal: sidecar median within this of `ping`'s, µs.
const RTT_GOAL_US: f64 = 5.0;

const SECTIONS: [&str; 2] = ["scale", "plateau"];

struct Opts {
    only: Vec<String>,
    /// Target counts of the scale section to run.
    sizes: Vec<usize>,
    rounds: u32,
    window: Duration,
    plateau: Duration,
    out: Option<PathBuf>,
}

fn usage() -> String {
    format!(
        "usage: mw-bench-fleet [--sidecar PATH] [--only {}] [--sizes 10,100,1000] [--rounds N (2)] [--window SECS (8)] [--plateau SECS (240)] [--out FILE]",
        SECTIONS.join(",")
    )
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        only: SECTIONS.iter().map(|s| s.to_string()).collect(),
        sizes: vec![10, 100, 1000],
        rounds: 2,
        window: Duration::from_secs(8),
        plateau: Duration::from_secs(240),
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("{a} needs a value\n{}", usage()))
        };
        let secs = |v: String, flag: &str| -> Result<Duration> {
            let s: u64 = v
                .parse()
                .with_context(|| format!("{flag} {v:?}: a whole number of seconds"))?;
            anyhow::ensure!(s > 0, "{flag} must be at least 1");
            Ok(Duration::from_secs(s))
        };
        match a.as_str() {
            // The harness reads the sidecar's path from this variable; set
            // before any thread starts.
            "--sidecar" => std::env::set_var("MIGWATCH_SIDECAR", value()?),
            "--out" => o.out = Some(PathBuf::from(value()?)),
            "--rounds" => {
                let v = value()?;
                o.rounds = v
                    .parse()
                    .ok()
                    .filter(|r| (1..=10).contains(r))
                    .with_context(|| format!("--rounds {v:?}: 1 to 10"))?;
            }
            "--sizes" => {
                let v = value()?;
                o.sizes = v
                    .split(',')
                    .map(|x| {
                        x.trim()
                            .parse()
                            .ok()
                            .filter(|n| CONFIGS.iter().any(|c| c.0 == *n))
                    })
                    .collect::<Option<Vec<usize>>>()
                    .with_context(|| format!("--sizes {v:?}: some of 10,100,1000"))?;
            }
            "--window" => o.window = secs(value()?, "--window")?,
            "--plateau" => o.plateau = secs(value()?, "--plateau")?,
            "--only" => o.only = report::parse_sections(&value()?, &SECTIONS, &usage())?,
            "-h" | "--help" => {
                println!("{}", usage());
                o.only.clear();
            }
            _ => bail!("unknown argument {a:?}\n{}", usage()),
        }
    }
    report::default_sidecar_next_to_exe();
    Ok(o)
}

fn main() {
    report::main_of("mw-bench-fleet", run)
}

fn run() -> Result<()> {
    let o = parse_opts()?;
    if o.only.is_empty() {
        return Ok(());
    }
    if !migwatch_tests::have_root() {
        bail!("mw-bench-fleet needs root (network namespaces, raw ICMP)");
    }
    let mut r = Report::default();
    r.machine(
        &migwatch_tests::sidecar::binary()?,
        &[&["fping", "-v"], &["ping", "-V"]],
    );
    let net = ns::FleetNet::create(ns::MAX_TARGETS)?;
    r.line(format!("Path: {}.\n", net.describe()));
    for name in SECTIONS {
        if !o.only.iter().any(|s| s == name) {
            continue;
        }
        r.section(name, |r| match name {
            "scale" => scale(&net.addrs, &o, r),
            _ => plateau::plateau(&net.addrs, o.plateau, o.window, r),
        })?;
    }
    drop(net);
    if let Some(path) = o.out {
        r.write(&path, "mw-bench-fleet")?;
    }
    Ok(())
}

fn pct_s(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{:.3} %", v * 100.0)
    }
}

/// Every tool at every size, `rounds` times, alternating the order.
fn scale(addrs: &[std::net::Ipv4Addr], o: &Opts, r: &mut Report) -> Result<()> {
    r.line(format!(
        "### Scale ({} s window after {} s warm-up per run; {} rounds; tool order sidecar → fping → N sidecars in odd rounds, reversed in even ones)\n",
        o.window.as_secs(),
        WARMUP.as_secs(),
        o.rounds
    ));
    let mut runs: Vec<Run> = Vec::new();
    let mut failures = Vec::new();
    for round in 1..=o.rounds {
        for &(n, hz) in CONFIGS.iter().filter(|c| o.sizes.contains(&c.0)) {
            let set = &addrs[..n];
            let mut order: Vec<&str> = vec!["sidecar", "fping-even", "fping-burst"];
            if MULTI.contains(&(n, hz)) {
                order.push("multi");
            }
            if round % 2 == 0 {
                order.reverse();
            }
            for tool in order {
                eprintln!("mw-bench-fleet: round {round}: {n} × {hz} Hz: {tool}");
                let res = match tool {
                    "sidecar" => tools::sidecar_run(set, hz, WARMUP, o.window),
                    "fping-even" => tools::fping_run(set, hz, 1.0, WARMUP, o.window),
                    "fping-burst" => tools::fping_run(set, hz, 0.0, WARMUP, o.window),
                    _ => tools::multi_run(set, hz, WARMUP, o.window),
                };
                match res {
                    Ok(mut run) => {
                        run.round = round;
                        runs.push(run);
                    }
                    Err(e) => failures.push(format!("round {round}, {n} × {hz} Hz, {tool}: {e:#}")),
                }
            }
        }
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|x| {
            let sl = x.stream_late.map_or("-".into(), |(p99, max, fit)| {
                format!("{} / {} ({})", us(p99), us(max), us(fit))
            });
            vec![
                format!("{} × {} Hz", x.n, x.hz),
                x.tool.clone(),
                x.round.to_string(),
                x.load.clone(),
                format!("{:.0} %", x.machine_busy * 100.0),
                format!("{:.2} %", x.rate_frac() * 100.0),
                format!("{} + {}", x.counts.echo, x.counts.clock),
                pct_s(x.loss),
                if x.counts.lateness.is_empty() {
                    "-".into()
                } else {
                    format!("≤ {}", us(x.counts.lateness_bound(0.99)))
                },
                sl,
                format!(
                    "{:.2} s ({:.0} % sys)",
                    x.cpu.0,
                    x.cpu.1 / x.cpu.0.max(1e-9) * 100.0
                ),
                us(x.cpu_per_probe()),
                us(x.run_per_probe()),
                us(x.cpu_per_echo()),
                mb(x.rss_kb),
            ]
        })
        .collect();
    r.table(
        &[
            "targets × rate",
            "tool",
            "round",
            "load (1/5/15 min)",
            "machine busy",
            "echo rate held",
            "requests in window (echo + timestamp)",
            "loss",
            "lateness p99 (histogram)",
            "lateness p99 / max vs schedule (vs fit), streamed targets",
            "CPU in window",
            "CPU / request (ticks)",
            "CPU / request (schedstat)",
            "CPU / echo (ticks)",
            "RSS",
        ],
        &rows,
    );
    r.line("* A request is an ICMP echo or timestamp request. The sidecar sends a timestamp probe per target every 200 ms (its default `--clock-interval`), so at 10 Hz a third of its requests are timestamp probes; fping sends echo only. \"CPU / echo\" charges all the sidecar's CPU to its echo probes: the strictest comparison.");
    r.line("* Histogram lateness is the sidecar's own (`migwatch_send_lateness_seconds`, against its absolute schedule, bucket bounds 10/25/50/100/250/500/1000 µs ...). Stream lateness is from `sent_us` of 4 targets' `/targets/NAME/events` streams (first, thirds, last) against each target's exact period (phase from its earliest send) and, in brackets, against the line fitted through the earliest sends.");
    r.line("* fping: `fping -l -q -p P -i I` with P = 1/rate, and I = P/N (`fping -i P/N`: the same total rate spread evenly, as asked) or I = 0 (`fping -i 0`: each round of N pings back to back); its counts in the window are estimated from its totals over its whole run (it prints them only at exit), and its loss is over its whole run. Its lateness is not measured here: with `-q` it prints nothing per probe, and printing a line per probe (`-D`) would add to the CPU being compared.");
    r.line("* N sidecars: one `migwatch-sidecar --target ADDR --probe-priority normal` per target (normal, so 100 of them cannot hold both CPUs at real-time priority); CPU and RSS are summed over all of them.\n");
    for f in &failures {
        r.line(format!("* **failed:** {f}"));
    }
    for x in runs
        .iter()
        .filter(|x| !x.notes.is_empty() && !x.tool.starts_with("fping"))
    {
        r.line(format!(
            "* {} × {} Hz {} round {}: {}",
            x.n,
            x.hz,
            x.tool,
            x.round,
            x.notes.join("; ")
        ));
    }
    r.line("");
    summary(&runs, r);
    Ok(())
}

/// Medians over rounds, ratios against fping, the goals.
fn summary(runs: &[Run], r: &mut Report) {
    r.line("#### Ratios (medians over rounds, CPU by ticks)\n");
    let med = |n: usize, hz: u32, tool: &str, f: &dyn Fn(&Run) -> f64| {
        median(
            runs.iter()
                .filter(|x| {
                    x.n == n
                        && x.hz == hz
                        && (x.tool == tool || (tool == "multi" && x.tool.ends_with("sidecars")))
                })
                .map(f)
                .collect(),
        )
    };
    let ran: Vec<(usize, u32)> = CONFIGS
        .iter()
        .copied()
        .filter(|&(n, hz)| runs.iter().any(|x| x.n == n && x.hz == hz))
        .collect();
    const EVEN: &str = "fping -i P/N";
    const BURST: &str = "fping -i 0";
    let mut rows = Vec::new();
    for &(n, hz) in &ran {
        let sc_req = med(n, hz, "sidecar", &Run::cpu_per_probe);
        let sc_echo = med(n, hz, "sidecar", &Run::cpu_per_echo);
        let even = med(n, hz, EVEN, &Run::cpu_per_echo);
        let burst = med(n, hz, BURST, &Run::cpu_per_echo);
        let multi = med(n, hz, "multi", &Run::cpu_per_probe);
        let held = |t: &str| med(n, hz, t, &Run::rate_frac) * 100.0;
        rows.push(vec![
            format!("{n} × {hz} Hz"),
            format!("{} / {}", us(sc_req), us(sc_echo)),
            format!("{} ({:.0} % of rate)", us(even), held(EVEN)),
            format!("{} ({:.0} % of rate)", us(burst), held(BURST)),
            format!("×{:.2} / ×{:.2}", sc_req / even, sc_echo / even),
            format!("×{:.2} / ×{:.2}", sc_req / burst, sc_echo / burst),
            if multi.is_nan() {
                "-".into()
            } else {
                format!("{} (×{:.1})", us(multi), multi / sc_req)
            },
            format!(
                "{} / {} / {}",
                mb(med(n, hz, "sidecar", &|x| x.rss_kb as f64) as u64),
                mb(med(n, hz, BURST, &|x| x.rss_kb as f64) as u64),
                if multi.is_nan() {
                    "-".into()
                } else {
                    mb(med(n, hz, "multi", &|x| x.rss_kb as f64) as u64)
                }
            ),
        ]);
    }
    r.table(
        &[
            "targets × rate",
            "sidecar CPU per request / per echo",
            "`fping -i P/N` CPU per echo",
            "`fping -i 0` CPU per echo",
            "sidecar ÷ `fping -i P/N` (per request / per echo)",
            "sidecar ÷ `fping -i 0` (per request / per echo)",
            "N sidecars CPU per request (÷ one sidecar)",
            "RSS: sidecar / fping / N sidecars",
        ],
        &rows,
    );
    // Goals at 1000 × 10 Hz, every round.
    let big: Vec<&Run> = runs
        .iter()
        .filter(|x| x.n == 1000 && x.hz == 10 && x.tool == "sidecar")
        .collect();
    for x in &big {
        let p99 = x.counts.lateness_bound(0.99);
        let ok = x.counts.lost == 0 && x.rate_frac() > 0.99 && p99 <= LATENESS_GOAL_US;
        r.line(format!(
            "* Goal 1000 × 10 Hz, round {}: echo rate held {:.2} %, lost {} of {}, p99 lateness ≤ {} (histogram), {} (streams, vs schedule): **{}**",
            x.round,
            x.rate_frac() * 100.0,
            x.counts.lost,
            x.counts.echo,
            us(p99),
            x.stream_late.map_or("-".into(), |s| us(s.0)),
            if ok { "met" } else { "MISSED" }
        ));
    }
    for &(n, hz) in &ran {
        let s = med(n, hz, "sidecar", &Run::cpu_per_probe);
        let (e, b) = (
            med(n, hz, EVEN, &Run::cpu_per_echo),
            med(n, hz, BURST, &Run::cpu_per_echo),
        );
        let verdict = |f: f64| if s <= f { "met" } else { "MISSED" };
        r.line(format!(
            "* Goal CPU per probe ≤ fping's at {n} × {hz} Hz: sidecar {} per request; against `fping -i 0` {}: **{}**; against `fping -i P/N` {}: **{}**",
            us(s),
            us(b),
            verdict(b),
            us(e),
            verdict(e)
        ));
    }
    r.line("");
    r.line(
        "#### RTT: the sidecar's stream against `ping -i 0.01` to the same target, same window\n",
    );
    let rows: Vec<Vec<String>> = runs
        .iter()
        .filter_map(|x| {
            let (s, p, sn, pn) = x.rtt?;
            Some(vec![
                format!("{} × {} Hz", x.n, x.hz),
                x.round.to_string(),
                x.load.clone(),
                format!("{} (n = {sn})", us(s)),
                format!("{} (n = {pn})", us(p)),
                format!("{:+.1} µs", s - p),
                if (s - p).abs() <= RTT_GOAL_US {
                    "met".into()
                } else {
                    "MISSED".into()
                },
            ])
        })
        .collect();
    r.table(
        &[
            "targets × rate",
            "round",
            "load",
            "sidecar median RTT (t0000)",
            "ping median RTT",
            "difference",
            "within 5 µs",
        ],
        &rows,
    );
    r.line("#### Where the sidecar's CPU goes at 1000 × 10 Hz (per thread name, CPU s in the window)\n");
    let rows: Vec<Vec<String>> = big
        .iter()
        .map(|x| {
            let top: Vec<String> = x
                .threads
                .iter()
                .take(6)
                .map(|(n, s)| format!("{n} {s:.2}"))
                .collect();
            let detect = x
                .threads
                .iter()
                .find(|t| t.0 == "detect")
                .map_or(0.0, |t| t.1);
            vec![
                x.round.to_string(),
                format!("{:.1} s", x.win),
                top.join(", "),
                format!(
                    "{:.1} µs/s ({:.2} % of a core for all)",
                    detect / x.win / x.n as f64 * 1e6,
                    detect / x.win * 100.0
                ),
            ]
        })
        .collect();
    r.table(
        &[
            "round",
            "window",
            "threads (schedstat run time)",
            "detect thread per target",
        ],
        &rows,
    );
}
