//! Stops that lost no probe: a VM paused in place whose requests waited in
//! its queue and were answered late (RTT ≈ the stop), or a move too short
//! to lose one. The guest clock's step is the only sure sign, so such a
//! stop becomes an event of its own once the step is confirmed, with its
//! length from the step and its place from the slowest queued reply.

use super::episode::{Episode, Post, SlotState};
use super::signals::Step;
use super::*;

impl Detector {
    /// A confirmed clock step that no outage owns: records it as an event.
    pub(super) fn stop_event(&mut self, st: &Step) {
        let cfg = self.cfg;
        let d = st.step_us.saturating_neg();
        if d < i64::from(cfg.clock_step_min_us) || !self.have_ans {
            return;
        }
        // An outage still in progress will take the step when it ends.
        if self.silence.is_some_and(|s| s.open) {
            return;
        }
        // The queued requests were answered together at resume, the first
        // of them with an RTT of about the stop (less up to an interval of
        // phase), its send time where the stop began. A busy guest's own
        // stalls and the path's spikes release such queues too: of every
        // release in the step's window, take the one whose head's RTT is
        // closest to the stop.
        let iv = i64::from(self.iv());
        let answered = |q: u64| {
            self.slot(q)
                .filter(|s| matches!(s.state, SlotState::Answered | SlotState::LostLate))
                .copied()
        };
        let together = iv.max(5_000);
        let mut best: Option<(u64, i64, u32)> = None;
        let mut seq = self.hi_ans;
        for _ in 0..self.window() / 2 {
            let Some(cur) = answered(seq) else {
                match seq.checked_sub(1) {
                    Some(p) => {
                        seq = p;
                        continue;
                    }
                    None => break,
                }
            };
            if cur.sent_us < st.before_us {
                break;
            }
            // The head of the release `seq` belongs to.
            let mut head = seq;
            while let (Some(c), Some(p)) = (answered(head), head.checked_sub(1).and_then(answered))
            {
                if p.rtt_us <= c.rtt_us || (p.arrival() - c.arrival()).abs() > together {
                    break;
                }
                head -= 1;
            }
            if let Some(h) = answered(head) {
                let off = (i64::from(h.rtt_us) - d).abs();
                let fits = h.rtt_us >= cfg.held_min_us
                    && h.sent_us >= st.before_us
                    && h.sent_us <= st.first_after_us
                    && off <= 2 * iv + 20_000;
                if fits && best.is_none_or(|(_, _, r)| off < (i64::from(r) - d).abs()) {
                    best = Some((head, h.sent_us, h.rtt_us));
                }
            }
            let Some(prev) = head.checked_sub(1) else {
                break;
            };
            seq = prev;
        }
        let (q, start) = match best {
            Some((q, sent, _)) => (q, sent),
            None => (self.hi_ans, st.before_us),
        };
        self.finalise(false);
        let ep = Episode {
            id: self.next_id,
            a: q,
            b: q,
            probes: 0,
            s_a: start,
            s_next: start.saturating_add(d),
            t_end: self.now_us,
            iv: self.iv(),
            elev: u32::MAX,
            pre_level: 0,
            load_base: 0,
            congestion: None,
            long: None,
            held_lo: 0,
            held_hi: 0,
            held_count: 0,
            held: None,
            held_arrival: 0,
            held_max: 0,
            held_allow: 0,
            // Nothing to withdraw: the replies were all there.
            resolved: 1,
            unlost: 0,
            post: Post {
                done: true,
                ..Post::default()
            },
            stop_from: start,
            clock_step: Some(st.evidence()),
            announce: None,
            steady_n: 0,
            steady_change: 0,
            clock_live: true,
            waited: false,
            decided: true,
            dirty: true,
            published: false,
            level: Light::Green,
        };
        self.next_id += 1;
        self.step_owned = Some(st.first_after_us);
        let mut ep = ep;
        if let Some(b) = self.announces.burst {
            if self.burst_owned != Some(b.first_us) && ep.attach_burst(&b, &cfg) {
                self.burst_owned = Some(b.first_us);
            }
        }
        self.episode = Some(ep);
    }
}
