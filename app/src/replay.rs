//! Imported traces: reading a file into events (with an error that names
//! the line) and pacing their replay through the detector, instantly or
//! at 1× / 10× of the trace's own clock. Plain Rust, unit tested natively.

use migwatch_shared::trace::{Format, TraceReader};
use migwatch_shared::Event;

/// The largest trace the page reads (bytes): bigger files would not fit
/// the bounded history anyway.
pub const MAX_BYTES: f64 = 256.0 * 1024.0 * 1024.0;

/// How fast a trace is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Speed {
    /// All at once (default).
    #[default]
    Instant,
    /// At the trace's own pace.
    X1,
    /// Ten times faster.
    X10,
}

impl Speed {
    /// Every choice, in menu order.
    pub const ALL: [Speed; 3] = [Speed::Instant, Speed::X1, Speed::X10];

    /// `instant`, `1x`, `10x`.
    pub fn name(self) -> &'static str {
        match self {
            Speed::Instant => "instant",
            Speed::X1 => "1x",
            Speed::X10 => "10x",
        }
    }

    /// From its name.
    pub fn from_name(s: &str) -> Option<Speed> {
        Speed::ALL.into_iter().find(|x| x.name() == s)
    }

    fn factor(self) -> Option<f64> {
        match self {
            Speed::Instant => None,
            Speed::X1 => Some(1.0),
            Speed::X10 => Some(10.0),
        }
    }
}

/// Reads a trace file named `name` (the extension picks the format, else
/// the content does). The error names the file and the line.
pub fn parse(name: &str, text: &str) -> Result<Vec<Event>, String> {
    let format = name
        .rsplit_once('.')
        .and_then(|(_, ext)| Format::from_extension(ext))
        .unwrap_or_else(|| Format::sniff(text));
    let mut r = TraceReader::new(format);
    let mut out = Vec::new();
    for line in text.lines() {
        r.feed_line(line, &mut out)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    r.finish().map_err(|e| format!("{name}: {e}"))?;
    if !out.iter().any(|e| matches!(e, Event::Sample(_))) {
        return Err(format!("{name}: no samples in this trace"));
    }
    Ok(out)
}

/// The time an event happened on the trace's clock, if it carries one: a
/// sample when its probe was resolved (reply, or sent time for a loss; the
/// sidecar reports a loss a timeout later, but the trace does not say how
/// long that was), a tick at its `now_us`.
fn event_time(ev: &Event) -> Option<i64> {
    match ev {
        Event::Sample(s) => Some(s.sent_us.saturating_add(i64::from(s.rtt_us.unwrap_or(0)))),
        Event::Tick(t) => Some(t.now_us),
        Event::Clock(c) => Some(c.sent_us.saturating_add(i64::from(c.rtt_us))),
        Event::Announce(a) => Some(a.at_us),
        Event::Late(_) | Event::Gap(_) | Event::Overflow(_) | Event::Skip(_) => None,
    }
}

/// A trace being replayed.
#[derive(Debug, Clone)]
pub struct Replay {
    events: Vec<Event>,
    pos: usize,
    speed: Speed,
    /// Wall clock (ms) and trace time (µs) when paced replay started.
    anchor: Option<(f64, i64)>,
    /// Trace time reached so far.
    clock_us: i64,
}

impl Replay {
    /// A replay of `events` at `speed`, not started.
    pub fn new(events: Vec<Event>, speed: Speed) -> Replay {
        Replay {
            events,
            pos: 0,
            speed,
            anchor: None,
            clock_us: i64::MIN,
        }
    }

    /// Events in the trace.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the trace has no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events already replayed.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The speed.
    pub fn speed(&self) -> Speed {
        self.speed
    }

    /// Whether every event was replayed.
    pub fn done(&self) -> bool {
        self.pos >= self.events.len()
    }

    /// The events due at wall-clock time `now_ms` (all of them for an
    /// instant replay). Call repeatedly, e.g. once per animation frame.
    pub fn due(&mut self, now_ms: f64) -> &[Event] {
        let start = self.pos;
        let Some(factor) = self.speed.factor() else {
            self.pos = self.events.len();
            return &self.events[start..];
        };
        let first_time = || self.events[start..].iter().find_map(event_time);
        let (wall0, trace0) = match self.anchor {
            Some(a) => a,
            None => match first_time() {
                Some(t) => *self.anchor.insert((now_ms, t)),
                None => {
                    self.pos = self.events.len();
                    return &self.events[start..];
                }
            },
        };
        let limit = trace0.saturating_add(((now_ms - wall0) * 1000.0 * factor) as i64);
        let mut end = start;
        while let Some(ev) = self.events.get(end) {
            let t = event_time(ev).unwrap_or(self.clock_us);
            if t > limit {
                break;
            }
            self.clock_us = self.clock_us.max(t);
            end += 1;
        }
        self.pos = end;
        &self.events[start..end]
    }

    /// Progress as a fraction, for the tile.
    pub fn progress(&self) -> f64 {
        if self.events.is_empty() {
            1.0
        } else {
            self.pos as f64 / self.events.len() as f64
        }
    }
}

/// The file name an export of `what` (`trace` or `migrations`) of target
/// `label` gets: `migwatch-trace-198.18.1.2-20251113T021320.jsonl`.
pub fn export_name(what: &str, label: &str, t_us: i64, ext: &str) -> String {
    let safe: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let secs = t_us.div_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    format!(
        "migwatch-{what}-{safe}-{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z.{ext}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use migwatch_shared::trace::{write_csv, write_jsonl};
    use migwatch_shared::{Late, Sample, Tick};

    const T0: i64 = 1_763_000_000_000_000;

    fn trace(n: u64) -> Vec<Event> {
        (0..n)
            .map(|q| {
                Event::Sample(Sample {
                    seq: q,
                    sent_us: T0 + q as i64 * 10_000,
                    rtt_us: Some(100),
                })
            })
            .collect()
    }

    #[test]
    fn both_formats_parse_and_round_trip() {
        let mut evs = trace(5);
        evs.push(Event::Sample(Sample {
            seq: 5,
            sent_us: T0 + 50_000,
            rtt_us: None,
        }));
        evs.push(Event::Late(Late {
            seq: 5,
            rtt_us: 468_000,
        }));
        evs.push(Event::Tick(Tick {
            now_us: T0 + 60_000,
            next_seq: 6,
        }));
        let mut jsonl = String::new();
        write_jsonl(evs.iter(), &mut jsonl).unwrap();
        assert_eq!(parse("a.jsonl", &jsonl), Ok(evs.clone()));
        // No extension: sniffed.
        assert_eq!(parse("a", &jsonl), Ok(evs.clone()));
        let mut csv = String::new();
        write_csv(evs.iter(), &mut csv).unwrap();
        // CSV holds samples and late replies only.
        assert_eq!(parse("a.csv", &csv), Ok(evs[..7].to_vec()));
    }

    #[test]
    fn malformed_files_name_the_line() {
        let bad = "{\"type\":\"sample\",\"seq\":0,\"sent_us\":1,\"rtt_us\":5}\n\n{\"type\":\"sample\",\"seq\":\"x\"}\n";
        let e = parse("run.jsonl", bad).unwrap_err();
        assert!(e.starts_with("run.jsonl: line 3: "), "{e}");
        let e = parse("run.csv", "seq,t_send,rtt_ms\n0,1.0,0.2\n1,oops,0.2\n").unwrap_err();
        assert!(e.starts_with("run.csv: line 3: "), "{e}");
        let e = parse("empty.csv", "").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = parse(
            "ticks.jsonl",
            "{\"type\":\"tick\",\"now_us\":1,\"next_seq\":0}\n",
        )
        .unwrap_err();
        assert_eq!(e, "ticks.jsonl: no samples in this trace");
    }

    #[test]
    fn instant_replay_gives_everything_at_once() {
        let mut r = Replay::new(trace(100), Speed::Instant);
        assert_eq!(r.due(0.0).len(), 100);
        assert!(r.done());
        assert!(r.due(1.0).is_empty());
        assert_eq!(r.progress(), 1.0);
    }

    #[test]
    fn paced_replay_follows_the_trace_clock() {
        // 100 samples 10 ms apart, replies after 0.1 ms.
        let mut r = Replay::new(trace(100), Speed::X1);
        assert_eq!(r.due(1000.0).len(), 1);
        assert_eq!(r.due(1000.0 + 95.0).len(), 9);
        assert_eq!(r.pos(), 10);
        let mut fast = Replay::new(trace(100), Speed::X10);
        fast.due(0.0);
        fast.due(50.0);
        assert_eq!(fast.pos(), 51);
        fast.due(1_000.0);
        assert!(fast.done());
    }

    #[test]
    fn events_without_time_go_with_the_one_before() {
        let mut evs = trace(3);
        evs.insert(
            2,
            Event::Late(Late {
                seq: 1,
                rtt_us: 5000,
            }),
        );
        let mut r = Replay::new(evs, Speed::X1);
        assert_eq!(r.due(0.0).len(), 1);
        assert_eq!(r.due(10.0).len(), 2);
        assert_eq!(r.due(20.0).len(), 1);
    }

    #[test]
    fn export_names_are_safe_and_dated() {
        assert_eq!(
            export_name("trace", "198.18.1.2:8080", T0, "jsonl"),
            "migwatch-trace-198.18.1.2_8080-20251113T021320Z.jsonl"
        );
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }
}

/// Writes `tests/fixtures/page-migration.jsonl`, the trace the page's
/// end-to-end test replays: 30 s at 10 ms with one 420 ms stop-and-copy
/// (held request, sawtooth). Run once with
/// `cargo test -p migwatch-app write_page_fixture -- --ignored`.
#[cfg(test)]
mod fixture {
    use migwatch_shared::synth::{generate, Scenario, TraceSpec};
    use migwatch_shared::trace::write_jsonl;

    #[test]
    #[ignore = "writes a committed fixture"]
    fn write_page_fixture() {
        let spec = TraceSpec::new(
            "page-migration",
            5,
            10_000,
            Scenario::Migration {
                downtime_ms: 420.0,
                held: true,
                loaded: false,
            },
        );
        let t = generate(&spec);
        let mut s = String::new();
        write_jsonl(t.events.iter(), &mut s).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(format!("{dir}/page-migration.jsonl"), s).unwrap();
        let labels = serde_json::to_string_pretty(&t.labels).unwrap();
        std::fs::write(format!("{dir}/page-migration.labels.json"), labels + "\n").unwrap();
    }
}
