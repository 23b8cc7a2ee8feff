//! Send-side faults under a running sidecar: a transmit queue that drops
//! or holds every probe, and ICMP errors about our probes. Each checks
//! that every probe is accounted for: as loss, as a send error by errno,
//! or as an ICMP error, never as a reply.

use crate::faults::{answered, check_every_seq_accounted, lost, samples};
use crate::icmp::metric;
use crate::require_root;
use anyhow::{Context, Result};
use migwatch_tests::netns::{sh, TargetNs};
use migwatch_tests::sidecar::{EventStream, Received, Sidecar};
use std::time::Duration;

/// The sum of the `name` series whose labels contain `label` (e.g.
/// `errno="ENOBUFS"`).
fn metric_with(sc: &Sidecar, name: &str, label: &str) -> Result<f64> {
    let text = sc.get("/metrics")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (labels, v) = l.strip_prefix(name)?.strip_prefix('{')?.split_once("} ")?;
            labels
                .contains(label)
                .then(|| v.trim().parse::<f64>().ok())?
        })
        .sum())
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line, in clock ticks (100 Hz on Linux).
    let rest = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).context("no utime")?.parse::<u64>()?
        + f.get(12).context("no stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// Runs the sidecar at 500 Hz through a transmit queue `qdisc` (tc, on the
/// root's veth) for `hold`, then without it, and checks what the issue
/// asks of a full transmit queue: every probe of the fault is reported as
/// loss, at least `refused_share` of them are counted in
/// `migwatch_probe_send_errors_total` (the ones the kernel refused), and
/// the prober keeps its schedule (no skipped slots, every seq a sample).
fn transmit_queue_fault(
    qdisc: &[&str],
    hold: Duration,
    refused_share: f64,
    errno: Option<&str>,
) -> Result<()> {
    let ns = TargetNs::create()?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        &["--interval", "2ms", "--timeout", "200ms"],
    )?;
    let stream = EventStream::open(&sc.base, "?since=0")?;
    let mut evs = stream.collect_until(Duration::from_secs(10), |got| answered(got) >= 50)?;
    let errors = metric(&sc, "migwatch_probe_send_errors_total")?;
    let label = errno.map(|e| format!("errno=\"{e}\""));
    let labelled = |sc: &Sidecar| -> Result<f64> {
        match &label {
            Some(l) => metric_with(sc, "migwatch_probe_send_errors_total", l),
            None => Ok(0.0),
        }
    };
    let errors_of_errno = labelled(&sc)?;
    let mut tc = vec!["tc", "qdisc", "add", "dev", &ns.host_if, "root"];
    tc.extend_from_slice(qdisc);
    sh(&tc)?;
    // The sleep is the fault's length.
    std::thread::sleep(hold);
    let stats = sh(&["tc", "-s", "qdisc", "show", "dev", &ns.host_if]);
    sh(&["tc", "qdisc", "del", "dev", &ns.host_if, "root"])?;
    let last_lost = |got: &[Received]| lost(got).into_iter().max();
    evs.extend(stream.collect_until(Duration::from_secs(20), |got| {
        let m = last_lost(got).unwrap_or(u64::MAX);
        samples(got)
            .filter(|s| s.seq > m && s.rtt_us.is_some())
            .count()
            >= 100
    })?);
    let refused = metric(&sc, "migwatch_probe_send_errors_total")? - errors;
    let skipped = metric(&sc, "migwatch_skipped_total")?;
    let l = lost(&evs);
    eprintln!(
        "qdisc {qdisc:?} for {hold:?}: {} lost, {refused} send errors, {skipped} skipped; {}",
        l.len(),
        stats.unwrap_or_default().replace('\n', " ")
    );
    // 200 ms timeout at 2 ms: 100 seqs may be unresolved; twice that.
    let (span, _) = check_every_seq_accounted(&evs, 200)?;
    assert_eq!(skipped, 0.0, "the prober kept its schedule");
    assert!(span >= hold.as_millis() as u64 / 2 * 9 / 10);
    let want = (hold.as_millis() / 2) as f64 * 0.8;
    assert!(l.len() as f64 >= want, "reported as loss: {}", l.len());
    assert!(
        refused >= want * refused_share,
        "counted as send errors: {refused}"
    );
    if let Some(e) = errno {
        let of_errno = labelled(&sc)? - errors_of_errno;
        assert!(
            of_errno >= want * refused_share,
            "counted as errno={e}: {of_errno} of {refused}"
        );
    }
    Ok(())
}

#[test]
fn a_transmit_queue_that_drops_everything_is_send_errors_and_loss() -> Result<()> {
    require_root!();
    // pfifo with room for nothing: every probe is dropped at enqueue, and
    // the kernel answers the send with ENOBUFS (if asked to report it).
    transmit_queue_fault(
        &["pfifo", "limit", "0"],
        Duration::from_secs(1),
        1.0,
        Some("ENOBUFS"),
    )
}

#[test]
fn a_transmit_queue_that_holds_everything_leaves_the_schedule_intact() -> Result<()> {
    require_root!();
    // 8 kbit/s with a huge queue: probes pile up in the qdisc (lost: they
    // are dropped when it goes) until the socket's send buffer is full
    // (about 500 probes with the default 208 KiB), then the kernel refuses
    // every send. 3 s at 500 Hz is 1500 probes, so hundreds are refused.
    transmit_queue_fault(
        &["tbf", "rate", "8kbit", "burst", "1600", "limit", "10000000"],
        Duration::from_secs(3),
        0.1,
        None,
    )
}

#[test]
fn icmp_errors_about_our_probes_are_counted_never_replies_and_cost_no_spin() -> Result<()> {
    require_root!();
    let ns = TargetNs::create()?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        // Slower than the prober's read delay (20 ms), so it waits in
        // ppoll on the socket between probes, where POLLERR would spin.
        &["--interval", "50ms", "--timeout", "200ms"],
    )?;
    let stream = EventStream::open(&sc.base, "?since=0")?;
    let mut evs = stream.collect_until(Duration::from_secs(10), |got| answered(got) >= 10)?;
    let target = format!("target=\"{}\"", ns.target);
    let unreachable = |sc: &Sidecar| {
        metric_with(
            sc,
            "migwatch_icmp_errors_total",
            "type=\"dest_unreachable\"",
        )
    };
    assert_eq!(unreachable(&sc)?, 0.0);
    // The target refuses every echo request with a host unreachable, each
    // one (the namespace's ICMP rate limit off): one error per probe
    // land on the sidecar's error queue (20 a second here).
    ns.exec(&["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])?;
    let rules = "add table ip mwreject; \
                 add chain ip mwreject inbound { type filter hook input priority 0; }; \
                 add rule ip mwreject inbound icmp type echo-request reject with icmp host-unreachable";
    ns.exec(&["nft", rules])?;
    let (cpu0, t0) = (cpu_time(sc.pid())?, std::time::Instant::now());
    let replies0 = metric(&sc, "migwatch_replies_total")?;
    evs.extend(stream.collect_until(Duration::from_secs(10), |got| lost(got).len() >= 50)?);
    let errors = unreachable(&sc)?;
    let (cpu, wall) = (cpu_time(sc.pid())? - cpu0, t0.elapsed());
    let replies = metric(&sc, "migwatch_replies_total")? - replies0;
    ns.exec(&["nft", "delete", "table", "ip", "mwreject"])?;
    let l = lost(&evs).len();
    eprintln!(
        "ICMP host unreachable for every probe: {errors} counted, {l} lost, {replies} replies; \
         sidecar CPU {cpu:?} in {wall:?}"
    );
    assert!(errors >= 40.0, "counted {errors}");
    assert!(
        metric_with(&sc, "migwatch_icmp_errors_total", &target)? >= errors,
        "counted at the target"
    );
    // At most the replies in flight when the rule went in.
    assert!(
        replies <= 5.0,
        "{replies} replies while every probe was refused"
    );
    // A queue left full would make every poll return at once: a spin.
    assert!(
        cpu.as_secs_f64() < wall.as_secs_f64() * 0.5,
        "CPU {cpu:?} in {wall:?}"
    );
    assert_eq!(metric(&sc, "migwatch_receive_errors_total")?, 0.0);
    // And the replies come back.
    let last_lost = |got: &[Received]| lost(got).into_iter().max();
    stream.collect_until(Duration::from_secs(10), |got| {
        let m = last_lost(got).unwrap_or(0);
        samples(got)
            .filter(|s| s.seq > m && s.rtt_us.is_some())
            .count()
            >= 10
    })?;
    Ok(())
}
