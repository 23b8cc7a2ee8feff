//! The page's state for one target: history, detector and diagnostics, and
//! the [`Summary`] the view shows. Plain Rust, unit tested natively.

use crate::format::{self, TzOffset};
use crate::store::{Frame, Store};
use migwatch_shared::{Detector, Event, Light, Tick, Verdict, WireError};

/// Length of the chart's window, µs.
pub const WINDOW_US: i64 = 30_000_000;

/// Things that went wrong on the stream, shown in a small line.
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
    /// Times the sidecar restarted (new `run_id`) under us.
    pub new_runs: u64,
}

/// History, detector and diagnostics of one target.
#[derive(Debug, Clone, Default)]
pub struct Model {
    /// Sample history.
    pub store: Store,
    detector: Detector,
    /// Stream diagnostics.
    pub diag: Diag,
    /// The latest `tick`: the sidecar's clock while the stream is quiet.
    tick: Option<Tick>,
}

impl Model {
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
            Event::Tick(t) => {
                if self.tick.is_none_or(|old| t.now_us >= old.now_us) {
                    self.tick = Some(*t);
                }
            }
        }
        self.detector.push(ev);
    }

    /// Forgets history and detector state: the sidecar started a new run,
    /// whose seq numbers start over. Diagnostics are kept.
    pub fn new_run(&mut self) {
        self.store.clear();
        self.detector = Detector::default();
        self.tick = None;
        self.diag.new_runs += 1;
    }

    /// The detector's verdict.
    pub fn verdict(&self) -> Verdict {
        self.detector.verdict()
    }

    /// The chart frame for `columns` pixel columns: the [`WINDOW_US`]
    /// ending at the sidecar's latest time, the newest sample's send time
    /// or a later `tick` (the sidecar's clock, so a skewed browser clock
    /// does not matter). When a tick says probes after the newest sample
    /// were sent but not reported yet, the frame marks them pending.
    pub fn frame(&self, columns: u32) -> Frame {
        let (Some(newest_us), Some(newest_seq)) = (self.store.newest_us(), self.store.newest_seq())
        else {
            return Frame {
                from_us: -WINDOW_US,
                ..Frame::default()
            };
        };
        let tick = self.tick.filter(|t| t.now_us > newest_us);
        let to = tick.map_or(newest_us, |t| t.now_us);
        let mut f = self
            .store
            .decimate(to.saturating_sub(WINDOW_US), to, columns);
        if tick.is_some_and(|t| t.next_seq > newest_seq.saturating_add(1)) {
            f.pending_from_us = Some(newest_us.max(f.from_us));
        }
        f
    }

    /// What the page shows. `live`: the stream is open now; without it, or
    /// without samples, the light is "no data", never red or yellow.
    pub fn summary(&self, frame: &Frame, live: bool, tz: TzOffset<'_>) -> Summary {
        let t = self.store.totals();
        let v = self.verdict();
        let has_data = !self.store.is_empty();
        let light = (live && has_data).then_some(v.light);
        let mut reasons: Vec<String> = v.reasons.iter().map(|r| format::reason(r, tz)).collect();
        if light.is_none() {
            if has_data && v.light != Light::Green {
                reasons.insert(
                    0,
                    format!(
                        "stream down; last light was {}",
                        format::light_word(Some(v.light))
                    ),
                );
            } else {
                reasons.clear();
            }
        }
        let median = frame
            .median_rtt_us
            .map_or_else(|| "–".to_string(), |m| format::duration(u64::from(m)));
        let stats = format!(
            "samples {} · lost {} · late {} · median RTT {} (last {} s)",
            t.samples,
            t.lost,
            t.late,
            median,
            WINDOW_US / 1_000_000
        );
        let d = &self.diag;
        let mut diag = format!(
            "events {} · unknown {} · malformed {} · gaps {} ({} missing) · overflows {} · restarts {} · held {}/{}",
            d.events,
            d.unknown,
            d.malformed,
            d.gaps,
            d.missing,
            d.overflows,
            d.new_runs,
            self.store.len(),
            self.store.capacity()
        );
        if let Some(e) = &d.last_error {
            diag.push_str(" · last error: ");
            diag.push_str(e);
        }
        Summary {
            light,
            reasons,
            stats,
            diag,
            samples: t.samples,
            lost: t.lost,
            late: t.late,
            unknown: d.unknown,
            malformed: d.malformed,
            last_id: None,
        }
    }
}

/// Everything the status part of the page shows, recomputed once per frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The light, `None` for "no data".
    pub light: Option<Light>,
    /// The evidence in plain words.
    pub reasons: Vec<String>,
    /// The stats line.
    pub stats: String,
    /// The diagnostics line.
    pub diag: String,
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
    /// The last event id received (set by the caller, who tracks resume).
    pub last_id: Option<u64>,
}

impl Summary {
    /// `data-light`: `green`, `yellow`, `red` or `nodata`.
    pub fn light_name(&self) -> &'static str {
        self.light.map_or("nodata", Light::name)
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
        m.summary(&m.frame(100), live, UTC)
    }

    #[test]
    fn no_samples_is_no_data() {
        let m = Model::default();
        let s = summary(&m, true);
        assert_eq!(s.light_name(), "nodata");
        assert!(s.reasons.is_empty());
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
        assert!(s.stats.contains("median RTT 0.25 ms"), "{}", s.stats);
    }

    #[test]
    fn burst_and_late_reply_is_red_with_words() {
        let mut m = Model::default();
        for q in 0..200 {
            sample(&mut m, q, (!(100..147).contains(&q)).then_some(250));
        }
        m.ingest("late", r#"{"seq":100,"rtt_us":468000}"#);
        let s = summary(&m, true);
        assert_eq!(s.light_name(), "red");
        assert_eq!(s.lost, 47);
        assert_eq!(s.late, 1);
        assert_eq!(
            s.reasons,
            vec![
                "47 probes lost 02:13:21.000–02:13:21.470".to_string(),
                "late reply 468 ms (probe #100)".to_string()
            ]
        );
    }

    #[test]
    fn a_dropped_stream_is_no_data_but_says_what_it_saw() {
        let mut m = Model::default();
        for q in 0..200 {
            sample(&mut m, q, (!(100..147).contains(&q)).then_some(250));
        }
        m.ingest("late", r#"{"seq":100,"rtt_us":468000}"#);
        assert_eq!(summary(&m, true).light_name(), "red");
        let s = summary(&m, false);
        assert_eq!(s.light_name(), "nodata");
        assert_eq!(s.reasons[0], "stream down; last light was RED");
        assert!(s.reasons.len() > 1);
        // A green run that drops says nothing.
        let mut g = Model::default();
        sample(&mut g, 0, Some(1));
        assert!(summary(&g, false).reasons.is_empty());
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
        assert!(s.diag.contains("last error: event without a name"));
    }

    #[test]
    fn gaps_overflows_and_new_runs_are_counted() {
        let mut m = Model::default();
        sample(&mut m, 0, Some(1));
        m.ingest("gap", r#"{"from_id":5,"to_id":14,"missing":10}"#);
        m.ingest("overflow", r#"{"last_id":20}"#);
        assert_eq!((m.diag.gaps, m.diag.missing, m.diag.overflows), (1, 10, 1));
        m.new_run();
        assert!(m.store.is_empty());
        assert_eq!(m.diag.new_runs, 1);
        assert_eq!(summary(&m, true).light_name(), "nodata");
    }

    #[test]
    fn ticks_move_the_window_on_and_mark_pending_probes() {
        let mut m = Model::default();
        for q in 0..100 {
            sample(&mut m, q, Some(100));
        }
        let newest = T0 + 99 * 10_000;
        assert_eq!(m.frame(10).to_us, newest);
        assert_eq!(m.frame(10).pending_from_us, None);
        // Quiet stream: probes 100..149 sent, none reported yet.
        let tick = format!(r#"{{"now_us":{},"next_seq":150}}"#, newest + 500_000);
        m.ingest("tick", &tick);
        let f = m.frame(10);
        assert_eq!(f.to_us, newest + 500_000);
        assert_eq!(f.pending_from_us, Some(newest));
        // An older tick does not move time back.
        m.ingest("tick", &format!(r#"{{"now_us":{newest},"next_seq":100}}"#));
        assert_eq!(m.frame(10).to_us, newest + 500_000);
        // Once later samples arrive the tick is behind them: nothing pending.
        for q in 100..200 {
            sample(&mut m, q, Some(100));
        }
        let f = m.frame(10);
        assert_eq!(f.to_us, T0 + 199 * 10_000);
        assert_eq!(f.pending_from_us, None);
        assert_eq!(m.diag.events, 202);
    }

    #[test]
    fn frame_is_the_last_30_seconds() {
        let mut m = Model::default();
        // 40 s of samples at 10 ms.
        for q in 0..4000 {
            sample(&mut m, q, Some(100));
        }
        let f = m.frame(500);
        assert_eq!(f.points, 3001);
        assert_eq!(f.to_us - f.from_us, WINDOW_US);
    }
}
