//! The SSE text of the newest events, rendered once for every client: a
//! client whose cursor is in that window gets a slice or a clone of it;
//! one further behind gets events from the ring to render itself.

use super::{lock, Hub};
use bytes::Bytes;
use migwatch_shared::wire::{Event, Gap};

/// The SSE text of consecutive events, rendered once.
pub(super) struct Chunk {
    /// Id of the first event in it.
    pub(super) first_id: u64,
    pub(super) text: Bytes,
    /// Where each event's text starts.
    pub(super) starts: Box<[u32]>,
}

impl Chunk {
    /// The id after its last event.
    pub(super) fn end_id(&self) -> u64 {
        self.first_id + self.starts.len() as u64
    }
}

/// What one read for a client found after its cursor.
#[derive(Default)]
pub(super) struct ReadOut {
    /// Events older than the shared text must be rendered by the client.
    pub(super) events: Vec<(u64, Event)>,
    /// Shared text, in order (after `events`, which is then empty).
    pub(super) pieces: Vec<Bytes>,
    /// The id of the last event read.
    pub(super) last: u64,
    /// Stopped at a size limit: more is waiting now.
    pub(super) more: bool,
}

/// The SSE text of `evs`, numbered from `first`.
pub(super) fn render(first: u64, evs: &[Event]) -> Chunk {
    let mut text = String::with_capacity(evs.len() * 96);
    let mut starts = Vec::with_capacity(evs.len());
    for (id, ev) in (first..).zip(evs) {
        starts.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        ev.write_sse(id, &mut text);
    }
    Chunk {
        first_id: first,
        text: Bytes::from(text),
        starts: starts.into_boxed_slice(),
    }
}

impl Hub {
    /// Reads what follows id `after` into `out`: the shared text if it
    /// reaches back that far, else up to `max` events from the ring. If
    /// events after `after` have already left the ring, returns the gap.
    pub(super) fn read_after(&self, after: u64, out: &mut ReadOut) -> Option<Gap> {
        let (max, max_bytes) = (self.cfg.max_batch.max(1), self.cfg.max_chunk_bytes);
        out.events.clear();
        out.pieces.clear();
        out.last = after;
        out.more = false;
        let r = lock(&self.ring);
        let first = r.first_id;
        let gap = (after + 1 < first).then(|| Gap {
            from_id: after + 1,
            to_id: first - 1,
            missing: first - 1 - after,
        });
        let from = (after + 1).max(first);
        if from >= r.next_id {
            if gap.is_some() {
                out.last = first - 1;
            }
            return gap;
        }
        match r.chunks.front() {
            Some(c) if c.first_id <= from => {
                let i = r.chunks.partition_point(|c| c.end_id() <= from);
                let mut bytes = 0;
                for (n, c) in r.chunks.range(i..).enumerate() {
                    if n > 0 && bytes + c.text.len() > max_bytes {
                        out.more = true;
                        break;
                    }
                    let piece = if n == 0 {
                        let off = c.starts[(from - c.first_id) as usize] as usize;
                        c.text.slice(off..)
                    } else {
                        c.text.clone()
                    };
                    bytes += piece.len();
                    out.pieces.push(piece);
                    out.last = c.end_id() - 1;
                }
            }
            _ => {
                let start = usize::try_from(from - first).unwrap_or(usize::MAX);
                out.events.extend(
                    (from..)
                        .zip(r.events.iter().skip(start).take(max))
                        .map(|(id, e)| (id, e.event())),
                );
                out.last = out.events.last().map_or(from - 1, |(id, _)| *id);
                out.more = out.events.len() >= max && out.last + 1 < r.next_id;
            }
        }
        gap
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{HubConfig, Start};
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::watch;

    #[tokio::test]
    async fn text_is_rendered_only_while_someone_listens() {
        let hub = Hub::new(cfg(100));
        for q in 0..10 {
            hub.push(ev(q));
        }
        assert!(lock(&hub.ring).chunks.is_empty(), "rendered for nobody");
        let (_stop_tx, stop) = watch::channel(false);
        let mut s = Box::pin(hub.subscribe(Start::After(0), stop, Arc::new(Metrics::default())));
        hub.push_batch(&[ev(10), ev(11)]);
        assert_eq!(lock(&hub.ring).chunks.len(), 1);
        // The client renders the old events itself, then shares the text.
        let text = read_until(&mut s, |t| t.contains("id: 12\n")).await;
        assert_eq!(ids(&text), (1..=12).collect::<Vec<_>>());
        drop(s);
        // Its task notices the client left at its next read.
        hub.push(ev(12));
        tokio::time::timeout(Duration::from_secs(5), async {
            while hub.live() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                hub.push(ev(13));
            }
        })
        .await
        .expect("the client's receiver was never dropped");
        hub.push(ev(14));
        assert!(lock(&hub.ring).chunks.is_empty());
    }

    /// The text of ids `from..=to` as one client renders it itself.
    fn rendered(evs: &[(u64, Event)]) -> String {
        let mut s = String::new();
        for (id, e) in evs {
            e.write_sse(*id, &mut s);
        }
        s
    }

    #[tokio::test]
    async fn shared_text_serves_any_cursor_with_the_same_bytes() {
        // Shared text for the newest ~10 events only; older ones come from
        // the ring, rendered by the client.
        let hub = Hub::new(HubConfig {
            shared_text_bytes: 600,
            ..cfg(1000)
        });
        let all: Vec<(u64, Event)> = (1..=60).map(|id| (id, ev(id - 1))).collect();
        for batch in all.chunks(7) {
            let evs: Vec<Event> = batch.iter().map(|(_, e)| *e).collect();
            hub.push_batch(&evs);
        }
        assert_eq!(hub.latest_id(), 60);
        for after in [0u64, 10, 49, 52, 55, 59] {
            let (_stop_tx, stop) = watch::channel(false);
            let mut s =
                Box::pin(hub.subscribe(Start::After(after), stop, Arc::new(Metrics::default())));
            let text = read_until(&mut s, |t| {
                t.contains(
                    "id: 60
",
                )
            })
            .await;
            let body = text
                .strip_prefix(
                    "retry: 1000

",
                )
                .unwrap();
            assert_eq!(body, rendered(&all[after as usize..]), "after {after}");
        }
        // A live client gets only what comes next, from the shared text.
        let (_stop_tx, stop) = watch::channel(false);
        let mut s = Box::pin(hub.subscribe(Start::Live, stop, Arc::new(Metrics::default())));
        let _ = read_until(&mut s, |t| t.contains("retry")).await;
        hub.push_batch(&[ev(60), ev(61)]);
        let text = read_until(&mut s, |t| {
            t.contains(
                "id: 62
",
            )
        })
        .await;
        assert_eq!(text, rendered(&[(61, ev(60)), (62, ev(61))]));
    }
}
