//! Every yellow light leaves a trace: the spans of time the detector's
//! light was yellow, with the reasons it gave, so that a brief yellow (an
//! RTT peak, a short silence, a lone clock step) is still in the event log
//! after the light went back to green. Yellows that a detected event
//! explains are logged as that event instead (see [`unexplained`]).

use migwatch_shared::{Detector, Light, Migration, Reason};
use std::mem::discriminant;

/// Spans kept per target: as many as the event log shows rows.
pub const YELLOW_SPANS: usize = 200;

/// One stretch of time the light was yellow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YellowSpan {
    /// Event time the light turned yellow, unix µs.
    pub start_us: i64,
    /// Event time it was last seen yellow (still yellow if `open`).
    pub end_us: i64,
    /// The reasons given while it was yellow: the latest of each kind,
    /// in the order they first appeared.
    pub reasons: Vec<Reason>,
    /// The light is still yellow.
    pub open: bool,
}

/// The yellow spans of one target, oldest first, at most
/// [`YELLOW_SPANS`].
#[derive(Debug, Clone, Default)]
pub struct Yellows {
    spans: Vec<YellowSpan>,
}

impl Yellows {
    /// Reads the light after an event was pushed to `d`. Costs one
    /// [`Detector::light`] per event, and a [`Detector::verdict`] only
    /// while the light is yellow.
    pub fn observe(&mut self, d: &Detector) {
        let Some(now) = d.now_us() else { return };
        let yellow = d.light() == Light::Yellow;
        let open = self.spans.last().is_some_and(|s| s.open);
        match (yellow, open) {
            (true, false) => {
                if self.spans.len() >= YELLOW_SPANS {
                    self.spans.remove(0);
                }
                self.spans.push(YellowSpan {
                    start_us: now,
                    end_us: now,
                    reasons: d.verdict().reasons,
                    open: true,
                });
            }
            (true, true) => {
                if let Some(s) = self.spans.last_mut() {
                    s.end_us = s.end_us.max(now);
                    for r in d.verdict().reasons {
                        match s
                            .reasons
                            .iter_mut()
                            .find(|x| discriminant(*x) == discriminant(&r))
                        {
                            Some(x) => *x = r,
                            None => s.reasons.push(r),
                        }
                    }
                }
            }
            (false, true) => {
                if let Some(s) = self.spans.last_mut() {
                    s.open = false;
                    s.end_us = s.end_us.max(now);
                }
            }
            (false, false) => {}
        }
    }

    /// Closes a span still open (the stream ended or the run changed).
    pub fn close(&mut self) {
        if let Some(s) = self.spans.last_mut() {
            s.open = false;
        }
    }

    /// Every span, oldest first.
    pub fn spans(&self) -> impl DoubleEndedIterator<Item = &YellowSpan> + '_ {
        self.spans.iter()
    }

    /// Forgets every span.
    pub fn clear(&mut self) {
        self.spans.clear();
    }
}

/// The spans no detected event explains, oldest first. An event explains
/// the yellows from its first lost probe until its decision plus the
/// light's holds (`hold_us`: red hold plus yellow hold): the silence before
/// it, the post-resume sawtooth and the yellow that follows a red.
pub fn unexplained<'a>(
    spans: impl DoubleEndedIterator<Item = &'a YellowSpan> + 'a,
    events: &'a [Migration],
    hold_us: i64,
) -> impl DoubleEndedIterator<Item = &'a YellowSpan> + 'a {
    spans.filter(move |s| {
        !events.iter().any(|m| {
            let until = m.decided_us.max(m.end_us).saturating_add(hold_us);
            s.start_us <= until && s.end_us >= m.start_us
        })
    })
}
