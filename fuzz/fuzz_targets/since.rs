//! Where an SSE client resumes, `migwatch_sidecar::http::start_from`
//! (`Last-Event-ID` header, else `?since=`): input is a flag byte, then
//! the header value and the query value split at the first NUL. Empty is
//! live, a whole number resumes after it, anything else is rejected.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migwatch_sidecar::http::start_from;
use migwatch_sidecar::stream::Start;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (h, q) = text.split_once('\0').unwrap_or((text, ""));
    let header = (flags & 1 != 0).then(|| h.to_string());
    let mut query = HashMap::new();
    if flags & 2 != 0 {
        query.insert("since".to_string(), q.to_string());
    }
    let raw = header.clone().or_else(|| query.get("since").cloned());
    let got = start_from(header, &query);
    match raw.as_deref().map(str::trim) {
        None | Some("") => assert!(matches!(got, Ok(Start::Live))),
        Some(s) => match s.parse::<u64>() {
            Ok(n) => assert!(matches!(got, Ok(Start::After(m)) if m == n)),
            Err(_) => assert!(got.is_err()),
        },
    }
});
