//! Turning numbers and detector reasons into plain words.
//!
//! No browser calls: the local time-zone offset is passed in, so these are
//! unit tested natively.

use migwatch_shared::detector::DowntimeSource;
use migwatch_shared::{Light, Reason};

/// A UTC offset lookup: minutes to add to UTC for local time at the given
/// unix µs (a function, because the offset changes with daylight saving).
pub type TzOffset<'a> = &'a dyn Fn(i64) -> i32;

/// `HH:MM:SS.mmm` of unix µs `t`, shifted by `offset_min` minutes.
pub fn clock(t_us: i64, offset_min: i32) -> String {
    let ms = t_us.div_euclid(1000) + i64::from(offset_min) * 60_000;
    let day_ms = ms.rem_euclid(86_400_000);
    let (h, rest) = (day_ms / 3_600_000, day_ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// A duration in µs, with as many digits as are meaningful at its size:
/// `0.25 ms`, `46.8 ms`, `468 ms`, `1.44 s`, `12.3 s`.
pub fn duration(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 999.5 {
        format!("{ms:.0} ms")
    } else if ms < 9_995.0 {
        format!("{} s", trim(&format!("{:.2}", ms / 1000.0)))
    } else {
        format!("{} s", trim(&format!("{:.1}", ms / 1000.0)))
    }
}

/// A probe interval in ms as the header shows it: `every 10 ms`.
pub fn interval(ms: f64) -> String {
    if !(ms.is_finite() && ms > 0.0) {
        return "unknown interval".into();
    }
    if ms >= 1000.0 {
        format!("every {} s", trim(&format!("{:.3}", ms / 1000.0)))
    } else {
        format!("every {} ms", trim(&format!("{ms:.3}")))
    }
}

/// A decimal number without trailing zeros: `2.50` → `2.5`, `1.00` → `1`.
fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// `HH:MM:SS.mmm–HH:MM:SS.mmm`, or one time when both ends are equal.
pub fn span(start_us: i64, end_us: i64, tz: TzOffset<'_>) -> String {
    let a = clock(start_us, tz(start_us));
    if start_us == end_us {
        a
    } else {
        format!("{a}–{}", clock(end_us, tz(end_us)))
    }
}

/// A signed µs duration (negative counts as 0).
pub fn duration_i(us: i64) -> String {
    duration(u64::try_from(us).unwrap_or(0))
}

/// A clock step or change in ms with one decimal (readings are good to
/// about a millisecond, medians to a fraction of one): `368.2 ms`; from
/// 10 s on as [`duration`] does.
fn clock_ms(us: i64) -> String {
    let a = us.unsigned_abs();
    if a < 10_000_000 {
        format!("{:.1} ms", a as f64 / 1000.0)
    } else {
        duration(a)
    }
}

/// The live confirming channels that stayed silent, as a clause:
/// `no clock step and no MAC announce followed`.
fn unconfirmed(clock: bool, announce: bool) -> String {
    match (clock, announce) {
        (true, true) => "no clock step and no MAC announce followed".into(),
        (true, false) => "no clock step followed".into(),
        (false, true) => "no MAC announce followed".into(),
        (false, false) => "nothing confirmed a migration".into(),
    }
}

/// `3 RARP + 2 gratuitous ARP`, naming only the kinds seen.
fn announce_frames(rarp: u32, garp: u32) -> String {
    match (rarp, garp) {
        (r, 0) => format!("{r} RARP"),
        (0, g) => format!("{g} gratuitous ARP"),
        (r, g) => format!("{r} RARP + {g} gratuitous ARP"),
    }
}

/// A different machine at the address (verdict `replaced`) rules out a
/// move, whatever else the reasons say.
fn replaced_conclusion(conclusion: &mut Option<&'static str>) {
    *conclusion = Some("a different machine at the address, not a migration");
}

/// Where a downtime estimate comes from, in words: `clock step`.
pub fn downtime_source(s: DowntimeSource) -> &'static str {
    match s {
        DowntimeSource::ClockStep => "clock step",
        DowntimeSource::LateReply => "late reply",
        DowntimeSource::LossBurst => "lost probes",
    }
}

/// `1 probe`, `47 probes`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One detector reason in plain words, e.g.
/// `47 probes lost 10:31:02.315–10:31:02.790` or `late reply 468 ms (probe #1234)`.
pub fn reason(r: &Reason, tz: TzOffset<'_>) -> String {
    let ms = |us: u32| duration(u64::from(us));
    match *r {
        Reason::LossBurst {
            probes,
            start_us,
            end_us,
            ..
        } => format!(
            "{} lost {}",
            count(probes, "probe", "probes"),
            span(start_us, end_us, tz)
        ),
        Reason::LateReply { seq, rtt_us } => {
            format!("late reply {} (probe #{seq})", ms(rtt_us))
        }
        Reason::Sawtooth {
            probes,
            first_rtt_us,
            max_rtt_us,
            ..
        } => format!(
            "sawtooth after the outage: {}, first {}, peak {}",
            count(u64::from(probes), "elevated reply", "elevated replies"),
            ms(first_rtt_us),
            ms(max_rtt_us)
        ),
        Reason::QueueFlush {
            replies,
            max_rtt_us,
        } => format!(
            "{} released at once (up to {}): a queue flush, not a migration",
            count(u64::from(replies), "queued reply", "queued replies"),
            ms(max_rtt_us)
        ),
        Reason::Congestion {
            rtt_us,
            baseline_us,
        } => format!(
            "RTT already high before the loss: {} against a baseline of {}",
            ms(rtt_us),
            ms(baseline_us)
        ),
        Reason::LongOutage { duration_us } => format!(
            "outage of {}: longer than any stop-and-copy",
            duration_i(duration_us)
        ),
        Reason::Silence {
            since_us,
            elapsed_us,
            ..
        } => format!(
            "no reply since {} ({})",
            clock(since_us, tz(since_us)),
            duration_i(elapsed_us)
        ),
        Reason::RttPeak {
            max_rtt_us,
            baseline_us,
            probes,
            start_us,
            end_us,
        } => format!(
            "RTT peak {} (baseline {}, {}) {}",
            ms(max_rtt_us),
            ms(baseline_us),
            count(u64::from(probes), "reply", "replies"),
            span(start_us, end_us, tz)
        ),
        Reason::ClockStep {
            step_us, samples, ..
        } => format!(
            "guest clock {} {} ({})",
            if step_us <= 0 {
                "stepped back"
            } else {
                "jumped ahead"
            },
            clock_ms(step_us),
            count(u64::from(samples), "reading", "readings")
        ),
        Reason::Announce {
            rarp,
            garp,
            mac,
            previous_mac: Some(old),
            ..
        } => format!(
            "another machine announced the address: MAC {old} → {mac} ({})",
            announce_frames(rarp, garp)
        ),
        Reason::Announce {
            rarp, garp, mac, ..
        } => format!("MAC {mac} announced again: {}", announce_frames(rarp, garp)),
        Reason::ClockSteady {
            change_us,
            outage_us,
        } => format!(
            "guest clock ran on through the {} outage (±{}): the guest was not stopped",
            duration_i(outage_us),
            clock_ms(change_us)
        ),
        Reason::Unconfirmed { clock, announce } => unconfirmed(clock, announce),
    }
}

/// `guest clock stepped back 368 ms`.
fn clock_step_words(step_us: i64) -> String {
    format!(
        "guest clock {} {}",
        if step_us <= 0 {
            "stepped back"
        } else {
            "jumped ahead"
        },
        duration(step_us.unsigned_abs())
    )
}

/// The strong signals among `reasons` (the guest itself says it moved),
/// strongest first: `guest clock stepped back 368 ms, MAC announced again`,
/// or `MAC announced again (5 RARP + 5 gratuitous ARP)` alone.
fn strong_words(reasons: &[Reason]) -> Option<String> {
    let step = reasons.iter().find_map(|r| match *r {
        Reason::ClockStep { step_us, .. } => Some(clock_step_words(step_us)),
        _ => None,
    });
    let announce = reasons.iter().find_map(|r| match *r {
        Reason::Announce { rarp, garp, .. } => Some(announce_frames(rarp, garp)),
        _ => None,
    });
    match (step, announce) {
        (Some(s), Some(_)) => Some(format!("{s}, MAC announced again")),
        (Some(s), None) => Some(s),
        (None, Some(a)) => Some(format!("MAC announced again ({a})")),
        (None, None) => None,
    }
}

/// The light's name as the page shows it, in capitals.
pub fn light_word(light: Option<Light>) -> &'static str {
    match light {
        Some(Light::Green) => "GREEN",
        Some(Light::Yellow) => "YELLOW",
        Some(Light::Red) => "RED",
        None => "NO DATA",
    }
}

/// What the light means, under its name.
pub fn light_meaning(light: Option<Light>) -> &'static str {
    match light {
        Some(Light::Green) => "nothing unusual",
        Some(Light::Yellow) => "unusual outage or RTT peak: maybe a migration",
        Some(Light::Red) => "migration: the stop-and-copy signature",
        None => "waiting for samples from the sidecar",
    }
}

/// The verdict in one sentence, e.g. `Red: 47 probes lost
/// 10:31:02.315–10:31:02.790, then a late reply of 468 ms: stop-and-copy
/// signature.` Empty when green.
pub fn headline(light: Light, reasons: &[Reason], tz: TzOffset<'_>) -> String {
    let word = match light {
        Light::Green => return String::new(),
        Light::Yellow => "Yellow",
        Light::Red => "Red",
    };
    if light == Light::Red {
        if let Some(strong) = strong_words(reasons) {
            // The guest's own word that it moved says it all; the weaker
            // signals are in the reasons.
            let burst = reasons
                .iter()
                .find(|r| matches!(r, Reason::LossBurst { .. }))
                .map(|r| reason(r, tz));
            return match burst {
                Some(b) => format!("{word}: {b}; {strong}: migrated."),
                None => format!("{word}: {strong}: migrated."),
            };
        }
    }
    let ms = |us: u32| duration(u64::from(us));
    let mut parts: Vec<String> = Vec::new();
    let mut conclusion = None;
    let mut not_stopped = false;
    for r in reasons {
        let part = match *r {
            Reason::LossBurst { .. } | Reason::Silence { .. } => reason(r, tz),
            Reason::LateReply { rtt_us, .. } => format!("then a late reply of {}", ms(rtt_us)),
            Reason::Sawtooth { probes, .. } => format!(
                "then a sawtooth of {}",
                count(u64::from(probes), "elevated reply", "elevated replies")
            ),
            Reason::QueueFlush { replies, .. } => {
                conclusion.get_or_insert("a queue released at once, not a migration");
                format!(
                    "then {} released at once",
                    count(u64::from(replies), "queued reply", "queued replies")
                )
            }
            Reason::Congestion {
                rtt_us,
                baseline_us,
            } => {
                conclusion.get_or_insert("congestion, not a migration");
                format!(
                    "with RTT already at {} before it (baseline {})",
                    ms(rtt_us),
                    ms(baseline_us)
                )
            }
            Reason::LongOutage { duration_us } => {
                conclusion.get_or_insert("too long for a stop-and-copy");
                format!("lasting {}", duration_i(duration_us))
            }
            Reason::RttPeak { .. } => {
                conclusion.get_or_insert("an RTT peak: pre-copy or congestion, maybe");
                reason(r, tz)
            }
            Reason::ClockStep { step_us, .. } => clock_step_words(step_us),
            Reason::Announce {
                previous_mac: Some(_),
                ..
            } => {
                replaced_conclusion(&mut conclusion);
                reason(r, tz)
            }
            Reason::Announce { rarp, garp, .. } => {
                conclusion.get_or_insert("the VM may have moved");
                format!(
                    "then its MAC was announced again ({})",
                    announce_frames(rarp, garp)
                )
            }
            Reason::ClockSteady { change_us, .. } => {
                not_stopped = true;
                format!("the guest clock ran on (±{})", clock_ms(change_us))
            }
            Reason::Unconfirmed { clock, announce } => {
                not_stopped = true;
                unconfirmed(clock, announce)
            }
        };
        parts.push(part);
    }
    if let Some(first) = parts.first_mut() {
        if let Some(rest) = first.strip_prefix("then ") {
            *first = rest.to_string();
        }
    }
    let conclusion = match (light, conclusion) {
        (Light::Red, _) => "stop-and-copy signature",
        _ if not_stopped => "an outage, not a migration",
        (_, Some(c)) => c,
        _ if reasons.iter().any(|r| matches!(r, Reason::Silence { .. })) => {
            "an outage in progress, maybe a migration"
        }
        _ => "a possible migration",
    };
    if parts.is_empty() {
        format!("{word}: {conclusion}.")
    } else {
        format!("{word}: {}: {conclusion}.", parts.join(", "))
    }
}

/// One probe as the chart's tooltip says it: `10:31:02.315 · probe #1234
/// · RTT 0.25 ms`, `… · lost`, `… · lost, late reply 468 ms`.
pub fn sample_words(
    seq: u64,
    sent_us: i64,
    rtt_us: Option<u32>,
    late_us: Option<u32>,
    tz: TzOffset<'_>,
) -> String {
    let what = match (rtt_us, late_us) {
        (Some(r), _) => format!("RTT {}", duration(u64::from(r))),
        (None, Some(l)) => format!("lost, late reply {}", duration(u64::from(l))),
        (None, None) => "lost".to_string(),
    };
    format!("{} · probe #{seq} · {what}", clock(sent_us, tz(sent_us)))
}

/// Where an event log row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowSource {
    /// The page's own detector, over the probes it holds.
    #[default]
    Page,
    /// Only the sidecar's own list has it (it happened before the history
    /// this page holds).
    Sidecar,
    /// Only this browser remembers it: the sidecar no longer holds it
    /// (restarted, or past its history).
    Browser,
}

impl RowSource {
    /// `page`, `sidecar` or `browser`, for `data-source`.
    pub fn name(self) -> &'static str {
        match self {
            RowSource::Page => "page",
            RowSource::Sidecar => "sidecar",
            RowSource::Browser => "browser",
        }
    }
}

/// What an event log row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowKind {
    /// A detected event (an outage or a stop): a migration when red.
    #[default]
    Event,
    /// A yellow light no detected event explains: an RTT peak, a short
    /// silence, a lone clock step.
    Yellow,
}

impl RowKind {
    /// `event` or `yellow`, for `data-kind`.
    pub fn name(self) -> &'static str {
        match self {
            RowKind::Event => "event",
            RowKind::Yellow => "yellow",
        }
    }
}

/// One detected event as the event log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Which target (the page's key for it).
    pub key: u32,
    /// The target's label.
    pub target: String,
    /// The detector's id for the migration.
    pub id: u64,
    /// Red or yellow.
    pub level: Light,
    /// Start (send time of the first lost probe), unix µs.
    pub start_us: i64,
    /// End (send time of the first probe answered after), unix µs.
    pub end_us: i64,
    /// `10:31:02.315`.
    pub start: String,
    /// `10:31:02.790`.
    pub end: String,
    /// `468 ms (clock step)`; for a yellow span, how long it lasted.
    pub downtime: String,
    /// The evidence in words.
    pub evidence: Vec<String>,
    /// Who detected it.
    pub source: RowSource,
    /// An event or a yellow span.
    pub kind: RowKind,
    /// A yellow span still going on (its end moves with every probe).
    pub open: bool,
}

impl LogRow {
    /// The downtime column: `downtime 468 ms (clock step)`, or for a
    /// yellow span `yellow for 1.2 s`.
    pub fn downtime_text(&self) -> String {
        match self.kind {
            RowKind::Event => format!("downtime {}", self.downtime),
            RowKind::Yellow => self.downtime.clone(),
        }
    }
}

/// An event's verdict in the log's words: `paused in place, not migrated`.
pub fn verdict_words(m: &migwatch_shared::Migration) -> &'static str {
    use migwatch_shared::detector::EventVerdict as V;
    let e = &m.evidence;
    match m.verdict {
        V::Migrated if e.announce.is_some() => "migrated",
        V::Migrated => "migrated or paused (no announce channel to tell)",
        V::Paused => "paused in place, not migrated",
        V::PathOutage => "path outage, not a migration",
        V::Replaced => "a different machine at the address, not a migration",
        V::Undecided if !e.channels.any() => "undecided: no clock or announce channel to tell",
        V::Undecided => "undecided",
    }
}

/// The event log row of migration `m` of target `key` (`target`).
pub fn log_row(key: u32, target: &str, m: &migwatch_shared::Migration, tz: TzOffset<'_>) -> LogRow {
    LogRow {
        key,
        target: target.to_string(),
        id: m.id,
        level: m.level,
        start_us: m.start_us,
        end_us: m.end_us,
        start: clock(m.start_us, tz(m.start_us)),
        end: clock(m.end_us, tz(m.end_us)),
        downtime: format!(
            "{} ({})",
            duration_i(m.downtime_us),
            downtime_source(m.downtime_source)
        ),
        // The verdict first, then each reason behind it. Not
        // `Migration::explain`'s sentence: its formatting weighs 2 KB gzip
        // in the page, and the reasons already say the rest in words.
        evidence: std::iter::once(verdict_words(m).to_string())
            .chain(m.reasons().iter().map(|r| reason(r, tz)))
            .collect(),
        source: RowSource::Page,
        kind: RowKind::Event,
        open: false,
    }
}

/// The event log row of a yellow span no event explains: its reasons and
/// verdict in the headline's words (`RTT peak 212 ms (baseline 0.3 ms, 9
/// replies) 10:31:02.1–10:31:02.4: an RTT peak: pre-copy or congestion,
/// maybe.`).
pub fn yellow_row(
    key: u32,
    target: &str,
    y: &crate::model::YellowSpan,
    tz: TzOffset<'_>,
) -> LogRow {
    let head = headline(Light::Yellow, &y.reasons, tz);
    let head = head.strip_prefix("Yellow: ").unwrap_or(&head).to_string();
    let lasted = duration_i(y.end_us.saturating_sub(y.start_us));
    LogRow {
        key,
        target: target.to_string(),
        id: u64::try_from(y.start_us).unwrap_or(0),
        level: Light::Yellow,
        start_us: y.start_us,
        end_us: y.end_us,
        start: clock(y.start_us, tz(y.start_us)),
        end: clock(y.end_us, tz(y.end_us)),
        downtime: if y.open {
            format!("yellow for {lasted}, still on")
        } else {
            format!("yellow for {lasted}")
        },
        evidence: vec![head],
        source: RowSource::Page,
        kind: RowKind::Yellow,
        open: y.open,
    }
}

/// The most severe light of those given; `None` when none has data.
pub fn worst(lights: impl IntoIterator<Item = Option<Light>>) -> Option<Light> {
    let rank = |l: Light| match l {
        Light::Green => 0,
        Light::Yellow => 1,
        Light::Red => 2,
    };
    lights.into_iter().flatten().max_by_key(|l| rank(*l))
}

/// The favicon for a light: an SVG disc in its colour, as a data URL.
pub fn favicon(light: Option<Light>) -> String {
    let color = match light {
        Some(Light::Green) => "%2316a34a",
        Some(Light::Yellow) => "%23eab308",
        Some(Light::Red) => "%23dc2626",
        None => "%239aa3ae",
    };
    format!(
        "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Ccircle cx='8' cy='8' r='7' fill='{color}'/%3E%3C/svg%3E"
    )
}

/// The tab title for a light: `● RED — migwatch`, `○ no data — migwatch`.
pub fn title(light: Option<Light>) -> String {
    match light {
        Some(l) => format!("● {} — migwatch", light_word(Some(l))),
        None => "○ no data — migwatch".into(),
    }
}

#[cfg(test)]
mod tests;
