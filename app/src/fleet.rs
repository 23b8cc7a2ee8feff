//! Many targets on one page: which target of which sidecar a tile follows
//! (and its URLs), which targets get a live stream within the browser's
//! connection limit, the grid's filter and worst-first order, the sidecar's
//! own lights from `/metrics` for the targets without a stream, and the
//! page-wide memory budget. Plain Rust, unit tested natively.

use crate::urlstate::{encode, SidecarRef};
use migwatch_shared::Light;
use std::collections::BTreeMap;

/// Live event streams per sidecar origin. Browsers open at most 6
/// HTTP/1.1 connections per host (Chromium, Firefox); an `EventSource`
/// holds one for good, so a 7th stream would wait forever and block every
/// `fetch` to that sidecar as well. Five streams leave one connection for
/// `/info`, `/migrations` and `/metrics`.
pub const STREAMS_PER_ORIGIN: usize = 5;

/// Samples the page keeps over all targets together: 1.44 M samples is
/// about 35 MB of chart points (24 bytes each) plus the raw events kept for
/// export. One target gets up to its own [`crate::store::capacity_for`];
/// with many, each gets an equal share (100 targets: 14 400 samples, 24
/// minutes at 10 Hz).
pub const PAGE_SAMPLES: usize = 1_440_000;

/// How often the sidecar's `/metrics` is read for the lights of targets
/// without a stream, ms.
pub const METRICS_POLL_MS: u32 = 2_000;

/// One target of one sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    /// The sidecar serving it.
    pub sidecar: SidecarRef,
    /// Its name in `/targets/{name}/…`; `None` for a sidecar without
    /// `/targets` (older than the fleet protocol): `/info` and `/events`.
    pub name: Option<String>,
}

impl TargetRef {
    fn path(&self, what: &str) -> String {
        match &self.name {
            Some(n) => format!("/targets/{}/{what}", encode_segment(n)),
            None => format!("/{what}"),
        }
    }

    /// Its `/info`.
    pub fn info_url(&self) -> String {
        self.sidecar.url(&self.path("info"), &[])
    }

    /// Its event stream, after id `since` (`0`: everything the sidecar
    /// still holds).
    pub fn events_url(&self, since: u64) -> String {
        self.sidecar
            .url(&self.path("events"), &[("since", since.to_string())])
    }

    /// The sidecar's own detected events for it, newest first.
    pub fn migrations_url(&self) -> String {
        self.sidecar.url(&self.path("migrations"), &[])
    }
}

/// Percent-encodes a path segment: everything but unreserved characters
/// and `:` (names are `[A-Za-z0-9._:-]`, which pass unchanged, so a
/// sidecar need not decode them; the page still never trusts that).
pub fn encode_segment(s: &str) -> String {
    encode(s).replace('/', "%2F")
}

/// Which targets get a live stream: per origin, the selected one first,
/// then the others in page order, up to [`STREAMS_PER_ORIGIN`]. `targets`
/// is `(origin, selected)` per target (`None` origin: not a sidecar, never
/// streamed).
pub fn assign_streams(targets: &[(Option<&str>, bool)]) -> Vec<bool> {
    // Per origin, streams given so far (a list: a page has few origins,
    // and one more map type costs the page weight).
    let mut used: Vec<(&str, usize)> = Vec::new();
    let mut out = vec![false; targets.len()];
    let order = targets
        .iter()
        .enumerate()
        .filter(|(_, t)| t.1)
        .chain(targets.iter().enumerate().filter(|(_, t)| !t.1));
    for (i, (origin, _)) in order {
        if let Some(o) = origin {
            let k = used.iter().position(|u| u.0 == *o).unwrap_or_else(|| {
                used.push((o, 0));
                used.len() - 1
            });
            let n = &mut used[k].1;
            if *n < STREAMS_PER_ORIGIN {
                *n += 1;
                out[i] = true;
            }
        }
    }
    out
}

/// Whether a target matches the grid's filter: every word of `filter`
/// (case-insensitive) is in its name, its address or one of its labels
/// (`key=value`, or the key or value alone). An empty filter matches all.
pub fn matches_filter(
    filter: &str,
    name: &str,
    address: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let hay: Vec<String> = [name.to_ascii_lowercase(), address.to_ascii_lowercase()]
        .into_iter()
        .chain(
            labels
                .iter()
                .map(|(k, v)| format!("{}={}", k.to_ascii_lowercase(), v.to_ascii_lowercase())),
        )
        .collect();
    filter
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .all(|w| hay.iter().any(|h| h.contains(&w)))
}

/// Grid position class, worst first: red 0, yellow 1, no data 2, green 3.
pub fn severity_rank(light: Option<Light>) -> u32 {
    match light {
        Some(Light::Red) => 0,
        Some(Light::Yellow) => 1,
        None => 2,
        Some(Light::Green) => 3,
    }
}

/// The CSS `order` of a tile: worst first, then page order (`index`).
pub fn grid_order(light: Option<Light>, index: usize) -> u32 {
    severity_rank(light) * 100_000 + (index.min(99_999) as u32)
}

/// Whether a Prometheus sample value is 1 (`1`, `1.0`, `+1`, `1e0`,
/// `0.1E1`, …), read exactly as decimal digits: `str::parse::<f64>` would
/// link the standard library's float parser and its 10 KB table into the
/// page for this one comparison.
fn is_one(s: &str) -> bool {
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let s = s.strip_prefix('+').unwrap_or(s);
    let (mant, exp) = s.split_once(['e', 'E']).unwrap_or((s, "0"));
    let (neg, exp) = match exp.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, exp.strip_prefix('+').unwrap_or(exp)),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if exp.is_empty()
        || !all_digits(exp)
        || (int.is_empty() && frac.is_empty())
        || !all_digits(int)
        || !all_digits(frac)
    {
        return false;
    }
    // Capped: no exponent that large brings a plain number back to 1.
    let e = exp
        .bytes()
        .fold(0i64, |a, b| (a * 10 + i64::from(b - b'0')).min(1_000_000));
    let e = if neg { -e } else { e };
    // The significant digits, and the power of ten of the first one.
    let digits = [int, frac].concat();
    let Some(first) = digits.find(|c| c != '0') else {
        return false;
    };
    digits[first..].trim_end_matches('0') == "1" && int.len() as i64 - 1 - first as i64 + e == 0
}

/// Reads `migwatch_light{target="NAME",light="red"} 1` lines of a
/// Prometheus text exposition: the light each target is at (the one whose
/// gauge is 1), by name; the last line of a name wins. Other lines, and
/// unparsable ones, are skipped. (A sorted list, not a map: one more map
/// type costs the page weight.)
pub fn lights_from_metrics(text: &str) -> Vec<(String, Light)> {
    let mut out: Vec<(String, Light)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("migwatch_light{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        if !is_one(value.trim()) {
            continue;
        }
        let labels = parse_labels(labels);
        let light = match labels.get("light").map(String::as_str) {
            Some("green") => Light::Green,
            Some("yellow") => Light::Yellow,
            Some("red") => Light::Red,
            _ => continue,
        };
        if let Some(t) = labels.get("target") {
            match out.binary_search_by(|(n, _)| n.as_str().cmp(t)) {
                Ok(k) => out[k].1 = light,
                Err(k) => out.insert(k, (t.clone(), light)),
            }
        }
    }
    out
}

/// `a="x",b="y\"z"` → map (Prometheus label escapes `\\`, `\"`, `\n`).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let key: String = chars
            .by_ref()
            .skip_while(|c| *c == ',' || c.is_whitespace())
            .take_while(|c| *c != '=')
            .collect();
        if key.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(o) => val.push(o),
                    None => break,
                },
                o => val.push(o),
            }
        }
        out.insert(key.trim().to_string(), val);
    }
    out
}

/// A target's ring size: its own need, within an equal share of
/// [`PAGE_SAMPLES`] among `targets`, never below 1 000 samples.
pub fn share_capacity(own: usize, targets: usize) -> usize {
    own.min((PAGE_SAMPLES / targets.max(1)).max(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_read_in_every_spelling() {
        for s in [
            "1", "+1", "1.", "1.0", "01.000", ".1e1", "0.1E1", "10e-1", "100E-2", "1e+0",
        ] {
            assert!(is_one(s), "{s}");
        }
        for s in [
            "0", "", ".", "e", "1e", "2", "11", "0.1", "1e1", "-1", "NaN", "inf", "1x", "1.0.0",
            "1e1.5",
        ] {
            assert!(!is_one(s), "{s}");
        }
    }

    fn sc(base: &str, token: Option<&str>) -> SidecarRef {
        SidecarRef {
            base: base.into(),
            token: token.map(String::from),
        }
    }

    #[test]
    fn target_urls_name_the_target_and_keep_the_token() {
        let t = TargetRef {
            sidecar: sc("http://h:1", Some("k")),
            name: Some("vm a/1".into()),
        };
        assert_eq!(t.info_url(), "http://h:1/targets/vm%20a%2F1/info?token=k");
        assert_eq!(
            t.events_url(0),
            "http://h:1/targets/vm%20a%2F1/events?token=k&since=0"
        );
        assert_eq!(
            t.migrations_url(),
            "http://h:1/targets/vm%20a%2F1/migrations?token=k"
        );
        let old = TargetRef {
            sidecar: sc("http://h:1", None),
            name: None,
        };
        assert_eq!(old.info_url(), "http://h:1/info");
        assert_eq!(old.events_url(41), "http://h:1/events?since=41");
        assert_eq!(old.migrations_url(), "http://h:1/migrations");
        let ip = TargetRef {
            sidecar: sc("http://h:1", None),
            name: Some("198.18.0.2".into()),
        };
        assert_eq!(ip.info_url(), "http://h:1/targets/198.18.0.2/info");
        assert_eq!(encode_segment("fd00::1"), "fd00::1");
    }

    #[test]
    fn origin_is_what_the_connection_limit_counts() {
        assert_eq!(sc("http://H:1/x/y", None).origin(), "http://h:1");
        assert_eq!(sc("https://a", None).origin(), "https://a");
    }

    #[test]
    fn streams_go_to_the_selected_target_first_then_in_order_per_origin() {
        let a = Some("http://a:1");
        let b = Some("http://b:1");
        let mut ts: Vec<(Option<&str>, bool)> = vec![(a, false); 8];
        ts.push((b, false));
        ts.push((None, false));
        ts[7].1 = true;
        let got = assign_streams(&ts);
        assert_eq!(
            got,
            vec![true, true, true, true, false, false, false, true, true, false]
        );
        assert_eq!(got.iter().filter(|x| **x).count(), STREAMS_PER_ORIGIN + 1);
        // Few targets: all stream.
        assert_eq!(assign_streams(&[(a, false), (b, true)]), vec![true, true]);
    }

    #[test]
    fn filter_matches_words_in_name_address_and_labels() {
        let mut l = BTreeMap::new();
        l.insert("rack".to_string(), "A7".to_string());
        l.insert("role".to_string(), "db".to_string());
        assert!(matches_filter("", "vm-1", "198.18.0.2", &l));
        assert!(matches_filter("VM-1", "vm-1", "198.18.0.2", &l));
        assert!(matches_filter("rack=a7", "vm-1", "198.18.0.2", &l));
        assert!(matches_filter("db vm", "vm-1", "198.18.0.2", &l));
        assert!(matches_filter("198.18", "vm-1", "198.18.0.2", &l));
        assert!(!matches_filter("db web", "vm-1", "198.18.0.2", &l));
        assert!(!matches_filter("rack=b", "vm-1", "198.18.0.2", &l));
    }

    #[test]
    fn grid_puts_the_worst_first_and_keeps_page_order_within_a_light() {
        let mut v = [
            (Some(Light::Green), 0),
            (None, 1),
            (Some(Light::Red), 2),
            (Some(Light::Yellow), 3),
            (Some(Light::Red), 4),
        ];
        v.sort_by_key(|(l, i)| grid_order(*l, *i));
        let idx: Vec<usize> = v.iter().map(|x| x.1).collect();
        assert_eq!(idx, vec![2, 4, 3, 1, 0]);
    }

    #[test]
    fn metrics_give_each_targets_light() {
        let text = "# HELP migwatch_light The light\n\
            # TYPE migwatch_light gauge\n\
            migwatch_light{target=\"vm-1\",light=\"green\"} 1\n\
            migwatch_light{target=\"vm-1\",light=\"yellow\"} 0\n\
            migwatch_light{target=\"vm-1\",light=\"red\"} 0\n\
            migwatch_light{light=\"red\",target=\"v\\\"2\"} 1\n\
            migwatch_light{target=\"vm-3\",light=\"blue\"} 1\n\
            migwatch_light{target=\"vm-4\",light=\"yellow\"} 1\n\
            migwatch_up 1\n\
            migwatch_light{broken\n";
        let m = lights_from_metrics(text);
        assert_eq!(
            m,
            vec![
                ("v\"2".to_string(), Light::Red),
                ("vm-1".to_string(), Light::Green),
                ("vm-4".to_string(), Light::Yellow),
            ]
        );
    }

    #[test]
    fn capacity_is_shared_within_the_page_budget() {
        assert_eq!(share_capacity(36_000, 1), 36_000);
        assert_eq!(share_capacity(36_000, 100), 14_400);
        assert_eq!(share_capacity(36_000, 10_000), 1_000);
        assert_eq!(share_capacity(36_000, 0), 36_000);
    }
}
