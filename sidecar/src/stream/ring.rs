//! The resume ring: every event a hub numbered, newest last, in 24 bytes
//! each, up to the hub's capacity; a client resuming from an id older than
//! the ring gets a `gap`.

use super::sse::Chunk;
use super::{lock, Hub};
use migwatch_shared::wire::{Clock, Event, Gap, Sample};
use std::collections::VecDeque;

/// One ring entry in 24 bytes (a `(u64, Event)` pair takes 48): samples,
/// nearly every event, inline; the rarer kinds boxed. Ids are implicit
/// (the ring's ids are consecutive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    /// A `sample`; `rtt_us` is `u32::MAX` for a lost probe.
    Sample { seq: u64, sent_us: i64, rtt_us: u32 },
    /// A `clock` reading whose seq and offset fit 32 bits (all of them but
    /// a guest hours off or years of readings): 5 a second per target, so
    /// boxing them would cost a fleet's ring more than its samples.
    Clock {
        sent_us: i64,
        seq: u32,
        rtt_us: u32,
        offset_us: i32,
    },
    /// Any other event (a sample with an RTT of `u32::MAX` µs too).
    Other(Box<Event>),
}

impl Entry {
    const LOST: u32 = u32::MAX;

    pub(super) fn new(ev: &Event) -> Entry {
        match *ev {
            Event::Sample(s) if s.rtt_us != Some(Entry::LOST) => Entry::Sample {
                seq: s.seq,
                sent_us: s.sent_us,
                rtt_us: s.rtt_us.unwrap_or(Entry::LOST),
            },
            Event::Clock(c) => match (u32::try_from(c.seq), i32::try_from(c.offset_us)) {
                (Ok(seq), Ok(offset_us)) => Entry::Clock {
                    sent_us: c.sent_us,
                    seq,
                    rtt_us: c.rtt_us,
                    offset_us,
                },
                _ => Entry::Other(Box::new(*ev)),
            },
            ev => Entry::Other(Box::new(ev)),
        }
    }

    pub(super) fn event(&self) -> Event {
        match self {
            Entry::Sample {
                seq,
                sent_us,
                rtt_us,
            } => Event::Sample(Sample {
                seq: *seq,
                sent_us: *sent_us,
                rtt_us: (*rtt_us != Entry::LOST).then_some(*rtt_us),
            }),
            Entry::Clock {
                sent_us,
                seq,
                rtt_us,
                offset_us,
            } => Event::Clock(Clock {
                seq: u64::from(*seq),
                sent_us: *sent_us,
                rtt_us: *rtt_us,
                offset_us: i64::from(*offset_us),
            }),
            Entry::Other(ev) => **ev,
        }
    }
}

pub(super) struct Ring {
    pub(super) events: VecDeque<Entry>,
    /// The id of `events[0]` (`next_id` when empty).
    pub(super) first_id: u64,
    /// The id the next event gets; ids start at 1.
    pub(super) next_id: u64,
    /// The newest events' text, ending at `next_id - 1`.
    pub(super) chunks: VecDeque<Chunk>,
    pub(super) chunk_bytes: usize,
    /// Events kept ([`HubConfig::capacity`](super::HubConfig::capacity), or as set since).
    pub(super) capacity: usize,
}

impl Hub {
    /// Stores a batch and its rendered text, if any (without it, the shared
    /// text is dropped: it must stay a contiguous run of the newest
    /// events). Returns the last id.
    pub(super) fn append(&self, r: &mut Ring, evs: &[Event], chunk: Option<Chunk>) -> u64 {
        for ev in evs {
            if r.events.len() >= r.capacity {
                r.events.pop_front();
                r.first_id += 1;
            }
            r.events.push_back(Entry::new(ev));
        }
        r.next_id += evs.len() as u64;
        if r.events.is_empty() {
            r.first_id = r.next_id;
        }
        let Some(chunk) = chunk else {
            r.chunks.clear();
            r.chunk_bytes = 0;
            return r.next_id - 1;
        };
        r.chunk_bytes += chunk.text.len();
        r.chunks.push_back(chunk);
        while r.chunks.len() > 1 && r.chunk_bytes > self.cfg.shared_text_bytes {
            if let Some(old) = r.chunks.pop_front() {
                r.chunk_bytes -= old.text.len();
            }
        }
        r.next_id - 1
    }

    /// Copies up to `max` events after id `after` into `out`, for an
    /// in-process reader (the sidecar's own detector), and returns the id
    /// of the last one copied (`after` if none) and the gap, if events
    /// after `after` already left the ring.
    pub fn events_after(&self, after: u64, max: usize, out: &mut Vec<Event>) -> (u64, Option<Gap>) {
        let r = lock(&self.ring);
        let first = r.first_id;
        let gap = (after + 1 < first).then(|| Gap {
            from_id: after + 1,
            to_id: first - 1,
            missing: first - 1 - after,
        });
        let from = (after + 1).max(first);
        let start = usize::try_from(from - first).unwrap_or(usize::MAX);
        let before = out.len();
        out.extend(r.events.iter().skip(start).take(max).map(Entry::event));
        let n = (out.len() - before) as u64;
        let last = if n > 0 { from + n - 1 } else { from - 1 };
        (last.max(after), gap)
    }

    /// Shrinks (or grows) how many events the ring keeps, dropping the
    /// oldest at once: a reload that adds targets keeps every ring within
    /// the history memory budget.
    pub fn set_capacity(&self, capacity: usize) {
        let mut r = lock(&self.ring);
        let capacity = capacity.max(1);
        while r.events.len() > capacity {
            r.events.pop_front();
            r.first_id += 1;
        }
        r.events.shrink_to(capacity);
        r.capacity = capacity;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Start;
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::Arc;
    use tokio::sync::watch;

    #[tokio::test]
    async fn too_old_id_yields_gap_then_the_ring() {
        let hub = Hub::new(cfg(5));
        for q in 0..20 {
            hub.push(ev(q));
        }
        let (_stop_tx, stop) = watch::channel(false);
        let mut s = Box::pin(hub.subscribe(Start::After(3), stop, Arc::new(Metrics::default())));
        let text = read_until(&mut s, |t| t.contains("id: 20\n")).await;
        assert!(text
            .contains("id: 15\nevent: gap\ndata: {\"from_id\":4,\"to_id\":15,\"missing\":12}\n\n"));
        assert_eq!(ids(&text), vec![15, 16, 17, 18, 19, 20]);
    }

    #[test]
    fn a_ring_entry_is_24_bytes_and_round_trips() {
        assert!(std::mem::size_of::<Entry>() <= 24);
        let evs = [
            ev(7),
            Event::Sample(Sample {
                seq: 8,
                sent_us: -3,
                rtt_us: None,
            }),
            Event::Sample(Sample {
                seq: 9,
                sent_us: 1,
                rtt_us: Some(u32::MAX),
            }),
            Event::Tick(migwatch_shared::wire::Tick {
                now_us: 5,
                next_seq: 10,
            }),
        ];
        for e in evs {
            assert_eq!(Entry::new(&e).event(), e);
        }
    }
}
