//! Who may read: the token, given as `?token=T` (what `EventSource` can
//! send) or `Authorization: Bearer T` (what `fetch`, curl and Prometheus
//! send), and where the sidecar's own copy comes from.

use std::path::Path;
use std::sync::Arc;

/// Compares in time that depends only on the lengths, so the token cannot
/// be guessed byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token in an `Authorization` header value, if it is a Bearer one
/// (the scheme is case-insensitive, RFC 9110 §11.1).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let t = rest.trim();
    (!t.is_empty()).then_some(t)
}

/// True when either the query's token or the Bearer header's equals
/// `expected`. Both are compared, each in constant time.
pub fn authorized(expected: &str, query_token: Option<&str>, authorization: Option<&str>) -> bool {
    let q = query_token.is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()));
    let h = authorization
        .and_then(bearer)
        .is_some_and(|t| constant_time_eq(t.as_bytes(), expected.as_bytes()));
    q | h
}

/// Where the token came from, for the start-up log (never the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token` on the command line: visible in `/proc/PID/cmdline`.
    CommandLine,
    /// `MIGWATCH_TOKEN` in the environment (or `token` in a config file).
    Environment,
    /// `--token-file`.
    File,
}

/// The token, where it came from, and warnings to log.
#[derive(Debug)]
pub struct Token {
    /// The secret clients must present.
    pub value: Arc<str>,
    /// Where it was read.
    pub source: TokenSource,
    /// Things the operator should fix (a token in the process list, a
    /// token file others can read).
    pub warnings: Vec<String>,
}

/// Resolves the token from `--token`/`MIGWATCH_TOKEN` (`flag`, as clap
/// merged them) and `--token-file`. `argv` is the real command line, to
/// tell a `--token` others can read in `/proc/PID/cmdline` from the
/// environment variable.
pub fn resolve(
    flag: Option<&str>,
    file: Option<&Path>,
    argv: &[String],
) -> Result<Option<Token>, String> {
    let on_cmdline = argv
        .iter()
        .any(|a| a == "--token" || a.starts_with("--token="));
    let (value, source, mut warnings) = match (flag, file) {
        (Some(t), _) => {
            let mut w = Vec::new();
            let source = if on_cmdline {
                w.push(
                    "--token on the command line is visible to every local user in /proc/PID/cmdline; \
                     set MIGWATCH_TOKEN in the environment or use --token-file instead"
                        .to_string(),
                );
                TokenSource::CommandLine
            } else {
                TokenSource::Environment
            };
            (t.trim().to_string(), source, w)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
            let mut w = Vec::new();
            if let Some(mode) = file_mode(path) {
                if mode & 0o044 != 0 {
                    w.push(format!(
                        "--token-file {} is readable by group or others (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    ));
                }
            }
            let first = text.lines().next().unwrap_or("").trim().to_string();
            (first, TokenSource::File, w)
        }
        (None, None) => return Ok(None),
    };
    if value.is_empty() {
        return Err(match source {
            TokenSource::File => {
                "the token is empty: the first line of --token-file is blank".into()
            }
            _ => "the token is empty: give a non-empty --token, MIGWATCH_TOKEN or --token-file"
                .into(),
        });
    }
    warnings.shrink_to_fit();
    Ok(Some(Token {
        value: Arc::from(value),
        source,
        warnings,
    }))
}

fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_headers_parse() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic YWxhZGRpbjpvcGVu"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer(""), None);
    }

    #[test]
    fn either_way_of_presenting_works() {
        assert!(authorized("t", Some("t"), None));
        assert!(authorized("t", None, Some("Bearer t")));
        assert!(authorized("t", Some("wrong"), Some("Bearer t")));
        assert!(!authorized("t", Some("wrong"), Some("Bearer nope")));
        assert!(!authorized("t", None, Some("Basic t")));
        assert!(!authorized("t", None, None));
    }

    #[test]
    fn token_sources_and_warnings() {
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let t = resolve(Some("s"), None, &argv(&["x", "--token", "s"]))
            .unwrap()
            .unwrap();
        assert_eq!(t.source, TokenSource::CommandLine);
        assert!(t.warnings[0].contains("/proc/PID/cmdline"));
        let t = resolve(Some("s"), None, &argv(&["x"])).unwrap().unwrap();
        assert_eq!(t.source, TokenSource::Environment);
        assert!(t.warnings.is_empty());
        assert!(resolve(Some(" "), None, &argv(&["x"])).is_err());
        assert!(resolve(None, None, &argv(&["x"])).unwrap().is_none());

        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mw-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "abc\nignored\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let t = resolve(None, Some(&f), &argv(&["x"])).unwrap().unwrap();
        assert_eq!(&*t.value, "abc");
        assert!(t.warnings[0].contains("chmod 600"), "{:?}", t.warnings);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let t = resolve(None, Some(&f), &argv(&["x"])).unwrap().unwrap();
        assert!(t.warnings.is_empty());
        let e = resolve(None, Some(&dir.join("nope")), &argv(&["x"])).unwrap_err();
        assert!(e.contains("--token-file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
