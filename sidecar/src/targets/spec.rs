//! What to probe: one [`TargetSpec`] per target, from `--target` flags and
//! the `--targets-file`, checked here once so the prober only ever sees
//! valid, unique targets within the rate budget.
//!
//! A bad entry in the targets file is reported with its line and skipped;
//! the other entries still run. Only a file that is not TOML at all (or
//! cannot be read) is refused whole: on SIGHUP the old set then stays.

use crate::cli::{parse_clock_interval, parse_interval, parse_target, parse_timeout};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Echo plus timestamp probes per second the one prober thread holds for
/// all targets together. Measured (docs/BENCHMARKS.md): a single target is
/// on time with 0 loss up to 20 kHz on this 2-vCPU machine; the fleet
/// prober held 1000 targets × 10 Hz plus their 5 Hz timestamp probes
/// (15 k/s). A set above this is refused, not run late.
pub const RATE_BUDGET: f64 = 20_000.0;

/// The longest a target's name may be (it is a URL path segment and a
/// Prometheus label value).
pub const NAME_MAX: usize = 64;

/// Per-target settings a target inherits unless it sets its own: the
/// command line's `--interval`, `--timeout` and `--clock-interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// Time between echo probes.
    pub interval: Duration,
    /// How long a probe waits for its reply.
    pub timeout: Duration,
    /// Time between timestamp probes, `None` when off.
    pub clock_interval: Option<Duration>,
}

/// One target, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Unique name: `[A-Za-z0-9._:-]{1,64}`; the address unless set.
    pub name: String,
    /// The address probed.
    pub address: Ipv4Addr,
    /// Free-form labels (Prometheus label names as keys).
    pub labels: BTreeMap<String, String>,
    /// Time between echo probes.
    pub interval: Duration,
    /// How long a probe waits for its reply.
    pub timeout: Duration,
    /// Time between timestamp probes, `None` when off.
    pub clock_interval: Option<Duration>,
}

impl TargetSpec {
    /// A target from `--target ADDR` with the command line's settings.
    pub fn from_address(address: Ipv4Addr, d: &Defaults) -> TargetSpec {
        TargetSpec {
            name: address.to_string(),
            address,
            labels: BTreeMap::new(),
            interval: d.interval,
            timeout: d.timeout,
            clock_interval: d.clock_interval,
        }
    }

    /// Probes per second this target costs (echo plus timestamp).
    pub fn rate(&self) -> f64 {
        1.0 / self.interval.as_secs_f64()
            + self.clock_interval.map_or(0.0, |c| 1.0 / c.as_secs_f64())
    }
}

/// Whether `name` can be a target's name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Whether `key` can be a label name (Prometheus' rule, and not one the
/// sidecar sets itself).
fn valid_label(key: &str) -> bool {
    let mut b = key.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !key.starts_with("__")
        && !matches!(key, "target" | "address" | "light" | "le")
}

/// One `[[target]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    address: String,
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    interval: Option<String>,
    clock_interval: Option<String>,
    timeout: Option<String>,
}

/// The whole file: `[[target]]` entries and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    target: Vec<toml::Spanned<toml::Value>>,
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The first line of a toml/serde error, without its position noise.
fn first_line(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    // toml's messages are "TOML parse error at line L, column C", the
    // source line, a caret, then the reason: keep the first and the last.
    match lines.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first}: {last}"),
    }
}

fn entry(e: Entry, d: &Defaults) -> Result<TargetSpec, String> {
    let address = parse_target(&e.address).map_err(|m| format!("`address`: {m}"))?;
    let name = e.name.unwrap_or_else(|| address.to_string());
    if !valid_name(&name) {
        return Err(format!(
            "`name` {name:?} must be 1 to {NAME_MAX} characters of A-Z a-z 0-9 . _ : -"
        ));
    }
    if let Some(k) = e.labels.keys().find(|k| !valid_label(k)) {
        return Err(format!(
            "label {k:?} must be a Prometheus label name ([A-Za-z_][A-Za-z0-9_]*, not target, address, light or le)"
        ));
    }
    let field = |key: &str, v: Option<String>, f: fn(&str) -> Result<Duration, String>| {
        v.map(|s| f(&s).map_err(|m| format!("`{key}`: {m}")))
            .transpose()
    };
    let interval = field("interval", e.interval, parse_interval)?.unwrap_or(d.interval);
    let timeout = field("timeout", e.timeout, parse_timeout)?.unwrap_or(d.timeout);
    let clock_interval = match e.clock_interval {
        None => d.clock_interval,
        Some(s) => {
            parse_clock_interval(&s)
                .map_err(|m| format!("`clock_interval`: {m}"))?
                .0
        }
    };
    if timeout.as_secs_f64() / interval.as_secs_f64() > 32_768.0 {
        return Err(format!(
            "timeout {timeout:?} is more than 32768 intervals of {interval:?}"
        ));
    }
    Ok(TargetSpec {
        name,
        address,
        labels: e.labels,
        interval,
        timeout,
        clock_interval,
    })
}

/// Parses a targets file. `Err` only when the file is not TOML of the
/// right shape at all; otherwise the good entries, and one message per
/// bad entry naming `path:line`.
pub fn parse_targets_file(
    path: &str,
    text: &str,
    d: &Defaults,
) -> Result<(Vec<TargetSpec>, Vec<String>), String> {
    let file: File =
        toml::from_str(text).map_err(|e| format!("targets file {path}: {}", first_line(&e)))?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for t in file.target {
        let line = line_of(text, t.span().start);
        let parsed = t
            .into_inner()
            .try_into::<Entry>()
            .map_err(|e| first_line(&e))
            .and_then(|e| entry(e, d));
        match parsed {
            Ok(spec) => good.push(spec),
            Err(m) => bad.push(format!("{path}:{line}: [[target]] skipped: {m}")),
        }
    }
    Ok((good, bad))
}

/// Checks a whole set: names and addresses unique, and the total rate
/// within [`RATE_BUDGET`]. The first of two duplicates wins; entries past
/// the budget are refused. Returns the set kept and why each other went.
pub fn check_set(specs: Vec<TargetSpec>, budget: f64) -> (Vec<TargetSpec>, Vec<String>) {
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    let mut kept = Vec::with_capacity(specs.len());
    let mut why = Vec::new();
    let mut rate = 0.0;
    for s in specs {
        if !names.insert(s.name.clone()) {
            why.push(format!("target {:?} skipped: the name is taken", s.name));
        } else if !addrs.insert(s.address) {
            why.push(format!(
                "target {:?} skipped: {} is already probed under another name",
                s.name, s.address
            ));
        } else if rate + s.rate() > budget {
            why.push(format!(
                "target {:?} skipped: it would take the probe rate to {:.0}/s, over the \
                 budget of {budget:.0}/s (echo plus timestamp probes, all targets): \
                 lengthen some intervals",
                s.name,
                rate + s.rate()
            ));
        } else {
            rate += s.rate();
            kept.push(s);
        }
    }
    (kept, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Defaults = Defaults {
        interval: Duration::from_millis(10),
        timeout: Duration::from_secs(1),
        clock_interval: Some(Duration::from_millis(200)),
    };

    #[test]
    fn entries_inherit_defaults_and_override_them() {
        let text = r#"
[[target]]
address = "198.18.0.2"

[[target]]
address = "198.18.0.3"
name = "web-1"
labels = { rack = "a", role = "web" }
interval = "100ms"
clock_interval = "off"
timeout = "500ms"
"#;
        let (good, bad) = parse_targets_file("t.toml", text, &D).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            good[0],
            TargetSpec::from_address("198.18.0.2".parse().unwrap(), &D)
        );
        assert_eq!(good[1].name, "web-1");
        assert_eq!(good[1].labels["rack"], "a");
        assert_eq!(good[1].interval, Duration::from_millis(100));
        assert_eq!(good[1].clock_interval, None);
        assert_eq!(good[1].timeout, Duration::from_millis(500));
    }

    #[test]
    fn a_bad_entry_is_skipped_with_its_line_and_the_rest_kept() {
        let text = "[[target]]\naddress = \"198.18.0.2\"\n\n[[target]]\naddress = \"224.0.0.1\"\n\n[[target]]\naddress = \"198.18.0.4\"\nintervall = \"5ms\"\n\n[[target]]\naddress = \"198.18.0.5\"\nname = \"a b\"\n\n[[target]]\naddress = \"198.18.0.6\"\ninterval = \"1us\"\n\n[[target]]\naddress = \"198.18.0.7\"\nlabels = { target = \"x\" }\n";
        let (good, bad) = parse_targets_file("t.toml", text, &D).unwrap();
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 5, "{bad:?}");
        assert!(
            bad[0].starts_with("t.toml:4:") && bad[0].contains("224.0.0.1"),
            "{}",
            bad[0]
        );
        assert!(
            bad[1].starts_with("t.toml:7:") && bad[1].contains("intervall"),
            "{}",
            bad[1]
        );
        assert!(
            bad[2].starts_with("t.toml:11:") && bad[2].contains("name"),
            "{}",
            bad[2]
        );
        assert!(
            bad[3].starts_with("t.toml:15:") && bad[3].contains("interval"),
            "{}",
            bad[3]
        );
        assert!(
            bad[4].starts_with("t.toml:19:") && bad[4].contains("label"),
            "{}",
            bad[4]
        );
    }

    #[test]
    fn a_file_that_is_not_toml_is_refused_whole() {
        let e = parse_targets_file("t.toml", "[[target]\naddress=", &D).unwrap_err();
        assert!(e.starts_with("targets file t.toml:"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        let e = parse_targets_file("t.toml", "targets = []", &D).unwrap_err();
        assert!(e.contains("targets"), "{e}");
    }

    #[test]
    fn duplicates_and_the_rate_budget_are_refused() {
        let a = TargetSpec::from_address("198.18.0.2".parse().unwrap(), &D);
        let mut b = TargetSpec::from_address("198.18.0.3".parse().unwrap(), &D);
        b.name = a.name.clone();
        let mut c = a.clone();
        c.name = "other".into();
        let d = TargetSpec::from_address("198.18.0.4".parse().unwrap(), &D);
        // Each costs 100 + 5 probes/s: a budget of 200 holds one.
        let (kept, why) = check_set(vec![a.clone(), b, c, d], 200.0);
        assert_eq!(kept, vec![a]);
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[0].contains("name is taken"));
        assert!(why[1].contains("already probed"));
        assert!(why[2].contains("budget"));
    }

    #[test]
    fn names_are_url_and_label_safe() {
        for good in ["198.18.0.2", "vm-1", "a_b:c.d", &"x".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
