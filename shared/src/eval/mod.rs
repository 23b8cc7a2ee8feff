//! Scoring the detector on labelled traces (pure: events and labels in,
//! numbers out). `migwatch-sidecar eval DIR` reads the files and prints
//! [`Summary::table`].
//!
//! Time in a trace is the stream's own: each event is placed at the time the
//! sidecar would have emitted it (a reply at send + RTT, a loss at send +
//! timeout, a tick at its `now_us`), so latencies are what a live viewer
//! would have seen.

use crate::detector::{Detector, DetectorConfig, EventVerdict, Light, Migration};
use crate::wire::{Event, Info};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;

/// What happened in a labelled window of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruthKind {
    /// A live migration (pre-copy, stop-and-copy, resume).
    Migration,
    /// Bulk copy over the same path: RTT inflation without loss.
    BulkCopy,
    /// The link to the target down: a plain loss burst.
    LinkOutage,
    /// The link to a loaded host cut (its load goes on across the cut).
    LoadedCut,
    /// The monitor's own link flapped: loss, then ARP-queued replies.
    LinkFlap,
    /// The VM paused in place: replies queued, then released.
    VmPause,
    /// A QMP stop/cont, no move (its `downtime_us` is the stop).
    Pause,
    /// Congestion: RTT climbs, then loss.
    Congestion,
    /// Host CPU starvation: growing stalls, then loss.
    CpuStarvation,
    /// Isolated single losses and RTT spikes.
    Isolated,
    /// Events lost between sidecar and client (a `gap` event).
    StreamGap,
    /// The sidecar itself stalled and skipped probe slots.
    SidecarStall,
    /// The sidecar restarted: sequence numbers start again.
    SidecarRestart,
}

impl TruthKind {
    /// Snake-case name, as in the labels file.
    pub fn name(self) -> &'static str {
        match self {
            TruthKind::Migration => "migration",
            TruthKind::BulkCopy => "bulk_copy",
            TruthKind::LinkOutage => "link_outage",
            TruthKind::LoadedCut => "loaded_cut",
            TruthKind::LinkFlap => "link_flap",
            TruthKind::VmPause => "vm_pause",
            TruthKind::Pause => "pause",
            TruthKind::Congestion => "congestion",
            TruthKind::CpuStarvation => "cpu_starvation",
            TruthKind::Isolated => "isolated",
            TruthKind::StreamGap => "stream_gap",
            TruthKind::SidecarStall => "sidecar_stall",
            TruthKind::SidecarRestart => "sidecar_restart",
        }
    }
}

/// One labelled window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// What it is.
    pub kind: TruthKind,
    /// When the disturbance began (unix µs; for a migration, the start of
    /// pre-copy).
    pub start_us: i64,
    /// When it was over (unix µs).
    pub end_us: i64,
    /// Migration only: the guest-visible downtime, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_us: Option<i64>,
    /// Migration only: the first probe of the loss run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_lost_seq: Option<u64>,
    /// Migration only: the last probe of the loss run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lost_seq: Option<u64>,
    /// Migration only: send time of the first lost probe, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_start_us: Option<i64>,
    /// Migration only: send time of the first probe after the loss run, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_end_us: Option<i64>,
    /// Migration only: when the first missed reply was due (send time of
    /// the first lost probe + the baseline RTT), µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_missed_us: Option<i64>,
    /// Migration only: arrival of the first reply that ends the loss run
    /// (to a probe sent after it), µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_end_us: Option<i64>,
    /// Migration only: one request was held across the stop.
    #[serde(default)]
    pub held: bool,
    /// Migration only: pre-copy on a loaded host.
    #[serde(default)]
    pub loaded: bool,
}

/// Ground truth for one trace (the `NAME.labels.json` beside `NAME.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    /// Trace name.
    pub name: String,
    /// Generator seed.
    pub seed: u64,
    /// Probe interval, µs.
    pub interval_us: u32,
    /// The sidecar's timeout, µs (a loss is emitted this long after send).
    pub timeout_us: u32,
    /// Baseline median RTT, µs.
    pub base_rtt_us: u32,
    /// First event time, unix µs.
    pub start_us: i64,
    /// Last event time, unix µs.
    pub end_us: i64,
    /// The labelled windows.
    pub events: Vec<Truth>,
    /// Offset of the event within the probe interval, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<f64>,
}

/// How the detector did on one labelled migration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MigrationScore {
    /// Probe interval, µs.
    pub interval_us: u32,
    /// True downtime, µs.
    pub downtime_us: i64,
    /// A request was held across the stop.
    pub held: bool,
    /// Pre-copy on a loaded host.
    pub loaded: bool,
    /// Level of the matching detected event (green: none).
    pub level: Light,
    /// First missed reply → light at least yellow, µs.
    pub yellow_latency_us: Option<i64>,
    /// First reply after the loss run → red, µs.
    pub red_latency_us: Option<i64>,
    /// First missed reply → red, µs.
    pub red_from_miss_us: Option<i64>,
    /// |estimated − true downtime|, µs.
    pub downtime_err_us: Option<i64>,
    /// The matching event's verdict (none: no event).
    #[serde(default)]
    pub verdict: Option<EventVerdict>,
    /// Offset of the stop within the probe interval, if the trace set it.
    #[serde(default)]
    pub phase: Option<f64>,
}

/// Highest level a decoy window reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecoyScore {
    /// Which decoy.
    pub kind: TruthKind,
    /// The highest light during its window.
    pub level: Light,
    /// The verdict of the highest event detected in it (none: no event).
    #[serde(default)]
    pub verdict: Option<EventVerdict>,
    /// Pause only: |estimated − true stop|, µs, of that event.
    #[serde(default)]
    pub downtime_err_us: Option<i64>,
}

/// Everything measured on one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceScore {
    /// Trace name.
    pub name: String,
    /// Probe interval, µs.
    pub interval_us: u32,
    /// Time outside every labelled window, µs.
    pub baseline_us: i64,
    /// One entry per labelled migration.
    pub migrations: Vec<MigrationScore>,
    /// One entry per labelled decoy.
    pub decoys: Vec<DecoyScore>,
    /// Red lights outside every migration window.
    pub false_reds: u32,
    /// Of those, outside every labelled window.
    pub false_reds_baseline: u32,
    /// Reds inside a pause's window while no announce channel was live:
    /// "migrated or paused" by design (nothing can tell them apart), so
    /// not counted in `false_reds`.
    #[serde(default)]
    pub pause_reds_no_channel: u32,
    /// Yellow lights (other than a silence alone) starting outside every
    /// labelled window.
    pub false_yellows: u32,
    /// Provisional yellows (silence alone) starting outside every labelled
    /// window: a stall that ended without loss.
    pub transient_yellows: u32,
}

/// Padding around labelled windows: evidence that legitimately comes a bit
/// before or after (late loss reports, holds) is not a false alarm.
const PAD_BEFORE_US: i64 = 1_000_000;
const PAD_AFTER_US: i64 = 3_000_000;

/// Runs a fresh detector over `events` and scores it against `labels`.
pub fn score(events: &[Event], labels: &Labels, cfg: DetectorConfig) -> TraceScore {
    score_with_info(events, labels, cfg, None)
}

/// [`score`] with the trace's info record applied first (its live
/// channels), as `detect` and the page's replay do.
pub fn score_with_info(
    events: &[Event],
    labels: &Labels,
    cfg: DetectorConfig,
    info: Option<&Info>,
) -> TraceScore {
    let timeout = i64::from(labels.timeout_us);
    let mut det = Detector::new(cfg);
    if let Some(i) = info {
        det.apply_info(i);
    }
    let mut sent: HashMap<u64, i64> = HashMap::new();
    let mut clock = i64::MIN;
    let mut prev = Light::Green;
    // (time, new light, first reason's kind)
    let mut changes: Vec<(i64, Light, &'static str)> = Vec::new();
    for ev in events {
        let t = match ev {
            Event::Sample(s) => {
                sent.insert(s.seq, s.sent_us);
                match s.rtt_us {
                    Some(r) => s.sent_us.saturating_add(i64::from(r)),
                    None => s.sent_us.saturating_add(timeout),
                }
            }
            Event::Late(l) => sent
                .get(&l.seq)
                .map_or(clock, |s| s.saturating_add(i64::from(l.rtt_us))),
            Event::Tick(t) => t.now_us,
            Event::Clock(c) => c.sent_us.saturating_add(i64::from(c.rtt_us)),
            Event::Announce(a) => a.at_us,
            Event::Gap(_) | Event::Overflow(_) | Event::Skip(_) => clock,
        };
        clock = clock.max(t);
        det.push(ev);
        let l = det.light();
        if l != prev {
            let why = if l == Light::Green {
                ""
            } else {
                det.verdict().reasons.first().map_or("", |r| r.name())
            };
            changes.push((clock, l, why));
            prev = l;
        }
    }
    det.finish();
    let found = det.migrations();

    let windows: Vec<(i64, i64, &Truth)> = labels
        .events
        .iter()
        .map(|t| {
            (
                t.start_us.saturating_sub(PAD_BEFORE_US),
                t.end_us.saturating_add(PAD_AFTER_US),
                t,
            )
        })
        .collect();
    let in_any = |t: i64| windows.iter().any(|(a, b, _)| (*a..=*b).contains(&t));
    let announce_live = info.is_some_and(|i| i.capture_iface.is_some());
    let in_pause = |t: i64| {
        windows
            .iter()
            .any(|(a, b, w)| w.kind == TruthKind::Pause && (*a..=*b).contains(&t))
    };
    let in_migration = |t: i64| {
        windows
            .iter()
            .any(|(a, b, w)| w.kind == TruthKind::Migration && (*a..=*b).contains(&t))
    };

    let mut out = TraceScore {
        name: labels.name.clone(),
        interval_us: labels.interval_us,
        baseline_us: baseline_time(labels.start_us, labels.end_us, &windows),
        migrations: Vec::new(),
        decoys: Vec::new(),
        false_reds: 0,
        false_reds_baseline: 0,
        pause_reds_no_channel: 0,
        false_yellows: 0,
        transient_yellows: 0,
    };
    let mut last = Light::Green;
    for &(t, l, why) in &changes {
        if l == Light::Red && !announce_live && in_pause(t) {
            out.pause_reds_no_channel += 1;
        } else if l == Light::Red && !in_migration(t) {
            out.false_reds += 1;
            if !in_any(t) {
                out.false_reds_baseline += 1;
            }
        }
        if last == Light::Green && l == Light::Yellow && !in_any(t) {
            if why == "silence" {
                out.transient_yellows += 1;
            } else {
                out.false_yellows += 1;
            }
        }
        last = l;
    }

    // The light at time t, and the first time at or after t it reached `min`.
    let light_at = |t: i64| {
        changes
            .iter()
            .take_while(|c| c.0 <= t)
            .last()
            .map_or(Light::Green, |c| c.1)
    };
    let first_at_least = |t: i64, until: i64, min: Light| -> Option<i64> {
        if light_at(t) >= min {
            return Some(t);
        }
        changes
            .iter()
            .find(|c| c.0 >= t && c.0 <= until && c.1 >= min)
            .map(|c| c.0)
    };
    let iv = i64::from(labels.interval_us);
    for (a, b, truth) in &windows {
        if truth.kind != TruthKind::Migration {
            let level = changes
                .iter()
                .filter(|c| c.0 >= *a && c.0 <= *b)
                .map(|c| c.1)
                .max()
                .unwrap_or(Light::Green)
                .max(light_at(*a));
            let ev = strongest(found, truth.start_us, truth.end_us, 2 * iv + 5_000);
            out.decoys.push(DecoyScore {
                kind: truth.kind,
                level,
                verdict: ev.map(|m| m.verdict),
                downtime_err_us: ev
                    .zip(truth.downtime_us)
                    .map(|(m, d)| (m.downtime_us - d).abs()),
            });
            continue;
        }
        let (Some(ls), Some(le)) = (truth.lost_start_us, truth.lost_end_us) else {
            continue;
        };
        let tol = 2 * iv + 5_000;
        let matched = strongest(found, ls, le, tol);
        let miss = truth.first_missed_us.unwrap_or(ls);
        let until = truth.end_us.saturating_add(PAD_AFTER_US);
        let yellow = first_at_least(miss, until, Light::Yellow);
        let red = first_at_least(miss, until, Light::Red);
        out.migrations.push(MigrationScore {
            interval_us: labels.interval_us,
            downtime_us: truth.downtime_us.unwrap_or(0),
            held: truth.held,
            loaded: truth.loaded,
            level: matched.map_or(Light::Green, |m| m.level),
            yellow_latency_us: yellow.map(|y| y - miss),
            red_latency_us: red.zip(truth.gap_end_us).map(|(r, g)| r - g),
            red_from_miss_us: red.map(|r| r - miss),
            downtime_err_us: matched
                .zip(truth.downtime_us)
                .map(|(m, d)| (m.downtime_us - d).abs()),
            verdict: matched.map(|m| m.verdict),
            phase: labels.phase,
        });
    }
    out
}

/// The highest-level detected event overlapping [a, b] (± `tol`).
fn strongest(found: &[Migration], a: i64, b: i64, tol: i64) -> Option<&Migration> {
    found
        .iter()
        .filter(|m| m.start_us <= b + tol && m.end_us >= a - tol)
        .max_by_key(|m| m.level)
}

mod table;
use table::baseline_time;
pub use table::Summary;
