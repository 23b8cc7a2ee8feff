//! Section `rate`: the highest rate the sidecar holds on time without
//! loss, against `fping -i 0`, and its send lateness as is and under
//! SCHED_FIFO.

use crate::metrics::{named, samples_for, thread_deltas, Lateness, Snapshot, ThreadDelta};
use crate::{FPING_ONLY_RATES, ON_TIME_US, PROBE_THREAD, RATES, RATE_WINDOW};
use anyhow::{bail, Context, Result};
use migwatch_tests::benchlib::stats::{hz, lateness_vs_fit, pct, rate_of, sorted, us, yes};
use migwatch_tests::benchlib::tools::{fping_line, fping_totals, period_ms};
use migwatch_tests::benchlib::{Guard, Report};
use migwatch_tests::netns::TargetNs;
use migwatch_tests::procstat;
use migwatch_tests::sidecar::Sidecar;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
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

pub(crate) fn bench_rate(ns: &TargetNs, r: &mut Report) -> Result<()> {
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
    let Some((xmt, rcv)) = fping_totals(&stderr) else {
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
