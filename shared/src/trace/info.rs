//! The sidecar's `/info` at the head of a JSON-lines trace:
//! `{"type":"info","target":"…","interval_ms":10,…}`. It says which
//! channels were live while the trace was recorded (a `capture_iface`
//! means announces were watched, so a missing one means something), and
//! the probe interval. The page's export and the lab write it; older
//! readers skip it as an unknown type.

use super::{err, TraceError};
use crate::wire::Info;

/// Whether a JSON line is an info record, cheaply (no full parse).
pub(super) fn is_info_line(line: &str) -> bool {
    line.contains("\"info\"")
        && serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(|t| t == "info"))
            .unwrap_or(false)
}

/// Parses an info record (a line for which [`is_info_line`] holds).
pub(super) fn parse_info_line(line_no: usize, line: &str) -> Result<Info, TraceError> {
    let mut v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| err(line_no, format!("not JSON: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("type");
    }
    // From text, as `/info` is read: one decoder for it in the page.
    serde_json::from_str(&v.to_string()).map_err(|e| {
        let e = e.to_string();
        err(
            line_no,
            format!("malformed info record: {}", super::without_position(&e)),
        )
    })
}

/// The info record as a JSON line (without the newline): `/info`'s fields
/// with `"type":"info"` first.
pub fn info_line(info: &Info) -> String {
    let data = serde_json::to_string(info).unwrap_or_else(|_| "{}".into());
    match data.strip_prefix('{') {
        Some("}") | None => "{\"type\":\"info\"}".to_string(),
        Some(rest) => format!("{{\"type\":\"info\",{rest}"),
    }
}
