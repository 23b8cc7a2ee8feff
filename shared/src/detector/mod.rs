//! The migration detector: events in, a traffic light with reasons and a list
//! of migration events out.
//!
//! What the light means (details and measured results in
//! `docs/DETECTION.md`):
//! * **Green**: nothing unusual.
//! * **Yellow**: an unusual outage or RTT peak that may be a migration:
//!   a silence in progress ("possible migration in progress", shown within
//!   2 intervals + 50 ms of the first missed reply), a loss burst without a
//!   confirming signal, or a sustained RTT peak.
//! * **Red**: the stop-and-copy signature: a loss burst plus a confirming
//!   signal (a reply held across the outage with RTT ≈ downtime, or the
//!   post-resume sawtooth), with no veto (a queue released at once, RTT
//!   already high before the loss, an outage longer than any stop-and-copy).
//!
//! The detector reads no clock: "now" is the latest time carried by an event
//! (a reply's arrival, a tick), so replaying a trace gives exactly what the
//! live run gave. Per event the cost is O(1) and nothing allocates, apart
//! from recording a migration event (once per outage).

mod config;
mod evidence;
mod signals;
mod stats;
#[cfg(test)]
mod tests;

pub use config::DetectorConfig;
pub use evidence::{
    AnnounceBurst, Channels, ClockSteady, ClockStep, Congestion, DowntimeSource, Evidence,
    HeldReply, Migration, QueueFlush, Sawtooth,
};

use crate::wire::{Announce, Clock, Event, Late, Mac, Sample, Tick};
use serde::{Deserialize, Serialize};
use signals::{AnnounceAcc, Burst, ClockNews, ClockTrack, Step};
use stats::{Baseline, HighFrac, IntervalEst, Peak, PeakSpan, Recent};

/// The traffic light.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Light {
    /// Nothing unusual.
    Green,
    /// An unusual outage or peak that may be a migration.
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

/// One piece of evidence behind a light. Serialised with a `kind` tag in
/// snake case, e.g. `{"kind":"loss_burst","probes":12,...}`.
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
        /// Send time of the first probe answered after the burst (unix µs).
        end_us: i64,
    },
    /// A request held across the outage and answered after it, with an RTT
    /// about equal to the downtime: reported by the sidecar as `late` when
    /// it exceeded the timeout, else as a slow sample. Confirming.
    LateReply {
        /// The probe's sequence number.
        seq: u64,
        /// Its round-trip time in µs.
        rtt_us: u32,
    },
    /// The first replies after the outage were elevated and fell back to
    /// baseline within a few tens of ms, as a migrated guest warms up.
    /// Confirming.
    Sawtooth {
        /// Elevated replies.
        probes: u32,
        /// RTT of the first, µs.
        first_rtt_us: u32,
        /// Largest RTT, µs.
        max_rtt_us: u32,
        /// Groups of replies that arrived together.
        teeth: u32,
        /// Send-time span of the elevated replies, µs.
        span_us: u32,
    },
    /// Many replies released at once (VM pause, ARP re-resolution after a
    /// link flap on the monitor's side). Rules out red.
    QueueFlush {
        /// Replies that had been queued.
        replies: u32,
        /// The largest RTT among them, µs.
        max_rtt_us: u32,
    },
    /// The RTT was already high before the loss (congestion, CPU
    /// starvation). Rules out red.
    Congestion {
        /// RTT level before the loss, µs.
        rtt_us: u32,
        /// Baseline median, µs.
        baseline_us: u32,
    },
    /// The outage lasted longer than any stop-and-copy. Rules out red.
    LongOutage {
        /// How long it lasted, µs.
        duration_us: i64,
    },
    /// No reply since `since_us`: an outage in progress, possibly a
    /// migration. Provisional.
    Silence {
        /// First unanswered probe.
        first_seq: u64,
        /// Its send time (unix µs).
        since_us: i64,
        /// How long the silence has lasted (or lasted), µs.
        elapsed_us: i64,
    },
    /// The guest's clock stepped back by about the outage: it stood still
    /// while the VM was stopped. Strong: confirms a move on its own.
    ClockStep {
        /// The change of the target's clock offset, µs (negative: it lags).
        step_us: i64,
        /// Send time of the last good reading before the step (unix µs).
        before_us: i64,
        /// Send time of the reading that confirmed it (unix µs).
        after_us: i64,
        /// Good readings after the step that agree on it.
        samples: u32,
    },
    /// The target's MAC was announced again on its segment (RARP from the
    /// hypervisor, gratuitous ARP from the guest). Strong: the move
    /// completed. Outside an outage it is shown as yellow on its own.
    Announce {
        /// Frames in the burst.
        frames: u32,
        /// Of which RARP.
        rarp: u32,
        /// Of which gratuitous ARP.
        garp: u32,
        /// Capture time of the first frame (unix µs).
        first_us: i64,
        /// The MAC announced.
        mac: Mac,
    },
    /// The guest's clock ran on through the outage: it was never stopped,
    /// so the loss was on the path. Rules out red from a weak signal.
    ClockSteady {
        /// The offset change across the outage, µs (about 0).
        change_us: i64,
        /// The outage, µs.
        outage_us: i64,
    },
    /// A confirming channel was live and confirmed nothing: an outage, not
    /// a migration.
    Unconfirmed {
        /// Clock readings were arriving.
        clock: bool,
        /// Layer-2 announces were being watched.
        announce: bool,
    },
    /// A sustained RTT peak without loss (bulk copy, pre-copy on a loaded
    /// host, congestion, a paused VM's queued replies).
    RttPeak {
        /// Largest RTT in the peak, µs.
        max_rtt_us: u32,
        /// Baseline median, µs.
        baseline_us: u32,
        /// Elevated replies in the peak.
        probes: u32,
        /// About when it began (send time, unix µs).
        start_us: i64,
        /// Send time of its last elevated reply (unix µs).
        end_us: i64,
    },
}

impl Reason {
    /// The `kind` tag, e.g. `"loss_burst"`.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::LossBurst { .. } => "loss_burst",
            Reason::LateReply { .. } => "late_reply",
            Reason::Sawtooth { .. } => "sawtooth",
            Reason::QueueFlush { .. } => "queue_flush",
            Reason::Congestion { .. } => "congestion",
            Reason::LongOutage { .. } => "long_outage",
            Reason::Silence { .. } => "silence",
            Reason::RttPeak { .. } => "rtt_peak",
            Reason::ClockStep { .. } => "clock_step",
            Reason::Announce { .. } => "announce",
            Reason::ClockSteady { .. } => "clock_steady",
            Reason::Unconfirmed { .. } => "unconfirmed",
        }
    }
}

/// The current light and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The light.
    pub light: Light,
    /// The evidence, most important first. Empty when green.
    pub reasons: Vec<Reason>,
}

/// The RTT baseline the detector is using.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineInfo {
    /// Median RTT, µs.
    pub median_us: u32,
    /// Median absolute deviation, µs.
    pub mad_us: u32,
    /// RTT above which a reply counts as elevated, µs.
    pub elevated_us: u32,
}

/// Probes remembered per sequence number (a power of two). Outages longer
/// than this many probes are still reported, from their ends.
const WINDOW: usize = 4096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum SlotState {
    #[default]
    Empty,
    Answered,
    Lost,
    LostLate,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    seq: u64,
    sent_us: i64,
    rtt_us: u32,
    state: SlotState,
}

/// A silence: no reply to any probe after `first_seq - 1`.
#[derive(Debug, Clone, Copy)]
struct Silence {
    first_seq: u64,
    since_us: i64,
    open: bool,
    /// While closed: shown until then, with the elapsed time it reached.
    until_us: i64,
    elapsed_us: i64,
}

/// Late replies to probes after the last answered one, while the outage is
/// still going on (downtime longer than the sidecar's timeout).
#[derive(Debug, Clone, Copy, Default)]
struct HeldAcc {
    count: u32,
    seq: u64,
    rtt_us: u32,
    arrival_us: i64,
}

/// The replies after an outage, in order, until one is back to baseline.
#[derive(Debug, Clone, Copy, Default)]
struct Post {
    n_elev: u32,
    first_rtt: u32,
    max_rtt: u32,
    teeth: u32,
    /// Arrival of the first reply of the current tooth.
    tooth_start: i64,
    last_elev_sent: i64,
    /// A reply back at baseline was seen.
    done: bool,
    /// Still elevated long after the outage: no sawtooth.
    expired: bool,
    /// Single lost probes inside the shape.
    lost: u64,
}

/// The analysis of the latest outage. It is decided once its end is clear
/// and then stays open for late evidence until the next outage or until
/// `resolve_ms` have passed.
#[derive(Debug, Clone, Copy)]
struct Episode {
    id: u64,
    a: u64,
    b: u64,
    probes: u64,
    s_a: i64,
    s_next: i64,
    t_end: i64,
    iv: u32,
    elev: u32,
    pre_level: u32,
    congestion: Option<Congestion>,
    long: Option<i64>,
    held_lo: i64,
    held_hi: i64,
    held_count: u32,
    held: Option<HeldReply>,
    held_max: u32,
    /// Held replies that still read as a stop-and-copy: `max_held` plus
    /// the requests sent in the last `held_span_ms`.
    held_allow: u32,
    resolved: u64,
    /// Probes of the run answered after all (reordering).
    unlost: u64,
    post: Post,
    /// The guest clock's step across this outage.
    clock_step: Option<ClockStep>,
    /// The announce burst that followed it.
    announce: Option<AnnounceBurst>,
    /// Clock readings after the outage that agree with the line before it.
    steady_n: u32,
    steady_change: i64,
    /// Clock readings were arriving before the outage.
    clock_live: bool,
    /// `confirm_wait_ms` have passed since its end.
    waited: bool,
    decided: bool,
    dirty: bool,
    published: bool,
    level: Light,
}

impl Episode {
    fn held_ok(&self, arrival: i64, rtt: u32, cfg: &DetectorConfig) -> bool {
        rtt >= cfg.held_min_us
            && rtt > self.elev
            && arrival >= self.held_lo
            && arrival <= self.held_hi
    }

    fn dur(&self) -> i64 {
        self.s_next.saturating_sub(self.s_a)
    }

    /// Whether a clock step explains this outage: the guest lagged by
    /// about its length, and the step lies across it.
    fn step_fits(&self, st: &Step, cfg: &DetectorConfig) -> bool {
        let d = st.step_us.saturating_neg();
        let iv = 2 * i64::from(self.iv);
        let dur = self.dur();
        d >= i64::from(cfg.clock_step_min_us)
            && st.before_us <= self.s_next
            && st.first_after_us >= self.s_a
            && d <= dur + iv + 100_000
            && d >= dur / 4 - iv
    }

    fn attach_step(&mut self, st: &Step, cfg: &DetectorConfig) -> bool {
        if !self.step_fits(st, cfg) {
            return false;
        }
        self.clock_step = Some(st.evidence());
        self.dirty = true;
        true
    }

    /// Whether an announce burst follows this outage.
    fn attach_burst(&mut self, b: &Burst, cfg: &DetectorConfig) -> bool {
        let window = ms(cfg.announce_window_ms);
        if b.first_us < self.s_a.saturating_sub(100_000)
            || b.first_us > self.t_end.saturating_add(window)
        {
            return false;
        }
        self.announce = Some(b.evidence());
        self.dirty = true;
        true
    }

    fn add_held(&mut self, seq: u64, rtt: u32, count: u32) {
        self.held_count = self.held_count.saturating_add(count);
        self.held_max = self.held_max.max(rtt);
        // The one sent last before the stop has the RTT closest to the
        // downtime.
        if self.held.is_none_or(|h| seq > h.seq) {
            self.held = Some(HeldReply { seq, rtt_us: rtt });
        }
        self.dirty = true;
    }
}

/// The streaming detector. Feed it every event with [`Detector::push`] and
/// read [`Detector::verdict`] (or the cheaper [`Detector::light`]) and
/// [`Detector::migrations`] whenever you like.
#[derive(Debug, Clone)]
pub struct Detector {
    cfg: DetectorConfig,
    slots: Box<[Slot]>,
    now_us: i64,
    interval: IntervalEst,
    base: Baseline,
    elev_us: u32,
    recent: Recent,
    /// Which recent replies were above the congestion level.
    high: HighFrac,
    /// The congestion level, µs.
    high_us: u32,
    peak: Peak,
    peak_span: Option<PeakSpan>,
    peak_until: i64,
    frozen_since: Option<i64>,
    have_seq: bool,
    hi_seq: u64,
    s_hi_seq: i64,
    have_ans: bool,
    hi_ans: u64,
    s_hi_ans: i64,
    hi_sent: Option<u64>,
    /// Lost samples for probes after `hi_ans` (they are in the next outage).
    lost_above: u64,
    ticks_seen: bool,
    hole_pending: bool,
    /// When the latest hole was noticed (event time).
    hole_at: i64,
    silence: Option<Silence>,
    held_acc: HeldAcc,
    episode: Option<Episode>,
    next_id: u64,
    migrations: Vec<Migration>,
    red_until: i64,
    red_src: Option<Migration>,
    yellow_until: i64,
    yellow_src: Option<Migration>,
    /// The sidecar watches for layer-2 announces (from `/info`).
    announce_channel: bool,
    clock: ClockTrack,
    announces: AnnounceAcc,
    /// The clock step (by the time of its first reading after) and the
    /// announce burst (by its first frame) that belong to an outage.
    step_owned: Option<i64>,
    burst_owned: Option<i64>,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new(DetectorConfig::default())
    }
}

fn ms(v: u32) -> i64 {
    i64::from(v) * 1000
}

impl Detector {
    /// A detector with these thresholds.
    pub fn new(cfg: DetectorConfig) -> Self {
        Detector {
            cfg,
            slots: vec![Slot::default(); WINDOW].into_boxed_slice(),
            now_us: i64::MIN,
            interval: IntervalEst::new(),
            base: Baseline::new(),
            elev_us: cfg.elev_floor_us,
            recent: Recent::new(),
            high: HighFrac::new(),
            high_us: cfg.congestion_min_us,
            peak: Peak::default(),
            peak_span: None,
            peak_until: i64::MIN,
            frozen_since: None,
            have_seq: false,
            hi_seq: 0,
            s_hi_seq: 0,
            have_ans: false,
            hi_ans: 0,
            s_hi_ans: 0,
            hi_sent: None,
            lost_above: 0,
            ticks_seen: false,
            hole_pending: false,
            hole_at: i64::MIN,
            silence: None,
            held_acc: HeldAcc::default(),
            episode: None,
            next_id: 1,
            migrations: Vec::new(),
            red_until: i64::MIN,
            red_src: None,
            yellow_until: i64::MIN,
            yellow_src: None,
            announce_channel: false,
            clock: ClockTrack::new(),
            announces: AnnounceAcc::default(),
            step_owned: None,
            burst_owned: None,
        }
    }

    /// Says whether the sidecar watches for layer-2 announces (its `/info`
    /// names a `capture_iface`). With it on, an outage that no announce
    /// follows is "an outage, not a migration" unless something else
    /// confirms it. Clock readings need no such call: they are seen.
    pub fn set_announce_channel(&mut self, on: bool) {
        self.announce_channel = on;
    }

    /// The thresholds in use.
    pub fn config(&self) -> &DetectorConfig {
        &self.cfg
    }

    /// The latest event time seen (unix µs), or `None` before any.
    pub fn now_us(&self) -> Option<i64> {
        (self.now_us != i64::MIN).then_some(self.now_us)
    }

    /// The probe interval in use (configured or inferred), µs.
    pub fn interval_us(&self) -> Option<u32> {
        let iv = self.iv();
        (iv > 0).then_some(iv)
    }

    /// The RTT baseline, once at least 16 replies were seen.
    pub fn baseline(&self) -> Option<BaselineInfo> {
        self.base.ready.then_some(BaselineInfo {
            median_us: self.base.median,
            mad_us: self.base.mad,
            elevated_us: self.elev_us,
        })
    }

    /// Outages worth reporting so far, oldest first: red (migration) and
    /// yellow (possible migration). The latest may still change level as
    /// late evidence arrives; a withdrawn one (no data after all) vanishes.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    fn iv(&self) -> u32 {
        self.cfg.interval_us.unwrap_or(self.interval.us)
    }

    fn slot_idx(seq: u64) -> usize {
        (seq % WINDOW as u64) as usize
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let s = &self.slots[Self::slot_idx(seq)];
        (s.seq == seq && s.state != SlotState::Empty).then_some(s)
    }

    /// Feeds one event. Gaps and overflows are holes in the data: they end
    /// any silence in progress and the probes they hide are never counted as
    /// lost.
    pub fn push(&mut self, ev: &Event) {
        match ev {
            Event::Sample(s) => match s.rtt_us {
                Some(r) => self.answered(s, r),
                None => self.lost(s),
            },
            Event::Late(l) => self.late(l),
            Event::Tick(t) => self.tick(t),
            // Probes never sent are missing data, like a gap: never loss.
            Event::Gap(_) | Event::Overflow(_) | Event::Skip(_) => self.hole(),
            Event::Clock(c) => self.clock_reading(c),
            Event::Announce(a) => self.announce(a),
        }
        self.timers();
    }

    /// Ends the input: decides the outage still being analysed with the
    /// evidence at hand. Call it at the end of a trace file.
    pub fn finish(&mut self) {
        if let Some(mut ep) = self.episode {
            if !ep.decided {
                ep.decided = true;
                ep.post.expired = !ep.post.done;
                self.evaluate(&mut ep);
                self.episode = Some(ep);
            }
        }
    }

    // ---- time and holes -------------------------------------------------

    fn hole_us(&self) -> i64 {
        ms(self.cfg.hole_ms).max(4 * i64::from(self.iv()))
    }

    /// Moves "now" forward to an event's time; with ticks on, a long quiet
    /// spell means the stream itself was down.
    #[inline]
    fn advance(&mut self, t: i64) {
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

    fn hole(&mut self) {
        self.hole_pending = true;
        self.hole_at = self.now_us;
        self.silence = None;
        self.held_acc = HeldAcc::default();
        self.lost_above = 0;
    }

    /// A lower seq sent later than the highest one: the sidecar restarted.
    fn check_new_run(&mut self, seq: u64, sent_us: i64) {
        if self.have_seq
            && seq < self.hi_seq
            && sent_us > self.s_hi_seq
            && (seq < 16 || self.hi_seq - seq > WINDOW as u64)
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
        }
    }

    #[inline]
    fn note_seq(&mut self, seq: u64, sent_us: i64) {
        if !self.have_seq || seq > self.hi_seq {
            self.have_seq = true;
            self.hi_seq = seq;
            self.s_hi_seq = sent_us;
        }
        self.interval.observe(seq, sent_us);
    }

    fn anomaly(&self) -> bool {
        self.silence.is_some_and(|s| s.open)
            || self.episode.is_some_and(|e| !e.decided)
            || self.peak.count() >= 8
    }

    fn update_elev(&mut self) {
        let m = self.base.median as f32;
        let scale = (1.4826 * self.base.mad as f32).max(self.cfg.mad_floor_us as f32);
        let e = (m + self.cfg.elev_mad_k * scale)
            .max(m * self.cfg.elev_ratio)
            .max(m + self.cfg.elev_floor_us as f32);
        self.elev_us = e.min(u32::MAX as f32) as u32;
        let h = (self.cfg.congestion_min_us as f32).max(self.cfg.congestion_factor * m);
        self.high_us = h.min(u32::MAX as f32) as u32;
    }

    // ---- events -----------------------------------------------------------

    fn answered(&mut self, s: &Sample, rtt: u32) {
        let arrival = s.sent_us.saturating_add(i64::from(rtt));
        self.advance(arrival);
        self.check_new_run(s.seq, s.sent_us);
        let idx = Self::slot_idx(s.seq);
        if self.slots[idx].seq == s.seq && self.slots[idx].state != SlotState::Empty {
            return; // a repeat carries nothing new
        }
        let anomaly = self.anomaly();
        self.slots[idx] = Slot {
            seq: s.seq,
            sent_us: s.sent_us,
            rtt_us: rtt,
            state: SlotState::Answered,
        };
        self.note_seq(s.seq, s.sent_us);

        if !self.have_ans || s.seq > self.hi_ans {
            if self.have_ans && s.seq > self.hi_ans.saturating_add(1) && !self.hole_pending {
                self.gap_ended(self.hi_ans + 1, s.seq - 1, s.seq, s.sent_us, arrival);
            }
            // Replies to probes sent before the hole was noticed do not end
            // it (they were in flight while the stream was down).
            if s.sent_us >= self.hole_at {
                self.hole_pending = false;
            }
            self.have_ans = true;
            self.hi_ans = s.seq;
            self.s_hi_ans = s.sent_us;
            self.lost_above = 0;
            self.held_acc = HeldAcc::default();
            self.close_silence();
        } else if let Some(ep) = self.episode.as_mut() {
            // A timely reply to a probe presumed lost: it was overtaken, not
            // lost. (A request held across a stop shorter than the timeout
            // is answered before the probes after the outage; one held
            // longer is reported lost, then late.)
            if (ep.a..=ep.b).contains(&s.seq) {
                ep.unlost += 1;
                ep.dirty = true;
            }
        }

        let elevated = rtt > self.elev_us;
        if let Some(ep) = self.episode.as_mut() {
            let p = &mut ep.post;
            if s.seq > ep.b && !p.done && !p.expired {
                if rtt > ep.elev {
                    let align = u64::from(self.cfg.align_us.min(ep.iv / 2).max(1));
                    if p.n_elev == 0 {
                        p.first_rtt = rtt;
                        p.teeth = 1;
                        p.tooth_start = arrival;
                    } else if arrival.abs_diff(p.tooth_start) > align {
                        p.teeth += 1;
                        p.tooth_start = arrival;
                    }
                    p.n_elev += 1;
                    p.max_rtt = p.max_rtt.max(rtt);
                    p.last_elev_sent = s.sent_us;
                } else {
                    p.done = true;
                }
                ep.dirty = true;
            }
        }

        let iv = self.iv();
        if let Some(span) = self.peak.push(s.sent_us, rtt, elevated, iv) {
            if span.end_us.saturating_sub(span.start_us) >= ms(self.cfg.peak_min_ms) {
                self.peak_span = Some(span);
                self.peak_until = self.now_us.saturating_add(ms(self.cfg.yellow_hold_ms));
            }
        }
        self.recent.push(rtt);
        self.high.push(rtt >= self.high_us);

        let feed = if anomaly {
            let since = *self.frozen_since.get_or_insert(self.now_us);
            self.now_us.saturating_sub(since) > ms(self.cfg.freeze_max_ms)
        } else {
            self.frozen_since = None;
            true
        };
        if feed && self.base.push(rtt) {
            self.update_elev();
        }
    }

    fn lost(&mut self, s: &Sample) {
        self.advance(s.sent_us);
        self.check_new_run(s.seq, s.sent_us);
        let idx = Self::slot_idx(s.seq);
        if self.slots[idx].seq == s.seq && self.slots[idx].state != SlotState::Empty {
            return;
        }
        self.slots[idx] = Slot {
            seq: s.seq,
            sent_us: s.sent_us,
            rtt_us: 0,
            state: SlotState::Lost,
        };
        self.note_seq(s.seq, s.sent_us);
        if !self.have_ans || s.seq > self.hi_ans {
            self.lost_above += 1;
        } else if let Some(ep) = self.episode.as_mut() {
            if (ep.a..=ep.b).contains(&s.seq) {
                ep.resolved += 1;
            }
        }
        self.check_silence();
    }

    fn late(&mut self, l: &Late) {
        let idx = Self::slot_idx(l.seq);
        let slot = self.slots[idx];
        if slot.seq != l.seq || slot.state != SlotState::Lost {
            return; // unknown probe, or a repeat
        }
        self.slots[idx].state = SlotState::LostLate;
        self.slots[idx].rtt_us = l.rtt_us;
        let arrival = slot.sent_us.saturating_add(i64::from(l.rtt_us));
        self.advance(arrival);
        if self.have_ans && l.seq > self.hi_ans {
            // Held while the outage still goes on: judged when it ends.
            let a = &mut self.held_acc;
            a.count = a.count.saturating_add(1);
            if a.count == 1 || l.seq > a.seq {
                a.seq = l.seq;
                a.rtt_us = l.rtt_us;
                a.arrival_us = arrival;
            }
        } else if let Some(ep) = self.episode.as_mut() {
            if (ep.a..=ep.b).contains(&l.seq) && ep.held_ok(arrival, l.rtt_us, &self.cfg) {
                ep.add_held(l.seq, l.rtt_us, 1);
            }
        }
    }

    fn tick(&mut self, t: &Tick) {
        self.ticks_seen = true;
        self.advance(t.now_us);
        if t.next_seq > 0 {
            self.hi_sent = Some(t.next_seq - 1);
        }
        self.check_silence();
    }

    fn clock_reading(&mut self, c: &Clock) {
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
                let fits = self
                    .episode
                    .as_mut()
                    .is_some_and(|ep| ep.attach_step(&st, &cfg));
                if fits {
                    self.step_owned = Some(st.first_after_us);
                }
            }
            ClockNews::Steady { t, residual } => {
                if let Some(ep) = self.episode.as_mut() {
                    if t >= ep.s_next && ep.clock_step.is_none() {
                        ep.steady_n += 1;
                        ep.steady_change = residual;
                        ep.dirty = true;
                    }
                }
            }
        }
    }

    fn announce(&mut self, a: &Announce) {
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
    fn solo_signals(&self) -> (Option<Reason>, Option<Reason>) {
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

    // ---- silence ------------------------------------------------------------

    fn check_silence(&mut self) {
        if !self.have_ans || self.hole_pending || self.silence.is_some_and(|s| s.open) {
            return;
        }
        let unanswered = self.hi_sent.is_some_and(|h| h > self.hi_ans)
            || (self.have_seq && self.hi_seq > self.hi_ans);
        if !unanswered {
            return;
        }
        let since = self.s_hi_ans.saturating_add(i64::from(self.iv()));
        if self.now_us.saturating_sub(since) >= ms(self.cfg.silence_ms) {
            self.silence = Some(Silence {
                first_seq: self.hi_ans.saturating_add(1),
                since_us: since,
                open: true,
                until_us: i64::MAX,
                elapsed_us: 0,
            });
        }
    }

    fn close_silence(&mut self) {
        let now = self.now_us;
        let hold = ms(self.cfg.silence_hold_ms);
        if let Some(s) = self.silence.as_mut() {
            if s.open {
                s.open = false;
                s.until_us = now.saturating_add(hold);
                s.elapsed_us = now.saturating_sub(s.since_us);
            }
        }
    }

    fn silence_active(&self) -> bool {
        self.silence
            .is_some_and(|s| s.open || self.now_us < s.until_us)
    }

    // ---- outages ------------------------------------------------------------

    /// Probes `a..=b` went unanswered and `q = b + 1`, sent at `s_next`,
    /// was answered at `t_end`.
    fn gap_ended(&mut self, a: u64, b: u64, q: u64, s_next: i64, t_end: i64) {
        let cfg = self.cfg;
        let n = b - a + 1;
        if let Some(ep) = self.episode.as_mut() {
            let p = &mut ep.post;
            let window = ms(cfg.sawtooth_window_ms);
            if a > ep.b
                && !p.done
                && !p.expired
                && n < cfg.min_burst
                && s_next.saturating_sub(ep.s_next) <= window
            {
                // A stray loss inside the post-resume shape, not a new outage.
                p.lost += n;
                return;
            }
        }
        self.finalise(false);

        let iv = i64::from(self.iv().max(1));
        let back = |k: u64| i64::try_from(k).unwrap_or(i64::MAX).saturating_mul(iv);
        let s_a = self
            .slot(a)
            .map_or(s_next.saturating_sub(back(q - a)), |s| s.sent_us);
        let s_b = self
            .slot(b)
            .map_or(s_next.saturating_sub(iv), |s| s.sent_us);
        let (pre_level, pre_p75) = self.recent.median_p75();
        let base = if self.base.ready { self.base.median } else { 0 };
        let window = (ms(cfg.congestion_window_ms) / iv).clamp(16, 256) as usize;
        let congestion =
            (self.high.fraction(window) >= cfg.congestion_frac).then_some(Congestion {
                rtt_us: pre_p75,
                baseline_us: base,
            });
        let dur = s_next.saturating_sub(s_a);
        let long = (dur > ms(cfg.max_downtime_ms)).then_some(dur);
        // A held reply comes back at resume: late in the outage (extra
        // losses after resume can make up its last ~10 ms).
        let mid = s_a.saturating_add(dur / 4);
        let tol = ms(cfg.held_tol_ms);
        let mut ep = Episode {
            id: self.next_id,
            a,
            b,
            probes: n,
            s_a,
            s_next,
            t_end,
            iv: self.iv(),
            // Post-resume replies are judged against the level just before
            // the outage, not the MAD-scaled threshold, which a noisy
            // pre-copy on a loaded host inflates.
            elev: base.max(pre_level).saturating_add(cfg.elev_floor_us),
            pre_level,
            congestion,
            long,
            held_lo: mid.max(s_b.saturating_sub(tol)),
            held_hi: s_next.saturating_add(tol),
            held_count: 0,
            held: None,
            held_max: 0,
            held_allow: cfg
                .max_held
                .saturating_add((ms(cfg.held_span_ms) / iv).clamp(0, 1024) as u32),
            resolved: self.lost_above,
            unlost: 0,
            post: Post::default(),
            clock_step: None,
            announce: None,
            steady_n: 0,
            steady_change: 0,
            clock_live: self.clock.last_any_us >= s_a.saturating_sub(ms(cfg.clock_live_ms)),
            waited: false,
            decided: false,
            dirty: true,
            published: false,
            level: Light::Green,
        };
        self.next_id += 1;
        // Replies to the probes just before the burst that came back only
        // after it: held across the stop (one) or a released queue (many).
        for j in 1..=u64::from(ep.held_allow) + 1 {
            let Some(seq) = a.checked_sub(j) else { break };
            // Late replies count too: a queue longer than the timeout comes
            // back partly as `late`, partly as slow samples.
            let Some(s) = self
                .slot(seq)
                .filter(|s| matches!(s.state, SlotState::Answered | SlotState::LostLate))
            else {
                break;
            };
            let (rtt, arrival) = (s.rtt_us, s.sent_us.saturating_add(i64::from(s.rtt_us)));
            if !ep.held_ok(arrival, rtt, &cfg) {
                break;
            }
            ep.add_held(seq, rtt, 1);
        }
        // Late replies that came in while the outage was still going on.
        let acc = self.held_acc;
        if acc.count > 0
            && (a..=b).contains(&acc.seq)
            && ep.held_ok(acc.arrival_us, acc.rtt_us, &cfg)
        {
            ep.add_held(acc.seq, acc.rtt_us, acc.count);
        }
        // Signals that came before the first reply after the outage (the
        // hypervisor's RARP goes out at resume).
        if let Some(st) = self.clock.last_step {
            if self.step_owned != Some(st.first_after_us) && ep.attach_step(&st, &cfg) {
                self.step_owned = Some(st.first_after_us);
            }
        }
        if let Some(b) = self.announces.burst {
            if self.burst_owned != Some(b.first_us) && ep.attach_burst(&b, &cfg) {
                self.burst_owned = Some(b.first_us);
            }
        }
        self.episode = Some(ep);
    }

    fn min_saw_probes(&self, iv: u32) -> u32 {
        let fit = ms(self.cfg.sawtooth_min_span_ms) / i64::from(iv.max(1));
        (fit.clamp(1, i64::from(self.cfg.sawtooth_min_probes.max(1)))) as u32
    }

    fn ready(&self, ep: &Episode) -> bool {
        let cfg = &self.cfg;
        let p = &ep.post;
        let held_confirms = ep.held.is_some()
            && ep.held_count <= ep.held_allow
            && ep.probes.saturating_sub(ep.unlost) >= 2;
        ep.clock_step.is_some()
            || ep.announce.is_some()
            || p.done
            || p.expired
            || (p.n_elev > 0 && p.max_rtt > cfg.sawtooth_max_us)
            || ep.held_count > ep.held_allow
            || held_confirms
            || self.now_us >= ep.t_end.saturating_add(ms(cfg.sawtooth_window_ms))
    }

    /// Recomputes an episode's evidence and level and publishes it.
    fn evaluate(&mut self, ep: &mut Episode) {
        let cfg = self.cfg;
        let p = ep.post;
        let sawtooth = (p.done
            && p.n_elev >= self.min_saw_probes(ep.iv)
            && p.max_rtt >= cfg.sawtooth_min_us
            && p.max_rtt <= cfg.sawtooth_max_us
            && p.last_elev_sent.saturating_sub(ep.s_next) <= ms(cfg.sawtooth_window_ms)
            && p.max_rtt as f32 >= cfg.sawtooth_rise * ep.pre_level as f32
            && p.first_rtt >= p.max_rtt / 2)
            .then_some(Sawtooth {
                probes: p.n_elev,
                first_rtt_us: p.first_rtt,
                max_rtt_us: p.max_rtt,
                teeth: p.teeth,
                span_us: p
                    .last_elev_sent
                    .saturating_sub(ep.s_next)
                    .clamp(0, i64::from(u32::MAX)) as u32,
            });
        let flush = if p.n_elev > 0 && p.max_rtt > cfg.sawtooth_max_us {
            Some(QueueFlush {
                replies: p.n_elev.saturating_add(ep.held_count),
                max_rtt_us: p.max_rtt.max(ep.held_max),
            })
        } else if ep.held_count > ep.held_allow {
            Some(QueueFlush {
                replies: ep.held_count,
                max_rtt_us: ep.held_max,
            })
        } else {
            None
        };
        let evidence = Evidence {
            held: ep.held.filter(|_| ep.held_count <= ep.held_allow),
            held_count: ep.held_count,
            sawtooth,
            flush,
            congestion: ep.congestion,
            long_outage: ep.long,
            clock_step: ep.clock_step,
            announce: ep.announce,
            clock_steady: (ep.clock_step.is_none()
                && ep.clock_live
                && ep.steady_n >= cfg.clock_confirm.max(1)
                && ep.dur() >= 4 * i64::from(cfg.clock_step_min_us))
            .then_some(ClockSteady {
                change_us: ep.steady_change,
                outage_us: ep.dur(),
            }),
            // Named only once a channel has had its chance to confirm.
            channels: if ep.waited {
                Channels {
                    clock: ep.clock_live,
                    announce: self.announce_channel || self.announces.seen,
                }
            } else {
                Channels::default()
            },
        };
        let probes = ep.probes.saturating_sub(ep.unlost);
        let level = evidence.level(probes, &cfg);
        let iv = i64::from(ep.iv.max(1));
        let (downtime, downtime_source) = match (evidence.clock_step, evidence.held) {
            (Some(c), _) => (c.downtime_us(), DowntimeSource::ClockStep),
            (None, Some(h)) => (
                (i64::from(h.rtt_us) - iv / 2).max(iv / 2),
                DowntimeSource::LateReply,
            ),
            (None, None) => (
                i64::try_from(probes).unwrap_or(i64::MAX).saturating_mul(iv),
                DowntimeSource::LossBurst,
            ),
        };
        let m = Migration {
            id: ep.id,
            first_seq: ep.a,
            last_seq: ep.b,
            probes,
            start_us: ep.s_a,
            end_us: ep.s_next,
            downtime_us: downtime,
            downtime_source,
            level,
            evidence,
            decided_us: self.now_us,
            interval_us: ep.iv,
        };
        let prev = ep.level;
        ep.level = level;
        ep.dirty = false;
        self.publish(ep, m, prev);
    }

    fn publish(&mut self, ep: &mut Episode, m: Migration, prev: Light) {
        let now = self.now_us;
        if m.level == Light::Green {
            if ep.published {
                self.retract(ep.id);
                ep.published = false;
            }
            return;
        }
        let changed = !ep.published || prev != m.level;
        if ep.published {
            if let Some(slot) = self.migrations.iter_mut().rev().find(|x| x.id == m.id) {
                // Keep when it first got this level.
                let decided = if changed {
                    m.decided_us
                } else {
                    slot.decided_us
                };
                *slot = Migration {
                    decided_us: decided,
                    ..m
                };
            }
        } else {
            if self.migrations.len() >= self.cfg.max_events.max(1) as usize {
                self.migrations.remove(0);
            }
            self.migrations.push(m);
            ep.published = true;
        }
        let hold_red = ms(self.cfg.red_hold_ms);
        let hold_yellow = ms(self.cfg.yellow_hold_ms);
        if changed {
            match m.level {
                Light::Red => {
                    self.red_until = now.saturating_add(hold_red);
                    self.yellow_until = self
                        .yellow_until
                        .max(self.red_until.saturating_add(hold_yellow));
                    self.red_src = Some(m);
                    self.yellow_src = Some(m);
                }
                _ => {
                    if self.red_src.is_some_and(|r| r.id == m.id) {
                        self.red_until = i64::MIN;
                        self.red_src = None;
                    }
                    self.yellow_until = self.yellow_until.max(now.saturating_add(hold_yellow));
                    self.yellow_src = Some(m);
                }
            }
        } else {
            for src in [&mut self.red_src, &mut self.yellow_src] {
                if let Some(s) = src.as_mut().filter(|s| s.id == m.id) {
                    *s = Migration {
                        decided_us: s.decided_us,
                        ..m
                    };
                }
            }
        }
    }

    fn retract(&mut self, id: u64) {
        self.migrations.retain(|m| m.id != id);
        if self.red_src.is_some_and(|m| m.id == id) {
            self.red_src = None;
            self.red_until = i64::MIN;
        }
        if self.yellow_src.is_some_and(|m| m.id == id) {
            self.yellow_src = None;
            self.yellow_until = i64::MIN;
        }
    }

    /// Closes the current episode. `by_time`: its resolve time passed, so
    /// an outage none of whose probes was ever reported is a hole in the
    /// data and is withdrawn.
    fn finalise(&mut self, by_time: bool) {
        let Some(mut ep) = self.episode.take() else {
            return;
        };
        if !ep.decided || ep.dirty {
            ep.decided = true;
            ep.post.expired = !ep.post.done;
            self.evaluate(&mut ep);
        }
        if by_time && ep.published && ep.resolved == 0 && ep.held_count == 0 {
            self.retract(ep.id);
        }
    }

    #[inline]
    fn timers(&mut self) {
        let Some(ep) = self.episode.as_mut() else {
            return;
        };
        let now = self.now_us;
        let cfg = &self.cfg;
        let p = &mut ep.post;
        if !p.done
            && !p.expired
            && now
                > ep.s_next
                    .saturating_add(ms(cfg.sawtooth_window_ms))
                    .saturating_add(i64::from(cfg.sawtooth_max_us))
        {
            p.expired = true;
            ep.dirty = true;
        }
        if !ep.waited && now >= ep.t_end.saturating_add(ms(cfg.confirm_wait_ms)) {
            ep.waited = true;
            ep.dirty = true;
        }
        let resolve_at = ep.t_end.saturating_add(ms(cfg.resolve_ms));
        if !ep.dirty && now < resolve_at {
            return; // the common case: nothing new
        }
        let mut ep = *ep;
        if !ep.decided && self.ready(&ep) {
            ep.decided = true;
        }
        if ep.decided && ep.dirty {
            self.evaluate(&mut ep);
        }
        self.episode = Some(ep);
        if now >= resolve_at {
            self.finalise(true);
        }
    }

    // ---- read-out -----------------------------------------------------------

    fn pending_yellow(&self) -> Option<&Episode> {
        self.episode.as_ref().filter(|e| {
            let n = e.probes.saturating_sub(e.unlost);
            // Unsure yet, but a burst or a burst followed by elevated
            // replies (a sawtooth in the making) may be a migration.
            !e.decided
                && (n >= self.cfg.min_burst || (n >= self.cfg.min_red_probes && e.post.n_elev > 0))
        })
    }

    fn peak_yellow(&self) -> bool {
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
    fn announced_silence(&self) -> Option<(Silence, AnnounceBurst)> {
        let s = self.silence.filter(|s| s.open)?;
        let b = self.announces.burst?;
        (b.first_us >= s.since_us.saturating_sub(100_000)).then(|| (s, b.evidence()))
    }

    fn solo_active(&self) -> bool {
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
