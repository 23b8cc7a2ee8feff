//! Section `rtt`: the sidecar's RTTs against iputils `ping` on the same
//! path at the same time, unpinned and on every pair of CPUs.

use anyhow::{bail, Context, Result};
use migwatch_shared::wire::{Event, Sample};
use migwatch_tests::benchlib::stats::{mean, pct, sorted, us, yes};
use migwatch_tests::benchlib::{Guard, Report};
use migwatch_tests::netns::TargetNs;
use migwatch_tests::sidecar::{EventStream, Sidecar};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn bench_rtt(ns: &TargetNs, r: &mut Report) -> Result<()> {
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
