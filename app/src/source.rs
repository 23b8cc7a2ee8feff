//! Where the events come from: which sidecar, the reconnect policy, and the
//! browser's `EventSource` and `fetch` behind them.
//!
//! The decisions (which URL, how long to wait, whether to resume or start
//! over) live in plain types tested natively; the thin browser glue at the
//! bottom only carries them out.

use migwatch_shared::{EventKind, Info};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{EventSource, MessageEvent};

/// The state of the link to the sidecar, shown apart from the light.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Conn {
    /// First attempt, nothing received yet.
    #[default]
    Connecting,
    /// The event stream is open.
    Live,
    /// The browser is re-opening a dropped stream by itself.
    Reconnecting,
    /// The stream or `/info` failed; `retry_ms` says when we try again
    /// (`None`: never, e.g. a bad `?s=`).
    Failed {
        /// What went wrong, in words.
        reason: String,
        /// Milliseconds until the next attempt.
        retry_ms: Option<u32>,
    },
    /// No stream of its own: the other targets of its sidecar use every
    /// connection the browser allows to it; the light and sparkline are
    /// the sidecar's own (`/overview`), the chart is not live.
    Limited,
    /// Not a sidecar: an imported trace being replayed.
    Replay {
        /// Percent of the trace replayed.
        percent: u8,
    },
}

impl Conn {
    /// Short name for `data-state`: `connecting`, `live`, `reconnecting`,
    /// `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Conn::Connecting => "connecting",
            Conn::Live => "live",
            Conn::Reconnecting => "reconnecting",
            Conn::Failed { .. } => "failed",
            Conn::Limited => "limited",
            Conn::Replay { .. } => "replay",
        }
    }

    /// Whether the data is current: a live stream, or a loaded replay.
    /// Anything else shows as "no data", never as a light.
    pub fn has_data(&self) -> bool {
        matches!(self, Conn::Live | Conn::Replay { .. })
    }

    /// The words shown in the header.
    pub fn text(&self) -> String {
        match self {
            Conn::Failed {
                reason,
                retry_ms: Some(ms),
            } => format!("failed: {reason} (retrying in {})", seconds(*ms)),
            Conn::Failed { reason, .. } => format!("failed: {reason}"),
            Conn::Replay { percent: 100.. } => "replayed from a file".into(),
            Conn::Replay { percent } => format!("replaying from a file: {percent} %"),
            Conn::Limited => format!(
                "no live stream: browsers open at most 6 connections per sidecar, {} are streaming; light from the sidecar's own detector",
                crate::fleet::STREAMS_PER_ORIGIN
            ),
            other => other.name().into(),
        }
    }
}

fn seconds(ms: u32) -> String {
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", f64::from(ms) / 1000.0)
    }
}

/// Delay before our own reconnects: 0.5 s doubling up to 10 s, back to
/// 0.5 s once a stream opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next_ms: u32,
}

impl Backoff {
    /// The first delay.
    pub const MIN_MS: u32 = 500;
    /// The longest delay.
    pub const MAX_MS: u32 = 10_000;

    /// The delay to wait now; the one after it is twice as long.
    pub fn next_delay(&mut self) -> u32 {
        let d = self.next_ms;
        self.next_ms = (d.saturating_mul(2)).min(Self::MAX_MS);
        d
    }

    /// Starts again from the shortest delay.
    pub fn reset(&mut self) {
        self.next_ms = Self::MIN_MS;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next_ms: Self::MIN_MS,
        }
    }
}

/// What to do once `/info` has answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The sidecar restarted: drop everything received so far.
    pub reset: bool,
    /// Resume after this event id.
    pub since: Option<u64>,
}

/// Resume bookkeeping: the run we follow and the last event id we got.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    run_id: Option<String>,
    last_id: Option<u64>,
    /// Delay policy for our own reconnects.
    pub backoff: Backoff,
}

impl Resume {
    /// Notes the `id:` of an event just received. Ids that are not numbers
    /// are ignored (the browser still resends them in `Last-Event-ID`).
    pub fn saw_id(&mut self, id: &str) {
        if let Ok(n) = id.trim().parse::<u64>() {
            self.last_id = Some(n);
        }
    }

    /// The last event id received in this run.
    pub fn last_id(&self) -> Option<u64> {
        self.last_id
    }

    /// Whether `run_id` is another run than the one followed (a first
    /// answer is not a change).
    pub fn is_new_run(&self, run_id: &str) -> bool {
        self.run_id.as_deref().is_some_and(|r| r != run_id)
    }

    /// Decides how to open the stream after `/info` reported `run_id`:
    /// resume the same run after the last id, or start a changed run over.
    pub fn plan(&mut self, run_id: &str) -> Plan {
        let reset = self.is_new_run(run_id);
        if reset {
            self.last_id = None;
        }
        self.run_id = Some(run_id.to_string());
        Plan {
            reset,
            since: self.last_id,
        }
    }
}

// ---------------------------------------------------------------------------
// Browser glue.

/// What an open stream reports.
#[derive(Debug)]
pub enum StreamEvent {
    /// The connection opened (first time or after a browser reconnect).
    Open,
    /// The connection failed. `closed`: the browser gave up (e.g. after a
    /// non-200 answer) and will not retry by itself.
    Error {
        /// `readyState` is CLOSED.
        closed: bool,
    },
    /// A named event.
    Named {
        /// The event name, one of [`EventKind::ALL`].
        kind: EventKind,
        /// The `data:` payload.
        data: String,
        /// The `id:` (the browser's `lastEventId`).
        id: String,
    },
    /// An event without a name (`message`): not part of the protocol.
    Unnamed {
        /// Its `id:`.
        id: String,
    },
}

type Callback = Rc<dyn Fn(StreamEvent)>;

/// An open `EventSource` with its listeners. Dropping it closes the
/// stream; do not drop it from inside one of its own listeners.
pub struct Stream {
    es: EventSource,
    _listeners: Vec<Closure<dyn FnMut(web_sys::Event)>>,
}

impl Stream {
    /// Opens `url`, reporting everything to `on`.
    pub fn open(url: &str, on: Callback) -> Result<Stream, String> {
        let es = EventSource::new(url).map_err(js_err)?;
        let mut listeners = Vec::new();
        let mut listen = |name: &str, f: Box<dyn FnMut(web_sys::Event)>| {
            let c = Closure::wrap(f);
            es.add_event_listener_with_callback(name, c.as_ref().unchecked_ref())
                .map_err(js_err)?;
            listeners.push(c);
            Ok::<(), String>(())
        };
        for kind in EventKind::ALL {
            let on = on.clone();
            listen(
                kind.name(),
                Box::new(move |e| {
                    if let Some(m) = e.dyn_ref::<MessageEvent>() {
                        on(StreamEvent::Named {
                            kind,
                            data: m.data().as_string().unwrap_or_default(),
                            id: m.last_event_id(),
                        });
                    }
                }),
            )?;
        }
        {
            let on = on.clone();
            listen(
                "message",
                Box::new(move |e| {
                    let id = e
                        .dyn_ref::<MessageEvent>()
                        .map(|m| m.last_event_id())
                        .unwrap_or_default();
                    on(StreamEvent::Unnamed { id });
                }),
            )?;
        }
        {
            let on = on.clone();
            listen("open", Box::new(move |_| on(StreamEvent::Open)))?;
        }
        {
            let es2 = es.clone();
            listen(
                "error",
                Box::new(move |_| {
                    let closed = es2.ready_state() == EventSource::CLOSED;
                    on(StreamEvent::Error { closed });
                }),
            )?;
        }
        Ok(Stream {
            es,
            _listeners: listeners,
        })
    }

    /// Stops the stream (listeners stay alive until the value is dropped).
    pub fn close(&self) {
        self.es.close();
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.es.close();
    }
}

/// Why a `GET` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No answer (refused, DNS, CORS).
    Network,
    /// An HTTP status other than 2xx.
    Status(u16),
    /// The body did not decode.
    Decode(String),
}

impl FetchError {
    /// In words, naming the `path` asked for.
    pub fn words(&self, path: &str) -> String {
        match self {
            FetchError::Network => "network error".into(),
            FetchError::Status(401) => format!(
                "{path} answered HTTP 401: wrong or missing token (add ?token=… to the sidecar URL)"
            ),
            FetchError::Status(n) => format!("{path} answered HTTP {n}"),
            FetchError::Decode(e) => format!("bad {path}: {e}"),
        }
    }
}

/// `GET url` as text (no cache).
pub async fn fetch_text(url: &str) -> Result<String, FetchError> {
    use wasm_bindgen_futures::JsFuture;
    let window = web_sys::window().ok_or(FetchError::Network)?;
    let init = web_sys::RequestInit::new();
    init.set_cache(web_sys::RequestCache::NoStore);
    let resp = JsFuture::from(window.fetch_with_str_and_init(url, &init))
        .await
        .map_err(|_| FetchError::Network)?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| FetchError::Network)?;
    if !resp.ok() {
        return Err(FetchError::Status(resp.status()));
    }
    let body = resp.text().map_err(|e| FetchError::Decode(js_err(e)))?;
    Ok(JsFuture::from(body)
        .await
        .map_err(|e| FetchError::Decode(js_err(e)))?
        .as_string()
        .unwrap_or_default())
}

/// `GET url`, its body read by `decode` (one of the `*_from_json` below
/// or the answers' own `from_json`: no serde derive per answer type, see
/// `crate::json`).
pub async fn fetch_json<T>(
    url: &str,
    decode: fn(&str) -> Result<T, String>,
) -> Result<T, FetchError> {
    let text = fetch_text(url).await?;
    decode(&text).map_err(FetchError::Decode)
}

/// Decodes `/info` (the decoder the trace reader's info lines use too).
pub fn info_from_json(text: &str) -> Result<Info, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Decodes `/targets`: a list of `/info`s, each read as `/info` is.
pub fn infos_from_json(text: &str) -> Result<Vec<Info>, String> {
    match crate::json::parse(text)? {
        crate::json::Value::Array(a) => a.iter().map(|v| info_from_json(&v.to_string())).collect(),
        _ => Err("expected a list of targets".into()),
    }
}

/// `GET` a target's `/info`, decoded.
pub async fn fetch_info(url: &str) -> Result<Info, String> {
    fetch_json(url, info_from_json)
        .await
        .map_err(|e| e.words("/info"))
}

fn js_err(v: JsValue) -> String {
    v.as_string()
        .or_else(|| {
            v.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_ten_seconds_and_resets() {
        let mut b = Backoff::default();
        let got: Vec<u32> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(
            got,
            vec![500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
        b.reset();
        assert_eq!(b.next_delay(), 500);
    }

    #[test]
    fn same_run_resumes_after_the_last_id() {
        let mut r = Resume::default();
        assert_eq!(
            r.plan("a"),
            Plan {
                reset: false,
                since: None
            }
        );
        r.saw_id("41");
        r.saw_id("42");
        r.saw_id("not-a-number");
        assert_eq!(r.last_id(), Some(42));
        assert_eq!(
            r.plan("a"),
            Plan {
                reset: false,
                since: Some(42)
            }
        );
    }

    #[test]
    fn new_run_starts_over_without_since() {
        let mut r = Resume::default();
        r.plan("a");
        r.saw_id("1000");
        assert!(r.is_new_run("b"));
        assert!(!r.is_new_run("a"));
        assert_eq!(
            r.plan("b"),
            Plan {
                reset: true,
                since: None
            }
        );
        assert!(!r.is_new_run("b"));
        assert_eq!(r.last_id(), None);
    }

    #[test]
    fn conn_words() {
        assert_eq!(Conn::Live.text(), "live");
        let f = Conn::Failed {
            reason: "sidecar unreachable".into(),
            retry_ms: Some(500),
        };
        assert_eq!(f.name(), "failed");
        assert_eq!(f.text(), "failed: sidecar unreachable (retrying in 0.5 s)");
        let f = Conn::Failed {
            reason: "x".into(),
            retry_ms: Some(4000),
        };
        assert_eq!(f.text(), "failed: x (retrying in 4 s)");
        assert!(!f.has_data());
        assert!(Conn::Live.has_data());
        assert!(!Conn::Reconnecting.has_data());
        assert_eq!(
            Conn::Replay { percent: 40 }.text(),
            "replaying from a file: 40 %"
        );
        assert_eq!(Conn::Replay { percent: 100 }.text(), "replayed from a file");
    }
}
