//! Reading the light and its reasons out of the detector's state.

use super::episode::{Episode, Silence};
use super::stats::PeakSpan;
use super::*;

impl Detector {
    // ---- read-out -----------------------------------------------------------

    pub(super) fn pending_yellow(&self) -> Option<&Episode> {
        self.episode.as_ref().filter(|e| {
            let n = e.probes.saturating_sub(e.unlost);
            // Unsure yet, but a burst or a burst followed by elevated
            // replies (a sawtooth in the making) may be a migration.
            !e.decided
                && (n >= self.cfg.min_burst || (n >= self.cfg.min_red_probes && e.post.n_elev > 0))
        })
    }

    pub(super) fn peak_yellow(&self) -> bool {
        (self.peak.active
            && self.peak.last_elev_us.saturating_sub(self.peak.start_us)
                >= ms(self.cfg.peak_min_ms))
            || self.now_us < self.peak_until
    }

    /// The light now, without building the reasons (cheap).
    pub fn light(&self) -> Light {
        let now = self.now_us;
        if now < self.red_until || self.announced_silence().is_some() {
            Light::Red
        } else if now < self.yellow_until
            || self.silence_active()
            || self.solo_active()
            || self.pending_yellow().is_some()
            || self.peak_yellow()
        {
            Light::Yellow
        } else {
            Light::Green
        }
    }

    /// A silence in progress during which the target's MAC was announced:
    /// the hypervisor's RARP goes out at resume, before the guest answers
    /// again, so the move is known before the outage ends.
    pub(super) fn announced_silence(&self) -> Option<(Silence, AnnounceBurst)> {
        let s = self.silence.filter(|s| s.open)?;
        // Another machine's announce is no move (see replaced.rs).
        let b = self.announces.burst.filter(|b| b.previous_mac.is_none())?;
        (b.first_us >= s.since_us.saturating_sub(100_000)).then(|| (s, b.evidence()))
    }

    pub(super) fn solo_active(&self) -> bool {
        let (a, b) = self.solo_signals();
        a.is_some() || b.is_some()
    }

    /// The light now, with its evidence.
    pub fn verdict(&self) -> Verdict {
        let light = self.light();
        let mut reasons = Vec::new();
        match light {
            Light::Green => {}
            Light::Red => match (&self.red_src, self.announced_silence()) {
                (Some(m), _) if self.now_us < self.red_until => m.push_reasons(&mut reasons),
                (_, Some((s, b))) => {
                    reasons.push(Reason::Silence {
                        first_seq: s.first_seq,
                        since_us: s.since_us,
                        elapsed_us: self.now_us.saturating_sub(s.since_us),
                    });
                    reasons.push(b.into());
                }
                _ => {}
            },
            Light::Yellow => {
                if let Some(ep) = self.pending_yellow() {
                    reasons.push(Reason::LossBurst {
                        probes: ep.probes.saturating_sub(ep.unlost),
                        first_seq: ep.a,
                        last_seq: ep.b,
                        start_us: ep.s_a,
                        end_us: ep.s_next,
                    });
                }
                if self.now_us < self.yellow_until {
                    if let Some(m) = &self.yellow_src {
                        m.push_reasons(&mut reasons);
                    }
                }
                if let Some(s) = self.silence.filter(|_| self.silence_active()) {
                    reasons.push(Reason::Silence {
                        first_seq: s.first_seq,
                        since_us: s.since_us,
                        elapsed_us: if s.open {
                            self.now_us.saturating_sub(s.since_us)
                        } else {
                            s.elapsed_us
                        },
                    });
                }
                let (step, burst) = self.solo_signals();
                reasons.extend(step);
                reasons.extend(burst);
                if self.peak_yellow() {
                    let baseline_us = self.base.median;
                    let r = if self.peak.active {
                        Reason::RttPeak {
                            max_rtt_us: self.peak.max_rtt,
                            baseline_us,
                            probes: self.peak.probes,
                            start_us: self.peak.start_us,
                            end_us: self.peak.last_elev_us,
                        }
                    } else {
                        let s = self.peak_span.unwrap_or(PeakSpan {
                            start_us: 0,
                            end_us: 0,
                            max_rtt: 0,
                            probes: 0,
                        });
                        Reason::RttPeak {
                            max_rtt_us: s.max_rtt,
                            baseline_us,
                            probes: s.probes,
                            start_us: s.start_us,
                            end_us: s.end_us,
                        }
                    };
                    reasons.push(r);
                }
            }
        }
        Verdict { light, reasons }
    }
}
