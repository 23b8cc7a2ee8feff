//! Section `loss`: exact loss accounting through `mw-responder`
//! blackouts, with fping and ping alongside.

use crate::metrics::Snapshot;
use crate::BLACKOUTS_MS;
use anyhow::{bail, Context, Result};
use migwatch_shared::wire::Event;
use migwatch_tests::benchlib::stats::yes;
use migwatch_tests::benchlib::tools::{fping_totals, ping_summary};
use migwatch_tests::benchlib::{Guard, Report};
use migwatch_tests::netns::TargetNs;
use migwatch_tests::sidecar::{EventStream, Sidecar};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn bench_loss(responder: Option<&Path>, r: &mut Report) -> Result<()> {
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
        let fsum = fping_totals(&fp.stderr());
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
