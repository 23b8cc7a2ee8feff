//! The detector's vocabulary: the light, the reasons behind it, the
//! verdict and the baseline as read out.

use crate::wire::Mac;
use serde::{Deserialize, Serialize};

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
        /// The MAC learned at the address before, when the announce names
        /// another: a different machine, not a move (verdict `replaced`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_mac: Option<Mac>,
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
