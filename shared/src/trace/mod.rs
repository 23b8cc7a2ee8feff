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

mod info;
mod order;

pub use info::info_line;
pub use order::Disorder;

use crate::wire::{Event, EventKind, Gap, Info, Late, Sample};
use order::OrderCheck;
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

/// Parses one JSON line. `Ok(None)` for a blank or comment line, or an
/// event type this version does not know.
pub fn parse_jsonl_line(line_no: usize, line: &str) -> Result<Option<Event>, TraceError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    // Fast path: the canonical flattened form as [`jsonl_line`] writes it,
    // `{"type":"kind",<the payload's fields>}`, decoded by the same code as
    // the live stream's events. (A serde internally-tagged enum did this
    // before, at some 20 KB of the page's wasm for a second decoder.)
    if let Some(ev) = parse_canonical(line) {
        return Ok(Some(ev));
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
    if EventKind::from_name(kind).is_none() {
        return Ok(None); // a newer event kind: skip it
    }
    // Decoded from text by the live stream's decoder, not from the
    // `Value`: a second, `Value`-driven copy of every payload's decoder
    // cost the page ~10 KB of wasm, and these forms are rare.
    Event::parse(kind, &data.to_string())
        .map(Some)
        .map_err(|e| err(line_no, without_position(&e.to_string())))
}

/// A serde_json message without its ` at line L column C`: the position
/// is in re-serialized text, not in the file (whose line the error names).
fn without_position(msg: &str) -> &str {
    msg.rsplit_once(" at line ").map_or(msg, |(m, _)| m)
}

/// The event of a line in the canonical flattened form (`"type"` first),
/// or `None` when it is not in that form or does not decode: the slow path
/// then tells why.
fn parse_canonical(line: &str) -> Option<Event> {
    let rest = line.strip_prefix("{\"type\":\"")?;
    let (kind, rest) = rest.split_once('"')?;
    let payload = match rest.strip_prefix(',') {
        Some(fields) => format!("{{{fields}"),
        None if rest == "}" => "{}".to_string(),
        None => return None,
    };
    Event::parse(kind, &payload).ok()
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
/// exactly, exponent forms too (`1.5e3`: the exponent moves the decimal
/// point). No `f64` parse: it would link core's float parser and its 10 KB
/// table into the page (docs/BENCHMARKS.md, page weight).
fn parse_scaled(s: &str, scale: u32) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (s, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let scale = i64::from(scale) + i64::from(exp);
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
    // The digits kept: all of `int` and `scale` of `frac` (zeros past its
    // end); a negative scale drops digits of `int` too.
    let all = int.bytes().chain(frac.bytes());
    let keep = int.len() as i64 + scale;
    let mut v: i64 = 0;
    let mut next = None;
    for (i, b) in all.enumerate() {
        if i as i64 >= keep {
            // Below the kept digits by more than one place (a negative
            // `keep`), the first dropped digit is an implied zero.
            if i as i64 == keep {
                next = Some(b);
            }
            break;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    for _ in (int.len() + frac.len()) as i64..keep {
        v = v.checked_mul(10)?;
    }
    // Round half up on the first dropped digit.
    if next.is_some_and(|b| b >= b'5') {
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
    info: Option<Info>,
    events: u64,
    order: OrderCheck,
}

/// A whole trace: the sidecar's info record if it starts with one, and the
/// events.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The `{"type":"info",...}` record at its head (JSON lines only).
    pub info: Option<Info>,
    /// The events in stream order.
    pub events: Vec<Event>,
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
            info: None,
            events: 0,
            order: OrderCheck::new(),
        }
    }

    /// The sidecar's `/info` from the trace's info record
    /// (`{"type":"info",...}` before the first event), once read: the
    /// probe interval and which channels were live (`capture_iface` set
    /// means announces were watched). Pass it to
    /// [`Detector::apply_info`](crate::detector::Detector::apply_info).
    pub fn info(&self) -> Option<&Info> {
        self.info.as_ref()
    }

    /// The first line that was out of stream order or repeated an
    /// earlier sample, if any: worth a warning, not an error.
    pub fn disorder(&self) -> Option<&Disorder> {
        self.order.first.as_ref()
    }

    /// Lines read so far.
    pub fn lines(&self) -> usize {
        self.line
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
                if info::is_info_line(t) {
                    let i = info::parse_info_line(self.line, t)?;
                    // Only the record at the head describes the trace.
                    if self.events == 0 && self.info.is_none() {
                        self.info = Some(i);
                    }
                    return Ok(());
                }
                match parse_jsonl_line(self.line, t)? {
                    Some(ev) => {
                        self.order.stream_event(self.line, &ev);
                        self.events += 1;
                        out.push(ev);
                    }
                    None if !t.is_empty() && !t.starts_with('#') => self.skipped += 1,
                    None => {}
                }
                Ok(())
            }
            Format::Csv => {
                let before = out.len();
                self.csv_line(line, out)?;
                self.events += (out.len() - before) as u64;
                Ok(())
            }
        }
    }

    /// Checks the end of input: a trace without a single event is an
    /// error, whatever its format (an empty file, only comments, only a
    /// CSV header or an info record).
    pub fn finish(&self) -> Result<(), TraceError> {
        if self.events == 0 {
            return Err(err(
                self.line.max(1),
                "the trace holds no events (expected JSON lines of wire events, or CSV with a seq,t_send,rtt_ms header and rows)",
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
        self.order.csv_row(n, seq, sent_us);
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
    read_trace_as(format, text).map(|t| t.events)
}

/// Reads a whole trace with its info record, format sniffed.
pub fn read_trace(text: &str) -> Result<Trace, TraceError> {
    read_trace_as(Format::sniff(text), text)
}

/// Reads a whole trace with its info record, in the given format.
pub fn read_trace_as(format: Format, text: &str) -> Result<Trace, TraceError> {
    let mut r = TraceReader::new(format);
    let mut out = Vec::new();
    for line in text.lines() {
        r.feed_line(line, &mut out)?;
    }
    r.finish()?;
    Ok(Trace {
        info: r.info,
        events: out,
    })
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
mod tests;
