//! Faults under a running sidecar: the test range's guard, a veth deleted
//! and re-created, the capture's interface re-created, a new MAC on the
//! target's address, a frozen sidecar (send-side faults: `faults_send`).
//! Each one checks that every probe is accounted for and nothing leaves
//! the machine.

use crate::icmp::metric;
use crate::require_root;
use anyhow::{bail, Context, Result};
use migwatch_shared::detector::EventVerdict;
use migwatch_shared::wire::{Event, Sample};
use migwatch_tests::netns::{default_iface, range_guard_present, sh, NftCounters, TargetNs};
use migwatch_tests::sidecar::{EventStream, Received, Sidecar};
use migwatch_tests::wait_for;
use std::time::Duration;

pub(crate) fn samples(evs: &[Received]) -> impl Iterator<Item = Sample> + '_ {
    evs.iter().filter_map(|r| match r.event {
        Event::Sample(s) => Some(s),
        _ => None,
    })
}

pub(crate) fn answered(evs: &[Received]) -> usize {
    samples(evs).filter(|s| s.rtt_us.is_some()).count()
}

pub(crate) fn lost(evs: &[Received]) -> Vec<u64> {
    samples(evs)
        .filter(|s| s.rtt_us.is_none())
        .map(|s| s.seq)
        .collect()
}

/// Waits until `name` in `/metrics` has grown by at least `by` from `from`.
pub(crate) fn wait_metric(
    sc: &Sidecar,
    name: &str,
    from: f64,
    by: f64,
    within: Duration,
) -> Result<f64> {
    wait_for(
        &format!("{name} to grow by {by}"),
        within,
        Duration::from_millis(50),
        || metric(sc, name).ok().filter(|v| *v - from >= by),
    )
}

/// Waits until the sidecar's `/migrations` holds `needle`; returns it.
pub(crate) fn wait_record(
    sc: &Sidecar,
    what: &str,
    needle: &str,
    within: Duration,
) -> Result<String> {
    wait_for(what, within, Duration::from_millis(100), || {
        sc.get("/migrations").ok().filter(|r| r.contains(needle))
    })
}

/// A bare namespace for running `scripts/range-guard.sh` where its route
/// cannot touch the real root namespace, with its own holder folder.
struct GuardLab {
    ns: String,
    dir: std::path::PathBuf,
}

impl GuardLab {
    fn create() -> Result<GuardLab> {
        let lab = GuardLab {
            ns: format!("mwg{}", std::process::id()),
            dir: migwatch_tests::out_dir().join(format!("range-guard-{}", std::process::id())),
        };
        sh(&["ip", "netns", "add", &lab.ns])?;
        std::fs::create_dir_all(&lab.dir)?;
        Ok(lab)
    }

    fn guard(&self, op: &str, pid: u32) -> Result<()> {
        let script = migwatch_tests::repo_root().join("scripts/range-guard.sh");
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(script)
            .args([op, &pid.to_string()])
            .env("MIGWATCH_RANGE_GUARD_DIR", &self.dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "range-guard {op} {pid}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn routes(&self) -> Result<String> {
        sh(&[
            "ip",
            "-n",
            &self.ns,
            "-4",
            "route",
            "show",
            "type",
            "unreachable",
        ])
    }
}

impl Drop for GuardLab {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.ns]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child that only stands in as a holder process; killed on drop.
struct Holder(std::process::Child);

impl Holder {
    fn start() -> Result<Holder> {
        Ok(Holder(
            std::process::Command::new("sleep").arg("60").spawn()?,
        ))
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn end(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.end();
    }
}

#[test]
fn the_range_guard_is_added_once_and_removed_by_the_last_holder_that_added_it() -> Result<()> {
    require_root!();
    let lab = GuardLab::create()?;
    let route = "unreachable 198.18.0.0/15 metric 4000";
    let (mut a, b, c) = (Holder::start()?, Holder::start()?, Holder::start()?);
    assert_eq!(lab.routes()?.trim(), "");
    lab.guard("acquire", a.pid())?;
    assert_eq!(lab.routes()?.trim(), route);
    lab.guard("acquire", b.pid())?;
    lab.guard("release", b.pid())?;
    assert_eq!(lab.routes()?.trim(), route, "a still holds it");
    // A holder that dies without releasing (SIGKILL) is pruned by the next
    // one to come or go; the group added the route, so it goes.
    a.end();
    lab.guard("release", c.pid())?;
    assert_eq!(lab.routes()?.trim(), "", "the last holder died");
    // A route that was there before (this machine's own) is never removed.
    sh(&[
        "ip",
        "-n",
        &lab.ns,
        "route",
        "add",
        "unreachable",
        "198.18.0.0/15",
        "metric",
        "4000",
    ])?;
    lab.guard("acquire", c.pid())?;
    lab.guard("release", c.pid())?;
    assert_eq!(lab.routes()?.trim(), route);
    Ok(())
}

#[test]
fn deleting_the_veth_under_a_running_sidecar_sends_nothing_out() -> Result<()> {
    require_root!();
    let ns = TargetNs::create()?;
    assert!(range_guard_present()?, "TargetNs must hold the range guard");
    let mut rules = vec![
        (
            "veth",
            format!("ip daddr {} oifname \"{}\"", ns.target, ns.host_if),
        ),
        // Anything to the test range on an interface no test made.
        (
            "off-test",
            "ip daddr 198.18.0.0/15 oifname != \"mw*\"".to_string(),
        ),
    ];
    let dflt = default_iface()?;
    if let Some(d) = &dflt {
        rules.push(("default", format!("ip daddr 198.18.0.0/15 oifname \"{d}\"")));
    }
    let nft = NftCounters::create(&rules)?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        &["--interval", "5ms", "--timeout", "100ms"],
    )?;
    let stream = EventStream::open(&sc.base, "")?;
    stream.collect_until(Duration::from_secs(10), |got| answered(got) >= 50)?;
    // The counters see the probes while the veth exists: they count.
    assert!(nft.packets("veth")? >= 50);

    sh(&["ip", "link", "del", &ns.host_if])?;
    let errors = metric(&sc, "migwatch_probe_send_errors_total")?;
    // 3 s of probing at 200/s with nowhere to go: each send is refused by
    // the guard's unreachable route.
    let t = std::time::Instant::now();
    let now = wait_metric(
        &sc,
        "migwatch_probe_send_errors_total",
        errors,
        600.0,
        Duration::from_secs(20),
    )?;
    assert!(range_guard_present()?);
    let (off, default) = (
        nft.packets("off-test")?,
        dflt.as_ref().map(|_| nft.packets("default")).transpose()?,
    );
    eprintln!(
        "veth deleted: {} refused sends in {:?}; out of the machine: {off} (default route: {dflt:?} {default:?})",
        now - errors,
        t.elapsed()
    );
    assert_eq!(
        off, 0,
        "probes to the test range left on a non-test interface"
    );
    assert_eq!(default.unwrap_or(0), 0, "probes left on {dflt:?}");
    // They are reported as loss, and the sidecar keeps going.
    stream.collect_until(Duration::from_secs(5), |got| lost(got).len() >= 100)?;
    assert_eq!(sc.get("/healthz")?.trim(), "ok");
    Ok(())
}

#[test]
fn the_targets_interface_deleted_and_recreated_is_one_loss_burst_then_replies() -> Result<()> {
    require_root!();
    let ns = TargetNs::create()?;
    let mut sc = Sidecar::start(
        &ns.target.to_string(),
        &[
            "--interval",
            "10ms",
            "--timeout",
            "200ms",
            "--capture-iface",
            &ns.host_if,
        ],
    )?;
    let stream = EventStream::open(&sc.base, "?since=0")?;
    let mut evs = stream.collect_until(Duration::from_secs(10), |got| answered(got) >= 50)?;
    // The target's side goes away (its end of the pair, and with it ours).
    ns.exec(&["ip", "link", "del", &ns.ns_if])?;
    evs.extend(stream.collect_until(Duration::from_secs(10), |got| lost(got).len() >= 50)?);
    ns.recreate_link()?;
    let last_lost = |got: &[Received]| lost(got).into_iter().max();
    evs.extend(stream.collect_until(Duration::from_secs(10), |got| {
        let m = last_lost(got).unwrap_or(u64::MAX);
        samples(got)
            .filter(|s| s.seq > m && s.rtt_us.is_some())
            .count()
            >= 100
    })?);
    let mut l = lost(&evs);
    l.sort_unstable();
    let (lo, hi) = (l[0], l[l.len() - 1]);
    eprintln!(
        "veth deleted and re-created: lost seqs {lo}..={hi} ({}), send errors {}",
        l.len(),
        metric(&sc, "migwatch_probe_send_errors_total")?
    );
    assert_eq!((hi - lo + 1) as usize, l.len(), "one loss burst: {l:?}");
    let mut seqs: Vec<u64> = samples(&evs).map(|s| s.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(
        seqs.len() as u64,
        seqs[seqs.len() - 1] + 1,
        "every seq from 0 is a sample"
    );
    assert_eq!(metric(&sc, "migwatch_skipped_total")?, 0.0);
    // Still alive and serving, and it shuts down cleanly.
    assert_eq!(sc.get("/healthz")?.trim(), "ok");
    sc.terminate()?;
    Ok(())
}

/// A gratuitous ARP for the target's address from `mac`, sent on the
/// target's interface (what a VM does when it comes up).
fn send_garp(ns: &TargetNs, mac: &str) -> Result<()> {
    let mac_hex: String = mac.split(':').collect();
    let ip_hex: String = ns
        .target
        .octets()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let garp =
        format!("ffffffffffff{mac_hex}08060001080006040001{mac_hex}{ip_hex}000000000000{ip_hex}");
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind(('{}',0))\ns.send(bytes.fromhex('{garp}'))\n",
        ns.ns_if
    );
    ns.exec(&["python3", "-c", &script]).map(|_| ())
}

#[test]
fn the_announce_capture_survives_its_interface_being_recreated() -> Result<()> {
    require_root!();
    let ns = TargetNs::create()?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        &["--interval", "10ms", "--capture-iface", &ns.host_if],
    )?;
    let stream = EventStream::open(&sc.base, "")?;
    stream.collect_until(Duration::from_secs(10), |got| answered(got) >= 20)?;
    // Gone for a while: the capture says so and waits for it.
    sh(&["ip", "link", "del", &ns.host_if])?;
    wait_for(
        "the capture to wait for its interface",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            metric(&sc, "migwatch_capture_waiting")
                .ok()
                .filter(|v| *v == 1.0)
        },
    )?;
    ns.recreate_link()?;
    stream.collect_until(Duration::from_secs(10), |got| answered(got) >= 20)?;
    let mac = ns.exec(&["cat", &format!("/sys/class/net/{}/address", ns.ns_if)])?;
    send_garp(&ns, mac.trim())?;
    let got = stream.collect_until(Duration::from_secs(5), |got| {
        got.iter().any(|r| matches!(r.event, Event::Announce(_)))
    });
    assert!(
        got.is_ok(),
        "no announce after re-creation; log: {}",
        sc.log()
    );
    // Counted and said once each way; /info still names the interface.
    assert!(metric(&sc, "migwatch_capture_iface_lost_total")? >= 1.0);
    assert_eq!(metric(&sc, "migwatch_capture_waiting")?, 0.0);
    let log = sc.log();
    eprintln!(
        "capture log: {}",
        log.lines()
            .filter(|l| l.contains("capture"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    assert!(log.contains("went away"), "{log}");
    assert!(log.contains("capturing again"), "{log}");
    assert!(sc
        .get("/info")?
        .contains(&format!("\"capture_iface\":\"{}\"", ns.host_if)));
    // Down and up again (not deleted): the kernel hooks the socket back in;
    // the capture neither waits nor re-binds, and hears the next announce.
    let lost_before = metric(&sc, "migwatch_capture_iface_lost_total")?;
    sh(&["ip", "link", "set", &ns.host_if, "down"])?;
    sh(&["ip", "link", "set", &ns.host_if, "up"])?;
    let got = wait_for(
        "an announce after the link went down and up",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || {
            // Until the link is back up the frame may go nowhere: resend.
            send_garp(&ns, mac.trim()).ok()?;
            stream
                .collect_until(Duration::from_millis(300), |got| {
                    got.iter().any(|r| matches!(r.event, Event::Announce(_)))
                })
                .ok()
        },
    );
    assert!(got.is_ok(), "no announce after down/up; log: {}", sc.log());
    assert_eq!(
        metric(&sc, "migwatch_capture_iface_lost_total")?,
        lost_before
    );
    Ok(())
}

#[test]
fn a_new_mac_on_the_targets_address_is_replaced_not_a_migration() -> Result<()> {
    require_root!();
    let ns = TargetNs::create()?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        &[
            "--interval",
            "10ms",
            "--timeout",
            "200ms",
            "--capture-iface",
            &ns.host_if,
        ],
    )?;
    let stream = EventStream::open(&sc.base, "?since=0")?;
    let mut evs = stream
        .collect_until(Duration::from_secs(10), |got| answered(got) >= 100)
        .context("replies before the MAC change")?;
    let old_mac = ns.exec(&["cat", &format!("/sys/class/net/{}/address", ns.ns_if)])?;
    let old_mac = old_mac.trim().to_string();
    // A new VM takes the address: new MAC; our (pinned) neighbour entry
    // still names the old one, so probes go nowhere until the new VM's
    // gratuitous ARP is heard and the host's entry follows it.
    let new_mac = "02:6d:77:0e:0e:01";
    ns.exec(&["ip", "link", "set", &ns.ns_if, "address", new_mac])?;
    evs.extend(
        stream
            .collect_until(Duration::from_secs(10), |got| lost(got).len() >= 20)
            .context("loss after the MAC change")?,
    );
    send_garp(&ns, new_mac)?;
    sh(&[
        "ip",
        "neigh",
        "replace",
        &ns.target.to_string(),
        "lladdr",
        new_mac,
        "dev",
        &ns.host_if,
        "nud",
        "permanent",
    ])?;
    // The last loss so far, or a later one still being reported.
    let before = lost(&evs).into_iter().max();
    let last_lost = |got: &[Received]| lost(got).into_iter().max().or(before);
    evs.extend(
        stream
            .collect_until(Duration::from_secs(10), |got| {
                let m = last_lost(got).unwrap_or(u64::MAX);
                samples(got)
                    .filter(|s| s.seq > m && s.rtt_us.is_some())
                    .count()
                    >= 100
            })
            .context("replies after the neighbour entry names the new MAC")?,
    );
    let announces: Vec<(String, Option<String>)> = evs
        .iter()
        .filter_map(|r| match r.event {
            Event::Announce(a) => Some((a.mac.to_string(), a.previous_mac.map(|m| m.to_string()))),
            _ => None,
        })
        .collect();
    // The capture had learned the old MAC from the replies: the new one's
    // announce names it.
    assert_eq!(
        announces,
        vec![(new_mac.to_string(), Some(old_mac.clone()))]
    );
    // What the detector makes of it: an outage ended by an announce, which
    // on the wire looks like a migration, but of another machine: replaced,
    // yellow, and never red on the way.
    let mut det = migwatch_shared::detector::Detector::new(Default::default());
    for r in &evs {
        det.push(&r.event);
        assert_ne!(
            det.light(),
            migwatch_shared::detector::Light::Red,
            "red at {:?}: {:?}",
            r.event,
            det.verdict()
        );
    }
    det.finish();
    let l = lost(&evs);
    let ms = det.migrations();
    eprintln!(
        "new MAC: {} probes lost, announces {announces:?}, detector: {:?}",
        l.len(),
        ms.iter()
            .map(|m| (m.level, m.verdict, m.probes, m.explain()))
            .collect::<Vec<_>>()
    );
    assert_eq!(ms.len(), 1, "{ms:?}");
    assert_eq!(ms[0].verdict, EventVerdict::Replaced);
    assert_eq!(ms[0].level, migwatch_shared::detector::Light::Yellow);
    assert!(ms[0]
        .explain()
        .contains(&format!("MAC {old_mac} → {new_mac}")));
    // The sidecar's own detector agrees, and counts no migration.
    let records = wait_record(
        &sc,
        "the sidecar's record of the replaced machine",
        "\"verdict\":\"replaced\"",
        Duration::from_secs(10),
    )?;
    assert!(!records.contains("\"level\":\"red\""), "{records}");
    assert_eq!(metric(&sc, "migwatch_migrations_total")?, 0.0);
    Ok(())
}

/// Every seq from the first streamed to `unsettled` below the last is a
/// sample or inside a skip, never both. The last `unsettled` seqs may still
/// wait for their timeout (a loss is streamed only then), so pass at least
/// timeout / interval. Returns (seqs checked, seqs in skips).
pub(crate) fn check_every_seq_accounted(evs: &[Received], unsettled: u64) -> Result<(u64, u64)> {
    let mut seen = std::collections::BTreeMap::new();
    let mut skipped = 0;
    for r in evs {
        match r.event {
            Event::Sample(s) => {
                let before = seen.insert(s.seq, "sample");
                if before.is_some() {
                    bail!("seq {} reported twice", s.seq);
                }
            }
            Event::Skip(k) => {
                for q in k.first_seq..=k.last_seq {
                    if let Some(was) = seen.insert(q, "skip") {
                        bail!("seq {q} is in a skip and was a {was}");
                    }
                }
                skipped += k.last_seq - k.first_seq + 1;
            }
            Event::Gap(_) | Event::Overflow(_) => bail!("the reader fell behind: {:?}", r.event),
            _ => {}
        }
    }
    let (&lo, &last) = (
        seen.keys().next().context("no seqs")?,
        seen.keys().next_back().context("no seqs")?,
    );
    let hi = last.saturating_sub(unsettled);
    if let Some(q) = (lo..=hi).find(|q| !seen.contains_key(q)) {
        bail!("seq {q} is neither a sample nor in a skip ({lo}..={hi})");
    }
    Ok((hi - lo + 1, skipped))
}

#[test]
fn a_sidecar_frozen_for_3_s_accounts_for_every_seq() -> Result<()> {
    require_root!();
    let ns = TargetNs::create()?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        &["--interval", "1ms", "--timeout", "100ms"],
    )?;
    let stream = EventStream::open(&sc.base, "?since=0")?;
    let mut evs = stream.collect_until(Duration::from_secs(10), |got| answered(got) >= 500)?;
    let pid = sc.pid().to_string();
    sh(&["kill", "-STOP", &pid])?;
    // The sleep is the freeze itself.
    std::thread::sleep(Duration::from_secs(3));
    sh(&["kill", "-CONT", &pid])?;
    evs.extend(stream.collect_until(Duration::from_secs(20), |got| {
        let skip_end = got.iter().find_map(|r| match r.event {
            Event::Skip(k) => Some(k.last_seq),
            _ => None,
        });
        skip_end.is_some_and(|e| samples(got).filter(|s| s.seq > e).count() >= 500)
    })?);
    let (span, skipped) = check_every_seq_accounted(&evs, 200)?;
    let counted = metric(&sc, "migwatch_skipped_total")?;
    eprintln!(
        "3 s freeze at 1 kHz: {span} seqs streamed, {skipped} in skips, skipped_total {counted}"
    );
    assert!((2_500..=3_500).contains(&skipped), "skipped {skipped}");
    assert_eq!(counted, skipped as f64, "/metrics and the stream agree");
    // A skip is never loss. Only a probe in flight when the process
    // stopped can be reported lost (then late: its reply waited in the
    // socket while the prober was frozen).
    assert!(lost(&evs).len() <= 2, "lost {:?}", lost(&evs));
    Ok(())
}
