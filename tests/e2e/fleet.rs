//! One sidecar, many targets: 50 addresses in one namespace, one socket,
//! one schedule. The list, full-rate streams, a dead target beside live
//! ones, and a targets-file reload on SIGHUP.

use crate::icmp::metric;
use crate::require_root;
use migwatch_shared::wire::{Event, Info};
use migwatch_tests::fleet::FleetNs;
use migwatch_tests::sidecar::{EventStream, Received, Sidecar};
use migwatch_tests::wait_for;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A targets file for `addrs`: `vm-NN` names, a rack label, the first
/// three at 100 Hz and the rest at 10 Hz.
fn targets_file(addrs: &[(usize, Ipv4Addr)], extra: &str) -> String {
    let mut s = String::new();
    for (i, a) in addrs {
        let interval = if *i < 3 { "10ms" } else { "100ms" };
        let _ = write!(
            s,
            "[[target]]\naddress = \"{a}\"\nname = \"vm-{i:02}\"\nlabels = {{ rack = \"r{}\" }}\ninterval = \"{interval}\"\n\n",
            i % 2
        );
    }
    s + extra
}

fn samples(evs: &[Received]) -> impl Iterator<Item = (u64, Option<u32>)> + '_ {
    evs.iter().filter_map(|r| match r.event {
        Event::Sample(s) => Some((s.seq, s.rtt_us)),
        _ => None,
    })
}

/// Removes a folder when dropped (also when the test fails).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn list(sc: &Sidecar) -> anyhow::Result<Vec<Info>> {
    Ok(serde_json::from_str(&sc.get("/targets")?)?)
}

#[test]
fn fifty_targets_on_one_socket_stream_reload_and_survive_a_dead_one() -> anyhow::Result<()> {
    require_root!();
    let mut f = FleetNs::create(51)?;
    let last = f.address(50);
    f.remove(last)?; // added later, with the reload
                     // Under the system's temporary folder, not the clone: the sidecar
                     // re-reads the file as `nobody` after its privilege drop, and a clone
                     // may sit in a folder only root can enter (mktemp -d makes 0700).
    let dir = std::env::temp_dir().join(format!("mw-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveOnDrop(dir.clone());
    let file = dir.join("targets.toml");
    let first: Vec<(usize, Ipv4Addr)> = (0..50).map(|i| (i, f.address(i))).collect();
    std::fs::write(&file, targets_file(&first, ""))?;
    // Readable by the user the sidecar drops to, for the reload.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let path = file.to_string_lossy().to_string();
    let sc = Sidecar::start_with("fleet", &["--targets-file", &path, "--timeout", "300ms"])?;

    // The list: 50 targets with their names and labels.
    let infos = list(&sc)?;
    assert_eq!(infos.len(), 50);
    assert_eq!(infos[7].name, "vm-07");
    assert_eq!(infos[7].target, f.address(7).to_string());
    assert_eq!(infos[7].labels["rack"], "r1");
    assert_eq!(infos[0].interval_ms, 10.0);
    assert_eq!(infos[9].interval_ms, 100.0);

    // Three at full rate: every probe answered, seqs consecutive.
    let streams: Vec<EventStream> = (0..3)
        .map(|i| EventStream::open(&format!("{}/targets/vm-{i:02}", sc.base), "?since=0"))
        .collect::<anyhow::Result<_>>()?;
    for (i, s) in streams.iter().enumerate() {
        let got = s.collect_until(Duration::from_secs(15), |g| samples(g).count() >= 300)?;
        let seqs: Vec<(u64, Option<u32>)> = samples(&got).collect();
        assert!(
            seqs.iter().all(|(_, r)| r.is_some()),
            "vm-0{i} lost a probe"
        );
        assert!(
            seqs.windows(2).all(|w| w[1].0 == w[0].0 + 1),
            "vm-0{i}: seqs not consecutive"
        );
    }

    // A dead target beside live ones: vm-10's address goes away.
    let live = EventStream::open(&format!("{}/targets/vm-11", sc.base), "")?;
    let dead = EventStream::open(&format!("{}/targets/vm-10", sc.base), "")?;
    f.remove(f.address(10))?;
    dead.collect_until(Duration::from_secs(10), |g| {
        samples(g).filter(|(_, r)| r.is_none()).count() >= 5
    })?;
    let after = live.collect_until(Duration::from_secs(10), |g| {
        samples(g).filter(|(_, r)| r.is_some()).count() >= 20
    })?;
    assert!(
        samples(&after).all(|(_, r)| r.is_some()),
        "vm-11 lost probes while vm-10 was dead"
    );
    for s in &streams {
        let got = s.collect_until(Duration::from_secs(5), |g| samples(g).count() >= 100)?;
        assert!(
            samples(&got).all(|(_, r)| r.is_some()),
            "a live target lost probes"
        );
    }
    // A dead target costs what the others do: it is still sent its probes.
    let sent = |name: &str| -> anyhow::Result<f64> {
        let text = sc.get("/metrics")?;
        let key = format!("migwatch_probes_sent_total{{target=\"{name}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key)?.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no {key}"))
    };
    let (d, l) = (sent("vm-10")?, sent("vm-12")?);
    assert!((d - l).abs() <= 2.0, "dead target sent {d}, live one {l}");

    // The grid's view: every target at a glance, the dead one not green.
    let ov: migwatch_shared::report::Overview =
        serde_json::from_str(&sc.get("/overview?seconds=10")?)?;
    assert_eq!(ov.targets.len(), 50);
    let by = |n: &str| ov.targets.iter().find(|t| t.name == n).expect("listed");
    assert_eq!(by("vm-11").light, "green");
    assert_ne!(by("vm-10").light, "green");
    assert_eq!(by("vm-11").rtt_us.len(), 10);
    assert!(by("vm-11").rtt_us.iter().flatten().count() >= 5);
    assert!(by("vm-10").lost.iter().sum::<u32>() >= 5);

    // Reload: vm-49 goes, vm-50 comes, and one bad entry is skipped by line.
    let run_id_0 = infos[0].run_id.clone();
    f.add(last)?;
    let mut next: Vec<(usize, Ipv4Addr)> = (0..49).map(|i| (i, f.address(i))).collect();
    next.push((50, last));
    std::fs::write(
        &file,
        targets_file(
            &next,
            "[[target]]\naddress = \"224.0.0.1\"\nname = \"bad\"\n",
        ),
    )?;
    sc.signal("HUP")?;
    let infos = wait_for(
        "the reload",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            list(&sc)
                .ok()
                .filter(|l| l.iter().any(|i| i.name == "vm-50"))
        },
    )?;
    assert_eq!(infos.len(), 50);
    assert!(!infos.iter().any(|i| i.name == "vm-49"));
    assert!(!infos.iter().any(|i| i.name == "bad"));
    assert_eq!(
        infos[0].run_id, run_id_0,
        "an unchanged target got a new run"
    );
    let lines = 50 * 6 + 1;
    assert!(
        sc.log().contains(&format!("targets.toml:{lines}:")),
        "the bad entry's line is not in the log:\n{}",
        sc.log()
    );
    let added = EventStream::open(&format!("{}/targets/vm-50", sc.base), "?since=0")?;
    let got = added.collect_until(Duration::from_secs(10), |g| {
        samples(g).filter(|(_, r)| r.is_some()).count() >= 10
    })?;
    assert_eq!(
        samples(&got).next().map(|s| s.0),
        Some(0),
        "a new target starts at seq 0"
    );
    // The unchanged target's stream went on across the reload, no gap.
    let got = streams[0].collect_until(Duration::from_secs(5), |g| samples(g).count() >= 100)?;
    assert!(got.iter().all(|r| !matches!(r.event, Event::Gap(_))));
    assert!(samples(&got).all(|(_, r)| r.is_some()));
    // The removed target's page is gone, with a pointer to the list.
    let err = sc.get("/targets/vm-49/info").unwrap_err().to_string();
    assert!(err.contains("404"), "{err}");
    assert_eq!(metric(&sc, "migwatch_targets")?, 50.0);
    assert_eq!(metric(&sc, "migwatch_reload_errors_total")?, 0.0);

    // A file the sidecar cannot read on SIGHUP: the set stays, and why is
    // logged and counted.
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o000))?;
    sc.signal("HUP")?;
    wait_for(
        "the failed reload",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || (metric(&sc, "migwatch_reload_errors_total").ok()? == 1.0).then_some(()),
    )?;
    assert_eq!(list(&sc)?.len(), 50);
    assert!(sc.log().contains("reload failed"), "{}", sc.log());
    Ok(())
}
