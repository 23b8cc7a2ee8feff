//! Real ICMP: the sidecar probes a target in a namespace.

use crate::require_root;
use migwatch_shared::wire::{Event, Sample};
use migwatch_tests::netns::TargetNs;
use migwatch_tests::sidecar::{EventStream, Received, Sidecar};
use std::time::Duration;

fn samples(evs: &[Received]) -> impl Iterator<Item = Sample> + '_ {
    evs.iter().filter_map(|r| match r.event {
        Event::Sample(s) => Some(s),
        _ => None,
    })
}

#[test]
fn probes_at_100_hz_and_an_outage_is_one_loss_burst() -> anyhow::Result<()> {
    require_root!();
    let ns = TargetNs::create()?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        &["--interval", "10ms", "--timeout", "300ms"],
    )?;
    // From the first event on, so the count covers the whole run.
    let stream = EventStream::open(&sc.base, "?since=0")?;

    // 3 s at 100 Hz: seqs 0..300, all answered.
    let first = stream.collect_until(Duration::from_secs(10), |got| {
        samples(got).filter(|s| s.seq < 300).count() == 300
    })?;
    let before: Vec<Sample> = samples(&first).filter(|s| s.seq < 300).collect();
    assert_eq!(before.len(), 300);
    for s in &before {
        let rtt = s.rtt_us.unwrap_or(0);
        assert!(rtt > 0 && rtt < 300_000, "seq {} had rtt {:?}", s.seq, s.rtt_us);
    }
    let span_ms = (before[299].sent_us - before[0].sent_us) as f64 / 1e3;
    assert!(
        (2_980.0..3_020.0).contains(&span_ms),
        "300 probes took {span_ms} ms, not 2990"
    );
    let ids: Vec<u64> = first.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "ids must increase");

    // A 500 ms link outage: one burst of ~50 lost seqs, then replies again.
    ns.link_outage(Duration::from_millis(500))?;
    let mut lost_max = None;
    let after = stream.collect_until(Duration::from_secs(10), |got| {
        let lost: Vec<u64> = samples(got).filter(|s| s.rtt_us.is_none()).map(|s| s.seq).collect();
        lost_max = lost.iter().max().copied();
        // Done once 50 answered probes follow the last loss.
        match lost_max {
            Some(m) => samples(got).filter(|s| s.seq > m && s.rtt_us.is_some()).count() >= 50,
            None => false,
        }
    })?;
    let all: Vec<Sample> = samples(&first).chain(samples(&after)).collect();
    let mut lost: Vec<u64> = all.iter().filter(|s| s.rtt_us.is_none()).map(|s| s.seq).collect();
    lost.sort_unstable();
    let (lo, hi) = (lost[0], lost[lost.len() - 1]);
    assert_eq!(
        (hi - lo + 1) as usize,
        lost.len(),
        "lost seqs must form one burst, got {lost:?}"
    );
    assert!(
        (40..=60).contains(&lost.len()),
        "a 500 ms outage at 100 Hz should lose ~50 probes, lost {}",
        lost.len()
    );
    assert!(all.iter().any(|s| s.seq > hi && s.rtt_us.is_some()));
    eprintln!("500 ms outage: lost seqs {lo}..={hi} ({} probes)", lost.len());
    Ok(())
}

#[test]
fn sigterm_with_an_open_stream_exits_within_a_second() -> anyhow::Result<()> {
    require_root!();
    let mut sc = Sidecar::start("127.0.0.1", &["--interval", "10ms"])?;
    let stream = EventStream::open(&sc.base, "")?;
    assert!(stream.next(Duration::from_secs(5))?.is_some());
    // The privilege drop happened before serving.
    let status = std::fs::read_to_string(format!("/proc/{}/status", sc.pid()))?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(str::trim);
    assert_eq!(cap_eff, Some("0000000000000000"));
    let took = sc.terminate()?;
    assert!(took < Duration::from_secs(1), "shutdown took {took:?}");
    Ok(())
}
