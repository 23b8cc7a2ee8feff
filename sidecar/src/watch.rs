//! `migwatch-sidecar watch`: the same prober and detector as the sidecar,
//! in the foreground, with no server: each migration (and outage) is
//! printed as the JSON line `detect` prints, as soon as it is detected. A
//! migration test pipeline runs it instead of `ping -i 0.1` and reads the
//! downtime to about a millisecond (from the guest clock) instead of 100.
//!
//! Exit codes: 0 after the first migration with `--until-migration` (or on
//! SIGINT/SIGTERM), [`EXIT_TIMEOUT`] when `--timeout` passed with none, 1 on
//! an error, 2 on bad flags.

use crate::cli::{
    parse_clock_interval, parse_duration, parse_interval, parse_target, parse_timeout,
};
use crate::cli::{ClockEvery, ProbePriority};
use crate::service::{self, Setup};
use crate::targets::Defaults;
use anyhow::Result;
use clap::Args as ClapArgs;
use migwatch_shared::report::MigrationRecord;
use serde::Serialize;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The exit code when `--timeout` passed with no migration.
pub const EXIT_TIMEOUT: i32 = 3;

/// After the first migration, how long `--until-migration` waits for the
/// guest clock's step to confirm and refine the downtime before it prints
/// the final line and exits: the detector refines a step for 3 s.
const SETTLE: Duration = Duration::from_millis(3500);

/// How often new verdicts are looked for: the detectors themselves catch
/// up every 100 ms.
const POLL: Duration = Duration::from_millis(50);

/// Flags of `watch`.
#[derive(Debug, ClapArgs)]
pub struct WatchArgs {
    /// An IPv4 address to watch (repeatable).
    #[arg(long, value_name = "ADDR", value_parser = parse_target, required_unless_present = "targets_file")]
    pub target: Vec<Ipv4Addr>,
    /// A targets file, as for the sidecar.
    #[arg(long, value_name = "FILE")]
    pub targets_file: Option<PathBuf>,
    /// Time between probes.
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse_interval)]
    pub interval: Duration,
    /// How long a probe waits for its reply (the sidecar's `--timeout`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_timeout)]
    pub probe_timeout: Duration,
    /// Time between ICMP Timestamp probes, or `off`.
    #[arg(long, value_name = "DURATION|off", default_value = "200ms", value_parser = parse_clock_interval)]
    pub clock_interval: ClockEvery,
    /// Watch this interface for the target's RARP / gratuitous-ARP announces.
    #[arg(long, value_name = "IFACE")]
    pub capture_iface: Option<String>,
    /// How the probe thread is scheduled.
    #[arg(long, value_name = "PRIORITY", value_enum, default_value_t = ProbePriority::Realtime)]
    pub probe_priority: ProbePriority,
    /// When started as root, run as this user once the socket is open.
    #[arg(long, value_name = "USER", default_value = "nobody")]
    pub user: String,
    /// Exit 0 after the first migration (red), once its line is printed.
    #[arg(long)]
    pub until_migration: bool,
    /// Give up after this long: exit 3 if no migration came.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// One printed line: the record, and which target it is about.
#[derive(Serialize)]
struct Line<'a> {
    target: &'a str,
    #[serde(flatten)]
    record: &'a MigrationRecord,
}

/// Prints one record as a JSON line (with its target) and flushes it, so
/// a pipeline reading stdout sees it at once.
fn print_line(stdout: &std::io::Stdout, target: &str, record: &MigrationRecord) -> Result<()> {
    let mut out = stdout.lock();
    serde_json::to_writer(&mut out, &Line { target, record })?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Sets `flag` on SIGINT or SIGTERM (a small runtime on its own thread
/// waits for them), so the watch loop ends cleanly and exits 0.
fn flag_on_signal(flag: Arc<AtomicBool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                match (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) {
                    (Ok(mut i), Ok(mut t)) => {
                        tokio::select! {
                            _ = i.recv() => {}
                            _ = t.recv() => {}
                        }
                    }
                    _ => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            });
            flag.store(true, Ordering::Relaxed);
        })?;
    Ok(())
}

/// Runs `watch`; returns the exit code.
pub fn run(a: WatchArgs) -> Result<i32> {
    let targets_file = match &a.targets_file {
        Some(p) => Some(
            std::fs::canonicalize(p)
                .map_err(|e| anyhow::anyhow!("cannot read --targets-file {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let setup = Setup {
        targets: a.target.clone(),
        targets_file,
        defaults: Defaults {
            interval: a.interval,
            timeout: a.probe_timeout,
            clock_interval: a.clock_interval.0,
        },
        capture_iface: a.capture_iface.clone(),
        probe_priority: a.probe_priority,
        user: a.user.clone(),
        // The detector reads the ring every 100 ms: a short history is
        // plenty, and nobody resumes from it.
        history: Duration::from_secs(60),
        history_memory: 16 << 20,
        client_queue: 4,
    };
    let svc = service::open(setup)?.start()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    flag_on_signal(interrupted.clone())?;
    let names: Vec<String> = svc
        .fleet
        .list()
        .iter()
        .map(|t| t.spec.name.clone())
        .collect();
    eprintln!(
        "migwatch-sidecar watch: watching {} ({} priority){}{}",
        names.join(", "),
        svc.probe_priority.name(),
        if a.until_migration {
            ", until the first migration"
        } else {
            ""
        },
        a.timeout
            .map(|t| format!(", for at most {t:?}"))
            .unwrap_or_default()
    );
    let started = Instant::now();
    let stdout = std::io::stdout();
    let mut ready: Vec<String> = Vec::new();
    // With --until-migration: the first migration's target and start, and
    // when its estimate has settled.
    let mut settling: Option<(Arc<crate::targets::Target>, f64, Instant)> = None;
    let code = loop {
        if interrupted.load(Ordering::Relaxed) {
            break 0;
        }
        // Say when each target's detector can judge (a pipeline waits for
        // this line before it starts the migration).
        for t in svc.fleet.list() {
            if ready.contains(&t.spec.name) {
                continue;
            }
            if let Some(b) = t.verdicts.baseline() {
                eprintln!(
                    "migwatch-sidecar watch: {}: baseline ready (median RTT {} µs)",
                    t.spec.name, b.median_us
                );
                ready.push(t.spec.name.clone());
            }
        }
        for t in svc.fleet.list() {
            for r in t.verdicts.take_fresh() {
                print_line(&stdout, &t.spec.name, &r)?;
                if r.is_migration() && a.until_migration && settling.is_none() {
                    // The light is red at the first announce; the guest
                    // clock's step, the precise downtime, is confirmed
                    // and refined over the next 3 s (docs/DETECTION.md).
                    let wait = if t.spec.clock_interval.is_some() {
                        SETTLE
                    } else {
                        Duration::ZERO
                    };
                    settling = Some((t.clone(), r.start_s, Instant::now() + wait));
                }
            }
        }
        if let Some((t, start_s, until)) = &settling {
            if Instant::now() >= *until {
                // The final estimate of that migration, as its last line.
                if let Some(r) = t
                    .verdicts
                    .records()
                    .into_iter()
                    .find(|r| r.start_s == *start_s)
                {
                    print_line(&stdout, &t.spec.name, &r)?;
                    eprintln!(
                        "migwatch-sidecar watch: {}: migrated, downtime {:.1} ms ({})",
                        t.spec.name,
                        r.downtime_ms,
                        serde_json::to_value(r.downtime_from)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default()
                    );
                }
                break 0;
            }
        }
        if a.timeout.is_some_and(|t| started.elapsed() >= t) {
            eprintln!(
                "migwatch-sidecar watch: no migration within {:?}",
                a.timeout.unwrap_or_default()
            );
            break EXIT_TIMEOUT;
        }
        std::thread::sleep(POLL);
    };
    svc.stop();
    Ok(code)
}
