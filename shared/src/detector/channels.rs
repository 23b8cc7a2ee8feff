//! The guest's own channels as events: clock readings and announce
//! frames, attached to the outage they explain or shown on their own.

use super::*;
use crate::wire::{Announce, Clock};
use signals::ClockNews;

impl Detector {
    pub(super) fn clock_reading(&mut self, c: &Clock) {
        self.advance(c.sent_us.saturating_add(i64::from(c.rtt_us)));
        let cfg = self.cfg;
        match self.clock.push(c, &cfg) {
            ClockNews::None => {}
            ClockNews::Step => {
                let Some(st) = self.clock.last_step else {
                    return;
                };
                // A new step, or a refined estimate of one that an outage
                // already owns (which then takes the better figure).
                // One clock judgement per event: a step across an outage
                // belongs to it even when its size does not explain it.
                let (fits, across) = self.episode.as_mut().map_or((false, false), |ep| {
                    (ep.attach_step(&st, &cfg), ep.lies_across(&st))
                });
                if fits || across {
                    self.step_owned = Some(st.first_after_us);
                    if let Some(ep) = self.episode {
                        self.absorb_earlier(&ep);
                    }
                } else if self.step_owned != Some(st.first_after_us) {
                    self.stop_event(&st);
                }
            }
            ClockNews::Steady { t, residual } => {
                // Readings on a line begun after the outage started say
                // nothing about whether the guest ran on across it.
                let restarted = self.clock.last_step;
                if let Some(ep) = self.episode.as_mut() {
                    let fresh_line =
                        restarted.is_some_and(|st| st.first_after_us >= ep.stop_from.min(ep.s_a));
                    if t >= ep.s_next && ep.clock_step.is_none() && !fresh_line {
                        ep.steady_n += 1;
                        ep.steady_change = residual;
                        ep.dirty = true;
                    }
                }
            }
        }
    }

    pub(super) fn announce(&mut self, a: &Announce) {
        self.advance(a.at_us);
        self.check_silence();
        let cfg = self.cfg;
        self.announces.push(a, &cfg);
        let Some(b) = self.announces.burst else {
            return;
        };
        if let Some(ep) = self.episode.as_mut() {
            if ep.attach_burst(&b, &cfg) {
                self.burst_owned = Some(b.first_us);
            }
        }
    }

    /// A clock step or announce burst that no outage explains, shown as a
    /// yellow on its own for `yellow_hold_ms`: a move with too short a
    /// stop to lose a probe, a VM paused briefly, or a guest clock set.
    pub(super) fn solo_signals(&self) -> (Option<Reason>, Option<Reason>) {
        let hold = ms(self.cfg.yellow_hold_ms);
        let now = self.now_us;
        let step = self
            .clock
            .last_step
            .filter(|s| {
                self.step_owned != Some(s.first_after_us)
                    && s.step_us <= -i64::from(self.cfg.clock_step_min_us)
                    && now < s.after_us.saturating_add(hold)
            })
            .map(|s| Reason::from(s.evidence()));
        let burst = self
            .announces
            .burst
            .filter(|b| {
                self.burst_owned != Some(b.first_us) && now < b.last_us.saturating_add(hold)
            })
            .map(|b| Reason::from(b.evidence()));
        (step, burst)
    }
}
