//! The `--targets-file` parser, `migwatch_sidecar::targets::parse_targets_file`,
//! and the set check after it: no input may panic; every entry is either a
//! valid target or one message naming `path:line`; the checked set has
//! unique names and addresses within the rate budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migwatch_sidecar::targets::{check_set, parse_targets_file, Defaults, RATE_BUDGET};
use std::collections::HashSet;
use std::time::Duration;

const D: Defaults = Defaults {
    interval: Duration::from_millis(10),
    timeout: Duration::from_secs(1),
    clock_interval: Some(Duration::from_millis(200)),
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((good, bad)) = parse_targets_file("t.toml", text, &D) else {
        return;
    };
    let lines = text.lines().count().max(1) + 1;
    for m in &bad {
        let line: usize = m
            .strip_prefix("t.toml:")
            .and_then(|r| r.split(':').next()?.parse().ok())
            .unwrap_or_else(|| panic!("message without path:line: {m}"));
        assert!((1..=lines).contains(&line), "line {line} of {lines}: {m}");
    }
    for s in &good {
        assert!(!s.name.is_empty() && s.name.len() <= 64, "{s:?}");
        assert!(!s.interval.is_zero() && !s.timeout.is_zero(), "{s:?}");
    }
    let (kept, _why) = check_set(good, RATE_BUDGET);
    let names: HashSet<&str> = kept.iter().map(|s| s.name.as_str()).collect();
    let addrs: HashSet<_> = kept.iter().map(|s| s.address).collect();
    assert_eq!(names.len(), kept.len());
    assert_eq!(addrs.len(), kept.len());
    let rate: f64 = kept.iter().map(|s| s.rate()).sum();
    assert!(rate <= RATE_BUDGET * (1.0 + 1e-9), "rate {rate}");
});
