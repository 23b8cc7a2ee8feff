//! A wall-clock step under a running sidecar (NTP stepping the host's
//! clock): the streamed timeline, the RTTs and the target's clock offset
//! must not follow it, and the step must be counted.
//!
//! The machine's clock is shared and never stepped by a test: the sidecar
//! runs under libfaketime (`LD_PRELOAD`, the Debian package `faketime`),
//! which fakes `CLOCK_REALTIME` from a file re-read on every call, and
//! leaves `CLOCK_MONOTONIC` alone (`FAKETIME_DONT_FAKE_MONOTONIC=1`). The
//! kernel's receive stamps and the target namespace's ICMP Timestamp
//! replies keep the real time, as they would on a host whose clock NTP
//! stepped... except that there the kernel's stamps step too; the unit
//! tests of `probe::timebase` cover that side.

use crate::faults::{answered, samples, wait_metric};
use crate::icmp::metric;
use crate::require_root;
use anyhow::{bail, Context, Result};
use migwatch_shared::wire::Event;
use migwatch_tests::netns::TargetNs;
use migwatch_tests::sidecar::{EventStream, Received, Sidecar};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How far the fake wall clock steps back: the step seen in session 4.
const STEP_S: i64 = 54;

/// libfaketime's preload library, wherever the multiarch path puts it.
fn libfaketime() -> Result<PathBuf> {
    for dir in std::fs::read_dir("/usr/lib")?.flatten() {
        let p = dir.path().join("faketime/libfaketime.so.1");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "libfaketime not found (/usr/lib/*/faketime/libfaketime.so.1): install the Debian \
         package `faketime` (scripts/setup.sh does)"
    )
}

/// Writes libfaketime's offset file in one rename, so the sidecar (which
/// re-reads it on every clock read) never sees it half written.
fn set_offset(file: &Path, offset: &str) -> Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{offset}\n"))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

fn clocks(evs: &[Received]) -> Vec<(i64, u32)> {
    evs.iter()
        .filter_map(|r| match r.event {
            Event::Clock(c) => Some((c.offset_us, c.rtt_us)),
            _ => None,
        })
        .collect()
}

fn median(mut v: Vec<u32>) -> u32 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[test]
fn a_wall_clock_step_moves_no_streamed_time_rtt_or_clock_offset() -> Result<()> {
    require_root!();
    let lib = libfaketime()?;
    let ns = TargetNs::create()?;
    // The sidecar reads the offset file after it dropped root, so the file
    // must be readable by anyone along its whole path: a checkout in a
    // `mktemp -d` folder (mode 0700) is not, /tmp is.
    let dir = std::env::temp_dir().join(format!("migwatch-faketime-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let file = dir.join("offset");
    set_offset(&file, "+0")?;
    let (lib, file_s) = (lib.display().to_string(), file.display().to_string());
    let target = ns.target.to_string();
    let sc = Sidecar::start_with_env(
        "timebase",
        &[
            "--target",
            &target,
            "--interval",
            "10ms",
            "--clock-interval",
            "100ms",
        ],
        &[
            ("LD_PRELOAD", &lib),
            ("FAKETIME_TIMESTAMP_FILE", &file_s),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    )?;
    let stream = EventStream::open(&sc.base, "?since=0")?;
    let mut evs = stream
        .collect_until(Duration::from_secs(15), |got| {
            answered(got) >= 200 && clocks(got).len() >= 10
        })
        .context("replies and clock readings before the step")?;
    let (before_n, before_clocks) = (evs.len(), clocks(&evs).len());
    assert_eq!(metric(&sc, "migwatch_wallclock_steps_total")?, 0.0);
    // NTP steps the host's clock back.
    set_offset(&file, &format!("-{STEP_S}"))?;
    let steps = wait_metric(
        &sc,
        "migwatch_wallclock_steps_total",
        0.0,
        1.0,
        Duration::from_secs(10),
    )?;
    evs.extend(
        stream
            .collect_until(Duration::from_secs(15), |got| {
                answered(got) >= 300 && clocks(got).len() >= 15
            })
            .context("replies and clock readings after the step")?,
    );
    let after = &evs[before_n..];

    // The timeline: every probe's send time in seq order goes forward, by
    // about the interval (a loaded machine sends late, never 54 s).
    let mut sent: Vec<(u64, i64)> = samples(&evs).map(|s| (s.seq, s.sent_us)).collect();
    sent.sort_unstable();
    for w in sent.windows(2) {
        let gap = w[1].1 - w[0].1;
        assert!(
            (0..2_000_000).contains(&gap),
            "seq {} at {} µs then seq {} at {} µs",
            w[0].0,
            w[0].1,
            w[1].0,
            w[1].1
        );
    }
    // RTTs: the veth path's before and after. (After the step every reply
    // is timed by its read: libfaketime fakes this process's wall clock but
    // not the kernel's receive stamps, so they disagree from then on.)
    let rtts = |evs: &[Received]| -> Vec<u32> { samples(evs).filter_map(|s| s.rtt_us).collect() };
    let (m_before, m_after) = (median(rtts(&evs[..before_n])), median(rtts(after)));
    let worst_after = rtts(after).into_iter().max().unwrap_or(0);
    assert!(
        m_after <= m_before + 2_000 && worst_after < 1_000_000,
        "RTT median {m_before} µs before, {m_after} µs after (max {worst_after} µs)"
    );
    // The target's clock (the namespace's kernel: the real time) against
    // ours: the same before and after, not 54 s apart.
    let offsets: Vec<i64> = clocks(&evs).into_iter().map(|(o, _)| o).collect();
    let (lo, hi) = (
        offsets.iter().copied().min().unwrap_or(0),
        offsets.iter().copied().max().unwrap_or(0),
    );
    assert!(
        hi - lo < 50_000,
        "clock offsets from {lo} to {hi} µs over {} readings ({before_clocks} before the step)",
        offsets.len()
    );
    // The detector, on the page's side and the sidecar's: nothing happened.
    let mut det = migwatch_shared::detector::Detector::new(Default::default());
    for r in &evs {
        det.push(&r.event);
    }
    det.finish();
    let ms = det.migrations();
    assert!(ms.is_empty(), "the detector saw {ms:?}");
    let records = sc.get("/migrations")?;
    assert!(
        records.contains("\"migrations\":[]"),
        "the sidecar's detector recorded {records}"
    );
    // Counted once, and the difference exported.
    assert_eq!(steps, 1.0);
    assert_eq!(metric(&sc, "migwatch_wallclock_steps_total")?, 1.0);
    let offset = metric(&sc, "migwatch_timebase_offset_seconds")?;
    assert!(
        (offset - STEP_S as f64).abs() < 0.5,
        "timebase − wall = {offset} s"
    );
    let log = sc.log();
    assert_eq!(
        log.matches("the wall clock stepped back by 54.0").count(),
        1,
        "{log}"
    );
    eprintln!(
        "wall clock step -{STEP_S} s: {} samples, RTT median {m_before} µs before / {m_after} µs \
         after (max {worst_after} µs), clock offsets {lo}..{hi} µs over {} readings, \
         steps counted {steps}, timebase − wall {offset} s",
        sent.len(),
        offsets.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
