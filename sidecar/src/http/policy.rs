//! Who may talk to the sidecar, decided before any route runs: the `Host`
//! check (against DNS rebinding), CORS (which other pages may read it), and
//! the headers every answer carries.

use std::net::{IpAddr, SocketAddr};
use warp::http::{header, HeaderMap, HeaderValue};

/// Which `Host` header values name this sidecar.
///
/// A DNS-rebinding page reaches the sidecar under the attacker's own name,
/// and the browser sends that name as `Host`; refusing names the operator
/// did not list stops it. An IP literal cannot be rebound, so the listen
/// address (any address when listening on all of them) is always allowed.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    any: bool,
    listen: IpAddr,
    names: Vec<String>,
}

/// The host part of a `Host` header or URL authority: `[::1]:80` → `::1`,
/// `Name.:80` → `name`.
pub fn host_name(authority: &str) -> Option<String> {
    let a = authority.trim();
    let host = if let Some(rest) = a.strip_prefix('[') {
        rest.split_once(']')?.0
    } else {
        match a.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => a,
        }
    };
    let host = host.trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

impl HostPolicy {
    /// Allows the listen address, `localhost`, loopback addresses when on
    /// loopback, and `allowed` names (`*` turns the check off).
    pub fn new(listen: SocketAddr, allowed: &[String]) -> HostPolicy {
        HostPolicy {
            any: allowed.iter().any(|h| h.trim() == "*"),
            listen: listen.ip(),
            names: allowed.iter().filter_map(|h| host_name(h)).collect(),
        }
    }

    /// Whether a request with this `Host` (or `:authority`) may be served.
    pub fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let Some(name) = host_name(host) else {
            return false;
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.listen.is_unspecified()
                || ip == self.listen
                || (self.listen.is_loopback() && ip.is_loopback());
        }
        name == "localhost" || self.names.contains(&name)
    }
}

/// The origins whose pages may read this sidecar (CORS).
#[derive(Debug, Clone)]
pub struct Cors {
    any: bool,
    origins: Vec<String>,
}

/// Request headers a page may send across origins: the browser's resume
/// header, and the token as a Bearer header.
pub const ALLOWED_HEADERS: [&str; 3] = ["last-event-id", "cache-control", "authorization"];

fn normalize_origin(o: &str) -> String {
    o.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl Cors {
    /// `*` among `origins` allows any origin.
    pub fn new(origins: &[String]) -> Cors {
        Cors {
            any: origins.iter().any(|o| o.trim() == "*"),
            origins: origins.iter().map(|o| normalize_origin(o)).collect(),
        }
    }

    /// Whether a page from `origin` may read answers. `own` is the
    /// sidecar's origin as this request reached it (`scheme://Host`): a
    /// page the sidecar served itself always may.
    pub fn allows(&self, origin: &str, own: &str) -> bool {
        let o = normalize_origin(origin);
        self.any || o == normalize_origin(own) || self.origins.contains(&o)
    }
}

/// Adds what every answer carries: `Vary: Origin` (answers differ by
/// origin, so caches must not mix them), CORS for an allowed origin, and
/// the content-type and referrer hardening.
pub fn decorate(headers: &mut HeaderMap, allowed_origin: Option<&HeaderValue>) {
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = allowed_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The headers of a CORS preflight answer for an allowed origin.
pub fn preflight(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("last-event-id, cache-control, authorization"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(listen: &str, allow: &[&str]) -> HostPolicy {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        HostPolicy::new(listen.parse().unwrap(), &allow)
    }

    #[test]
    fn host_names_are_split_from_ports() {
        assert_eq!(host_name("a.example:8080").as_deref(), Some("a.example"));
        assert_eq!(host_name("A.Example.").as_deref(), Some("a.example"));
        assert_eq!(host_name("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(host_name("[::1]").as_deref(), Some("::1"));
        assert_eq!(host_name("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_name(""), None);
        assert_eq!(host_name(":80"), None);
        assert_eq!(host_name("[::1"), None);
    }

    #[test]
    fn loopback_listener_allows_loopback_and_localhost_only() {
        let h = p("127.0.0.1:8080", &[]);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "127.0.0.1",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "192.0.2.1:8080",
            "",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn a_specific_address_allows_itself_and_listed_names() {
        let h = p("192.0.2.10:8080", &["mon.example", "Other.Example:443"]);
        assert!(h.allows("192.0.2.10:8080"));
        assert!(!h.allows("192.0.2.11:8080"));
        assert!(!h.allows("127.0.0.1:8080"));
        assert!(h.allows("mon.example:8080"));
        assert!(h.allows("other.example"));
        assert!(!h.allows("rebind.example"));
    }

    #[test]
    fn all_addresses_allow_any_ip_literal_and_star_allows_anything() {
        let h = p("0.0.0.0:8080", &[]);
        assert!(h.allows("192.0.2.99:8080"));
        assert!(h.allows("[2001:db8::1]:8080"));
        assert!(!h.allows("evil.example"));
        assert!(p("127.0.0.1:1", &["*"]).allows("evil.example"));
    }

    #[test]
    fn cors_allows_listed_and_own_origins() {
        let c = Cors::new(&["http://192.0.2.10:8080/".to_string()]);
        assert!(c.allows("http://192.0.2.10:8080", "http://127.0.0.1:1"));
        assert!(c.allows("https://mon.example", "https://mon.example"));
        assert!(!c.allows("http://evil.example", "http://127.0.0.1:1"));
        assert!(Cors::new(&["*".to_string()]).allows("http://x", "http://y"));
    }
}
