//! Wire types: what travels from a sidecar to its clients.
//!
//! The stream is Server-Sent Events on `GET /events`. Every event carries an
//! `id:` line (strictly increasing within one sidecar run, so `Last-Event-ID`
//! can resume) and is *named* by its kind (`event: sample`), with one JSON
//! object as `data:`. `docs/PROTOCOL.md` is the human-readable twin of this
//! module; change both together, and only by adding.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One resolved echo probe: answered (`rtt_us` set) or lost (`rtt_us` null,
/// meaning no reply came within the sidecar's timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Probe sequence number, 0 for the first probe of a run, +1 per probe.
    pub seq: u64,
    /// When the request left, in microseconds since the Unix epoch.
    pub sent_us: i64,
    /// Round-trip time in microseconds, or `None` when the probe was lost.
    pub rtt_us: Option<u32>,
}

/// A reply that arrived after its probe had already been reported lost.
/// A stop-and-copy can hold one request in the guest's queue and answer it
/// after resume, so its RTT is about the downtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Late {
    /// Sequence number of the probe, reported earlier as lost.
    pub seq: u64,
    /// Round-trip time in microseconds (longer than the timeout).
    pub rtt_us: u32,
}

/// The client asked to resume from an id the sidecar no longer holds: this
/// many events are gone. The stream goes on after it; nothing is skipped
/// silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The first id that could not be delivered.
    pub from_id: u64,
    /// The last id that could not be delivered.
    pub to_id: u64,
    /// How many events are missing (`to_id - from_id + 1`).
    pub missing: u64,
}

/// The sidecar is closing this client's stream because the client fell too
/// far behind. The client may reconnect and resume after `last_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overflow {
    /// The last id this client was sent before being cut off.
    pub last_id: u64,
}

/// The sidecar's clock, sent only when the stream would otherwise be
/// quiet (no event for two probe intervals, at least 20 ms): it tells a
/// client that time went on and probes up to `next_seq - 1` were sent but
/// are not answered yet, long before their timeouts report them lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// The sidecar's wall clock, microseconds since the Unix epoch.
    pub now_us: i64,
    /// The seq the next probe will carry: all lower seqs have been sent.
    pub next_seq: u64,
}

/// Every kind of event on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `event: sample`
    Sample(Sample),
    /// `event: late`
    Late(Late),
    /// `event: gap`
    Gap(Gap),
    /// `event: overflow`
    Overflow(Overflow),
    /// `event: tick`
    Tick(Tick),
}

/// The SSE event name of each [`Event`] variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `sample`
    Sample,
    /// `late`
    Late,
    /// `gap`
    Gap,
    /// `overflow`
    Overflow,
    /// `tick`
    Tick,
}

impl EventKind {
    /// Every kind, for clients that register one listener per name.
    pub const ALL: [EventKind; 5] = [
        EventKind::Sample,
        EventKind::Late,
        EventKind::Gap,
        EventKind::Overflow,
        EventKind::Tick,
    ];

    /// The `event:` name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Sample => "sample",
            EventKind::Late => "late",
            EventKind::Gap => "gap",
            EventKind::Overflow => "overflow",
            EventKind::Tick => "tick",
        }
    }

    /// The kind for an `event:` name, if it is one this version knows.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Why an event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The event name is not one this version knows. Clients should count
    /// and skip it, so older pages keep working against newer sidecars.
    #[error("unknown event type {0:?}")]
    UnknownKind(String),
    /// The data is not the JSON this event kind needs.
    #[error("malformed {kind} event: {source}")]
    BadData {
        /// The event name.
        kind: &'static str,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
}

impl Event {
    /// This event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Sample(_) => EventKind::Sample,
            Event::Late(_) => EventKind::Late,
            Event::Gap(_) => EventKind::Gap,
            Event::Overflow(_) => EventKind::Overflow,
            Event::Tick(_) => EventKind::Tick,
        }
    }

    /// The JSON `data:` payload.
    pub fn data_json(&self) -> String {
        // Serialising these plain structs cannot fail.
        let r = match self {
            Event::Sample(e) => serde_json::to_string(e),
            Event::Late(e) => serde_json::to_string(e),
            Event::Gap(e) => serde_json::to_string(e),
            Event::Overflow(e) => serde_json::to_string(e),
            Event::Tick(e) => serde_json::to_string(e),
        };
        r.unwrap_or_default()
    }

    /// Decodes the `data:` payload of an event named `kind`.
    pub fn parse(kind: &str, data: &str) -> Result<Event, WireError> {
        let k = EventKind::from_name(kind).ok_or_else(|| WireError::UnknownKind(kind.into()))?;
        let bad = |source| WireError::BadData {
            kind: k.name(),
            source,
        };
        Ok(match k {
            EventKind::Sample => Event::Sample(serde_json::from_str(data).map_err(bad)?),
            EventKind::Late => Event::Late(serde_json::from_str(data).map_err(bad)?),
            EventKind::Gap => Event::Gap(serde_json::from_str(data).map_err(bad)?),
            EventKind::Overflow => Event::Overflow(serde_json::from_str(data).map_err(bad)?),
            EventKind::Tick => Event::Tick(serde_json::from_str(data).map_err(bad)?),
        })
    }

    /// Appends this event as one SSE message (`id`, `event`, `data` and the
    /// blank line that ends it) to `out`.
    pub fn write_sse(&self, id: u64, out: &mut String) {
        let _ = write!(
            out,
            "id: {id}\nevent: {}\ndata: {}\n\n",
            self.kind().name(),
            self.data_json()
        );
    }
}

/// `GET /info`: what a sidecar watches and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// The probed address, fixed when the sidecar started.
    pub target: String,
    /// Time between probes, in milliseconds (may be fractional).
    pub interval_ms: f64,
    /// How long a probe may wait for its reply before it counts as lost.
    pub timeout_ms: f64,
    /// The sidecar's version.
    pub version: String,
    /// Random id, new on every start: a changed `run_id` means event ids
    /// started again from 1 and a client must not resume across it.
    pub run_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_events() -> Vec<Event> {
        vec![
            Event::Sample(Sample {
                seq: 7,
                sent_us: 1_763_000_000_123_456,
                rtt_us: Some(250),
            }),
            Event::Sample(Sample {
                seq: u64::MAX,
                sent_us: -1,
                rtt_us: None,
            }),
            Event::Late(Late {
                seq: 9,
                rtt_us: 1_441_000,
            }),
            Event::Gap(Gap {
                from_id: 1,
                to_id: 10,
                missing: 10,
            }),
            Event::Overflow(Overflow { last_id: 42 }),
            Event::Tick(Tick {
                now_us: 1_763_000_000_000_000,
                next_seq: 12,
            }),
        ]
    }

    #[test]
    fn every_event_round_trips_through_its_name_and_json() {
        for ev in all_events() {
            let back = Event::parse(ev.kind().name(), &ev.data_json()).unwrap();
            assert_eq!(back, ev);
        }
    }

    #[test]
    fn lost_sample_is_null_rtt_on_the_wire() {
        let ev = Event::Sample(Sample {
            seq: 3,
            sent_us: 5,
            rtt_us: None,
        });
        assert_eq!(ev.data_json(), r#"{"seq":3,"sent_us":5,"rtt_us":null}"#);
    }

    #[test]
    fn sse_framing_has_id_name_data_and_blank_line() {
        let mut s = String::new();
        Event::Late(Late { seq: 1, rtt_us: 2 }).write_sse(99, &mut s);
        assert_eq!(s, "id: 99\nevent: late\ndata: {\"seq\":1,\"rtt_us\":2}\n\n");
    }

    #[test]
    fn unknown_kinds_and_bad_json_are_errors_not_panics() {
        assert!(matches!(
            Event::parse("future", "{}"),
            Err(WireError::UnknownKind(_))
        ));
        let err = Event::parse("sample", r#"{"seq":"x"}"#).unwrap_err();
        assert!(err.to_string().starts_with("malformed sample event"));
        assert!(Event::parse("sample", r#"{"seq":1,"sent_us":2,"rtt_us":-5}"#).is_err());
    }

    #[test]
    fn info_round_trips() {
        let info = Info {
            target: "127.0.0.1".into(),
            interval_ms: 10.0,
            timeout_ms: 1000.0,
            version: "0.1.0".into(),
            run_id: "abc".into(),
        };
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<Info>(&json).unwrap(), info);
    }
}
