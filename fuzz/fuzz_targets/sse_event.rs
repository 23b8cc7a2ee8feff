//! The SSE event decoder the page and every client use,
//! `shared::wire::Event::parse(kind, data)`: input is `KIND\nDATA`. No
//! input may panic, and an event it accepts must encode and decode to
//! itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migwatch_shared::wire::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (kind, body) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(ev) = Event::parse(kind, body) else {
        return;
    };
    let again = Event::parse(ev.kind().name(), &ev.data_json())
        .unwrap_or_else(|e| panic!("own encoding does not decode: {e}"));
    assert_eq!(again, ev);
    // The SSE framing carries the data on one line.
    let mut sse = String::new();
    ev.write_sse(7, &mut sse);
    let data_lines = sse.lines().filter(|l| l.starts_with("data:")).count();
    assert_eq!(data_lines, 1, "{sse:?}");
});
