//! Scoring the detector on labelled traces (pure: events and labels in,
//! numbers out). `migwatch-sidecar eval DIR` reads the files and prints
//! [`Summary::table`].
//!
//! Time in a trace is the stream's own: each event is placed at the time the
//! sidecar would have emitted it (a reply at send + RTT, a loss at send +
//! timeout, a tick at its `now_us`), so latencies are what a live viewer
//! would have seen.

use crate::detector::{Detector, DetectorConfig, Light};
use crate::wire::Event;
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
    /// The monitor's own link flapped: loss, then ARP-queued replies.
    LinkFlap,
    /// The VM paused in place: replies queued, then released.
    VmPause,
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
            TruthKind::LinkFlap => "link_flap",
            TruthKind::VmPause => "vm_pause",
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
}

/// Highest level a decoy window reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecoyScore {
    /// Which decoy.
    pub kind: TruthKind,
    /// The highest light during its window.
    pub level: Light,
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
    let timeout = i64::from(labels.timeout_us);
    let mut det = Detector::new(cfg);
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
        false_yellows: 0,
        transient_yellows: 0,
    };
    let mut last = Light::Green;
    for &(t, l, why) in &changes {
        if l == Light::Red && !in_migration(t) {
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
            out.decoys.push(DecoyScore {
                kind: truth.kind,
                level,
            });
            continue;
        }
        let (Some(ls), Some(le)) = (truth.lost_start_us, truth.lost_end_us) else {
            continue;
        };
        let tol = 2 * iv + 5_000;
        let matched = found
            .iter()
            .filter(|m| m.start_us <= le + tol && m.end_us >= ls - tol)
            .max_by_key(|m| m.level);
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
        });
    }
    out
}

/// Length of [start, end] not covered by any window.
fn baseline_time(start: i64, end: i64, windows: &[(i64, i64, &Truth)]) -> i64 {
    let mut w: Vec<(i64, i64)> = windows
        .iter()
        .map(|(a, b, _)| ((*a).max(start), (*b).min(end)))
        .filter(|(a, b)| a < b)
        .collect();
    w.sort_unstable();
    let mut covered = 0;
    let mut cur: Option<(i64, i64)> = None;
    for (a, b) in w {
        match cur {
            Some((ca, cb)) if a <= cb => cur = Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                covered += cb - ca;
                cur = Some((a, b));
            }
            None => cur = Some((a, b)),
        }
    }
    if let Some((ca, cb)) = cur {
        covered += cb - ca;
    }
    (end - start - covered).max(0)
}

/// Totals over many traces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Every trace's score.
    pub traces: Vec<TraceScore>,
}

fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

fn fmt_ms(us: Option<i64>) -> String {
    us.map_or("–".into(), |v| format!("{:.1} ms", v as f64 / 1000.0))
}

impl Summary {
    /// Adds one trace's score.
    pub fn add(&mut self, s: TraceScore) {
        self.traces.push(s);
    }

    fn migrations(&self) -> impl Iterator<Item = &MigrationScore> {
        self.traces.iter().flat_map(|t| t.migrations.iter())
    }

    /// Whether every bar of issue 4 is met.
    pub fn meets_bar(&self) -> bool {
        let b = self.bars();
        b.recall.0 == b.recall.1
            && b.false_reds == 0
            && b.yellow_ok.0 == b.yellow_ok.1
            && b.red_ok.0 == b.red_ok.1
            && b.err_ok.0 == b.err_ok.1
    }

    fn bars(&self) -> Bars {
        let mut b = Bars::default();
        for m in self.migrations() {
            let iv = i64::from(m.interval_us);
            if m.downtime_us >= 2 * iv {
                b.recall.1 += 1;
                if m.level == Light::Red {
                    b.recall.0 += 1;
                }
            }
            b.yellow_ok.1 += 1;
            if m.yellow_latency_us.is_some_and(|l| l <= 2 * iv + 50_000) {
                b.yellow_ok.0 += 1;
            }
            if m.level == Light::Red {
                b.red_ok.1 += 1;
                if m.red_latency_us.is_some_and(|l| l <= 50_000) {
                    b.red_ok.0 += 1;
                }
            }
            if let Some(e) = m.downtime_err_us {
                b.err_ok.1 += 1;
                if e <= iv + 5_000 {
                    b.err_ok.0 += 1;
                }
            }
        }
        b.false_reds = self.traces.iter().map(|t| t.false_reds).sum();
        b
    }

    /// The results as Markdown tables.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let b = self.bars();
        let hours = self.traces.iter().map(|t| t.baseline_us).sum::<i64>() as f64 / 3.6e9;
        let per_h = |n: u32| {
            if hours > 0.0 {
                format!("{:.2} ({n} in {hours:.2} h)", f64::from(n) / hours)
            } else {
                format!("{n} (no baseline time)")
            }
        };
        let sum = |f: fn(&TraceScore) -> u32| self.traces.iter().map(f).sum::<u32>();
        let decoy_reds = self
            .traces
            .iter()
            .flat_map(|t| t.decoys.iter())
            .filter(|d| d.level == Light::Red)
            .count();
        let pct = |(a, n): (u32, u32)| {
            if n == 0 {
                "–".to_string()
            } else {
                format!("{a}/{n} ({:.0} %)", 100.0 * f64::from(a) / f64::from(n))
            }
        };
        let mut yl: Vec<i64> = self
            .migrations()
            .filter_map(|m| m.yellow_latency_us)
            .collect();
        let mut rl: Vec<i64> = self.migrations().filter_map(|m| m.red_latency_us).collect();
        let mut rm: Vec<i64> = self
            .migrations()
            .filter_map(|m| m.red_from_miss_us)
            .collect();
        let mut de: Vec<i64> = self
            .migrations()
            .filter_map(|m| m.downtime_err_us)
            .collect();
        let n_mig = self.migrations().count() as u32;
        let any_yellow = self
            .migrations()
            .filter(|m| m.level >= Light::Yellow)
            .count() as u32;
        let _ = writeln!(
            s,
            "{} traces, {n_mig} migrations, {:.2} h of baseline\n",
            self.traces.len(),
            hours
        );
        let _ = writeln!(s, "| metric | measured | bar |\n|---|---|---|");
        let _ = writeln!(
            s,
            "| recall, red, downtime ≥ 2 intervals | {} | 100 % |",
            pct(b.recall)
        );
        let _ = writeln!(
            s,
            "| recall, at least yellow, all migrations | {} | |",
            pct((any_yellow, n_mig))
        );
        let _ = writeln!(
            s,
            "| false reds (decoy windows + baseline) | {} ({decoy_reds} decoy windows red) | 0 |",
            b.false_reds
        );
        let _ = writeln!(
            s,
            "| false reds per hour of baseline | {} | 0 |",
            per_h(sum(|t| t.false_reds_baseline))
        );
        let _ = writeln!(
            s,
            "| false yellows per hour of baseline | {} | |",
            per_h(sum(|t| t.false_yellows))
        );
        let _ = writeln!(
            s,
            "| transient yellows (silence that ended without loss) per hour of baseline | {} | |",
            per_h(sum(|t| t.transient_yellows))
        );
        let max = |v: &[i64]| v.iter().max().copied();
        let _ = writeln!(
            s,
            "| first missed reply → yellow, median / max | {} / {} | ≤ 2 intervals + 50 ms: {} |",
            fmt_ms(median(&mut yl)),
            fmt_ms(max(&yl)),
            pct(b.yellow_ok)
        );
        let _ = writeln!(
            s,
            "| first reply after the gap → red, median / max | {} / {} | ≤ 50 ms: {} |",
            fmt_ms(median(&mut rl)),
            fmt_ms(max(&rl)),
            pct(b.red_ok)
        );
        let _ = writeln!(
            s,
            "| first missed reply → red, median / max | {} / {} | |",
            fmt_ms(median(&mut rm)),
            fmt_ms(max(&rm))
        );
        let _ = writeln!(
            s,
            "| downtime error, median / max | {} / {} | ≤ 1 interval + 5 ms: {} |",
            fmt_ms(median(&mut de)),
            fmt_ms(max(&de)),
            pct(b.err_ok)
        );

        // Per-kind outcome of the decoys.
        let mut kinds: Vec<TruthKind> = self
            .traces
            .iter()
            .flat_map(|t| t.decoys.iter().map(|d| d.kind))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        let _ = writeln!(
            s,
            "\n| decoy | windows | green | yellow | red |\n|---|---|---|---|---|"
        );
        for k in kinds {
            let levels: Vec<Light> = self
                .traces
                .iter()
                .flat_map(|t| t.decoys.iter())
                .filter(|d| d.kind == k)
                .map(|d| d.level)
                .collect();
            let c = |l: Light| levels.iter().filter(|x| **x == l).count();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                k.name(),
                levels.len(),
                c(Light::Green),
                c(Light::Yellow),
                c(Light::Red)
            );
        }

        // Migrations by downtime.
        let _ = writeln!(
            s,
            "\n| downtime | interval | held reply | loaded | level | → yellow | → red (after gap) | downtime error |\n|---|---|---|---|---|---|---|---|"
        );
        let mut ms: Vec<&MigrationScore> = self.migrations().collect();
        ms.sort_by_key(|m| (m.interval_us, m.downtime_us));
        for m in ms {
            let _ = writeln!(
                s,
                "| {:.0} ms | {} ms | {} | {} | {} | {} | {} | {} |",
                m.downtime_us as f64 / 1000.0,
                f64::from(m.interval_us) / 1000.0,
                if m.held { "yes" } else { "no" },
                if m.loaded { "yes" } else { "no" },
                m.level.name(),
                fmt_ms(m.yellow_latency_us),
                fmt_ms(m.red_latency_us),
                fmt_ms(m.downtime_err_us)
            );
        }
        s
    }
}

#[derive(Debug, Default)]
struct Bars {
    recall: (u32, u32),
    yellow_ok: (u32, u32),
    red_ok: (u32, u32),
    err_ok: (u32, u32),
    false_reds: u32,
}
