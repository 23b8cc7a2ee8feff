//! The migration detector: events in, a traffic light with reasons out.
//!
//! This is the first, deliberately simple rule set:
//! * **Yellow**: a burst of at least [`DetectorConfig::min_burst`]
//!   consecutive lost probes (by sequence number, so replies that overtake
//!   the timeouts of earlier probes do not split a burst). That is what a
//!   stop-and-copy looks like from outside, and what a plain outage looks
//!   like too, so on its own it only means "maybe".
//! * **Red**: such a burst plus a late reply to a probe in or just before
//!   it: a request held in the guest's queue across the stop, the
//!   stop-and-copy signature.
//!
//! A light stays up for [`DetectorConfig::hold_ms`] of sample time after the
//! evidence and then falls back to green. The detector reads no clock: "now"
//! is the latest send time it has seen, so a replay equals the live run.
//! Per-event cost is O(1) and allocation-free.

use crate::wire::{Event, Late, Sample};
use serde::{Deserialize, Serialize};

/// The traffic light.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Light {
    /// Nothing unusual.
    Green,
    /// An unusual outage that may be a migration.
    Yellow,
    /// The migration signature.
    Red,
}

impl Light {
    /// Lower-case name, as used in JSON and CSS classes.
    pub fn name(self) -> &'static str {
        match self {
            Light::Green => "green",
            Light::Yellow => "yellow",
            Light::Red => "red",
        }
    }
}

/// One piece of evidence behind a light.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Consecutive probes got no reply.
    LossBurst {
        /// How many probes in a row were lost.
        probes: u64,
        /// First lost sequence number.
        first_seq: u64,
        /// Last lost sequence number.
        last_seq: u64,
        /// Send time of the first lost probe (unix µs).
        start_us: i64,
        /// Send time of the last lost probe (unix µs).
        end_us: i64,
    },
    /// A reply came back after its probe had been counted lost.
    LateReply {
        /// The probe's sequence number.
        seq: u64,
        /// Its round-trip time in µs.
        rtt_us: u32,
    },
}

/// The current light and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The light.
    pub light: Light,
    /// The evidence, most important first. Empty when green.
    pub reasons: Vec<Reason>,
}

/// Thresholds. Every field has a default that suits probing every 1–100 ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorConfig {
    /// Consecutive lost probes that make a burst (default 3: isolated
    /// single or double losses are ordinary noise).
    pub min_burst: u64,
    /// How long a light is held after its last evidence, in ms of sample
    /// time (default 10 000).
    pub hold_ms: u32,
    /// A late reply confirms a burst when its seq is at most this many
    /// probes before the burst's first lost probe, or inside it (default 2).
    pub late_slack: u64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_burst: 3,
            hold_ms: 10_000,
            late_slack: 2,
        }
    }
}

/// Probes remembered for burst tracking; a burst longer than this is
/// reported at this length.
const WINDOW: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Which seq this slot holds; `state` is only valid when it matches.
    seq: u64,
    state: State,
    sent_us: i64,
    /// For the ends of a lost run: the seq of the other end.
    other_end: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    #[default]
    Unknown,
    Answered,
    Lost,
}

#[derive(Debug, Clone, Copy)]
struct Burst {
    first_seq: u64,
    last_seq: u64,
    start_us: i64,
    end_us: i64,
}

/// The streaming detector. Feed it every event with [`Detector::push`] and
/// read [`Detector::verdict`] whenever you like.
#[derive(Debug, Clone)]
pub struct Detector {
    cfg: DetectorConfig,
    slots: Box<[Slot]>,
    now_us: i64,
    burst: Option<Burst>,
    late: Option<(Late, i64)>,
    /// Until when (sample time) each light is held.
    yellow_until: i64,
    red_until: i64,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new(DetectorConfig::default())
    }
}

impl Detector {
    /// A detector with these thresholds.
    pub fn new(cfg: DetectorConfig) -> Self {
        Detector {
            cfg,
            slots: vec![Slot::default(); WINDOW].into_boxed_slice(),
            now_us: i64::MIN,
            burst: None,
            late: None,
            yellow_until: i64::MIN,
            red_until: i64::MIN,
        }
    }

    /// The thresholds in use.
    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// Feeds one event. Events that carry no evidence (gap, overflow) are
    /// ignored: a hole in the data is "no data", never a migration.
    pub fn push(&mut self, ev: &Event) {
        match ev {
            Event::Sample(s) => self.sample(s),
            Event::Late(l) => self.late(l),
            Event::Gap(_) | Event::Overflow(_) | Event::Tick(_) => {}
        }
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let s = &self.slots[(seq % WINDOW as u64) as usize];
        (s.seq == seq && s.state != State::Unknown).then_some(s)
    }

    fn lost_slot(&self, seq: Option<u64>) -> Option<&Slot> {
        seq.and_then(|q| self.slot(q))
            .filter(|s| s.state == State::Lost)
    }

    fn sample(&mut self, s: &Sample) {
        self.now_us = self.now_us.max(s.sent_us);
        let idx = (s.seq % WINDOW as u64) as usize;
        if self.slot(s.seq).is_some() {
            return; // a repeated sample carries nothing new
        }
        let state = if s.rtt_us.is_some() {
            State::Answered
        } else {
            State::Lost
        };
        self.slots[idx] = Slot {
            seq: s.seq,
            state,
            sent_us: s.sent_us,
            other_end: s.seq,
        };
        if state != State::Lost {
            return;
        }
        // Join with lost runs on either side: each run's ends point at each
        // other, so merging is O(1) whatever the run length.
        let lo = self
            .lost_slot(s.seq.checked_sub(1))
            .map_or(s.seq, |l| l.other_end);
        let hi = self
            .lost_slot(s.seq.checked_add(1))
            .map_or(s.seq, |r| r.other_end);
        // A run that has scrolled out of the window is cut at its edge.
        let lo = lo.max(hi.saturating_sub(WINDOW as u64 - 1));
        let lo_i = (lo % WINDOW as u64) as usize;
        let hi_i = (hi % WINDOW as u64) as usize;
        self.slots[lo_i].other_end = hi;
        self.slots[hi_i].other_end = lo;
        if hi - lo + 1 >= self.cfg.min_burst {
            let (start_us, end_us) = (self.slots[lo_i].sent_us, self.slots[hi_i].sent_us);
            self.burst = Some(Burst {
                first_seq: lo,
                last_seq: hi,
                start_us,
                end_us,
            });
            self.yellow_until = self.yellow_until.max(end_us.saturating_add(self.hold_us()));
            self.check_red();
        }
    }

    fn late(&mut self, l: &Late) {
        // The late reply arrived rtt after its send; use that as "now" if the
        // probe is still in the window.
        if let Some(slot) = self.slot(l.seq) {
            let at = slot.sent_us.saturating_add(i64::from(l.rtt_us));
            self.now_us = self.now_us.max(at);
            self.late = Some((*l, at));
            self.check_red();
        }
    }

    fn hold_us(&self) -> i64 {
        i64::from(self.cfg.hold_ms) * 1000
    }

    /// Red when the latest late reply belongs to the latest burst.
    fn check_red(&mut self) {
        let (Some(b), Some((l, at))) = (self.burst, self.late) else {
            return;
        };
        let lo = b.first_seq.saturating_sub(self.cfg.late_slack);
        if (lo..=b.last_seq).contains(&l.seq) {
            self.red_until = self.red_until.max(at.saturating_add(self.hold_us()));
        }
    }

    /// The latest sample time seen (unix µs), or `None` before any sample.
    pub fn now_us(&self) -> Option<i64> {
        (self.now_us != i64::MIN).then_some(self.now_us)
    }

    /// The light now, with its evidence.
    pub fn verdict(&self) -> Verdict {
        let now = self.now_us;
        let light = if now < self.red_until {
            Light::Red
        } else if now < self.yellow_until {
            Light::Yellow
        } else {
            Light::Green
        };
        let mut reasons = Vec::new();
        if light != Light::Green {
            if let Some(b) = self.burst {
                reasons.push(Reason::LossBurst {
                    probes: b.last_seq - b.first_seq + 1,
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    start_us: b.start_us,
                    end_us: b.end_us,
                });
            }
        }
        if light == Light::Red {
            if let Some((l, _)) = self.late {
                reasons.push(Reason::LateReply {
                    seq: l.seq,
                    rtt_us: l.rtt_us,
                });
            }
        }
        Verdict { light, reasons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;

    fn sample(seq: u64, rtt_us: Option<u32>) -> Event {
        Event::Sample(Sample {
            seq,
            sent_us: 1_000_000_000 + seq as i64 * 10 * MS,
            rtt_us,
        })
    }

    fn feed(d: &mut Detector, seqs: impl IntoIterator<Item = u64>, lost: bool) {
        for q in seqs {
            d.push(&sample(q, if lost { None } else { Some(250) }));
        }
    }

    #[test]
    fn steady_replies_are_green() {
        let mut d = Detector::default();
        feed(&mut d, 0..1000, false);
        assert_eq!(
            d.verdict(),
            Verdict {
                light: Light::Green,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn isolated_losses_stay_green() {
        let mut d = Detector::default();
        for q in 0..1000 {
            d.push(&sample(q, (q % 50 != 7 && q % 50 != 8).then_some(250)));
        }
        assert_eq!(d.verdict().light, Light::Green);
    }

    #[test]
    fn a_burst_is_yellow_with_its_extent_even_out_of_order() {
        let mut d = Detector::default();
        feed(&mut d, 0..100, false);
        // Replies after the outage overtake the timeouts of the lost probes.
        feed(&mut d, 150..160, false);
        feed(&mut d, 100..150, true);
        let v = d.verdict();
        assert_eq!(v.light, Light::Yellow);
        assert_eq!(
            v.reasons,
            vec![Reason::LossBurst {
                probes: 50,
                first_seq: 100,
                last_seq: 149,
                start_us: 1_000_000_000 + 1000 * MS,
                end_us: 1_000_000_000 + 1490 * MS,
            }]
        );
    }

    #[test]
    fn burst_filled_from_both_ends_merges() {
        let mut d = Detector::default();
        for q in [10, 14, 11, 13, 12] {
            d.push(&sample(q, None));
        }
        match d.verdict().reasons[0] {
            Reason::LossBurst {
                probes, first_seq, ..
            } => assert_eq!((probes, first_seq), (5, 10)),
            r => panic!("unexpected {r:?}"),
        }
    }

    #[test]
    fn burst_plus_late_reply_is_red_then_decays_to_green() {
        let mut d = Detector::default();
        feed(&mut d, 0..100, false);
        feed(&mut d, 100..130, true);
        d.push(&Event::Late(Late {
            seq: 100,
            rtt_us: 310_000,
        }));
        feed(&mut d, 130..200, false);
        let v = d.verdict();
        assert_eq!(v.light, Light::Red);
        assert!(v.reasons.contains(&Reason::LateReply {
            seq: 100,
            rtt_us: 310_000
        }));
        // 10 s hold at 10 ms per probe: 1000 probes later it is green again.
        feed(&mut d, 200..1300, false);
        assert_eq!(d.verdict().light, Light::Green);
    }

    #[test]
    fn late_reply_far_from_the_burst_does_not_make_red() {
        let mut d = Detector::default();
        feed(&mut d, 0..10, true);
        feed(&mut d, 10..100, false);
        d.push(&Event::Late(Late {
            seq: 50,
            rtt_us: 2_000_000,
        }));
        assert_eq!(d.verdict().light, Light::Yellow);
    }

    #[test]
    fn gaps_in_the_data_are_not_evidence() {
        let mut d = Detector::default();
        feed(&mut d, 0..10, false);
        d.push(&Event::Gap(crate::wire::Gap {
            from_id: 1,
            to_id: 100,
            missing: 100,
        }));
        feed(&mut d, 500..510, false);
        assert_eq!(d.verdict().light, Light::Green);
    }

    #[test]
    fn bursts_longer_than_the_window_do_not_panic() {
        let mut d = Detector::default();
        feed(&mut d, 0..(3 * WINDOW as u64), true);
        match d.verdict().reasons[0] {
            Reason::LossBurst { probes, .. } => assert!(probes <= WINDOW as u64),
            r => panic!("unexpected {r:?}"),
        }
    }
}
