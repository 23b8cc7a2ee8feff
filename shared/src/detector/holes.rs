//! Time and holes in the data: "now" moves with the events, a quiet
//! stream, a `gap`, an `overflow` or a sidecar restart is no data, and a
//! `skip` names probes that were never sent.

use super::episode::{HeldAcc, Slot};
use super::stats::{HighFrac, IntervalEst};
use super::*;
use crate::wire::Skip;

impl Detector {
    // ---- time and holes -------------------------------------------------

    pub(super) fn hole_us(&self) -> i64 {
        ms(self.cfg.hole_ms).max(4 * i64::from(self.iv()))
    }

    /// Moves "now" forward to an event's time; with ticks on, a long quiet
    /// spell means the stream itself was down.
    #[inline]
    pub(super) fn advance(&mut self, t: i64) {
        if t > self.now_us {
            let quiet = self.ticks_seen
                && self.now_us != i64::MIN
                && t.saturating_sub(self.now_us) > self.hole_us();
            self.now_us = t;
            if quiet {
                self.hole();
            }
        }
    }

    /// Probes `first_seq..=last_seq` were never sent (the sidecar fell
    /// behind its schedule). They are neither answered nor lost: a jump in
    /// answered seqs over any of them is no data, and a silence does not
    /// start before the next probe that was sent.
    pub(super) fn skipped(&mut self, k: &Skip) {
        if k.last_seq < k.first_seq {
            return;
        }
        if self.skips_len == SKIPS {
            self.skips.copy_within(1.., 0);
            self.skips_len -= 1;
        }
        self.skips[self.skips_len] = (k.first_seq, k.last_seq);
        self.skips_len += 1;
        // The silence so far was the sidecar's, not the target's.
        if self.silence.is_some_and(|s| s.open) {
            self.silence = None;
        }
    }

    /// The last skipped seq of a skip that covers `seq`, if any.
    pub(super) fn skip_covering(&self, seq: u64) -> Option<u64> {
        self.skips[..self.skips_len]
            .iter()
            .find(|(f, l)| (*f..=*l).contains(&seq))
            .map(|(_, l)| *l)
    }

    /// Whether any seq of `a..=b` was skipped.
    pub(super) fn any_skipped(&self, a: u64, b: u64) -> bool {
        self.skips[..self.skips_len]
            .iter()
            .any(|(f, l)| *f <= b && *l >= a)
    }

    pub(super) fn hole(&mut self) {
        self.hole_pending = true;
        self.hole_at = self.now_us;
        self.silence = None;
        self.held_acc = HeldAcc::default();
        self.lost_above = 0;
    }

    /// A lower seq sent later than the highest one: the sidecar restarted.
    pub(super) fn check_new_run(&mut self, seq: u64, sent_us: i64) {
        if self.have_seq
            && seq < self.hi_seq
            && sent_us > self.s_hi_seq
            && (seq < 16 || self.hi_seq - seq > self.window() as u64)
        {
            self.finalise(false);
            self.slots.fill(Slot::default());
            self.interval = IntervalEst::new();
            self.have_seq = false;
            self.have_ans = false;
            self.hi_sent = None;
            self.lost_above = 0;
            self.silence = None;
            self.held_acc = HeldAcc::default();
            self.hole_pending = false;
            self.peak.reset();
            self.recent.clear();
            self.high = HighFrac::new();
            self.skips_len = 0;
        }
    }
}
