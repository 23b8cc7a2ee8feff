//! Helpers shared by the stream's unit tests.

use super::HubConfig;
use bytes::Bytes;
use futures_util::StreamExt;
use migwatch_shared::wire::{Event, Sample};
use std::convert::Infallible;
use std::time::Duration;

pub(super) fn ev(seq: u64) -> Event {
    Event::Sample(Sample {
        seq,
        sent_us: seq as i64,
        rtt_us: Some(1),
    })
}

pub(super) fn cfg(capacity: usize) -> HubConfig {
    HubConfig {
        capacity,
        client_queue: 4,
        client_queue_bytes: 1 << 20,
        max_batch: 1000,
        max_chunk_bytes: 1 << 20,
        overflow_grace: Duration::from_millis(50),
        batch_window: Duration::from_millis(1),
        keep_alive: Duration::from_secs(60),
        retry: Duration::from_secs(1),
        shared_text_bytes: 1 << 20,
    }
}

/// Reads chunks until `pred` holds for the text so far.
pub(super) async fn read_until(
    s: &mut (impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Unpin),
    pred: impl Fn(&str) -> bool,
) -> String {
    let mut all = String::new();
    while !pred(&all) {
        match tokio::time::timeout(Duration::from_secs(5), s.next()).await {
            Ok(Some(Ok(b))) => all.push_str(std::str::from_utf8(&b).unwrap()),
            other => panic!("stream ended or stalled: {other:?}; got {all:?}"),
        }
    }
    all
}

pub(super) fn ids(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|s| s.parse().unwrap())
        .collect()
}
