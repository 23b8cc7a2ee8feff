//! A check that a trace is in stream order and holds no repeats: the
//! detector copes with both (a repeat carries nothing new), but a trace
//! cut and pasted out of order judges differently than the live run did,
//! so the reader names the first offending line.

use crate::wire::Event;

/// Samples remembered for the repeat check (a power of two).
const SEEN: usize = 4096;
/// Stream time may go back this much (µs) before it counts as out of
/// order: the sidecar stamps replies and ticks from two tasks.
const SLACK_US: i64 = 100_000;

/// The first line out of order or repeated, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disorder {
    /// The line, counting from 1.
    pub line: usize,
    /// What is wrong with it.
    pub what: String,
}

/// Watches the events of a trace as they are read.
#[derive(Debug, Clone)]
pub(super) struct OrderCheck {
    seen: Box<[(u64, i64)]>,
    /// Latest stream time: a reply's arrival or a tick.
    latest: i64,
    /// The previous CSV row: seq and send time.
    prev_row: Option<(u64, i64)>,
    pub first: Option<Disorder>,
}

impl OrderCheck {
    pub fn new() -> Self {
        OrderCheck {
            seen: vec![(u64::MAX, i64::MIN); SEEN].into_boxed_slice(),
            latest: i64::MIN,
            prev_row: None,
            first: None,
        }
    }

    fn flag(&mut self, line: usize, what: String) {
        if self.first.is_none() {
            self.first = Some(Disorder { line, what });
        }
    }

    /// One event of a JSON-lines trace (stream order: lost samples come
    /// a timeout after their send, so only replies and ticks keep time).
    pub fn stream_event(&mut self, line: usize, ev: &Event) {
        let t = match ev {
            Event::Sample(s) => {
                let i = (s.seq % SEEN as u64) as usize;
                if self.seen[i] == (s.seq, s.sent_us) {
                    self.flag(line, format!("sample seq {} repeated", s.seq));
                }
                self.seen[i] = (s.seq, s.sent_us);
                s.rtt_us.map(|r| s.sent_us.saturating_add(i64::from(r)))
            }
            Event::Tick(t) => Some(t.now_us),
            _ => None,
        };
        if let Some(t) = t {
            if t < self.latest.saturating_sub(SLACK_US) {
                self.flag(
                    line,
                    format!(
                        "time goes back {:.3} s (events out of order)",
                        self.latest.saturating_sub(t) as f64 / 1e6
                    ),
                );
            }
            self.latest = self.latest.max(t);
        }
    }

    /// One CSV row: seqs increase; a lower seq sent later is a restart.
    pub fn csv_row(&mut self, line: usize, seq: u64, sent_us: i64) {
        if let Some((pq, ps)) = self.prev_row {
            if seq == pq {
                self.flag(line, format!("seq {seq} repeated"));
            } else if seq < pq && sent_us <= ps {
                self.flag(line, format!("seq {seq} after {pq}: rows out of order"));
            }
        }
        self.prev_row = Some((seq, sent_us));
    }
}
