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
use migwatch_shared::detector::{Detector, DetectorConfig, EventVerdict, Light};
use migwatch_shared::report::{MigrationRecord, TargetSummary};
use migwatch_shared::wire::{Event, Info};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often the detectors catch up with their hubs: well inside the 1 s
/// scrape interval the alert latency is measured with, and cheap (one lock
/// per target).
pub const READ_EVERY: Duration = Duration::from_millis(100);

/// Seconds of probes each detector remembers (its slot window): six times
/// the longest stop it judges (`max_downtime_ms`, 5 s).
const WINDOW_SECONDS: f64 = 30.0;

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

/// Seconds of sparkline kept per target for `/overview`.
pub const SPARK_SECONDS: usize = 60;

/// One second of a target's samples.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    second: i64,
    rtt_sum_us: u64,
    answered: u32,
    lost: u32,
}

/// One recorded event, with what has been counted of it.
#[derive(Debug, Clone)]
struct Seen {
    record: MigrationRecord,
    counted_red: bool,
    counted_outage: bool,
    /// Its downtime is in the histogram: the first estimate, at once, so an
    /// alert on a long stop fires with the migration alert (the guest
    /// clock refines it by about 10 ms over the next 3 s; the gauges follow
    /// that, the histogram's buckets hardly notice).
    counted_downtime: bool,
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
    pauses_total: u64,
    last_migration_s: f64,
    last_downtime_s: f64,
    downtime_counts: [u64; DOWNTIME_BUCKETS.len() + 1],
    downtime_sum_s: f64,
    light: Light,
    /// Records new or changed since `watch` last asked.
    fresh: Vec<MigrationRecord>,
    /// Reused buffer for hub reads.
    buf: Vec<Event>,
    /// The last [`SPARK_SECONDS`] seconds, oldest first.
    spark: VecDeque<Bucket>,
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
    /// A detector for `spec`, told its interval and whether announces are
    /// watched by its `/info`, remembering about [`WINDOW_SECONDS`] of
    /// probes (at 10 Hz that is 512 slots, 12 KiB, not the page's 96 KiB:
    /// it matters at 1000 targets).
    pub fn new(spec: &TargetSpec, info: &Info) -> Verdicts {
        let slots = (WINDOW_SECONDS / spec.interval.as_secs_f64()).ceil() as usize;
        let mut detector = Detector::with_window(DetectorConfig::default(), slots);
        detector.apply_info(info);
        Verdicts {
            state: Mutex::new(State {
                detector,
                cursor: 0,
                events: VecDeque::with_capacity(8),
                migrations_total: 0,
                outages_total: 0,
                pauses_total: 0,
                last_migration_s: 0.0,
                last_downtime_s: 0.0,
                downtime_counts: [0; DOWNTIME_BUCKETS.len() + 1],
                downtime_sum_s: 0.0,
                light: Light::Green,
                fresh: Vec::new(),
                buf: Vec::new(),
                spark: VecDeque::with_capacity(SPARK_SECONDS),
            }),
        }
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
                if let Event::Sample(x) = ev {
                    spark_add(&mut s.spark, x.sent_us, x.rtt_us);
                }
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

    /// This target at a glance: the light, its reasons, and the last
    /// `seconds` of the sparkline (at most [`SPARK_SECONDS`]).
    pub fn summary(&self, name: &str, seconds: usize) -> TargetSummary {
        let s = lock(&self.state);
        let v = s.detector.verdict();
        let n = seconds.min(SPARK_SECONDS);
        let last = s.spark.back().map_or(0, |b| b.second);
        let first_s = last - n as i64 + 1;
        let mut rtt_us = vec![None; n];
        let mut lost = vec![0; n];
        for b in &s.spark {
            if let Ok(i) = usize::try_from(b.second - first_s) {
                if i < n {
                    rtt_us[i] =
                        (b.answered > 0).then(|| (b.rtt_sum_us / u64::from(b.answered)) as u32);
                    lost[i] = b.lost;
                }
            }
        }
        TargetSummary {
            name: name.to_string(),
            light: v.light.name().to_string(),
            reasons: v.reasons,
            first_s,
            rtt_us,
            lost,
            migrations: s.migrations_total,
            last_event: s.events.back().map(|(_, e)| e.record.clone()),
        }
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
            Family::Pauses => {
                let _ = writeln!(
                    out,
                    "migwatch_pauses_total{{target=\"{t}\"}} {}",
                    s.pauses_total
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
    /// `migwatch_pauses_total`
    Pauses,
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
    pub const ALL: [(Family, &'static str, &'static str, &'static str); 7] = [
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
            "Outages judged not to be a migration (yellow verdicts that stayed yellow): \
             path outages, pauses in place, replaced machines and undecided stops.",
        ),
        (
            Family::Pauses,
            "migwatch_pauses_total",
            "counter",
            "Of the outages, the VM paused in place (its clock stepped back, no announce came).",
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

/// Adds one sample to the per-second sparkline (samples arrive nearly in
/// send order; one older than the kept window is dropped).
fn spark_add(spark: &mut VecDeque<Bucket>, sent_us: i64, rtt_us: Option<u32>) {
    let second = sent_us.div_euclid(1_000_000);
    let idx = match spark.back().map(|b| b.second) {
        Some(last) if second <= last => {
            let back = usize::try_from(last - second).unwrap_or(usize::MAX);
            if back >= spark.len() {
                return;
            }
            spark.len() - 1 - back
        }
        _ => {
            // Seconds with no sample at all (a skip) stay as gaps.
            let last = spark.back().map_or(second - 1, |b| b.second);
            for s in (last + 1).max(second - SPARK_SECONDS as i64 + 1)..=second {
                if spark.len() >= SPARK_SECONDS {
                    spark.pop_front();
                }
                spark.push_back(Bucket {
                    second: s,
                    ..Bucket::default()
                });
            }
            spark.len() - 1
        }
    };
    let b = &mut spark[idx];
    if b.second != second {
        return;
    }
    match rtt_us {
        Some(r) => {
            b.rtt_sum_us += u64::from(r);
            b.answered += 1;
        }
        None => b.lost += 1,
    }
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
        let mut newest_red_us = i64::MIN;
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
                            counted_downtime: false,
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
                // Counted at once, so an alert need not wait for the
                // estimate to settle.
                slot.counted_red = true;
                self.migrations_total += 1;
            }
            let newest_red = m.level == Light::Red && m.start_us >= newest_red_us;
            if newest_red {
                // The gauges follow the newest migration's estimate as the
                // guest clock refines it.
                newest_red_us = m.start_us;
                self.last_migration_s = slot.record.start_s;
                self.last_downtime_s = slot.record.downtime_ms / 1000.0;
            }
            if slot.counted_red && !slot.counted_downtime {
                slot.counted_downtime = true;
                let d = slot.record.downtime_ms / 1000.0;
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
                if slot.record.verdict == EventVerdict::Paused {
                    self.pauses_total += 1;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sparkline_buckets_by_second_and_keeps_a_minute() {
        let mut s = VecDeque::new();
        spark_add(&mut s, 10_000_000, Some(100));
        spark_add(&mut s, 10_500_000, Some(300));
        spark_add(&mut s, 10_900_000, None);
        spark_add(&mut s, 12_000_000, Some(50));
        // Late sample for second 10 still lands there.
        spark_add(&mut s, 10_950_000, None);
        let secs: Vec<i64> = s.iter().map(|b| b.second).collect();
        assert_eq!(secs, vec![10, 11, 12]);
        assert_eq!((s[0].rtt_sum_us, s[0].answered, s[0].lost), (400, 2, 2));
        assert_eq!((s[1].answered, s[1].lost), (0, 0));
        for k in 0..200 {
            spark_add(&mut s, (13 + k) * 1_000_000, Some(1));
        }
        assert_eq!(s.len(), SPARK_SECONDS);
        assert_eq!(s.back().map(|b| b.second), Some(212));
        // Older than the window: dropped.
        spark_add(&mut s, 10_000_000, Some(1));
        assert_eq!(
            s.front().map(|b| b.second),
            Some(212 - SPARK_SECONDS as i64 + 1)
        );
    }
}
