//! What an event was, in one word and in a sentence: migrated, paused in
//! place, a path outage, replaced by another machine, or undecided. The word is
//! [`Evidence::verdict`](super::Evidence::verdict)'s; the sentence is what
//! `detect` and `/migrations` show beside the reasons (the page's log
//! shows the verdict in fewer words, `format::verdict_words` there).

use super::{Evidence, Light, Migration};
use serde::{Deserialize, Serialize};

/// What an event was. Red means [`EventVerdict::Migrated`] and nothing
/// else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventVerdict {
    /// The VM stopped and moved: stop evidence plus an announce of its MAC,
    /// or, with no announce channel, the strongest stop evidence (then it
    /// may also have been paused in place: nothing could tell).
    Migrated,
    /// The guest's clock stepped back by about the stop while announces
    /// were watched, and none came: stopped and resumed in place.
    Paused,
    /// The guest's clock ran on across the loss: the path failed, the VM
    /// did not stop.
    PathOutage,
    /// No channel could tell (or one still may).
    #[default]
    Undecided,
    /// A different machine now answers at the address: the announces name
    /// a MAC other than the one learned there (a live migration keeps the
    /// MAC). Yellow, never red; not a migration.
    Replaced,
}

impl EventVerdict {
    /// The snake-case name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            EventVerdict::Migrated => "migrated",
            EventVerdict::Paused => "paused",
            EventVerdict::PathOutage => "path_outage",
            EventVerdict::Undecided => "undecided",
            EventVerdict::Replaced => "replaced",
        }
    }
}

fn fmt_ms(us: i64) -> String {
    let ms = us as f64 / 1000.0;
    if ms.abs() >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// The echo's reasons against a stop, in words, joined: what keeps an
/// event with stop-like signs from red, so a yellow names its cause.
fn vetoes(e: &Evidence) -> Option<String> {
    let mut v = Vec::new();
    if let Some(c) = e.congestion {
        let ratio = f64::from(c.rtt_us) / f64::from(c.baseline_us.max(1));
        v.push(format!(
            "the replies before it were already slow ({}, {ratio:.1} × the quiet {}): a busy host or path loses probes like this too",
            fmt_ms(i64::from(c.rtt_us)),
            fmt_ms(i64::from(c.baseline_us))
        ));
    }
    if let Some(f) = e.flush {
        v.push(format!(
            "{} replies came back at once (up to {}), as a queue released after the monitor's own ARP re-resolution does",
            f.replies,
            fmt_ms(i64::from(f.max_rtt_us))
        ));
    }
    if let Some(d) = e.long_outage {
        v.push(format!(
            "it lasted {}, longer than a stop-and-copy",
            fmt_ms(d)
        ));
    }
    (!v.is_empty()).then(|| v.join("; "))
}

impl Migration {
    /// The verdict in one sentence, e.g. "paused in place for 301 ms, not
    /// migrated: the guest clock stepped back by 301 ms and no announce
    /// came while announces were watched".
    pub fn explain(&self) -> String {
        let e = &self.evidence;
        let stop = match (e.clock_step, self.probes) {
            (Some(c), _) => format!(
                "the guest clock stepped back by {}",
                fmt_ms(c.downtime_us())
            ),
            (None, 0) => "no probe was lost".to_string(),
            (None, n) => format!(
                "{n} probe{} lost over {}",
                if n == 1 { "" } else { "s" },
                fmt_ms(self.end_us.saturating_sub(self.start_us))
            ),
        };
        let down = fmt_ms(self.downtime_us);
        match self.verdict {
            EventVerdict::Replaced => super::replaced::explain(self, &stop),
            EventVerdict::Migrated if e.announce.is_some() => {
                format!("migrated: stopped for {down} ({stop}) and its MAC was announced again")
            }
            EventVerdict::Migrated => {
                let echo = match (e.clock_step, e.held, e.sawtooth) {
                    (Some(_), _, _) => String::new(),
                    (None, Some(_), _) => ", a reply held across it".to_string(),
                    (None, None, Some(_)) => ", then the post-resume sawtooth".to_string(),
                    _ => String::new(),
                };
                format!(
                    "migrated or paused: stopped for {down} ({stop}{echo}); no announce channel to tell a move from a pause"
                )
            }
            EventVerdict::Paused => format!(
                "paused in place for {down}, not migrated: {stop} and no announce came while announces were watched"
            ),
            EventVerdict::PathOutage => {
                let change = e.clock_steady.map_or(0, |c| c.change_us);
                format!(
                    "path outage, not a migration: {stop} while the guest clock ran on ({:+.1} ms)",
                    change as f64 / 1000.0
                )
            }
            EventVerdict::Undecided => {
                let vetoes = vetoes(e);
                // Without a channel that could still tell, say so: it is
                // what the user can change (`--capture-iface`, ICMP
                // Timestamp let through).
                let blind = if e.channels.any() {
                    ""
                } else {
                    "; no clock or announce channel to tell"
                };
                let why = if e.clock_step.is_some() && e.channels.announce && !e.waited {
                    "waiting for an announce".to_string()
                } else if e.vetoed() && e.weak() {
                    match vetoes {
                        Some(v) => format!("stop-like signs, but {v}{blind}"),
                        None => "stop-like signs, but the outage has another explanation".into(),
                    }
                } else if e.weak() && e.channels.announce {
                    "stop-like signs, but no announce came".to_string()
                } else if e.channels.any() {
                    "no channel confirmed a stop".to_string()
                } else {
                    match vetoes {
                        Some(v) => format!("{v}{blind}"),
                        None => "no clock or announce channel to tell".to_string(),
                    }
                };
                let level = if self.level == Light::Red { "" } else { "possible migration, " };
                format!("{level}undecided: {stop}; {why}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{Channels, Congestion, QueueFlush, Sawtooth};

    /// The lab's 66 ms TCG migration on echo alone: a one-tooth ramp after
    /// the loss, on a host whose replies sat at 4.3 × the quiet level.
    fn busy_ramp(channels: Channels) -> Migration {
        Migration {
            id: 1,
            first_seq: 3915,
            last_seq: 3920,
            probes: 6,
            start_us: 0,
            end_us: 60_000,
            downtime_us: 60_000,
            downtime_source: Default::default(),
            level: Light::Yellow,
            verdict: EventVerdict::Undecided,
            evidence: Evidence {
                sawtooth: Some(Sawtooth {
                    probes: 12,
                    first_rtt_us: 114_600,
                    max_rtt_us: 114_600,
                    teeth: 1,
                    span_us: 109_931,
                }),
                congestion: Some(Congestion {
                    rtt_us: 1_381,
                    baseline_us: 321,
                }),
                channels,
                waited: true,
                ..Evidence::default()
            },
            decided_us: 182_500,
            interval_us: 10_000,
        }
    }

    #[test]
    fn an_undecided_yellow_names_what_kept_it_from_red() {
        let m = busy_ramp(Channels::default());
        assert_eq!(
            m.explain(),
            "possible migration, undecided: 6 probes lost over 60.0 ms; stop-like signs, \
             but the replies before it were already slow (1.4 ms, 4.3 × the quiet 0.3 ms): \
             a busy host or path loses probes like this too; no clock or announce channel to tell"
        );
    }

    #[test]
    fn a_veto_without_stop_like_signs_is_named_too() {
        let mut m = busy_ramp(Channels::default());
        m.evidence.sawtooth = None;
        m.evidence.flush = Some(QueueFlush {
            replies: 20,
            max_rtt_us: 156_555,
        });
        let words = m.explain();
        assert!(words.contains("already slow (1.4 ms, 4.3 ×"), "{words}");
        assert!(
            words.contains("20 replies came back at once (up to 157 ms)"),
            "{words}"
        );
        assert!(
            words.ends_with("no clock or announce channel to tell"),
            "{words}"
        );
        assert!(!words.contains("stop-like"), "{words}");
    }

    #[test]
    fn with_a_live_channel_the_yellow_does_not_ask_for_one() {
        let m = busy_ramp(Channels {
            clock: true,
            announce: false,
        });
        let words = m.explain();
        assert!(words.contains("already slow"), "{words}");
        assert!(!words.contains("no clock or announce channel"), "{words}");
    }
}
