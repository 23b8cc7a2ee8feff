//! The sidecar's own detector, one per target: the same `shared::Detector`
//! the page runs, fed the same events the stream carries, read from the
//! target's hub like one more client. It gives the verdicts to `/metrics`
//! (so Prometheus can alert with no browser open), to
//! `/targets/{name}/migrations` (so a page opened later still lists them),
//! and to `watch`.
//!
//! It reads the hub on its own thread every [`READ_EVERY`], never on the
//! prober's: a slow detector can only fall behind, and a ring that moved
//! on under it shows as a `gap` (missing data, never evidence).

use super::spec::TargetSpec;
use super::Target;
use crate::metrics::{escape, family};
use migwatch_shared::detector::{Detector, DetectorConfig, Light};
use migwatch_shared::report::MigrationRecord;
use migwatch_shared::wire::Event;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often the detectors catch up with their hubs: well inside the 1 s
/// scrape interval the alert latency is measured with, and cheap (one lock
/// per target).
pub const READ_EVERY: Duration = Duration::from_millis(100);

/// Events read from a hub in one go.
const READ_BATCH: usize = 4096;

/// Migration events `/migrations` and `watch` keep per target.
pub const KEEP: usize = 100;

/// A yellow event still yellow this long after it ended counts as an
/// outage: the detector's verdict waits 2.5 s for confirming signals, and
/// an announce may come 3 s after the resume (docs/DETECTION.md).
const OUTAGE_FINAL_US: i64 = 10_000_000;

/// Upper bounds of the downtime histogram, in seconds: 10 ms to 10 s, the
/// range of real stop-and-copy phases (docs/DETECTION.md).
const DOWNTIME_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One recorded event, with what has been counted of it.
#[derive(Debug, Clone)]
struct Seen {
    record: MigrationRecord,
    counted_red: bool,
    counted_outage: bool,
}

/// What the detector has concluded for one target.
struct State {
    detector: Detector,
    /// The last hub id fed to the detector.
    cursor: u64,
    /// Events by detector id, oldest first, at most [`KEEP`].
    events: VecDeque<(u64, Seen)>,
    migrations_total: u64,
    outages_total: u64,
    last_migration_s: f64,
    last_downtime_s: f64,
    downtime_counts: [u64; DOWNTIME_BUCKETS.len() + 1],
    downtime_sum_s: f64,
    light: Light,
    /// Records new or changed since `watch` last asked.
    fresh: Vec<MigrationRecord>,
    /// Reused buffer for hub reads.
    buf: Vec<Event>,
}

/// The per-target detector and its tallies.
pub struct Verdicts {
    state: Mutex<State>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every update leaves the state consistent between events.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Verdicts {
    /// A detector for `spec`, with the announce channel on when the
    /// sidecar captures announces.
    pub fn new(_spec: &TargetSpec) -> Verdicts {
        Verdicts {
            state: Mutex::new(State {
                detector: Detector::new(DetectorConfig::default()),
                cursor: 0,
                events: VecDeque::with_capacity(8),
                migrations_total: 0,
                outages_total: 0,
                last_migration_s: 0.0,
                last_downtime_s: 0.0,
                downtime_counts: [0; DOWNTIME_BUCKETS.len() + 1],
                downtime_sum_s: 0.0,
                light: Light::Green,
                fresh: Vec::new(),
                buf: Vec::new(),
            }),
        }
    }

    /// Tells the detector whether announces are watched (from `/info`).
    pub fn set_announce_channel(&self, on: bool) {
        lock(&self.state).detector.set_announce_channel(on);
    }

    /// Feeds the detector everything new in `t`'s hub and updates the
    /// tallies.
    pub fn catch_up(&self, t: &Target) {
        let mut guard = lock(&self.state);
        let s = &mut *guard;
        loop {
            s.buf.clear();
            let (last, gap) = t.hub.events_after(s.cursor, READ_BATCH, &mut s.buf);
            if let Some(g) = gap {
                s.detector.push(&Event::Gap(g));
            }
            for ev in &s.buf {
                s.detector.push(ev);
            }
            s.cursor = last;
            if s.buf.len() < READ_BATCH {
                break;
            }
        }
        s.light = s.detector.light();
        s.tally();
    }

    /// The recorded events, newest first.
    pub fn records(&self) -> Vec<MigrationRecord> {
        lock(&self.state)
            .events
            .iter()
            .rev()
            .map(|(_, s)| s.record.clone())
            .collect()
    }

    /// Records that appeared or changed level since the last call, oldest
    /// first (`watch` prints them).
    pub fn take_fresh(&self) -> Vec<MigrationRecord> {
        std::mem::take(&mut lock(&self.state).fresh)
    }

    /// The detector's baseline, once it has one (`watch` says when).
    pub fn baseline(&self) -> Option<migwatch_shared::detector::BaselineInfo> {
        lock(&self.state).detector.baseline()
    }

    /// The light now.
    pub fn light(&self) -> Light {
        lock(&self.state).light
    }

    /// This target's verdict series for `/metrics`, one family at a time
    /// (the caller writes each family's header once): `which` picks the
    /// family.
    pub fn render(&self, which: Family, name: &str, out: &mut String) {
        let s = lock(&self.state);
        let t = escape(name);
        match which {
            Family::Migrations => {
                let _ = writeln!(
                    out,
                    "migwatch_migrations_total{{target=\"{t}\"}} {}",
                    s.migrations_total
                );
            }
            Family::Outages => {
                let _ = writeln!(
                    out,
                    "migwatch_outages_total{{target=\"{t}\"}} {}",
                    s.outages_total
                );
            }
            Family::LastTimestamp => {
                let _ = writeln!(
                    out,
                    "migwatch_last_migration_timestamp_seconds{{target=\"{t}\"}} {}",
                    s.last_migration_s
                );
            }
            Family::LastDowntime => {
                let _ = writeln!(
                    out,
                    "migwatch_last_migration_downtime_seconds{{target=\"{t}\"}} {}",
                    s.last_downtime_s
                );
            }
            Family::Downtime => {
                let mut cum = 0;
                for (i, b) in DOWNTIME_BUCKETS.iter().enumerate() {
                    cum += s.downtime_counts[i];
                    let _ = writeln!(
                        out,
                        "migwatch_migration_downtime_seconds_bucket{{target=\"{t}\",le=\"{b}\"}} {cum}"
                    );
                }
                cum += s.downtime_counts[DOWNTIME_BUCKETS.len()];
                let _ = writeln!(
                    out,
                    "migwatch_migration_downtime_seconds_bucket{{target=\"{t}\",le=\"+Inf\"}} {cum}\n\
                     migwatch_migration_downtime_seconds_sum{{target=\"{t}\"}} {}\n\
                     migwatch_migration_downtime_seconds_count{{target=\"{t}\"}} {cum}",
                    s.downtime_sum_s
                );
            }
            Family::Light => {
                for l in [Light::Green, Light::Yellow, Light::Red] {
                    let _ = writeln!(
                        out,
                        "migwatch_light{{target=\"{t}\",light=\"{}\"}} {}",
                        l.name(),
                        u8::from(s.light == l)
                    );
                }
            }
        }
    }
}

/// The verdict metric families, in the order `/metrics` writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `migwatch_migrations_total`
    Migrations,
    /// `migwatch_outages_total`
    Outages,
    /// `migwatch_last_migration_timestamp_seconds`
    LastTimestamp,
    /// `migwatch_last_migration_downtime_seconds`
    LastDowntime,
    /// `migwatch_migration_downtime_seconds`
    Downtime,
    /// `migwatch_light`
    Light,
}

impl Family {
    /// Every family with its name, type and help.
    pub const ALL: [(Family, &'static str, &'static str, &'static str); 6] = [
        (
            Family::Migrations,
            "migwatch_migrations_total",
            "counter",
            "Live migrations detected (red verdicts).",
        ),
        (
            Family::Outages,
            "migwatch_outages_total",
            "counter",
            "Outages judged not to be a migration (yellow verdicts that stayed yellow).",
        ),
        (
            Family::LastTimestamp,
            "migwatch_last_migration_timestamp_seconds",
            "gauge",
            "When the last migration started (Unix time), 0 before any.",
        ),
        (
            Family::LastDowntime,
            "migwatch_last_migration_downtime_seconds",
            "gauge",
            "Downtime of the last migration, 0 before any.",
        ),
        (
            Family::Downtime,
            "migwatch_migration_downtime_seconds",
            "histogram",
            "Downtime of each detected migration.",
        ),
        (
            Family::Light,
            "migwatch_light",
            "gauge",
            "The traffic light now: 1 for the light that is on.",
        ),
    ];
}

impl State {
    /// Brings the kept events and counters up to date with the detector's
    /// list of events (which it may update in place as evidence comes).
    fn tally(&mut self) {
        let now_us = self.detector.now_us().unwrap_or(i64::MIN);
        let mut by_id: HashMap<u64, usize> = HashMap::with_capacity(self.events.len());
        for (i, (id, _)) in self.events.iter().enumerate() {
            by_id.insert(*id, i);
        }
        for m in self.detector.migrations() {
            let record = MigrationRecord::from_migration(m);
            let slot = match by_id.get(&m.id) {
                Some(&i) => &mut self.events[i].1,
                None => {
                    if self.events.len() >= KEEP {
                        self.events.pop_front();
                        by_id.clear();
                        for (i, (id, _)) in self.events.iter().enumerate() {
                            by_id.insert(*id, i);
                        }
                    }
                    self.fresh.push(record.clone());
                    self.events.push_back((
                        m.id,
                        Seen {
                            record: record.clone(),
                            counted_red: false,
                            counted_outage: false,
                        },
                    ));
                    by_id.insert(m.id, self.events.len() - 1);
                    &mut self.events.back_mut().expect("just pushed").1
                }
            };
            if slot.record.level != record.level {
                self.fresh.push(record.clone());
            }
            slot.record = record;
            if m.level == Light::Red && !slot.counted_red {
                slot.counted_red = true;
                self.migrations_total += 1;
                self.last_migration_s = slot.record.start_s;
                let d = slot.record.downtime_ms / 1000.0;
                self.last_downtime_s = d;
                self.downtime_sum_s += d;
                let i = DOWNTIME_BUCKETS
                    .iter()
                    .position(|b| d <= *b)
                    .unwrap_or(DOWNTIME_BUCKETS.len());
                self.downtime_counts[i] += 1;
            }
            if m.level == Light::Yellow
                && !slot.counted_outage
                && !slot.counted_red
                && now_us.saturating_sub(m.end_us) >= OUTAGE_FINAL_US
            {
                slot.counted_outage = true;
                self.outages_total += 1;
            }
        }
        // `watch` may never ask: keep the backlog bounded.
        if self.fresh.len() > KEEP {
            let cut = self.fresh.len() - KEEP;
            self.fresh.drain(..cut);
        }
    }
}

/// Runs every target's detector until `stop`, every [`READ_EVERY`].
pub fn run(fleet: Arc<super::Fleet>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        for t in fleet.list() {
            t.verdicts.catch_up(&t);
        }
        std::thread::sleep(READ_EVERY);
    }
}

/// Writes every target's verdict families to `out`.
pub fn render_all(targets: &[Arc<Target>], out: &mut String) {
    for (which, name, kind, help) in Family::ALL {
        family(out, name, kind, help);
        for t in targets {
            t.verdicts.render(which, &t.spec.name, out);
        }
    }
    family(
        out,
        "migwatch_target_info",
        "gauge",
        "Each target's address and labels (always 1).",
    );
    for t in targets {
        let mut labels = format!(
            "target=\"{}\",address=\"{}\"",
            escape(&t.spec.name),
            t.spec.address
        );
        for (k, v) in &t.spec.labels {
            let _ = write!(labels, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(out, "migwatch_target_info{{{labels}}} 1");
    }
}
