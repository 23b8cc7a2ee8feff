//! Log lines through `tracing`: text or JSON on stderr, filtered like
//! `RUST_LOG` (default `info`).

use crate::http::args::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. A bad `RUST_LOG` falls back to `info`
/// and says so.
pub fn init(format: LogFormat) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match EnvFilter::try_new(&v) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new("info"),
                Some(format!(
                    "RUST_LOG={v:?} is not a valid filter ({e}); logging at info"
                )),
            ),
        },
        _ => (EnvFilter::new("info"), None),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => b.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => b.json().flatten_event(true).try_init(),
    };
    if let Some(msg) = bad {
        tracing::warn!("{msg}");
    }
}
