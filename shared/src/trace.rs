//! Trace files: reading and writing recorded event streams, from and to
//! strings (no I/O, so the page can import and export with the same code).
//!
//! Two formats:
//!
//! * **JSON lines** (`.jsonl`): one wire event per line, the event's JSON
//!   data with its name added as a `"type"` field:
//!   ```text
//!   {"type":"sample","seq":12,"sent_us":1763000000123456,"rtt_us":250}
//!   {"type":"sample","seq":13,"sent_us":1763000000133456,"rtt_us":null}
//!   {"type":"late","seq":13,"rtt_us":1441000}
//!   {"type":"tick","now_us":1763000000160000,"next_seq":16}
//!   {"type":"gap","from_id":100,"to_id":180,"missing":81}
//!   ```
//!   Lines appear in stream order (as the sidecar emitted them). Extra
//!   fields (such as an SSE `"id"`) are ignored; the SSE-shaped envelope
//!   `{"event":"sample","data":{...}}` is accepted too. Blank lines and
//!   lines starting with `#` are skipped, and so are lines of a `type` this
//!   version does not know (counted in [`TraceReader::skipped`]), so newer
//!   traces still load.
//! * **CSV** (`.csv`): a header naming at least `seq,t_send,rtt_ms` (any
//!   order; other columns are ignored), then one row per probe in sequence
//!   order. `t_send` is the send time in unix seconds (decimal), `rtt_ms`
//!   the round-trip time in ms, empty when the probe was lost. An optional
//!   `late_ms` column holds the RTT of a reply that came after the timeout
//!   of a lost probe. A row whose `seq` skips ahead means the rows between
//!   are missing: the reader inserts a `gap` event (with the missing seqs as
//!   ids), so a hole in the file is "no data", never loss. CSV cannot hold
//!   ticks, so a CSV replay shows no provisional yellow.
//!
//! Malformed input is an error naming the line (1-based).

use crate::wire::{Announce, Clock, Event, EventKind, Gap, Late, Overflow, Sample, Skip, Tick};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;

/// A trace file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON lines of wire events.
    Jsonl,
    /// CSV with `seq,t_send,rtt_ms`.
    Csv,
}

impl Format {
    /// The format for a file name extension (`jsonl`, `json`, `ndjson`,
    /// `csv`), if it names one.
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "jsonl" | "json" | "ndjson" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// Guesses from the first meaningful line: JSON lines start with `{`,
    /// anything else is CSV; a text without one (no events) is JSON lines.
    pub fn sniff(text: &str) -> Format {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        match first {
            Some(l) if !l.starts_with('{') => Format::Csv,
            _ => Format::Jsonl,
        }
    }
}

/// A malformed trace: what is wrong and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct TraceError {
    /// The line, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub msg: String,
}

fn err(line: usize, msg: impl Into<String>) -> TraceError {
    TraceError {
        line,
        msg: msg.into(),
    }
}

/// The flattened JSON-lines form: the event's fields plus `"type"`. Only a
/// fast path: a kind missing here still parses, through the slow path.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Flat {
    Sample(Sample),
    Late(Late),
    Gap(Gap),
    Overflow(Overflow),
    Tick(Tick),
    Clock(Clock),
    Announce(Announce),
    Skip(Skip),
}

impl From<Flat> for Event {
    fn from(f: Flat) -> Event {
        match f {
            Flat::Sample(e) => Event::Sample(e),
            Flat::Late(e) => Event::Late(e),
            Flat::Gap(e) => Event::Gap(e),
            Flat::Overflow(e) => Event::Overflow(e),
            Flat::Tick(e) => Event::Tick(e),
            Flat::Clock(e) => Event::Clock(e),
            Flat::Announce(e) => Event::Announce(e),
            Flat::Skip(e) => Event::Skip(e),
        }
    }
}

/// Parses one JSON line. `Ok(None)` for a blank or comment line, or an
/// event type this version does not know.
pub fn parse_jsonl_line(line_no: usize, line: &str) -> Result<Option<Event>, TraceError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    // Fast path: the canonical flattened form.
    if let Ok(f) = serde_json::from_str::<Flat>(line) {
        return Ok(Some(f.into()));
    }
    // Slow path: find out what it is, for the envelope form, unknown types
    // and a precise error.
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| err(line_no, format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| err(line_no, "expected a JSON object"))?;
    let (kind, data) = match (obj.get("type"), obj.get("event"), obj.get("data")) {
        (Some(t), _, _) => {
            let mut rest = obj.clone();
            rest.remove("type");
            (t, serde_json::Value::Object(rest))
        }
        (None, Some(t), Some(d)) => (t, d.clone()),
        _ => {
            return Err(err(
                line_no,
                "no \"type\" field (expected e.g. {\"type\":\"sample\",\"seq\":1,...})",
            ))
        }
    };
    let kind = kind
        .as_str()
        .ok_or_else(|| err(line_no, "\"type\" must be a string"))?;
    let Some(k) = EventKind::from_name(kind) else {
        return Ok(None); // a newer event kind: skip it
    };
    let bad = |e: serde_json::Error| err(line_no, format!("malformed {kind} event: {e}"));
    Event::from_value(k, data).map(Some).map_err(bad)
}

/// One event as a JSON line (without the newline).
pub fn jsonl_line(ev: &Event) -> String {
    let data = ev.data_json();
    let kind = ev.kind().name();
    match data.strip_prefix('{') {
        Some("}") | None => format!("{{\"type\":\"{kind}\"}}"),
        Some(rest) => format!("{{\"type\":\"{kind}\",{rest}"),
    }
}

/// Writes events as JSON lines.
pub fn write_jsonl<'a, W: fmt::Write>(
    events: impl IntoIterator<Item = &'a Event>,
    out: &mut W,
) -> fmt::Result {
    for ev in events {
        out.write_str(&jsonl_line(ev))?;
        out.write_char('\n')?;
    }
    Ok(())
}

/// Parses a decimal number into an integer count of 10^-`scale` units,
/// exactly (no float rounding for plain decimals); exponent forms go
/// through f64.
fn parse_scaled(s: &str, scale: u32) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.contains(['e', 'E']) {
        let x: f64 = s.parse().ok()?;
        let v = (x * 10f64.powi(scale as i32)).round();
        return (v.is_finite() && v.abs() < 9.0e18).then_some(v as i64);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut v: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut digits = frac.bytes();
    for _ in 0..scale {
        let d = digits.next().map_or(0, |b| i64::from(b - b'0'));
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    // Round half up on the first dropped digit.
    if digits.next().is_some_and(|b| b >= b'5') {
        v = v.checked_add(1)?;
    }
    Some(if neg { -v } else { v })
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
        .trim()
}

#[derive(Debug, Clone, Copy)]
struct CsvCols {
    seq: usize,
    t_send: usize,
    rtt_ms: usize,
    late_ms: Option<usize>,
    width: usize,
}

/// Reads a trace line by line, in either format.
#[derive(Debug, Clone)]
pub struct TraceReader {
    format: Format,
    line: usize,
    cols: Option<CsvCols>,
    prev: Option<(u64, i64)>,
    /// Lines skipped because their event type is unknown to this version.
    pub skipped: u64,
}

impl TraceReader {
    /// A reader for `format`.
    pub fn new(format: Format) -> Self {
        TraceReader {
            format,
            line: 0,
            cols: None,
            prev: None,
            skipped: 0,
        }
    }

    /// The format being read.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Parses the next line, appending its events (none, one, or for CSV
    /// up to three: a gap, the sample, a late reply) to `out`.
    pub fn feed_line(&mut self, line: &str, out: &mut Vec<Event>) -> Result<(), TraceError> {
        self.line += 1;
        match self.format {
            Format::Jsonl => {
                let t = line.trim();
                match parse_jsonl_line(self.line, t)? {
                    Some(ev) => out.push(ev),
                    None if !t.is_empty() && !t.starts_with('#') => self.skipped += 1,
                    None => {}
                }
                Ok(())
            }
            Format::Csv => self.csv_line(line, out),
        }
    }

    /// Checks the end of input: a CSV file needs at least its header.
    pub fn finish(&self) -> Result<(), TraceError> {
        if self.format == Format::Csv && self.cols.is_none() {
            return Err(err(
                self.line.max(1),
                "empty CSV: expected a header with seq,t_send,rtt_ms",
            ));
        }
        Ok(())
    }

    fn csv_line(&mut self, line: &str, out: &mut Vec<Event>) -> Result<(), TraceError> {
        let n = self.line;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            return Ok(());
        }
        let Some(cols) = self.cols else {
            let names: Vec<String> = t
                .split(',')
                .map(|c| unquote(c).to_ascii_lowercase())
                .collect();
            let find = |want: &str| names.iter().position(|c| c == want);
            let (Some(seq), Some(t_send), Some(rtt_ms)) =
                (find("seq"), find("t_send"), find("rtt_ms"))
            else {
                return Err(err(
                    n,
                    format!("CSV header must name seq, t_send and rtt_ms; got {t:?}"),
                ));
            };
            self.cols = Some(CsvCols {
                seq,
                t_send,
                rtt_ms,
                late_ms: find("late_ms"),
                width: names.len(),
            });
            return Ok(());
        };
        let fields: Vec<&str> = t.split(',').map(unquote).collect();
        if fields.len() < cols.width {
            return Err(err(
                n,
                format!(
                    "expected {} columns as in the header, got {}",
                    cols.width,
                    fields.len()
                ),
            ));
        }
        let seq: u64 = fields[cols.seq].parse().map_err(|_| {
            err(
                n,
                format!("seq {:?} is not a whole number", fields[cols.seq]),
            )
        })?;
        let sent_us = parse_scaled(fields[cols.t_send], 6).ok_or_else(|| {
            err(
                n,
                format!("t_send {:?} is not a time in seconds", fields[cols.t_send]),
            )
        })?;
        let ms_to_us = |name: &str, s: &str| -> Result<Option<u32>, TraceError> {
            if s.is_empty() {
                return Ok(None);
            }
            let v = parse_scaled(s, 3)
                .ok_or_else(|| err(n, format!("{name} {s:?} is not a number of ms")))?;
            u32::try_from(v)
                .map(Some)
                .map_err(|_| err(n, format!("{name} {s:?} is out of range")))
        };
        let rtt_us = ms_to_us("rtt_ms", fields[cols.rtt_ms])?;
        let late_us = match cols.late_ms {
            Some(i) => ms_to_us("late_ms", fields[i])?,
            None => None,
        };
        if late_us.is_some() && rtt_us.is_some() {
            return Err(err(n, "late_ms is only for a lost probe (empty rtt_ms)"));
        }
        if let Some((pq, ps)) = self.prev {
            if seq > pq.saturating_add(1) && sent_us > ps {
                let (from, to) = (pq + 1, seq - 1);
                out.push(Event::Gap(Gap {
                    from_id: from,
                    to_id: to,
                    missing: to - from + 1,
                }));
            }
        }
        self.prev = Some((seq, sent_us));
        out.push(Event::Sample(Sample {
            seq,
            sent_us,
            rtt_us,
        }));
        if let Some(r) = late_us {
            out.push(Event::Late(Late { seq, rtt_us: r }));
        }
        Ok(())
    }
}

/// Reads a whole trace, format sniffed from the content.
pub fn read(text: &str) -> Result<Vec<Event>, TraceError> {
    read_as(Format::sniff(text), text)
}

/// Reads a whole trace in the given format.
pub fn read_as(format: Format, text: &str) -> Result<Vec<Event>, TraceError> {
    let mut r = TraceReader::new(format);
    let mut out = Vec::new();
    for line in text.lines() {
        r.feed_line(line, &mut out)?;
    }
    r.finish()?;
    Ok(out)
}

fn write_scaled(out: &mut impl fmt::Write, v: i64, scale: u32) -> fmt::Result {
    let p = 10i64.pow(scale);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let p = p as u64;
    write!(out, "{sign}{}.{:0w$}", a / p, a % p, w = scale as usize)
}

/// Writes the samples and late replies as CSV (`seq,t_send,rtt_ms,late_ms`),
/// one row per probe in send order. Ticks, gaps and overflows have no row.
pub fn write_csv<'a, W: fmt::Write>(
    events: impl IntoIterator<Item = &'a Event>,
    out: &mut W,
) -> fmt::Result {
    struct Row {
        seq: u64,
        sent_us: i64,
        rtt_us: Option<u32>,
        late_us: Option<u32>,
    }
    let mut rows: Vec<Row> = Vec::new();
    // A late reply belongs to the latest sample with its seq.
    let mut by_seq: HashMap<u64, usize> = HashMap::new();
    for ev in events {
        match ev {
            Event::Sample(s) => {
                by_seq.insert(s.seq, rows.len());
                rows.push(Row {
                    seq: s.seq,
                    sent_us: s.sent_us,
                    rtt_us: s.rtt_us,
                    late_us: None,
                });
            }
            Event::Late(l) => {
                if let Some(&i) = by_seq.get(&l.seq) {
                    if rows[i].rtt_us.is_none() {
                        rows[i].late_us = Some(l.rtt_us);
                    }
                }
            }
            // CSV holds probes only; JSONL keeps every event.
            Event::Tick(_)
            | Event::Gap(_)
            | Event::Overflow(_)
            | Event::Clock(_)
            | Event::Announce(_)
            | Event::Skip(_) => {}
        }
    }
    rows.sort_by_key(|r| (r.sent_us, r.seq));
    out.write_str("seq,t_send,rtt_ms,late_ms\n")?;
    for r in &rows {
        write!(out, "{},", r.seq)?;
        write_scaled(out, r.sent_us, 6)?;
        out.write_char(',')?;
        if let Some(v) = r.rtt_us {
            write_scaled(out, i64::from(v), 3)?;
        }
        out.write_char(',')?;
        if let Some(v) = r.late_us {
            write_scaled(out, i64::from(v), 3)?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<Event> {
        vec![
            Event::Sample(Sample {
                seq: 0,
                sent_us: 1_763_000_000_000_000,
                rtt_us: Some(250),
            }),
            Event::Tick(Tick {
                now_us: 1_763_000_000_020_000,
                next_seq: 3,
            }),
            Event::Sample(Sample {
                seq: 2,
                sent_us: 1_763_000_000_020_000,
                rtt_us: Some(1_234_567),
            }),
            Event::Sample(Sample {
                seq: 1,
                sent_us: 1_763_000_000_010_000,
                rtt_us: None,
            }),
            Event::Late(Late {
                seq: 1,
                rtt_us: 1_441_000,
            }),
            Event::Gap(Gap {
                from_id: 5,
                to_id: 6,
                missing: 2,
            }),
            Event::Overflow(Overflow { last_id: 9 }),
        ]
    }

    #[test]
    fn jsonl_round_trips_every_event() {
        let mut s = String::new();
        write_jsonl(&events(), &mut s).unwrap();
        assert!(s.starts_with("{\"type\":\"sample\",\"seq\":0,"));
        assert_eq!(Format::sniff(&s), Format::Jsonl);
        assert_eq!(read(&s).unwrap(), events());
    }

    #[test]
    fn jsonl_accepts_envelopes_ids_comments_and_skips_unknown_types() {
        let text =
            "# a comment\n\n{\"event\":\"late\",\"id\":4,\"data\":{\"seq\":1,\"rtt_us\":9}}\n\
                    {\"type\":\"hologram\",\"mac\":\"x\"}\n\
                    {\"type\":\"sample\",\"id\":7,\"seq\":3,\"sent_us\":5,\"rtt_us\":null}\n";
        let mut r = TraceReader::new(Format::Jsonl);
        let mut out = vec![];
        for l in text.lines() {
            r.feed_line(l, &mut out).unwrap();
        }
        assert_eq!(r.skipped, 1);
        assert_eq!(
            out,
            vec![
                Event::Late(Late { seq: 1, rtt_us: 9 }),
                Event::Sample(Sample {
                    seq: 3,
                    sent_us: 5,
                    rtt_us: None
                })
            ]
        );
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let e = read("{\"type\":\"tick\",\"now_us\":1,\"next_seq\":1}\n{\"type\":\"sample\",\"seq\":\"x\"}\n")
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("malformed sample"), "{e}");
        let e = read("{\"type\":\"tick\",\"now_us\":1,\"next_seq\":1}\nnot json\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = read("{\"seq\":1}\n").unwrap_err();
        assert!(e.to_string().starts_with("line 1: no \"type\""), "{e}");
        let e = read("{\"type\":\"sample\",\"seq\":1,\"sent_us\":2,\"rtt_us\":-3}").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn csv_round_trips_samples_and_late_replies() {
        let mut s = String::new();
        write_csv(&events(), &mut s).unwrap();
        assert_eq!(
            s,
            "seq,t_send,rtt_ms,late_ms\n\
             0,1763000000.000000,0.250,\n\
             1,1763000000.010000,,1441.000\n\
             2,1763000000.020000,1234.567,\n"
        );
        let back = read(&s).unwrap();
        let samples: Vec<_> = events()
            .into_iter()
            .filter(|e| matches!(e, Event::Sample(_) | Event::Late(_)))
            .collect();
        // Rows come back in seq order, each late right after its loss.
        assert_eq!(back, vec![samples[0], samples[2], samples[3], samples[1]]);
    }

    #[test]
    fn csv_columns_in_any_order_extras_ignored_and_missing_rows_become_gaps() {
        let text =
            "host,rtt_ms,seq,t_send\nvm,0.3,10,100.5\n\"vm\",,11,100.51\nvm,1.0005,15,100.55\n";
        let ev = read(text).unwrap();
        assert_eq!(
            ev,
            vec![
                Event::Sample(Sample {
                    seq: 10,
                    sent_us: 100_500_000,
                    rtt_us: Some(300)
                }),
                Event::Sample(Sample {
                    seq: 11,
                    sent_us: 100_510_000,
                    rtt_us: None
                }),
                Event::Gap(Gap {
                    from_id: 12,
                    to_id: 14,
                    missing: 3
                }),
                Event::Sample(Sample {
                    seq: 15,
                    sent_us: 100_550_000,
                    rtt_us: Some(1001)
                }),
            ]
        );
    }

    #[test]
    fn csv_errors_name_the_line() {
        let cases = [
            ("seq,when,rtt\n1,2,3\n", 1, "header"),
            ("seq,t_send,rtt_ms\n1,2,3\nx,2,3\n", 3, "seq"),
            ("seq,t_send,rtt_ms\n1,2,3\n2,yesterday,3\n", 3, "t_send"),
            ("seq,t_send,rtt_ms\n1,2,-3\n", 2, "out of range"),
            ("seq,t_send,rtt_ms\n1,2,abc\n", 2, "rtt_ms"),
            ("seq,t_send,rtt_ms\n1,2\n", 2, "columns"),
            ("seq,t_send,rtt_ms,late_ms\n1,2,3,4\n", 2, "late_ms"),
            ("", 1, "empty"),
        ];
        for (text, line, what) in cases {
            let e = read_as(Format::Csv, text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.msg.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(
            parse_scaled("1763000000.123456", 6),
            Some(1_763_000_000_123_456)
        );
        assert_eq!(parse_scaled("0.2505", 3), Some(251));
        assert_eq!(parse_scaled("12", 3), Some(12_000));
        assert_eq!(parse_scaled(".5", 3), Some(500));
        assert_eq!(parse_scaled("-1.5", 6), Some(-1_500_000));
        assert_eq!(parse_scaled("1.5e3", 3), Some(1_500_000));
        for bad in ["", ".", "1.2.3", "1,5", "nan", "inf", "1e999", "--1"] {
            assert_eq!(parse_scaled(bad, 3), None, "{bad}");
        }
    }
}
