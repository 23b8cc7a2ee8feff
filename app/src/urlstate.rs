//! What the page's URL (and localStorage) says: which sidecars to follow,
//! single view or grid, the chart window and the history length. A link
//! reproduces the view.
//!
//! `?s=URL&s=URL&view=grid&sel=1&w=5m&h=1h`
//!
//! * `s` (repeatable): a sidecar's base URL. A token for a sidecar started
//!   with `--token` rides inside its URL, as the sidecar expects it:
//!   `s=http://192.0.2.10:8080/?token=SECRET` (percent-encoded as any query
//!   value). No `s`: the list saved in localStorage, else the page's origin.
//! * `view`: `grid` or `single`; `sel`: the index of the target shown in
//!   single view.
//! * `w`: chart window `30s`, `5m` or `1h`.
//! * `h`: history kept per target, `10m`, `1h` or `2h` (default `1h`).
//! * `t`: the name of the target shown in single view, among the targets
//!   of the sidecar `sel` (a sidecar may watch many; the URL names
//!   sidecars, and a target only for the view).
//! * `q`: the grid's filter (words matched against names and labels).
//! * `from`, `to`: an absolute chart range, unix milliseconds (as Grafana
//!   writes them): the chart shows it paused instead of following.
//! * `demo`: replay the bundled recording.
//!
//! Plain Rust, unit tested natively; the browser glue only reads and writes
//! strings.

use crate::viewport::Span;

/// One sidecar to follow: its base URL and optional token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarRef {
    /// `http(s)://host:port[/path]`, no trailing slash, no query.
    pub base: String,
    /// The `?token=` the sidecar asks for, if any.
    pub token: Option<String>,
}

impl SidecarRef {
    /// Parses a sidecar URL as a user types it: `http://h:p`, `h:p`
    /// (http assumed), optionally with `/?token=T`.
    pub fn parse(raw: &str) -> Result<SidecarRef, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("empty sidecar URL".into());
        }
        let lower = raw.to_ascii_lowercase();
        let with_scheme = if lower.starts_with("http://") || lower.starts_with("https://") {
            raw.to_string()
        } else if raw.contains("://") || lower.starts_with("javascript:") {
            return Err(format!("{raw} is not an http(s) URL"));
        } else {
            format!("http://{raw}")
        };
        let (before_frag, _) = with_scheme.split_once('#').unwrap_or((&with_scheme, ""));
        let (path, query) = before_frag.split_once('?').unwrap_or((before_frag, ""));
        let base = path.trim_end_matches('/').to_string();
        let host = base.split_once("://").map_or("", |(_, rest)| rest);
        let host = host.split('/').next().unwrap_or("");
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(format!("{raw} has no host"));
        }
        let token = parse_query(query)
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty());
        Ok(SidecarRef { base, token })
    }

    /// The URL as it goes into `?s=` (and the add box): base plus token.
    pub fn to_param(&self) -> String {
        match &self.token {
            Some(t) => format!("{}/?token={}", self.base, encode(t)),
            None => self.base.clone(),
        }
    }

    /// `base + path`, with the token and `extra` as the query.
    pub fn url(&self, path: &str, extra: &[(&str, String)]) -> String {
        let mut q: Vec<String> = Vec::new();
        if let Some(t) = &self.token {
            q.push(format!("token={}", encode(t)));
        }
        q.extend(extra.iter().map(|(k, v)| format!("{k}={}", encode(v))));
        if q.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{}", self.base, q.join("&"))
        }
    }

    /// `GET /info`.
    pub fn info_url(&self) -> String {
        self.url("/info", &[])
    }

    /// `GET /events`, resuming after `since` when given.
    pub fn events_url(&self, since: Option<u64>) -> String {
        match since {
            Some(id) => self.url("/events", &[("since", id.to_string())]),
            None => self.url("/events", &[]),
        }
    }

    /// `GET /targets`: every target the sidecar watches.
    pub fn targets_url(&self) -> String {
        self.url("/targets", &[])
    }

    /// `GET /metrics`: the sidecar's own lights for all its targets.
    pub fn metrics_url(&self) -> String {
        self.url("/metrics", &[])
    }

    /// `scheme://host:port`: what a browser's per-host connection limit
    /// counts by.
    pub fn origin(&self) -> String {
        let (scheme, rest) = self.base.split_once("://").unwrap_or(("http", &self.base));
        let host = rest.split('/').next().unwrap_or(rest);
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        )
    }

    /// `host:port` for labels.
    pub fn label(&self) -> String {
        self.base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, r)| r)
            .to_string()
    }
}

/// Single target or a grid of all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Grid of tiles with small charts.
    #[default]
    Grid,
    /// One target in detail; the index into the sidecar list.
    Single(usize),
}

/// History kept per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum History {
    /// 10 minutes.
    M10,
    /// One hour (default).
    #[default]
    H1,
    /// Two hours.
    H2,
}

impl History {
    /// Every choice, for the settings menu.
    pub const ALL: [History; 3] = [History::M10, History::H1, History::H2];

    /// Seconds.
    pub fn secs(self) -> f64 {
        match self {
            History::M10 => 600.0,
            History::H1 => 3600.0,
            History::H2 => 7200.0,
        }
    }

    /// `10m`, `1h`, `2h`.
    pub fn name(self) -> &'static str {
        match self {
            History::M10 => "10m",
            History::H1 => "1h",
            History::H2 => "2h",
        }
    }

    /// From its name.
    pub fn from_name(s: &str) -> Option<History> {
        History::ALL.into_iter().find(|h| h.name() == s)
    }
}

/// Everything the URL holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageState {
    /// Sidecars to follow, in order.
    pub sidecars: Vec<SidecarRef>,
    /// `None`: not given (grid for several targets, single for one).
    pub layout: Option<Layout>,
    /// Chart window.
    pub span: Span,
    /// History per target.
    pub history: History,
    /// The target shown in single view, by name.
    pub target: Option<String>,
    /// The grid's filter.
    pub filter: String,
    /// An absolute chart range, unix ms.
    pub range: Option<(i64, i64)>,
    /// Replay the bundled demo recording.
    pub demo: bool,
    /// Targets (by name) whose RTT the detail chart overlays
    /// (`overlay=a,b`, 2 to 4; names hold no comma).
    pub overlay: Vec<String>,
}

/// What [`PageState::parse`] found, plus the values it could not use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// The state.
    pub state: PageState,
    /// One message per unusable value.
    pub errors: Vec<String>,
}

impl PageState {
    /// Reads a query string (with or without the leading `?`). Bad values
    /// are reported and skipped; duplicate sidecars are dropped.
    pub fn parse(query: &str) -> Parsed {
        let mut p = Parsed::default();
        let mut sel = None;
        let mut view = None;
        let (mut from, mut to) = (None, None);
        for (k, v) in parse_query(query) {
            match k.as_str() {
                "s" => match SidecarRef::parse(&v) {
                    Ok(r) if !p.state.sidecars.contains(&r) => p.state.sidecars.push(r),
                    Ok(_) => {}
                    Err(e) => p.errors.push(format!("?s={v}: {e}")),
                },
                "view" => view = Some(v),
                "sel" => sel = v.parse::<usize>().ok(),
                "w" => match Span::from_name(&v) {
                    Some(s) => p.state.span = s,
                    None => p.errors.push(format!("?w={v}: use 30s, 5m or 1h")),
                },
                "h" => match History::from_name(&v) {
                    Some(h) => p.state.history = h,
                    None => p.errors.push(format!("?h={v}: use 10m, 1h or 2h")),
                },
                "t" if !v.is_empty() => p.state.target = Some(v),
                "q" => p.state.filter = v,
                "from" => from = Some(v),
                "to" => to = Some(v),
                "demo" => p.state.demo = true,
                "overlay" => p.state.overlay = crate::chart::parse_overlay(&v),
                _ => {}
            }
        }
        match (from, to) {
            (None, None) => {}
            (Some(a), Some(b)) => match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                (Ok(a), Ok(b)) if a < b => p.state.range = Some((a, b)),
                _ => p.errors.push(format!(
                    "?from={a}&to={b}: use unix milliseconds, from before to"
                )),
            },
            _ => p.errors.push("?from and ?to go together".into()),
        }
        p.state.layout = match view.as_deref() {
            Some("grid") => Some(Layout::Grid),
            Some("single") => Some(Layout::Single(sel.unwrap_or(0))),
            None => sel.map(Layout::Single),
            Some(other) => {
                p.errors.push(format!("?view={other}: use grid or single"));
                None
            }
        };
        p
    }

    /// The query string (with `?`) that reproduces this state; defaults
    /// are left out.
    pub fn to_query(&self) -> String {
        let mut q: Vec<String> = self
            .sidecars
            .iter()
            .map(|s| format!("s={}", encode(&s.to_param())))
            .collect();
        match self.layout {
            Some(Layout::Grid) => q.push("view=grid".into()),
            Some(Layout::Single(i)) => {
                q.push("view=single".into());
                if i > 0 {
                    q.push(format!("sel={i}"));
                }
            }
            None => {}
        }
        if self.span != Span::default() {
            q.push(format!("w={}", self.span.name()));
        }
        if self.history != History::default() {
            q.push(format!("h={}", self.history.name()));
        }
        if let Some(t) = &self.target {
            q.push(format!("t={}", encode(t)));
        }
        if !self.filter.is_empty() {
            q.push(format!("q={}", encode(&self.filter)));
        }
        if let Some((a, b)) = self.range {
            q.push(format!("from={a}&to={b}"));
        }
        if self.demo {
            q.push("demo".into());
        }
        if !self.overlay.is_empty() {
            let names: Vec<String> = self.overlay.iter().map(|n| encode(n)).collect();
            q.push(format!("overlay={}", names.join(",")));
        }
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    }

    /// The layout to use: as given, else single for one target and grid
    /// for several. A selection past the end falls back to the first.
    pub fn effective_layout(&self) -> Layout {
        match self.layout {
            Some(Layout::Single(i)) if i < self.sidecars.len() => Layout::Single(i),
            Some(Layout::Single(_)) => Layout::Single(0),
            Some(Layout::Grid) => Layout::Grid,
            None if self.sidecars.len() > 1 => Layout::Grid,
            None => Layout::Single(0),
        }
    }
}

/// The sidecars saved in localStorage: one URL per line.
pub fn saved_to_string(list: &[SidecarRef]) -> String {
    list.iter()
        .map(SidecarRef::to_param)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads what [`saved_to_string`] wrote, skipping bad lines.
pub fn saved_from_string(s: &str) -> Vec<SidecarRef> {
    let mut out: Vec<SidecarRef> = Vec::new();
    for r in s.lines().filter_map(|l| SidecarRef::parse(l).ok()) {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

/// The sidecars to follow: the URL's, else the saved ones, else the page's
/// origin when it is http(s).
pub fn choose_sidecars(
    from_url: &[SidecarRef],
    saved: &[SidecarRef],
    origin: &str,
) -> Vec<SidecarRef> {
    if !from_url.is_empty() {
        return from_url.to_vec();
    }
    if !saved.is_empty() {
        return saved.to_vec();
    }
    let o = origin.to_ascii_lowercase();
    if o.starts_with("http://") || o.starts_with("https://") {
        SidecarRef::parse(origin)
            .map(|r| vec![r])
            .unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// Splits `a=1&b=2` (leading `?` allowed) into decoded pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-encodes everything but unreserved characters (and `/` and `:`,
/// which are safe in a query value and keep URLs readable).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes (`+` is a space); invalid escapes stay as they are.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: &str, token: Option<&str>) -> SidecarRef {
        SidecarRef {
            base: base.into(),
            token: token.map(String::from),
        }
    }

    #[test]
    fn sidecar_urls_parse_with_and_without_scheme_and_token() {
        assert_eq!(
            SidecarRef::parse("http://192.0.2.5:8080/"),
            Ok(r("http://192.0.2.5:8080", None))
        );
        assert_eq!(
            SidecarRef::parse(" 127.0.0.1:9000 "),
            Ok(r("http://127.0.0.1:9000", None))
        );
        assert_eq!(
            SidecarRef::parse("https://h:1/?token=a%20b&x=1"),
            Ok(r("https://h:1", Some("a b")))
        );
        assert_eq!(
            SidecarRef::parse("http://h/?token="),
            Ok(r("http://h", None))
        );
        assert!(SidecarRef::parse("ftp://h").is_err());
        assert!(SidecarRef::parse("javascript:alert(1)").is_err());
        assert!(SidecarRef::parse("").is_err());
        assert!(SidecarRef::parse("http://").is_err());
    }

    #[test]
    fn sidecar_endpoints_carry_the_token() {
        let a = r("http://h:1", None);
        assert_eq!(a.info_url(), "http://h:1/info");
        assert_eq!(a.events_url(None), "http://h:1/events");
        assert_eq!(a.events_url(Some(42)), "http://h:1/events?since=42");
        let b = r("http://h:1", Some("s&cret"));
        assert_eq!(b.info_url(), "http://h:1/info?token=s%26cret");
        assert_eq!(
            b.events_url(Some(7)),
            "http://h:1/events?token=s%26cret&since=7"
        );
        assert_eq!(b.to_param(), "http://h:1/?token=s%26cret");
        assert_eq!(SidecarRef::parse(&b.to_param()), Ok(b.clone()));
        assert_eq!(b.label(), "h:1");
    }

    #[test]
    fn page_state_round_trips_through_the_query() {
        let st = PageState {
            sidecars: vec![r("http://a:1", None), r("http://b:2", Some("t/k=n"))],
            layout: Some(Layout::Single(1)),
            span: Span::M5,
            history: History::H2,
            target: Some("vm 7".into()),
            filter: "rack=a db".into(),
            range: Some((1_763_000_000_000, 1_763_000_060_000)),
            demo: true,
            overlay: vec!["vm 7".into(), "db-1".into()],
        };
        let q = st.to_query();
        assert_eq!(
            q,
            "?s=http://a:1&s=http://b:2/%3Ftoken%3Dt/k%253Dn&view=single&sel=1&w=5m&h=2h\
             &t=vm%207&q=rack%3Da%20db&from=1763000000000&to=1763000060000&demo\
             &overlay=vm%207,db-1"
        );
        let back = PageState::parse(&q);
        assert_eq!(back.errors, Vec::<String>::new());
        assert_eq!(back.state, st);
        assert_eq!(PageState::default().to_query(), "");
    }

    #[test]
    fn bad_values_are_reported_and_duplicates_dropped() {
        let p = PageState::parse(
            "?s=ftp://x&s=http://a:1&s=http%3A%2F%2Fa%3A1%2F&w=2d&h=5y&view=tiles",
        );
        assert_eq!(p.state.sidecars, vec![r("http://a:1", None)]);
        assert_eq!(p.errors.len(), 4, "{:?}", p.errors);
        assert_eq!(p.state.span, Span::S30);
        assert_eq!(p.state.layout, None);
        for bad in ["?from=5&to=1", "?from=x&to=9", "?from=1"] {
            let p = PageState::parse(bad);
            assert_eq!(p.state.range, None, "{bad}");
            assert_eq!(p.errors.len(), 1, "{bad}: {:?}", p.errors);
        }
    }

    #[test]
    fn layout_defaults_follow_the_target_count() {
        let mut st = PageState::parse("?s=a:1").state;
        assert_eq!(st.effective_layout(), Layout::Single(0));
        st.sidecars.push(r("http://b:2", None));
        assert_eq!(st.effective_layout(), Layout::Grid);
        st.layout = Some(Layout::Single(5));
        assert_eq!(st.effective_layout(), Layout::Single(0));
        assert_eq!(
            PageState::parse("?sel=1").state.layout,
            Some(Layout::Single(1))
        );
    }

    #[test]
    fn sidecars_come_from_url_then_storage_then_origin() {
        let a = vec![r("http://a:1", None)];
        let b = vec![r("http://b:2", Some("x"))];
        assert_eq!(choose_sidecars(&a, &b, "http://o:3"), a);
        assert_eq!(choose_sidecars(&[], &b, "http://o:3"), b);
        assert_eq!(
            choose_sidecars(&[], &[], "http://o:3"),
            vec![r("http://o:3", None)]
        );
        assert!(choose_sidecars(&[], &[], "null").is_empty());
        assert!(choose_sidecars(&[], &[], "file://").is_empty());
        let saved = saved_to_string(&[a[0].clone(), b[0].clone()]);
        assert_eq!(saved_from_string(&saved), vec![a[0].clone(), b[0].clone()]);
        assert_eq!(saved_from_string("junk://\n\nhttp://a:1\nhttp://a:1/"), a);
    }

    #[test]
    fn percent_coding() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd/%C3%A9");
        assert_eq!(decode("a%20b+c%26%zz%"), "a b c&%zz%");
        assert_eq!(decode(&encode("x?y#z%")), "x?y#z%");
    }
}
