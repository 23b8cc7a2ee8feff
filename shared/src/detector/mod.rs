//! The migration detector: events in, a traffic light with reasons and a list
//! of migration events out.
//!
//! What the light means (details and measured results in
//! `docs/DETECTION.md`):
//! * **Green**: nothing unusual.
//! * **Yellow**: something happened that is not known to be a migration:
//!   a silence in progress ("possible migration in progress", shown within
//!   2 intervals + 50 ms of the first missed reply), an event whose verdict
//!   is *paused* (stopped and resumed in place), *path outage* (the guest's
//!   clock ran on), *replaced* (another machine announced the address:
//!   `replaced`) or *undecided*, or a sustained RTT peak.
//! * **Red**: verdict *migrated*, and nothing else: stop evidence (a loss
//!   burst, held or queued replies, the guest clock's step) plus an
//!   announce of the guest's MAC, or with no announce channel the strongest
//!   stop evidence ("migrated or paused").
//!
//! Every event carries its [`EventVerdict`] and says it in words
//! ([`Migration::explain`]). Files by concern: `types` (light, reasons),
//! `evidence` and `verdict` (the rule tables), `episode` and `outage` (one
//! outage, judged), `stops` (stops that lost no probe), `signals` (clock
//! and announces), `stats` (baseline, interval), `readout` (the light).
//!
//! The detector reads no clock: "now" is the latest time carried by an event
//! (a reply's arrival, a tick), so replaying a trace gives exactly what the
//! live run gave. Per event the cost is O(1) and nothing allocates, apart
//! from recording a migration event (once per outage).

mod channels;
mod config;
mod episode;
mod evidence;
mod holes;
mod outage;
mod readout;
mod replaced;
mod signals;
mod stats;
mod stops;
#[cfg(test)]
mod tests;
mod types;
mod verdict;

pub use config::DetectorConfig;
pub use evidence::{
    AnnounceBurst, Channels, ClockSteady, ClockStep, Congestion, DowntimeSource, Evidence,
    HeldReply, Migration, QueueFlush, Sawtooth,
};

pub use types::{BaselineInfo, Light, Reason, Verdict};
pub use verdict::EventVerdict;

use crate::wire::{Event, Info, Late, Sample, Tick};
use episode::{Episode, HeldAcc, Silence, Slot, SlotState, MIN_WINDOW, WINDOW};

/// Skip ranges remembered: a sidecar falls behind rarely, and only a
/// skip next to the latest answered probe matters.
const SKIPS: usize = 4;
use signals::{AnnounceAcc, ClockTrack};
use stats::{Baseline, HighFrac, IntervalEst, Peak, PeakSpan, Recent};

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
    /// The latest ranges of seqs the sidecar never sent (`skip` events),
    /// oldest first.
    skips: [(u64, u64); SKIPS],
    skips_len: usize,
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
        Detector::with_window(cfg, WINDOW)
    }

    /// A detector remembering `slots` probes (rounded up to a power of
    /// two, between 256 and 4096) instead of 4096: enough for 30 s at the
    /// probe rate is plenty (the longest stop judged is
    /// `max_downtime_ms`, 5 s). 4096 slots take 96 KiB; a sidecar watching
    /// 1000 targets at 10 Hz gives each 512 (12 KiB).
    pub fn with_window(cfg: DetectorConfig, slots: usize) -> Self {
        let n = slots.next_power_of_two().clamp(MIN_WINDOW, WINDOW);
        Detector {
            cfg,
            slots: vec![Slot::default(); n].into_boxed_slice(),
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
            skips: [(0, 0); SKIPS],
            skips_len: 0,
        }
    }

    /// Says whether the sidecar watches for layer-2 announces (its `/info`
    /// names a `capture_iface`). With it on, an outage that no announce
    /// follows is "an outage, not a migration" unless something else
    /// confirms it. Clock readings need no such call: they are seen.
    pub fn set_announce_channel(&mut self, on: bool) {
        self.announce_channel = on;
    }

    /// Applies what the sidecar's `/info` says (live, or a trace's info
    /// record from [`crate::trace::TraceReader::info`]): the probe interval
    /// unless the config sets one, and whether announces are watched
    /// (`capture_iface` present). Clock readings need no such call.
    pub fn apply_info(&mut self, info: &Info) {
        if self.cfg.interval_us.is_none() && info.interval_ms.is_finite() && info.interval_ms > 0.0
        {
            let us = (info.interval_ms * 1000.0)
                .round()
                .clamp(1.0, f64::from(u32::MAX));
            self.cfg.interval_us = Some(us as u32);
        }
        self.announce_channel = info.capture_iface.is_some();
    }

    /// Whether the announce channel counts as live: set by
    /// [`Self::set_announce_channel`] or [`Self::apply_info`], or an
    /// announce was seen.
    pub fn announce_channel(&self) -> bool {
        self.announce_channel || self.announces.seen
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

    fn slot_idx(&self, seq: u64) -> usize {
        (seq % self.slots.len() as u64) as usize
    }

    /// Probes remembered (the slot window).
    fn window(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let s = &self.slots[self.slot_idx(seq)];
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
            Event::Gap(_) | Event::Overflow(_) => self.hole(),
            // Probes never sent are missing data: never loss.
            Event::Skip(k) => self.skipped(k),
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
        let idx = self.slot_idx(s.seq);
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
            if self.have_ans
                && s.seq > self.hi_ans.saturating_add(1)
                && !self.hole_pending
                && !self.any_skipped(self.hi_ans + 1, s.seq - 1)
            {
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

        // Nothing is "elevated" before there is a baseline to rise above:
        // the first replies of a run are often slow (a cold ARP cache, a
        // busy guest), and a peak judged against the bare floor was a
        // yellow before anything happened.
        let elevated = self.base.ready && rtt > self.elev_us;
        if let Some(ep) = self.episode.as_mut() {
            let p = &mut ep.post;
            if s.seq > ep.b && !p.done && !p.expired {
                if rtt > ep.elev {
                    let align = u64::from(self.cfg.align_us.min(ep.iv / 2).max(1));
                    let new_tooth = p.n_elev == 0 || arrival.abs_diff(p.tooth_start) > align;
                    if p.n_elev == 0 {
                        p.first_rtt = rtt;
                    }
                    if new_tooth {
                        p.teeth += 1;
                        p.tall_teeth += u32::from(rtt >= self.cfg.sawtooth_min_us);
                        p.tooth_start = arrival;
                    }
                    p.ramp
                        .push(s.sent_us, rtt, arrival, self.cfg.ramp_gap_us.min(ep.iv / 2));
                    p.n_elev += 1;
                    p.max_rtt = p.max_rtt.max(rtt);
                    p.last_elev_sent = s.sent_us;
                } else {
                    p.done = true;
                    p.done_sent = s.sent_us;
                }
                ep.dirty = true;
            }
            if p.fell && !p.settled && s.seq > ep.b {
                // Stays down (a pre-copy that ended), or comes back (the
                // next stall of a starved host).
                if s.sent_us > p.quiet_since.saturating_add(ms(self.cfg.load_settle_ms)) {
                    p.settled = true;
                    ep.dirty = true;
                } else if rtt as f32 * self.cfg.load_fall > ep.pre_level as f32 {
                    p.loud += 1;
                    p.relapse |= p.loud >= 2;
                } else {
                    p.loud = 0;
                }
            }
            if ep.load_base > 0
                && p.done
                && !p.fell
                && s.seq > ep.b
                && s.sent_us <= p.done_sent.saturating_add(ms(self.cfg.load_fall_ms))
            {
                // Back at the quiet level for a while: a loaded host's
                // pre-copy ended.
                if rtt as f32 * self.cfg.load_fall <= ep.pre_level as f32 {
                    if p.quiet_since == 0 {
                        p.quiet_since = s.sent_us;
                    }
                    p.fell = s.sent_us.saturating_sub(p.quiet_since) >= ms(self.cfg.load_quiet_ms);
                    ep.dirty |= p.fell;
                } else {
                    p.quiet_since = 0;
                }
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
        let idx = self.slot_idx(s.seq);
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
        let idx = self.slot_idx(l.seq);
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
                ep.add_held(l.seq, l.rtt_us, 1, arrival);
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

    // ---- silence ------------------------------------------------------------

    pub(super) fn check_silence(&mut self) {
        if !self.have_ans || self.hole_pending || self.silence.is_some_and(|s| s.open) {
            return;
        }
        let unanswered = self.hi_sent.is_some_and(|h| h > self.hi_ans)
            || (self.have_seq && self.hi_seq > self.hi_ans);
        if !unanswered {
            return;
        }
        let mut since = self.s_hi_ans.saturating_add(i64::from(self.iv()));
        if let Some(last) = self.skip_covering(self.hi_ans.saturating_add(1)) {
            // Silent only from the first probe sent after the skip.
            match self.slot(last.saturating_add(1)) {
                Some(s) => since = s.sent_us,
                None => return,
            }
        }
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

    pub(super) fn close_silence(&mut self) {
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

    pub(super) fn silence_active(&self) -> bool {
        self.silence
            .is_some_and(|s| s.open || self.now_us < s.until_us)
    }
}
