//! Section `cost`: CPU per probe of the sidecar and fping at the same
//! rate on the same path, together and each alone.

use crate::metrics::{named, thread_deltas, Snapshot, ThreadDelta};
use crate::{COST_ROUNDS, PROBE_THREAD};
use anyhow::{Context, Result};
use migwatch_tests::benchlib::stats::{mb, yes};
use migwatch_tests::benchlib::tools::{fping_totals, period_ms};
use migwatch_tests::benchlib::{Guard, Report};
use migwatch_tests::netns::TargetNs;
use migwatch_tests::procstat;
use migwatch_tests::sidecar::Sidecar;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn bench_cost(ns: &TargetNs, r: &mut Report) -> Result<()> {
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
        let (fx, fr) = fping_totals(&fp.stderr()).context("no fping summary")?;
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
        let (sent, _) = fping_totals(&fp.stderr()).context("no fping summary")?;
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
