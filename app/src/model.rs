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
    /// The light's yellow intervals, for the charts' shading.
    yellows: crate::chart::YellowTrack,
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
            yellows: crate::chart::YellowTrack::default(),
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
        let d = &self.detector;
        let now_us = self.store.newest_us().unwrap_or_default();
        self.yellows
            .observe(now_us, d.light(), || d.verdict().reasons.first().copied());
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
        self.yellows.clear();
        self.detector.set_announce_channel(self.announce_channel);
        if let Some(i) = &self.info {
            self.detector.apply_info(i);
        }
        self.tick = None;
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
        f.shades = crate::chart::shades(self.migrations(), &self.yellows, from, to);
        f.announces = self.signals.announces_in(from, to);
        f
    }

    /// The clock track under the RTT chart's frame `f` (same window, same
    /// migration bands and announce markers), for `columns` columns.
    pub fn clock_frame(&self, f: &Frame, columns: u32) -> ClockFrame {
        let mut c = self.signals.clock_frame(f.from_us, f.to_us, columns);
        c.bands.clone_from(&f.bands);
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
mod tests {
    use super::*;

    const UTC: TzOffset<'static> = &|_| 0;
    const T0: i64 = 1_763_000_000_000_000;

    fn sample(m: &mut Model, seq: u64, rtt: Option<u32>) {
        let rtt = rtt.map_or("null".to_string(), |r| r.to_string());
        let data = format!(
            r#"{{"seq":{seq},"sent_us":{},"rtt_us":{rtt}}}"#,
            T0 + seq as i64 * 10_000
        );
        m.ingest("sample", &data);
    }

    fn summary(m: &Model, live: bool) -> Summary {
        m.summary(live, UTC)
    }

    /// 20 s of 10 ms probes with a 470 ms stop-and-copy at 10 s: 47 lost,
    /// the first held and answered late, then a sawtooth.
    fn migration(m: &mut Model) {
        for q in 0..2000u64 {
            let rtt = match q {
                1000..=1046 => None,
                1047..=1051 => Some(30_000 - (q - 1047) as u32 * 5_000),
                _ => Some(250 + (q % 7) as u32 * 10),
            };
            sample(m, q, rtt);
            if q == 1047 {
                m.ingest("late", r#"{"seq":1000,"rtt_us":468000}"#);
            }
        }
    }

    #[test]
    fn no_samples_is_no_data() {
        let m = Model::default();
        let s = summary(&m, true);
        assert_eq!(s.light_name(), "nodata");
        assert!(s.reasons.is_empty());
        assert!(s.headline.is_empty());
        assert!(s.stats.contains("median RTT –"));
    }

    #[test]
    fn steady_samples_are_green_with_stats() {
        let mut m = Model::default();
        for q in 0..100 {
            sample(&mut m, q, Some(250));
        }
        let s = summary(&m, true);
        assert_eq!(s.light_name(), "green");
        assert_eq!((s.samples, s.lost, s.late), (100, 0, 0));
        assert!(s.stats.starts_with("median RTT 0.25 ms"), "{}", s.stats);
        assert_eq!((s.first_seq, s.last_seq, s.held), (Some(0), Some(99), 100));
    }

    #[test]
    fn a_migration_is_red_with_words_and_logged() {
        let mut m = Model::default();
        migration(&mut m);
        let s = summary(&m, true);
        assert_eq!(s.light_name(), "red", "{s:?}");
        assert_eq!(s.lost, 47);
        assert_eq!(s.late, 1);
        assert!(
            s.headline.starts_with(
                "Red: downtime 463 ms (late reply); 47 probes lost 02:13:30.000–02:13:30.470"
            ),
            "{}",
            s.headline
        );
        assert!(
            s.headline.ends_with("stop-and-copy signature."),
            "{}",
            s.headline
        );
        assert_eq!(m.migrations().len(), 1);
        assert_eq!(s.migrations, 1);
        // The verdict stays until acknowledged, in whole seconds.
        assert_eq!(
            s.last_migration,
            "last migration: 02:13:30, downtime 463 ms (late reply)"
        );
        m.acknowledge();
        assert_eq!(summary(&m, true).last_migration, "");
        let f = m.frame(&Viewport::default(), 100);
        assert_eq!(f.bands.len(), 1);
        assert_eq!(f.bands[0].2, Light::Red);
    }

    #[test]
    fn a_dropped_stream_is_no_data_but_says_what_it_saw() {
        let mut m = Model::default();
        migration(&mut m);
        let s = summary(&m, false);
        assert_eq!(s.light_name(), "nodata");
        assert_eq!(s.headline, "Stream down; the last light was RED.");
        assert!(!s.reasons.is_empty());
        // A green run that drops says nothing.
        let mut g = Model::default();
        sample(&mut g, 0, Some(1));
        let s = summary(&g, false);
        assert!(s.reasons.is_empty() && s.headline.is_empty());
    }

    #[test]
    fn bad_events_are_counted_not_fatal() {
        let mut m = Model::default();
        m.ingest("future", "{}");
        m.ingest("sample", "not json");
        m.ingest("sample", r#"{"seq":1}"#);
        m.unnamed();
        let s = summary(&m, true);
        assert_eq!((s.unknown, s.malformed), (2, 2));
        assert_eq!(m.diag.events, 0);
        assert!(s.has_trouble());
        assert!(s.diag_line().contains("last error: event without a name"));
    }

    #[test]
    fn gaps_overflows_and_new_runs_are_counted() {
        let mut m = Model::default();
        sample(&mut m, 0, Some(1));
        m.ingest("gap", r#"{"from_id":5,"to_id":14,"missing":10}"#);
        m.ingest("overflow", r#"{"last_id":20}"#);
        assert_eq!((m.diag.gaps, m.diag.missing, m.diag.overflows), (1, 10, 1));
        assert_eq!(m.event_count(), 3);
        m.new_run();
        assert!(m.store.is_empty());
        assert_eq!(m.event_count(), 0);
        assert_eq!(m.diag.new_runs, 1);
        assert_eq!(summary(&m, true).light_name(), "nodata");
    }

    #[test]
    fn ticks_move_the_window_on_and_mark_pending_probes() {
        let mut m = Model::default();
        let vp = Viewport::default();
        for q in 0..100 {
            sample(&mut m, q, Some(100));
        }
        let newest = T0 + 99 * 10_000;
        assert_eq!(m.frame(&vp, 10).to_us, newest);
        assert_eq!(m.frame(&vp, 10).pending_from_us, None);
        // Quiet stream: probes 100..149 sent, none reported yet.
        let tick = format!(r#"{{"now_us":{},"next_seq":150}}"#, newest + 500_000);
        m.ingest("tick", &tick);
        let f = m.frame(&vp, 10);
        assert_eq!(f.to_us, newest + 500_000);
        assert_eq!(f.pending_from_us, Some(newest));
        // An older tick does not move time back.
        m.ingest("tick", &format!(r#"{{"now_us":{newest},"next_seq":100}}"#));
        assert_eq!(m.frame(&vp, 10).to_us, newest + 500_000);
        // Once later samples arrive the tick is behind them: nothing pending.
        for q in 100..200 {
            sample(&mut m, q, Some(100));
        }
        let f = m.frame(&vp, 10);
        assert_eq!(f.to_us, T0 + 199 * 10_000);
        assert_eq!(f.pending_from_us, None);
        assert_eq!(m.diag.events, 202);
    }

    #[test]
    fn frame_follows_the_viewport() {
        let mut m = Model::default();
        // 40 s of samples at 10 ms.
        for q in 0..4000 {
            sample(&mut m, q, Some(100));
        }
        let mut vp = Viewport::default();
        let f = m.frame(&vp, 500);
        assert_eq!(f.points, 3001);
        assert_eq!(f.to_us - f.from_us, 30_000_000);
        vp.pause(T0 + 10_000_000);
        let f = m.frame(&vp, 500);
        assert_eq!(f.points, 1001);
    }

    #[test]
    fn exports_replay_to_the_same_migrations() {
        let mut m = Model::default();
        migration(&mut m);
        m.ingest(
            "tick",
            &format!(r#"{{"now_us":{},"next_seq":2000}}"#, T0 + 20_000_000),
        );
        for (text, n) in [(m.export_jsonl(), 2002), (m.export_csv(), 2001)] {
            let evs = trace::read(&text).expect("own export reads back");
            assert_eq!(evs.len(), n);
            let mut back = Model::default();
            for ev in &evs {
                back.apply(ev);
            }
            back.finish();
            assert_eq!(back.migrations().len(), 1);
            assert_eq!(back.migrations()[0].level, Light::Red);
            assert_eq!(back.migrations()[0].start_us, m.migrations()[0].start_us);
        }
        let lines = m.migrations_jsonl();
        let v: serde_json::Value = serde_json::from_str(lines.trim()).expect("json");
        assert_eq!(v["level"], "red");
        assert_eq!(v["reasons"][0]["kind"], "loss_burst");
        let csv = m.migrations_csv(UTC);
        assert!(csv.starts_with("start_s,end_s,downtime_ms,level,probes,evidence\n"));
        assert!(csv.contains(",red,47,\"47 probes lost"), "{csv}");
    }

    /// A real lab migration (QEMU, TCG): 368.7 ms STOP→RESUME, with clock
    /// readings and the announces captured on the monitor link.
    const LAB: &str = include_str!("../../tests/fixtures/lab-dirty-clock-announce.jsonl");

    #[test]
    fn a_lab_trace_draws_its_clock_step_and_announces() {
        let evs = crate::replay::parse("lab.jsonl", LAB).expect("the fixture reads");
        // As `migwatch-sidecar detect` reads a file: no `/info`, so no
        // announce channel until an announce is seen.
        let mut m = Model::default();
        for ev in &evs {
            m.apply(ev);
        }
        m.finish();
        let t = m.signals.totals();
        assert_eq!((t.clock, t.rarp, t.garp), (20, 5, 5));
        let s = summary(&m, true);
        assert_eq!((s.clock_readings, s.announces), (20, 10));
        assert!(
            s.stats
                .ends_with(" · clock readings 20 · announces 10 (5 RARP, 5 GARP)"),
            "{}",
            s.stats
        );
        let f = m.frame(&Viewport::default(), 600);
        assert_eq!(f.announces.len(), 10);
        let c = m.clock_frame(&f, 600);
        assert_eq!(c.readings, 20);
        assert_eq!(c.bands, f.bands);
        assert_eq!(c.announces.len(), 10);
        // The guest clock fell 370 ms behind across the stop (readings are
        // whole ms at the guest, so within a couple of ms of QMP's 368.7).
        let step = c.step_us.expect("a step");
        assert!((-372_000..=-366_000).contains(&step), "{step}");
        assert!((c.low_ms - -370.0).abs() < 5.0, "{}", c.low_ms);
        // The detector's verdict, in the page's words.
        let mg = m.migrations();
        assert_eq!(mg.len(), 1, "{mg:?}");
        assert_eq!(mg[0].level, Light::Red);
        let row = format::log_row(1, "lab", &mg[0], UTC);
        assert!(row.downtime.ends_with(" (clock step)"), "{row:?}");
        assert!(
            row.evidence
                .iter()
                .any(|e| e.starts_with("guest clock stepped back 37")),
            "{row:?}"
        );
        assert!(
            row.evidence
                .iter()
                .any(|e| e == "MAC 52:54:00:4d:57:0a announced again: 5 RARP + 5 gratuitous ARP"),
            "{row:?}"
        );
        let lines = m.migrations_jsonl();
        let v: serde_json::Value = serde_json::from_str(lines.trim()).expect("json");
        assert_eq!(v["downtime_from"], "clock_step");
        // A new run forgets them, and keeps the announce channel.
        m.set_announce_channel(true);
        m.new_run();
        assert_eq!(m.signals.totals(), crate::signals::SignalTotals::default());
        assert!(m.announce_channel);
    }

    #[test]
    fn the_demo_recording_turns_red_with_the_lab_downtime_and_the_decoy_does_not() {
        let text = include_str!("../../public/demo.jsonl");
        let events = crate::replay::parse("demo.jsonl", text).expect("the demo parses");
        let mut m = Model::new(10_000);
        let mut red_at = None;
        let first = events.iter().find_map(|e| match e {
            Event::Sample(s) => Some(s.sent_us),
            _ => None,
        });
        for ev in &events {
            m.apply(ev);
            if red_at.is_none() && m.light() == Light::Red {
                red_at = m.newest_us();
            }
        }
        m.finish();
        let mg = m.migrations();
        let red: Vec<_> = mg.iter().filter(|x| x.level == Light::Red).collect();
        assert_eq!(red.len(), 1, "{mg:?}");
        // QMP measured 368.7 ms STOP→RESUME.
        assert!((300_000..=450_000).contains(&red[0].downtime_us), "{mg:?}");
        // The decoy link flap is detected, and not red.
        assert!(mg.iter().any(|x| x.level == Light::Yellow), "{mg:?}");
        // Red within a minute of the start at 1×.
        let after = red_at.zip(first).map(|(r, f)| r - f).expect("red");
        assert!(after < 60_000_000, "red after {after} µs");
        let s = summary(&m, true);
        assert!(s.last_migration.contains("(clock step)"), "{s:?}");
    }

    #[test]
    fn raw_events_are_bounded_with_the_store() {
        let mut m = Model::new(1000);
        for q in 0..5000 {
            sample(&mut m, q, Some(100));
        }
        assert_eq!(m.store.len(), 1000);
        assert_eq!(m.event_count(), 1250);
        m.set_capacity(100);
        assert_eq!(m.event_count(), 125);
        assert!(m.events.capacity() < 2000);
    }
}
