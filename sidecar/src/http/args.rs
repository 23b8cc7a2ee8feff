//! The serving flags: names, timeouts, the connection cap, TLS and logs.

use crate::cli::parse_duration;
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of the HTTP side (flattened into the sidecar's flags).
#[derive(Debug, Clone, ClapArgs)]
pub struct HttpArgs {
    /// Another name this sidecar is reached by (repeatable), as browsers
    /// send it in `Host`: requests for any other name are refused (421), so
    /// a DNS-rebinding page cannot read it. The listen address, `localhost`
    /// and loopback addresses (when on loopback) are always allowed; `*`
    /// turns the check off (behind a proxy that checks names itself).
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<String>,

    /// Close a connection with no request in progress that sends nothing
    /// for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Close a connection whose request headers (or TLS handshake) are
    /// not complete this long after their first byte.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Most connections open at once. When all are taken, the one idle the
    /// longest is closed to make room; when none is idle, new connections
    /// are refused (503).
    #[arg(long, value_name = "N", default_value = "1024", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Log lines as `text` or `json` (one object a line); which lines is
    /// set by RUST_LOG (e.g. `info`, `migwatch_sidecar=debug`).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Config-file keys of these flags (see [`crate::cli::config_to_flags`]).
pub const CONFIG_KEYS: [&str; 7] = [
    "allow-host",
    "idle-timeout",
    "header-timeout",
    "max-connections",
    "tls-cert",
    "tls-key",
    "log-format",
];
