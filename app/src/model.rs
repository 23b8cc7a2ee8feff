//! The page's state for one target: history, raw events (for export),
//! detector and diagnostics, and the [`Summary`] the view shows. Plain
//! Rust, unit tested natively.

use crate::format::{self, TzOffset};
use crate::signals::{ClockFrame, Signals};
use crate::store::{Frame, Store, DEFAULT_CAPACITY};
use crate::viewport::Viewport;
use migwatch_shared::trace;
use migwatch_shared::{Detector, Event, Info, Light, Migration, Tick, Verdict, WireError};
use std::collections::VecDeque;
pub use yellows::YellowSpan;
use yellows::Yellows;

mod yellows;

/// The stats line covers this much of the newest data, µs.
pub const STATS_US: i64 = 30_000_000;

/// Things that went wrong on the stream, shown in the diagnostics panel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diag {
    /// Events decoded and used.
    pub events: u64,
    /// Events with a name this page does not know (or no name).
    pub unknown: u64,
    /// Events whose data did not decode.
    pub malformed: u64,
    /// The last decoding error, for the curious.
    pub last_error: Option<String>,
    /// `gap` events: the sidecar could not resend what we missed.
    pub gaps: u64,
    /// Events lost in those gaps.
    pub missing: u64,
    /// `overflow` events: the sidecar cut us off for being slow.
    pub overflows: u64,
    /// Probes the sidecar reported it never sent (`skip` events).
    pub skipped: u64,
    /// Times the sidecar restarted (new `run_id`) under us.
    pub new_runs: u64,
}

/// History, raw events, detector and diagnostics of one target.
#[derive(Debug, Clone)]
pub struct Model {
    /// Sample history, seq-ordered, for the chart.
    pub store: Store,
    /// Clock readings and announces, time-ordered, for the clock track
    /// and the announce markers.
    pub signals: Signals,
    /// The events as received, for export: bounded like the store (plus
    /// room for the ticks and late replies between samples).
    events: VecDeque<Event>,
    events_cap: usize,
    detector: Detector,
    /// Stream diagnostics.
    pub diag: Diag,
    /// The latest `tick`: the sidecar's clock while the stream is quiet.
    tick: Option<Tick>,
    /// The sidecar watches for layer-2 announces (its `/info` names a
    /// capture interface): kept across detector resets.
    announce_channel: bool,
    /// The sidecar's `/info`, re-applied to a new run's detector.
    info: Option<Info>,
    /// Start of the last migration the user acknowledged: the tile stops
    /// repeating it (and older ones).
    acked_us: Option<i64>,
    /// Every yellow light's span, for the event log.
    yellows: Yellows,
}

impl Default for Model {
    fn default() -> Self {
        Model::new(DEFAULT_CAPACITY)
    }
}

fn events_cap(samples: usize) -> usize {
    samples.saturating_add(samples / 4)
}

impl Model {
    /// An empty model keeping `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        Model {
            store: Store::new(capacity),
            signals: Signals::new(capacity),
            events: VecDeque::new(),
            events_cap: events_cap(capacity),
            detector: Detector::default(),
            diag: Diag::default(),
            tick: None,
            announce_channel: false,
            acked_us: None,
            info: None,
            yellows: Yellows::default(),
        }
    }

    /// Changes the history bound, dropping the oldest data if needed.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.store.set_capacity(capacity);
        self.signals.set_clock_capacity(capacity);
        self.events_cap = events_cap(self.store.capacity());
        let excess = self.events.len().saturating_sub(self.events_cap);
        self.events.drain(..excess);
    }

    /// Decodes and applies one event named `name`. Never fails: what cannot
    /// be used is counted in [`Diag`].
    pub fn ingest(&mut self, name: &str, data: &str) {
        match Event::parse(name, data) {
            Ok(ev) => self.apply(&ev),
            Err(e) => {
                match e {
                    WireError::UnknownKind(_) => self.diag.unknown += 1,
                    WireError::BadData { .. } => self.diag.malformed += 1,
                }
                self.diag.last_error = Some(e.to_string());
            }
        }
    }

    /// Counts an event that came without a name.
    pub fn unnamed(&mut self) {
        self.diag.unknown += 1;
        self.diag.last_error = Some("event without a name".into());
    }

    /// Applies one decoded event.
    pub fn apply(&mut self, ev: &Event) {
        self.diag.events += 1;
        match ev {
            Event::Sample(s) => {
                self.store.push_sample(s);
            }
            Event::Late(l) => self.store.push_late(l),
            Event::Gap(g) => {
                self.diag.gaps += 1;
                self.diag.missing = self.diag.missing.saturating_add(g.missing);
            }
            Event::Overflow(_) => self.diag.overflows += 1,
            Event::Skip(s) => {
                self.diag.skipped = self
                    .diag
                    .skipped
                    .saturating_add(s.last_seq.saturating_sub(s.first_seq) + 1)
            }
            Event::Tick(t) => {
                if self.tick.is_none_or(|old| t.now_us >= old.now_us) {
                    self.tick = Some(*t);
                }
            }
            Event::Clock(c) => self.signals.push_clock(c),
            Event::Announce(a) => self.signals.push_announce(a),
        }
        if self.events.len() >= self.events_cap {
            self.events.pop_front();
        }
        if self.events.capacity() == self.events.len() {
            // Double up to the bound, never past it.
            let len = self.events.len();
            let want = (len * 2).clamp(1024, self.events_cap.max(1)).max(len + 1);
            self.events.reserve_exact(want - len);
        }
        self.events.push_back(*ev);
        self.detector.push(ev);
        self.yellows.observe(&self.detector);
    }

    /// Tells the detector whether the sidecar watches for layer-2
    /// announces (`/info`'s `capture_iface`): with it on, an outage no
    /// announce follows is "an outage, not a migration" unless something
    /// else confirms it.
    pub fn set_announce_channel(&mut self, on: bool) {
        self.announce_channel = on;
        self.detector.set_announce_channel(on);
    }

    /// Ends the input of a replayed trace: the detector decides the outage
    /// it is still analysing.
    pub fn finish(&mut self) {
        self.detector.finish();
        self.yellows.observe(&self.detector);
        self.yellows.close();
    }

    /// Tells the detector what the sidecar's `/info` says (probe interval,
    /// announce channel), as the sidecar's own detector is told; kept for
    /// the detector of a new run.
    pub fn apply_info(&mut self, info: &Info) {
        self.announce_channel = info.capture_iface.is_some();
        self.detector.apply_info(info);
        self.info = Some(info.clone());
    }

    /// The user has seen the last migration: stop repeating it.
    pub fn acknowledge(&mut self) {
        if let Some(m) = crate::log::unacknowledged(self.migrations(), self.acked_us) {
            self.acked_us = Some(m.start_us);
        }
    }

    /// Forgets history and detector state: the sidecar started a new run,
    /// whose seq numbers start over. Diagnostics are kept.
    pub fn new_run(&mut self) {
        self.store.clear();
        self.signals.clear();
        self.events = VecDeque::new();
        self.detector = Detector::default();
        self.detector.set_announce_channel(self.announce_channel);
        if let Some(i) = &self.info {
            self.detector.apply_info(i);
        }
        self.tick = None;
        // The old run's events went with its detector; the page's
        // browser history keeps what was logged.
        self.yellows.clear();
        self.diag.new_runs += 1;
    }

    /// The detector's verdict.
    pub fn verdict(&self) -> Verdict {
        self.detector.verdict()
    }

    /// The detector's light (cheap).
    pub fn light(&self) -> Light {
        self.detector.light()
    }

    /// The migrations detected so far, oldest first.
    pub fn migrations(&self) -> &[Migration] {
        self.detector.migrations()
    }

    /// The spans the light was yellow that no detected event explains
    /// (an RTT peak, a short silence, a lone clock step), oldest first.
    pub fn yellow_spans(&self) -> impl DoubleEndedIterator<Item = &YellowSpan> + '_ {
        let c = self.detector.config();
        let hold_us = (i64::from(c.red_hold_ms) + i64::from(c.yellow_hold_ms)) * 1000;
        yellows::unexplained(self.yellows.spans(), self.migrations(), hold_us)
    }

    /// Raw events held (for export).
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The sidecar's latest time: the newest sample's send time or a later
    /// `tick`.
    pub fn newest_us(&self) -> Option<i64> {
        let newest = self.store.newest_us()?;
        Some(self.tick.map_or(newest, |t| t.now_us.max(newest)))
    }

    /// The chart frame of `vp` for `columns` pixel columns. When a tick
    /// says probes after the newest sample were sent but not reported yet,
    /// the frame marks them pending.
    pub fn frame(&self, vp: &Viewport, columns: u32) -> Frame {
        let (Some(newest_us), Some(newest_seq)) = (self.newest_us(), self.store.newest_seq())
        else {
            return Frame {
                from_us: -vp.span_us,
                ..Frame::default()
            };
        };
        let (from, to) = vp.range(newest_us);
        let mut f = self.store.decimate(from, to, columns);
        let sample_newest = self.store.newest_us().unwrap_or(newest_us);
        let tick = self.tick.filter(|t| t.now_us > sample_newest);
        if tick.is_some_and(|t| t.next_seq > newest_seq.saturating_add(1)) && sample_newest < to {
            f.pending_from_us = Some(sample_newest.max(from));
        }
        f.bands = self
            .migrations()
            .iter()
            .filter(|m| m.end_us >= from && m.start_us <= to)
            .map(|m| (m.start_us, m.end_us, m.level))
            .collect();
        let spans = self.yellows.spans().map(|y| {
            crate::chart::YellowSpan::of(y.start_us, y.end_us, y.reasons.first().copied())
        });
        f.shades = crate::chart::shades(self.migrations(), spans, from, to);
        f.announces = self.signals.announces_in(from, to);
        f
    }

    /// The clock track under the RTT chart's frame `f` (same window, the
    /// same shading, migrations and every other yellow, and the same
    /// announce markers), for `columns` columns.
    pub fn clock_frame(&self, f: &Frame, columns: u32) -> ClockFrame {
        let mut c = self.signals.clock_frame(f.from_us, f.to_us, columns);
        c.bands = f
            .shades
            .iter()
            .map(|s| (s.from_us, s.to_us, s.level))
            .collect();
        c.announces.clone_from(&f.announces);
        c
    }

    /// The held events as a JSON-lines trace (the detector CLI's format).
    pub fn export_jsonl(&self) -> String {
        let mut s = String::with_capacity(self.events.len() * 64);
        // Writing to a String cannot fail.
        let _ = trace::write_jsonl(self.events.iter(), &mut s);
        s
    }

    /// The held samples and late replies as a CSV trace.
    pub fn export_csv(&self) -> String {
        let mut s = String::with_capacity(self.events.len() * 40);
        let _ = trace::write_csv(self.events.iter(), &mut s);
        s
    }

    /// The detected migrations as JSON lines, one per migration, in the
    /// shape `migwatch-sidecar detect` prints them.
    pub fn migrations_jsonl(&self) -> String {
        /// One line of `migwatch-sidecar detect`'s output.
        #[derive(serde::Serialize)]
        struct Line {
            start_s: f64,
            end_s: f64,
            downtime_ms: f64,
            downtime_from: migwatch_shared::detector::DowntimeSource,
            level: &'static str,
            decided_s: f64,
            reasons: Vec<migwatch_shared::Reason>,
        }
        let mut s = String::new();
        for m in self.migrations() {
            let line = Line {
                start_s: m.start_us as f64 / 1e6,
                end_s: m.end_us as f64 / 1e6,
                downtime_ms: m.downtime_us as f64 / 1000.0,
                downtime_from: m.downtime_source,
                level: m.level.name(),
                decided_s: m.decided_us as f64 / 1e6,
                reasons: m.reasons(),
            };
            if let Ok(l) = serde_json::to_string(&line) {
                s.push_str(&l);
                s.push('\n');
            }
        }
        s
    }

    /// The detected migrations as CSV: one row each, reasons in words.
    pub fn migrations_csv(&self, tz: TzOffset<'_>) -> String {
        let mut s = String::from("start_s,end_s,downtime_ms,level,probes,evidence\n");
        for m in self.migrations() {
            let words: Vec<String> = m.reasons().iter().map(|r| format::reason(r, tz)).collect();
            s.push_str(&format!(
                "{:.6},{:.6},{:.3},{},{},\"{}\"\n",
                m.start_us as f64 / 1e6,
                m.end_us as f64 / 1e6,
                m.downtime_us as f64 / 1000.0,
                m.level.name(),
                m.probes,
                words.join("; ").replace('"', "\"\"")
            ));
        }
        s
    }

    /// What the page shows. `live`: the stream is open now (or a replay is
    /// loaded); without it, or without samples, the light is "no data",
    /// never red or yellow.
    pub fn summary(&self, live: bool, tz: TzOffset<'_>) -> Summary {
        let t = self.store.totals();
        let v = self.verdict();
        let has_data = !self.store.is_empty();
        let light = (live && has_data).then_some(v.light);
        let mut reasons: Vec<String> = v.reasons.iter().map(|r| format::reason(r, tz)).collect();
        let mut headline = format::headline(v.light, &v.reasons, tz);
        let last_red = self
            .migrations()
            .iter()
            .rev()
            .find(|m| m.level == Light::Red);
        if let (Light::Red, Some(m)) = (v.light, last_red) {
            // The number a reader wants first, in the headline itself.
            if let Some(rest) = headline.strip_prefix("Red: ") {
                headline = format!(
                    "Red: downtime {} ({}); {rest}",
                    format::duration_i(m.downtime_us),
                    format::downtime_source(m.downtime_source)
                );
            }
        }
        let last_migration = crate::log::unacknowledged(self.migrations(), self.acked_us)
            .map(|m| {
                crate::log::last_migration_words(m.start_us, m.downtime_us, m.downtime_source, tz)
            })
            .unwrap_or_default();
        if light.is_none() {
            if has_data && v.light != Light::Green {
                headline = format!(
                    "Stream down; the last light was {}.",
                    format::light_word(Some(v.light))
                );
            } else {
                headline.clear();
                reasons.clear();
            }
        }
        let (median, lost_recent) = match self.newest_us() {
            Some(n) => self.store.window_stats(n - STATS_US, n),
            None => (None, 0),
        };
        let median = median.map_or_else(|| "–".to_string(), |m| format::duration(u64::from(m)));
        let mut stats = format!(
            "median RTT {median} · lost {lost_recent} (last {} s) · samples {} · lost {} · late {}",
            STATS_US / 1_000_000,
            t.samples,
            t.lost,
            t.late,
        );
        let sig = self.signals.totals();
        if sig.clock > 0 {
            stats.push_str(&format!(" · clock readings {}", sig.clock));
        }
        if sig.announces() > 0 {
            stats.push_str(&format!(
                " · announces {} ({} RARP, {} GARP)",
                sig.announces(),
                sig.rarp,
                sig.garp
            ));
        }
        let d = &self.diag;
        Summary {
            light,
            headline,
            reasons,
            stats,
            samples: t.samples,
            lost: t.lost,
            late: t.late,
            unknown: d.unknown,
            malformed: d.malformed,
            gaps: d.gaps,
            missing: d.missing,
            overflows: d.overflows,
            new_runs: d.new_runs,
            events: d.events,
            last_error: d.last_error.clone(),
            held: self.store.len() as u64,
            capacity: self.store.capacity() as u64,
            first_seq: self.store.oldest_seq(),
            last_seq: self.store.newest_seq(),
            migrations: self.migrations().len() as u64,
            clock_readings: sig.clock,
            announces: sig.announces(),
            last_id: None,
            last_migration,
            remote_spark: None,
            remote_from: "",
        }
    }
}

/// Everything the status part of a tile shows, recomputed once per frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The light, `None` for "no data".
    pub light: Option<Light>,
    /// The verdict in one sentence ("" when green or no data).
    pub headline: String,
    /// The evidence in plain words, one item per reason.
    pub reasons: Vec<String>,
    /// The stats line.
    pub stats: String,
    /// Samples received.
    pub samples: u64,
    /// Lost samples received.
    pub lost: u64,
    /// Late replies received.
    pub late: u64,
    /// Unknown events.
    pub unknown: u64,
    /// Malformed events.
    pub malformed: u64,
    /// `gap` events.
    pub gaps: u64,
    /// Events missing in gaps.
    pub missing: u64,
    /// `overflow` events.
    pub overflows: u64,
    /// Sidecar restarts seen.
    pub new_runs: u64,
    /// Events used.
    pub events: u64,
    /// The last decoding error.
    pub last_error: Option<String>,
    /// Samples held in the ring.
    pub held: u64,
    /// The ring's bound.
    pub capacity: u64,
    /// Oldest seq held.
    pub first_seq: Option<u64>,
    /// Newest seq held.
    pub last_seq: Option<u64>,
    /// Migrations detected.
    pub migrations: u64,
    /// Clock readings received.
    pub clock_readings: u64,
    /// Announce frames received.
    pub announces: u64,
    /// The last event id received (set by the caller, who tracks resume).
    pub last_id: Option<u64>,
    /// `last migration: 14:02:07, downtime 392 ms (clock step)` until the
    /// user acknowledges it ("" when none).
    pub last_migration: String,
    /// A target without a live stream: the sidecar's per-second sparkline
    /// (`/overview`; `None` from `/metrics` or with a stream).
    pub remote_spark: Option<crate::overview::Spark>,
    /// Where a target without a stream has its light from: `overview`,
    /// `metrics`, or "" (its own stream).
    pub remote_from: &'static str,
}

impl Summary {
    /// `data-light`: `green`, `yellow`, `red` or `nodata`.
    pub fn light_name(&self) -> &'static str {
        self.light.map_or("nodata", Light::name)
    }

    /// The diagnostics line.
    pub fn diag_line(&self) -> String {
        let mut s = format!(
            "events {} · unknown {} · malformed {} · gaps {} ({} missing) · overflows {} · restarts {} · held {}/{}",
            self.events,
            self.unknown,
            self.malformed,
            self.gaps,
            self.missing,
            self.overflows,
            self.new_runs,
            self.held,
            self.capacity
        );
        if let Some(e) = &self.last_error {
            s.push_str(" · last error: ");
            s.push_str(e);
        }
        s
    }

    /// Whether anything went wrong on the stream (the panel opens itself).
    pub fn has_trouble(&self) -> bool {
        self.unknown + self.malformed + self.gaps + self.overflows > 0
    }
}

#[cfg(test)]
mod tests;
