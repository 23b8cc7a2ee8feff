//! The long run at 1000 targets × 10 Hz (issue 11): RSS until the history
//! rings are full, then the detector thread's CPU, and `/metrics` size and
//! scrape time with the send lateness during the scrapes.

use crate::measure::{self, Snapshot};
use crate::tools;
use anyhow::Result;
use migwatch_tests::benchlib::stats::{self, mb, us};
use migwatch_tests::benchlib::Report;
use migwatch_tests::procstat;
use std::time::{Duration, Instant};

/// Scrapes timed for the `/metrics` figures.
const SCRAPES: usize = 20;
/// The RSS goal at 1000 targets × 10 Hz with the default history.
const RSS_GOAL_MB: f64 = 128.0;

/// 1000 × 10 Hz for a long run: RSS until the history rings fill, then the
/// `/metrics` size and scrape time and the detector's CPU.
pub fn plateau(
    addrs: &[std::net::Ipv4Addr],
    length: Duration,
    window: Duration,
    r: &mut Report,
) -> Result<()> {
    let n = addrs.len();
    r.line(format!(
        "### Memory plateau, `/metrics` and the detector at {n} targets × 10 Hz ({} s, default --history 10m and --history-memory 64)\n",
        length.as_secs()
    ));
    let sc = tools::start_fleet_sidecar(addrs, 10)?;
    let pid = sc.pid();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let every = Duration::from_secs(10);
    let mut next = every;
    while t0.elapsed() < length {
        let left = next.saturating_sub(t0.elapsed());
        std::thread::sleep(left);
        next += every;
        rows.push(vec![
            format!("{:.0} s", t0.elapsed().as_secs_f64()),
            mb(procstat::rss_kb(pid)?),
            procstat::loadavg(),
        ]);
    }
    // Only every third sample in the table, and the last ones.
    let len = rows.len();
    let shown: Vec<Vec<String>> = rows
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0 || *i + 3 >= len)
        .map(|(_, r)| r)
        .collect();
    r.table(&["since start", "RSS", "load"], &shown);
    let rss = procstat::rss_kb(pid)?;
    let hwm = procstat::status_kb(pid, "VmHWM")?;
    r.line(format!(
        "RSS after {} s: {} (peak {}); goal ≤ {RSS_GOAL_MB:.0} MB: **{}**\n",
        length.as_secs(),
        mb(rss),
        mb(hwm),
        if rss as f64 / 1024.0 <= RSS_GOAL_MB {
            "met"
        } else {
            "MISSED"
        }
    ));
    // The detector's CPU, and everything else's, over a quiet window.
    let (c0, th0, load) = (
        measure::Cpu::of(&[pid])?,
        measure::threads_by_name(pid)?,
        procstat::loadavg(),
    );
    let m0 = Snapshot::parse(&sc.get("/metrics")?)?;
    let win = stats::window(window);
    let m1 = Snapshot::parse(&sc.get("/metrics")?)?;
    let (c1, th1) = (measure::Cpu::of(&[pid])?, measure::threads_by_name(pid)?);
    let d = measure::thread_deltas(&th0, &th1);
    let detect = d.iter().find(|t| t.0 == "detect").map_or(0.0, |t| t.1);
    let cpu = c1.since(&c0);
    let counts = measure::Counts::between(&m0, &m1);
    r.line(format!(
        "Detector (thread `detect`) over {:.1} s (load {load}): {detect:.3} s CPU = {:.2} % of a core for {n} targets = **{:.1} µs of CPU per target per second** ({:.2} µs per echo sample). Whole process: {:.2} s ({:.0} % sys), {} per request; threads: {}.\n",
        win.as_secs_f64(),
        detect / win.as_secs_f64() * 100.0,
        detect / win.as_secs_f64() / n as f64 * 1e6,
        detect * 1e6 / counts.echo.max(1) as f64,
        cpu.0,
        cpu.1 / cpu.0.max(1e-9) * 100.0,
        us(cpu.0 * 1e6 / (counts.echo + counts.clock).max(1) as f64),
        d.iter().take(6).map(|(n, s)| format!("{n} {s:.2}")).collect::<Vec<_>>().join(", ")
    ));
    // Scrapes, from a client on 127.0.0.1; lateness while they run.
    let before = Snapshot::parse(&sc.get("/metrics")?)?;
    let load = procstat::loadavg();
    let (mut times, mut size) = (Vec::new(), 0);
    for _ in 0..SCRAPES {
        let t = Instant::now();
        let body = sc.get("/metrics")?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        size = body.len();
    }
    let after = Snapshot::parse(&sc.get("/metrics")?)?;
    let during = measure::Counts::between(&before, &after);
    // The same length of time without scrapes, for comparison.
    let spent: f64 = times.iter().sum::<f64>() / 1e3;
    std::thread::sleep(Duration::from_secs_f64(spent));
    let quiet = measure::Counts::between(&after, &Snapshot::parse(&sc.get("/metrics")?)?);
    let times = stats::sorted(times);
    r.table(
        &[
            "targets",
            "load",
            "/metrics size",
            "series lines",
            "scrape median",
            "p95",
            "max",
            "send lateness p99 / p99.9 during the scrapes",
            "the same in the next equal window without scrapes",
            "lost during the scrapes",
        ],
        &[vec![
            n.to_string(),
            load,
            format!("{:.2} MB", size as f64 / 1e6),
            sc.get("/metrics")?
                .lines()
                .filter(|l| !l.starts_with('#'))
                .count()
                .to_string(),
            format!("{:.1} ms", stats::pct(&times, 0.5)),
            format!("{:.1} ms", stats::pct(&times, 0.95)),
            format!("{:.1} ms", times.last().copied().unwrap_or(f64::NAN)),
            format!(
                "≤ {} / ≤ {}",
                us(during.lateness_bound(0.99)),
                us(during.lateness_bound(0.999))
            ),
            format!(
                "≤ {} / ≤ {}",
                us(quiet.lateness_bound(0.99)),
                us(quiet.lateness_bound(0.999))
            ),
            during.lost.to_string(),
        ]],
    );
    r.line(format!(
        "Scrapes: {SCRAPES} sequential `GET /metrics` with ureq on 127.0.0.1 (whole body read). Over the whole run: {} echo + {} timestamp requests, {} lost, {} skipped slots.\n",
        after.get("probes_sent_total"),
        after.get("clock_probes_sent_total"),
        after.get("lost_total"),
        after.get("skipped_total")
    ));
    Ok(())
}
