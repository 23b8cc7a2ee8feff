//! Per-probe slots and the state of one outage being judged.

use super::signals::{Burst, Step};
use super::{ms, AnnounceBurst, ClockStep, Congestion, DetectorConfig, HeldReply, Light};

/// Probes remembered per sequence number (a power of two), by default.
/// Outages longer than this many probes are still reported, from their
/// ends. [`super::Detector::with_window`] takes fewer for a slow rate.
pub(super) const WINDOW: usize = 4096;

/// The fewest slots a detector keeps: the outage scans look back half the
/// window, and [`super::DetectorConfig::max_downtime_ms`] (5 s) at 10 Hz is
/// 50 probes.
pub(super) const MIN_WINDOW: usize = 256;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum SlotState {
    #[default]
    Empty,
    Answered,
    Lost,
    LostLate,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Slot {
    pub(super) seq: u64,
    pub(super) sent_us: i64,
    pub(super) rtt_us: u32,
    pub(super) state: SlotState,
}

impl Slot {
    /// When its reply came back (µs, on the sender's clock).
    pub(super) fn arrival(&self) -> i64 {
        self.sent_us.saturating_add(i64::from(self.rtt_us))
    }
}

/// A silence: no reply to any probe after `first_seq - 1`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Silence {
    pub(super) first_seq: u64,
    pub(super) since_us: i64,
    pub(super) open: bool,
    /// While closed: shown until then, with the elapsed time it reached.
    pub(super) until_us: i64,
    pub(super) elapsed_us: i64,
}

/// Late replies to probes after the last answered one, while the outage is
/// still going on (downtime longer than the sidecar's timeout).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HeldAcc {
    pub(super) count: u32,
    pub(super) seq: u64,
    pub(super) rtt_us: u32,
    pub(super) arrival_us: i64,
}

/// The replies after an outage, in order, until one is back to baseline.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Post {
    pub(super) n_elev: u32,
    pub(super) first_rtt: u32,
    pub(super) max_rtt: u32,
    pub(super) teeth: u32,
    /// Teeth whose first reply was at least `DetectorConfig::sawtooth_min_us`.
    pub(super) tall_teeth: u32,
    /// Arrival of the first reply of the current tooth.
    pub(super) tooth_start: i64,
    pub(super) last_elev_sent: i64,
    /// A reply back at baseline was seen.
    pub(super) done: bool,
    /// Still elevated long after the outage: no sawtooth.
    pub(super) expired: bool,
    /// Single lost probes inside the shape.
    pub(super) lost: u64,
    /// Send time of the reply that ended the shape.
    pub(super) done_sent: i64,
    /// Send time of the first of the quiet replies in a row since then
    /// (see `DetectorConfig::load_fall`), 0: none.
    pub(super) quiet_since: i64,
    /// A loaded level fell back after the outage: pre-copy ended.
    pub(super) fell: bool,
    /// Non-quiet replies in a row since it fell.
    pub(super) loud: u32,
    /// It rose again (two non-quiet replies in a row) soon after.
    pub(super) relapse: bool,
    /// It stayed down for `DetectorConfig::load_settle_ms`.
    pub(super) settled: bool,
    /// The first replies of the shape, while they fall as one released
    /// queue (see `super::outage::Ramp`).
    pub(super) ramp: super::outage::Ramp,
}

/// The analysis of the latest outage. It is decided once its end is clear
/// and then stays open for late evidence until the next outage or until
/// `resolve_ms` have passed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Episode {
    pub(super) id: u64,
    pub(super) a: u64,
    pub(super) b: u64,
    pub(super) probes: u64,
    pub(super) s_a: i64,
    pub(super) s_next: i64,
    pub(super) t_end: i64,
    pub(super) iv: u32,
    pub(super) elev: u32,
    pub(super) pre_level: u32,
    /// The baseline median when the level before the outage was a loaded
    /// host's (`load_ratio` × it or more), else 0.
    pub(super) load_base: u32,
    pub(super) congestion: Option<Congestion>,
    pub(super) long: Option<i64>,
    pub(super) held_lo: i64,
    pub(super) held_hi: i64,
    pub(super) held_count: u32,
    pub(super) held: Option<HeldReply>,
    /// Arrival (unix µs) of the reply in [`Self::held`].
    pub(super) held_arrival: i64,
    pub(super) held_max: u32,
    /// Held replies that still read as a stop-and-copy: `max_held` plus
    /// the requests sent in the last `held_span_ms`.
    pub(super) held_allow: u32,
    pub(super) resolved: u64,
    /// Probes of the run answered after all (reordering).
    pub(super) unlost: u64,
    pub(super) post: Post,
    /// Send time of the earliest request answered at the outage's end (a
    /// paused VM's queue), else `s_a`: where the stop may have begun.
    pub(super) stop_from: i64,
    /// The guest clock's step across this outage.
    pub(super) clock_step: Option<ClockStep>,
    /// The announce burst that followed it.
    pub(super) announce: Option<AnnounceBurst>,
    /// Clock readings after the outage that agree with the line before it.
    pub(super) steady_n: u32,
    pub(super) steady_change: i64,
    /// Clock readings were arriving before the outage.
    pub(super) clock_live: bool,
    /// `confirm_wait_ms` have passed since its end.
    pub(super) waited: bool,
    pub(super) decided: bool,
    pub(super) dirty: bool,
    pub(super) published: bool,
    pub(super) level: Light,
}

impl Episode {
    pub(super) fn held_ok(&self, arrival: i64, rtt: u32, cfg: &DetectorConfig) -> bool {
        rtt >= cfg.held_min_us
            && rtt > self.elev
            && arrival >= self.held_lo
            && arrival <= self.held_hi
    }

    pub(super) fn dur(&self) -> i64 {
        self.s_next.saturating_sub(self.s_a)
    }

    /// Whether a clock step explains this outage: the guest lagged by
    /// about its length, and the step lies across it.
    pub(super) fn step_fits(&self, st: &Step, cfg: &DetectorConfig) -> bool {
        let d = st.step_us.saturating_neg();
        let iv = 2 * i64::from(self.iv);
        let dur = self.dur();
        // The stop may have begun before the loss (queued requests), and
        // ended only when the first reply after it came back (a pause that
        // lost its first requests to the timeout answers the rest late).
        let stop = self
            .s_next
            .max(self.t_end)
            .saturating_sub(self.stop_from.min(self.s_a));
        self.lies_across(st)
            && d >= i64::from(cfg.clock_step_min_us)
            && d <= stop + iv + 100_000
            && d >= dur / 4 - iv
    }

    /// Whether a clock step lies across this outage (readings before it
    /// and after it bracket the stop).
    pub(super) fn lies_across(&self, st: &Step) -> bool {
        st.before_us <= self.s_next && st.first_after_us >= self.stop_from.min(self.s_a)
    }

    pub(super) fn attach_step(&mut self, st: &Step, cfg: &DetectorConfig) -> bool {
        if !self.step_fits(st, cfg) {
            return false;
        }
        self.clock_step = Some(st.evidence());
        self.dirty = true;
        true
    }

    /// Whether an announce burst follows this outage.
    pub(super) fn attach_burst(&mut self, b: &Burst, cfg: &DetectorConfig) -> bool {
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

    pub(super) fn add_held(&mut self, seq: u64, rtt: u32, count: u32, arrival: i64) {
        self.held_count = self.held_count.saturating_add(count);
        self.held_max = self.held_max.max(rtt);
        // The one sent last before the stop has the RTT closest to the
        // downtime.
        if self.held.is_none_or(|h| seq > h.seq) {
            self.held = Some(HeldReply { seq, rtt_us: rtt });
            self.held_arrival = arrival;
        }
        self.dirty = true;
    }

    /// Whether the held reply can have been held by a stop: a stopped
    /// guest releases it at resume, before it answers anything sent after
    /// the resume, and in a move every probe sent before the resume is
    /// lost (it went to the stopped source). So it comes back no later
    /// than `held_release_us` after the first probe answered after the
    /// outage was sent. A slow reply that comes back later, together with
    /// the replies to probes sent after the outage, was held up on the
    /// path, not by the stop.
    pub(super) fn held_timely(&self, cfg: &DetectorConfig) -> bool {
        self.held.is_some()
            && self.held_arrival <= self.s_next.saturating_add(i64::from(cfg.held_release_us))
    }

    /// Whether the held reply confirms a stop on its own, without the
    /// post-resume sawtooth: timely, and slower than the path's own tail
    /// (`path_tail_us`), which a reply that merely came back just
    /// after a short cut stays within.
    pub(super) fn held_alone(&self, cfg: &DetectorConfig) -> bool {
        self.held_timely(cfg) && self.held.is_some_and(|h| h.rtt_us >= cfg.path_tail_us)
    }
}
