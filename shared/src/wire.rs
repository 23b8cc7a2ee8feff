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

/// Probes `first_seq..=last_seq` were never sent: the sidecar could not
/// keep its schedule (the process was frozen or starved for longer than
/// the catch-up limit). Every seq between the first and the last one
/// streamed is either a `sample` or inside a `skip`. A skip is missing
/// data, never loss: the target was not asked, so it could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    /// The first seq that was not sent.
    pub first_seq: u64,
    /// The last seq that was not sent.
    pub last_seq: u64,
}

/// A reading of the target's clock from an ICMP Timestamp exchange. After a
/// live migration the guest's clock lags by about the downtime, so a step
/// in `offset_us` confirms a move that the echo samples only suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// Timestamp probe number (its own sequence, separate from echo seqs).
    pub seq: u64,
    /// When the request left (unix µs).
    pub sent_us: i64,
    /// Its round-trip time in µs. Only replies within the timeout count.
    pub rtt_us: u32,
    /// The target clock minus ours, in µs. The protocol carries whole
    /// milliseconds since midnight UTC, so one reading is good to about
    /// ±0.5 ms; the sidecar dithers its send phase so that readings average
    /// to better.
    pub offset_us: i64,
}

/// What kind of layer-2 announce was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnounceKind {
    /// A RARP frame from the target's MAC (QEMU's self-announce after a
    /// migration).
    Rarp,
    /// A gratuitous ARP for the target's address.
    Garp,
}

/// A MAC address, written `52:54:00:12:34:56` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts
                .next()
                .ok_or_else(|| format!("{s:?} is not a MAC address"))?;
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
        }
        if parts.next().is_some() {
            return Err(format!("{s:?} is not a MAC address"));
        }
        Ok(Mac(out))
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A layer-2 announce of the target seen on the capture interface (only
/// with `--capture-iface`): strong evidence that it has just moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// When the frame was captured (unix µs).
    pub at_us: i64,
    /// RARP or gratuitous ARP.
    pub kind: AnnounceKind,
    /// The MAC it announced.
    pub mac: Mac,
    /// The MAC the capture had learned at the target's address before,
    /// when this announce names a different one: another machine now
    /// claims the address (a live migration keeps the MAC). Omitted when
    /// absent; traces written before it parse as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_mac: Option<Mac>,
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
    /// `event: clock`
    Clock(Clock),
    /// `event: announce`
    Announce(Announce),
    /// `event: skip`
    Skip(Skip),
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
    /// `clock`
    Clock,
    /// `announce`
    Announce,
    /// `skip`
    Skip,
}

impl EventKind {
    /// Every kind, for clients that register one listener per name.
    pub const ALL: [EventKind; 8] = [
        EventKind::Sample,
        EventKind::Late,
        EventKind::Gap,
        EventKind::Overflow,
        EventKind::Tick,
        EventKind::Clock,
        EventKind::Announce,
        EventKind::Skip,
    ];

    /// The `event:` name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Sample => "sample",
            EventKind::Late => "late",
            EventKind::Gap => "gap",
            EventKind::Overflow => "overflow",
            EventKind::Tick => "tick",
            EventKind::Clock => "clock",
            EventKind::Announce => "announce",
            EventKind::Skip => "skip",
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
            Event::Clock(_) => EventKind::Clock,
            Event::Announce(_) => EventKind::Announce,
            Event::Skip(_) => EventKind::Skip,
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
            Event::Clock(e) => serde_json::to_string(e),
            Event::Announce(e) => serde_json::to_string(e),
            Event::Skip(e) => serde_json::to_string(e),
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
        let mut de = serde_json::Deserializer::from_str(data);
        let ev = Event::decode(k, &mut de).map_err(bad)?;
        // Like serde_json::from_str: nothing but white space may follow.
        de.end().map_err(bad)?;
        Ok(ev)
    }

    /// Decodes an already-parsed JSON payload of an event of kind `k` (the
    /// trace reader's envelope and flattened forms).
    pub fn from_value(k: EventKind, data: serde_json::Value) -> Result<Event, serde_json::Error> {
        Event::decode(k, data)
    }

    /// The one place that maps a kind to its payload type: `parse` and
    /// `from_value` both go through it, so a new kind is added here only.
    fn decode<'de, D: serde::Deserializer<'de>>(k: EventKind, d: D) -> Result<Event, D::Error> {
        Ok(match k {
            EventKind::Sample => Event::Sample(Sample::deserialize(d)?),
            EventKind::Late => Event::Late(Late::deserialize(d)?),
            EventKind::Gap => Event::Gap(Gap::deserialize(d)?),
            EventKind::Overflow => Event::Overflow(Overflow::deserialize(d)?),
            EventKind::Tick => Event::Tick(Tick::deserialize(d)?),
            EventKind::Clock => Event::Clock(Clock::deserialize(d)?),
            EventKind::Announce => Event::Announce(Announce::deserialize(d)?),
            EventKind::Skip => Event::Skip(Skip::deserialize(d)?),
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
    /// Time between ICMP Timestamp probes in ms, or `None` when they are
    /// off: whether `clock` events can confirm a migration.
    #[serde(default)]
    pub clock_interval_ms: Option<f64>,
    /// The interface watched for layer-2 announces, or `None`: whether
    /// `announce` events can confirm a migration.
    #[serde(default)]
    pub capture_iface: Option<String>,
    /// The target's name (its address unless the targets file names it):
    /// the `{name}` in `/targets/{name}/...`. Empty from older sidecars.
    #[serde(default)]
    pub name: String,
    /// The target's labels from the targets file (`labels = { rack = "a" }`).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
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
            Event::Clock(Clock {
                seq: 3,
                sent_us: 1_763_000_000_000_000,
                rtt_us: 80,
                offset_us: -334_500,
            }),
            Event::Announce(Announce {
                at_us: 1_763_000_000_000_000,
                kind: AnnounceKind::Rarp,
                mac: Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                previous_mac: None,
            }),
            Event::Skip(Skip {
                first_seq: 100,
                last_seq: 399,
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
    fn announce_writes_the_mac_as_text_and_rejects_bad_ones() {
        let a = Event::Announce(Announce {
            at_us: 1,
            kind: AnnounceKind::Garp,
            mac: Mac([0x52, 0x54, 0, 0xab, 0xcd, 0xef]),
            previous_mac: None,
        });
        assert_eq!(
            a.data_json(),
            r#"{"at_us":1,"kind":"garp","mac":"52:54:00:ab:cd:ef"}"#
        );
        // A new machine at the address: the MAC learned before rides along;
        // without it the field is omitted, and old payloads parse.
        let replaced = Event::Announce(Announce {
            at_us: 1,
            kind: AnnounceKind::Garp,
            mac: Mac([2, 0x6d, 0x77, 0x0e, 0x0e, 1]),
            previous_mac: Some(Mac([0x52, 0x54, 0, 0xab, 0xcd, 0xef])),
        });
        let json = replaced.data_json();
        assert_eq!(
            json,
            r#"{"at_us":1,"kind":"garp","mac":"02:6d:77:0e:0e:01","previous_mac":"52:54:00:ab:cd:ef"}"#
        );
        assert_eq!(Event::parse("announce", &json).unwrap(), replaced);
        match Event::parse(
            "announce",
            r#"{"at_us":1,"kind":"rarp","mac":"52:54:00:ab:cd:ef"}"#,
        ) {
            Ok(Event::Announce(a)) => assert_eq!(a.previous_mac, None),
            other => panic!("{other:?}"),
        }
        for bad in ["52:54:00", "52:54:00:ab:cd:ef:01", "zz:54:00:ab:cd:ef"] {
            let json = format!(r#"{{"at_us":1,"kind":"rarp","mac":"{bad}"}}"#);
            assert!(Event::parse("announce", &json).is_err(), "{bad}");
        }
    }

    #[test]
    fn info_round_trips() {
        let info = Info {
            target: "127.0.0.1".into(),
            interval_ms: 10.0,
            timeout_ms: 1000.0,
            version: "0.1.0".into(),
            run_id: "abc".into(),
            clock_interval_ms: Some(200.0),
            capture_iface: None,
            name: "vm-1".into(),
            labels: [("rack".to_string(), "a".to_string())].into(),
        };
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(serde_json::from_str::<Info>(&json).unwrap(), info);
        // Older sidecars send neither channel field.
        let old = r#"{"target":"x","interval_ms":10,"timeout_ms":1000,"version":"0","run_id":"r"}"#;
        let parsed: Info = serde_json::from_str(old).unwrap();
        assert_eq!(
            (parsed.clock_interval_ms, parsed.capture_iface),
            (None, None)
        );
    }
}
