//! The JSON-lines trace reader (`shared::trace`), line by line as `detect`
//! and the page feed it: no input may panic, and whatever it reads must
//! write back and read again to the same events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migwatch_shared::trace::{self, Format, TraceReader};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The sniffing whole-file reader must not panic either.
    let _ = trace::read(text);
    let mut reader = TraceReader::new(Format::Jsonl);
    let mut events = Vec::new();
    for line in text.lines() {
        if let Err(e) = reader.feed_line(line, &mut events) {
            assert!(e.line >= 1, "errors name a line from 1: {e}");
            return;
        }
    }
    let mut written = String::new();
    trace::write_jsonl(&events, &mut written).expect("writing to a String");
    let again = trace::read_as(Format::Jsonl, &written)
        .unwrap_or_else(|e| panic!("own output does not read back: {e}\n{written}"));
    assert_eq!(again, events, "round trip changed the events");
});
