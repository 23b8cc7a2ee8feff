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

mod cost;
mod fanout;
mod loss;
mod metrics;
mod rate;
mod rtt;

use anyhow::{bail, Context, Result};
use migwatch_tests::benchlib::{report, Report};
use migwatch_tests::netns::TargetNs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Rates of the rate sweep, Hz. The sidecar's shortest interval is 50 µs.
pub(crate) const RATES: [u32; 5] = [1_000, 2_000, 5_000, 10_000, 20_000];
/// Extra fping-only rates, to find its ceiling above the sidecar's range.
pub(crate) const FPING_ONLY_RATES: [u32; 2] = [40_000, 50_000];
/// Measured window of each rate step.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(3);
/// On time means sent within this of the schedule, at p99.
pub(crate) const ON_TIME_US: f64 = 100.0;
/// Blackouts of the loss-accounting test, ms.
pub(crate) const BLACKOUTS_MS: [u64; 3] = [100, 300, 1000];
/// Rounds of the side-by-side cost measurement.
pub(crate) const COST_ROUNDS: u32 = 3;
/// SSE clients of the fan-out test.
pub(crate) const CLIENTS: usize = 100;

/// The sidecar's prober thread: it sends and receives (the receiver
/// thread `probe-rx` and the scheduler `probe-sched` were merged into it).
pub(crate) const PROBE_THREAD: &str = "probe";

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
            "--only" => opts.only = report::parse_sections(&value()?, &SECTIONS, &usage())?,
            "-h" | "--help" => {
                println!("{}", usage());
                opts.only.clear();
            }
            _ => bail!("unknown argument {a:?}\n{}", usage()),
        }
    }
    // Default to the binaries built next to this one (target/release/).
    report::default_sidecar_next_to_exe();
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    if opts.responder.is_none() {
        opts.responder = here.map(|d| d.join("mw-responder"));
    }
    Ok(opts)
}

/// One benchmark section, writing into the report.
type Section<'a> = dyn Fn(&mut Report) -> Result<()> + 'a;

fn main() {
    report::main_of("mw-bench", run)
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
    r.machine(&sidecar_bin, &[&["ping", "-V"], &["fping", "-v"]]);
    let ns = TargetNs::create()?;
    r.line(format!(
        "Path: veth {} ({}) -> namespace {} ({}).\n",
        ns.host_if, ns.host_addr, ns.name, ns.target
    ));
    let sections: [(&str, &Section); 5] = [
        ("rtt", &|r| rtt::bench_rtt(&ns, r)),
        ("rate", &|r| rate::bench_rate(&ns, r)),
        ("cost", &|r| cost::bench_cost(&ns, r)),
        ("fanout", &|r| fanout::bench_fanout(&ns, r)),
        ("loss", &|r| loss::bench_loss(opts.responder.as_deref(), r)),
    ];
    for (name, f) in sections {
        if opts.only.iter().any(|s| s == name) {
            r.section(name, f)?;
        }
    }
    if let Some(path) = opts.out {
        r.write(&path, "mw-bench")?;
    }
    Ok(())
}
