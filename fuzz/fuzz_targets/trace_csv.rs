//! The CSV trace reader (`shared::trace`): no input may panic, and the
//! probes it reads must write back and read again unchanged (CSV keeps
//! probes only, in send order; gaps are re-derived, so they are not
//! compared).
#![no_main]

use libfuzzer_sys::fuzz_target;
use migwatch_shared::trace::{self, Format, TraceReader};
use migwatch_shared::wire::{Event, Sample};

/// Each probe with the late reply that follows it, in send order (a
/// stable sort, as `write_csv` does).
fn rows(events: &[Event]) -> Vec<(Sample, Option<u32>)> {
    let mut out: Vec<(Sample, Option<u32>)> = Vec::new();
    for ev in events {
        match ev {
            Event::Sample(s) => out.push((*s, None)),
            Event::Late(l) => {
                if let Some(last) = out.last_mut() {
                    if last.0.seq == l.seq && last.0.rtt_us.is_none() {
                        last.1 = Some(l.rtt_us);
                    }
                }
            }
            _ => {}
        }
    }
    out.sort_by_key(|(s, _)| (s.sent_us, s.seq));
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut reader = TraceReader::new(Format::Csv);
    let mut events = Vec::new();
    for line in text.lines() {
        if let Err(e) = reader.feed_line(line, &mut events) {
            assert!(e.line >= 1, "errors name a line from 1: {e}");
            return;
        }
    }
    if reader.finish().is_err() {
        return;
    }
    let mut written = String::new();
    trace::write_csv(&events, &mut written).expect("writing to a String");
    let again = trace::read_as(Format::Csv, &written)
        .unwrap_or_else(|e| panic!("own output does not read back: {e}\n{written}"));
    assert_eq!(
        rows(&again),
        rows(&events),
        "round trip changed the probes\n{written}"
    );
});
