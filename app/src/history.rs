//! What this browser remembers of each target's events, beyond what the
//! sidecar still holds (a restarted sidecar starts a new run with an empty
//! history; a long-running one forgets what is older than its
//! `--history`): the event log's rows, not samples, per sidecar and target,
//! each with the sidecar run it came from. Bounded: [`PER_TARGET`] rows a
//! target and [`MAX_BYTES`] in all, the oldest dropped first. Kept in
//! `localStorage` under [`STORAGE_KEY`] by the running page. Plain Rust,
//! unit tested.

use crate::format::{LogRow, RowKind, RowSource};
use migwatch_shared::Light;

/// `localStorage` key of the remembered rows.
pub const STORAGE_KEY: &str = "migwatch.history.v1";

/// Rows remembered per target: as many as the event log shows.
pub const PER_TARGET: usize = 200;

/// Bytes remembered over every target: 256 KiB, a twentieth of
/// the 5 MB a browser gives an origin's `localStorage`, about 1 500 rows.
pub const MAX_BYTES: usize = 256 * 1024;

/// Two rows of one target closer than this (start times, µs) are the same
/// event (see [`crate::log::merge`]).
const SAME_EVENT_US: i64 = 1_000_000;

/// One remembered row, in the words the log showed (the browser's own
/// time zone, as when it was seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The sidecar run (`run_id`) it was seen in.
    pub run: String,
    /// Start, unix µs.
    pub start_us: i64,
    /// End, unix µs.
    pub end_us: i64,
    /// Red for a migration.
    pub red: bool,
    /// A yellow span rather than a detected event.
    pub yellow: bool,
    /// `10:31:02.315`.
    pub start: String,
    /// `10:31:02.790`.
    pub end: String,
    /// `392 ms (clock step)`, or `yellow for 1.2 s`.
    pub downtime: String,
    /// The evidence in words.
    pub words: Vec<String>,
}

/// Separates a stored line's fields; lines end with `\n`. Plain text,
/// not JSON: a serde decoder for it would add ~10 KB to the page.
const FIELD: char = '\t';
/// Separates the evidence's words within their field.
const WORD: char = '\u{1f}';

/// A field's text with the separators taken out.
fn clean(s: &str) -> String {
    s.replace([FIELD, WORD, '\n', '\r'], " ")
}

impl Kept {
    fn of(run: &str, r: &LogRow) -> Kept {
        Kept {
            run: run.to_string(),
            start_us: r.start_us,
            end_us: r.end_us,
            red: r.level == Light::Red,
            yellow: r.kind == RowKind::Yellow,
            start: r.start.clone(),
            end: r.end.clone(),
            downtime: r.downtime.clone(),
            words: r.evidence.clone(),
        }
    }

    /// Its stored line (without the target key and the newline).
    fn line(&self) -> String {
        let flags = match (self.red, self.yellow) {
            (true, true) => "ry",
            (true, false) => "r",
            (false, true) => "y",
            (false, false) => "-",
        };
        let words: Vec<String> = self.words.iter().map(|w| clean(w)).collect();
        [
            clean(&self.run),
            self.start_us.to_string(),
            self.end_us.to_string(),
            flags.to_string(),
            clean(&self.start),
            clean(&self.end),
            clean(&self.downtime),
            words.join(&WORD.to_string()),
        ]
        .join(&FIELD.to_string())
    }

    /// Reads [`Kept::line`]'s fields; `None` for anything else.
    fn parse(fields: &[&str]) -> Option<Kept> {
        let [run, s, e, flags, a, b, d, w] = fields else {
            return None;
        };
        Some(Kept {
            run: run.to_string(),
            start_us: s.parse().ok()?,
            end_us: e.parse().ok()?,
            red: flags.contains('r'),
            yellow: flags.contains('y'),
            start: a.to_string(),
            end: b.to_string(),
            downtime: d.to_string(),
            words: w
                .split(WORD)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect(),
        })
    }

    fn size(&self, key: &str) -> usize {
        key.len() + 2 + self.line().len()
    }

    /// Its event log row for target `key` (labelled `target`): marked as
    /// coming from this browser only.
    pub fn row(&self, key: u32, target: &str) -> LogRow {
        let mut evidence = self.words.clone();
        let run: String = self.run.chars().take(8).collect();
        evidence.push(format!(
            "from this browser: the sidecar no longer holds it (run {run})"
        ));
        LogRow {
            key,
            target: target.to_string(),
            id: u64::try_from(self.start_us).unwrap_or(0),
            level: if self.red { Light::Red } else { Light::Yellow },
            start_us: self.start_us,
            end_us: self.end_us,
            start: self.start.clone(),
            end: self.end.clone(),
            downtime: self.downtime.clone(),
            evidence,
            source: RowSource::Browser,
            kind: if self.yellow {
                RowKind::Yellow
            } else {
                RowKind::Event
            },
            open: false,
        }
    }
}

/// The key of one target of one sidecar: its base URL and its name.
pub fn target_key(sidecar: &str, name: &str) -> String {
    format!("{sidecar}|{name}")
}

/// Every target's remembered rows, oldest first. A list, not a map: the
/// page has few targets, and one more map type costs the page weight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    targets: Vec<(String, Vec<Kept>)>,
}

/// Puts `k` into `v` (oldest first) after the rows that start before it.
fn insert(v: &mut Vec<Kept>, k: Kept) {
    let at = v
        .iter()
        .rposition(|x| x.start_us <= k.start_us)
        .map_or(0, |i| i + 1);
    v.insert(at, k);
}

impl History {
    fn target_mut(&mut self, key: &str) -> &mut Vec<Kept> {
        let i = match self.targets.iter().position(|(k, _)| k == key) {
            Some(i) => i,
            None => {
                self.targets.push((key.to_string(), Vec::new()));
                self.targets.len() - 1
            }
        };
        &mut self.targets[i].1
    }

    /// Reads what [`History::to_text`] wrote: one row a line, the target
    /// key first. Lines that do not read (another version, a user's edit)
    /// are skipped, not an error.
    pub fn from_text(s: &str) -> History {
        let mut h = History::default();
        for line in s.lines() {
            let fields: Vec<&str> = line.split(FIELD).collect();
            if let (Some(key), Some(k)) = (fields.first(), fields.get(1..).and_then(Kept::parse)) {
                insert(h.target_mut(key), k);
            }
        }
        h
    }

    /// The stored form.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (key, v) in &self.targets {
            for k in v {
                out.push_str(&clean(key));
                out.push(FIELD);
                out.push_str(&k.line());
                out.push('\n');
            }
        }
        out
    }

    /// Remembers `rows` (the page's and the sidecar's, not this browser's,
    /// and no yellow still going on) of the target `key`, seen in `run`: a
    /// row for the same event replaces the remembered one (its level may
    /// have changed since). Returns whether anything changed.
    pub fn note(&mut self, key: &str, run: &str, rows: &[LogRow]) -> bool {
        let kept = self.target_mut(key);
        let mut changed = false;
        for r in rows
            .iter()
            .filter(|r| r.source != RowSource::Browser && !r.open)
        {
            let k = Kept::of(run, r);
            match kept
                .iter()
                .position(|x| (x.start_us - k.start_us).abs() < SAME_EVENT_US)
            {
                Some(i) if kept[i] == k => {}
                Some(i) => {
                    kept.remove(i);
                    insert(kept, k);
                    changed = true;
                }
                None => {
                    insert(kept, k);
                    changed = true;
                }
            }
        }
        if changed {
            let excess = kept.len().saturating_sub(PER_TARGET);
            kept.drain(..excess);
            self.bound(MAX_BYTES);
        }
        changed
    }

    /// Drops the oldest rows (over every target) until the stored form
    /// fits in `max` bytes.
    pub fn bound(&mut self, max: usize) {
        let mut total: usize = self
            .targets
            .iter()
            .map(|(k, v)| v.iter().map(|x| x.size(k)).sum::<usize>())
            .sum();
        while total > max {
            let mut oldest: Option<(i64, usize)> = None;
            for (i, (_, v)) in self.targets.iter().enumerate() {
                if let Some(x) = v.first() {
                    if oldest.is_none_or(|(s, _)| x.start_us < s) {
                        oldest = Some((x.start_us, i));
                    }
                }
            }
            let Some((_, i)) = oldest else { break };
            let (k, v) = &mut self.targets[i];
            let gone = v.remove(0);
            total = total.saturating_sub(gone.size(k));
            if v.is_empty() {
                self.targets.remove(i);
            }
        }
    }

    /// The rows remembered of target `key`, oldest first.
    pub fn rows(&self, key: &str) -> &[Kept] {
        self.targets
            .iter()
            .find(|(k, _)| k == key)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// Rows remembered in all.
    pub fn len(&self) -> usize {
        self.targets.iter().map(|(_, v)| v.len()).sum()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets everything.
    pub fn forget(&mut self) {
        self.targets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::TzOffset;
    use crate::log::{record_row, SidecarRecord};

    const UTC: TzOffset<'static> = &|_| 0;

    fn row(start_s: f64, level: &str) -> LogRow {
        let r = SidecarRecord {
            start_s,
            end_s: start_s + 0.4,
            downtime_ms: 392.4,
            downtime_from: "clock_step".into(),
            level: level.into(),
            explanation: "migrated".into(),
        };
        record_row(1, "vm", &r, UTC)
    }

    #[test]
    fn rows_are_remembered_once_and_updated_in_place() {
        let mut h = History::default();
        let k = target_key("http://h:1", "vm");
        assert!(h.note(&k, "run-a", &[row(100.0, "yellow"), row(50.0, "red")]));
        assert!(!h.note(&k, "run-a", &[row(100.0, "yellow")]));
        // The same event, now red, a little later in the page's view.
        assert!(h.note(&k, "run-a", &[row(100.2, "red")]));
        let got = h.rows(&k);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].start_us, 50_000_000);
        assert!(got[1].red);
        // This browser's own rows are not noted again.
        let mut b = got[0].row(1, "vm");
        b.start_us = 10_000_000;
        assert!(!h.note(&k, "run-a", &[b]));
        assert!(h.rows("http://h:1|other").is_empty());
    }

    #[test]
    fn a_row_from_this_browser_says_so_and_keeps_its_words() {
        let mut h = History::default();
        h.note("k", "0123456789abcdef", &[row(100.0, "red")]);
        let r = h.rows("k")[0].row(7, "vm");
        assert_eq!(r.source, RowSource::Browser);
        assert_eq!(r.level, Light::Red);
        assert_eq!(r.key, 7);
        assert_eq!(r.downtime, "392 ms (clock step)");
        assert_eq!(r.start, "00:01:40.000");
        assert!(
            r.evidence.last().is_some_and(
                |e| e.starts_with("from this browser") && e.ends_with("(run 01234567)")
            ),
            "{r:?}"
        );
    }

    #[test]
    fn the_stored_form_round_trips_and_bad_text_is_empty() {
        let mut h = History::default();
        h.note("a|b", "r", &[row(1.0, "red")]);
        let text = h.to_text();
        assert_eq!(History::from_text(&text), h);
        assert!(History::from_text("{not json").is_empty());
        assert!(History::from_text("").is_empty());
        // A tab or newline in the words does not break the lines.
        let mut odd = row(2.0, "yellow");
        odd.evidence = vec!["a\tb\nc".into(), "d".into()];
        h.note("a|b", "r", &[odd]);
        let back = History::from_text(&h.to_text());
        assert_eq!(back.rows("a|b")[1].words, vec!["a b c", "d"]);
        assert!(!back.rows("a|b")[1].red);
    }

    #[test]
    fn each_target_keeps_its_newest_rows_and_all_fit_the_byte_budget() {
        let mut h = History::default();
        let rows: Vec<LogRow> = (0..250).map(|i| row(f64::from(i) * 10.0, "red")).collect();
        h.note("a", "r", &rows);
        assert_eq!(h.rows("a").len(), PER_TARGET);
        assert_eq!(h.rows("a")[0].start_us, 500_000_000, "the oldest went");
        h.note("b", "r", &[row(5.0, "red")]);
        let before = h.to_text().len();
        h.bound(before / 2);
        assert!(h.to_text().len() <= before / 2);
        // The oldest row over all targets goes first: b's at 5 s.
        assert!(h.rows("b").is_empty());
        assert!(!h.rows("a").is_empty());
        h.forget();
        assert!(h.is_empty());
    }
}
