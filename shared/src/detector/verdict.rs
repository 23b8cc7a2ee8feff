//! What an event was, in one word and in a sentence: migrated, paused in
//! place, a path outage, replaced by another machine, or undecided. The word is
//! [`Evidence::verdict`](super::Evidence::verdict)'s; the sentence is what
//! `detect`, `/migrations` and the page show beside the reasons.

use super::{Light, Migration};
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
                let why = if e.clock_step.is_some() && e.channels.announce && !e.waited {
                    "waiting for an announce".to_string()
                } else if e.vetoed() && e.weak() {
                    "stop-like signs, but the outage has another explanation".to_string()
                } else if e.weak() && e.channels.announce {
                    "stop-like signs, but no announce came".to_string()
                } else if e.channels.any() {
                    "no channel confirmed a stop".to_string()
                } else {
                    "no clock or announce channel to tell".to_string()
                };
                let level = if self.level == Light::Red { "" } else { "possible migration, " };
                format!("{level}undecided: {stop}; {why}")
            }
        }
    }
}
