//! Every threshold of the detector, with its default and the reason for it.
//! `docs/DETECTION.md` explains how they combine.

use serde::{Deserialize, Serialize};

/// Thresholds. Every field has a default that suits probing every 1–100 ms;
/// the figures behind them are in `docs/DETECTION.md`. Missing fields in a
/// serialised config take their defaults; unknown fields are an error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
// An unknown key is a typo that would silently keep a default: an error.
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// The probe interval in µs, if known. `None` (default) infers it from
    /// the send times of the samples, which is exact for the sidecar's
    /// absolute schedule.
    pub interval_us: Option<u32>,
    /// Lost probes in a row that are worth a yellow on their own (default 3).
    /// Shorter runs are ordinary noise unless a confirming signal (sawtooth,
    /// held reply) makes them a migration.
    pub min_burst: u64,
    /// No reply for this long (ms, measured from the send of the first
    /// unanswered probe) shows the provisional "possible migration in
    /// progress" yellow (default 30). With ticks every 20 ms this keeps the
    /// yellow within 2 intervals + 50 ms of the first missed reply.
    pub silence_ms: u32,
    /// The provisional yellow lingers this long (ms) after the silence ends,
    /// so it does not flicker while the end of an outage is sorted out
    /// (default 100).
    pub silence_hold_ms: u32,
    /// Red is held this long (ms of event time) after the migration was
    /// recognised (default 10 000), then decays to yellow.
    pub red_hold_ms: u32,
    /// Yellow evidence (and a decayed red) is held this long (ms) before the
    /// light falls back to green (default 5 000).
    pub yellow_hold_ms: u32,
    /// A held reply (one request answered after the outage, RTT ≈ downtime)
    /// needs at least this RTT in µs (default 5 000): stop-and-copy lasts
    /// 10 ms or more, and ordinary jitter stays below.
    pub held_min_us: u32,
    /// A held reply must arrive no earlier than this many ms before the last
    /// lost probe was sent, and no later than this after the first probe
    /// answered after the outage (default 10): it is released at resume.
    /// (Extra losses after resume, 0–8 ms, make up the early side. The late
    /// side finds a paused guest's queue, released over a few ms; as
    /// evidence of a stop a held reply must also be timely, see
    /// [`Self::held_release_us`].)
    pub held_tol_ms: u32,
    /// A held reply is released at resume, before the guest answers
    /// anything sent after it, and in a move every probe sent before the
    /// resume is lost: so it must arrive no later than this (µs) after the
    /// send of the first probe answered after the outage (default 1 000;
    /// the model of issue 4's runs releases it 50–300 µs after resume, the
    /// latest of 3 430 recognised ones in 20 offset sweeps came 0.2 ms
    /// before that send on a quiet host). A slow reply that comes back
    /// later, together with replies to probes sent after the outage, was
    /// held up on the path: a 6–14 ms tail reply across a 4–8 ms cut at
    /// 2 ms came back 1.3–8.2 ms after that send in 8 of the 17 false reds
    /// of 40 offset sweeps before this bound.
    pub held_release_us: u32,
    /// RTTs up to this (µs, default 15 000) are the path's own tail (p99
    /// of 2–15 ms, issue 4). One such slow reply, with the replies queued
    /// behind it, can look like a stop's signature: a held reply when it
    /// comes back just after a cut of a few intervals (5 of the 17 false
    /// reds of 40 offset sweeps: RTT 6.3–10.2 ms, back within 1.2 ms of
    /// the next probe's send), or a one-tooth sawtooth when it is the first
    /// reply after the cut (4 of them: 14.2–14.4 ms, 5–6 replies queued
    /// behind it, all back within 15 µs). So a held reply confirms a stop
    /// without the sawtooth, and a sawtooth released all at once (one
    /// tooth) confirms it, only when slower than this. Real held replies
    /// are as long as the stop (334 and 1 441 ms in issue 4; of 3 430
    /// recognised in the sweeps, the 17 without a sawtooth had RTTs of
    /// 27 ms or more), and the post-resume fall lasts 40–60 ms in batches
    /// (several teeth) from 15–45 ms.
    pub path_tail_us: u32,
    /// At most this many held replies, plus the requests sent in the last
    /// [`Self::held_span_ms`] before the outage, still read as a
    /// stop-and-copy (default 2; real runs showed one). More means a queue
    /// was released (a VM paused for longer, ARP re-resolution): a queue
    /// flush, never red.
    pub max_held: u32,
    /// Requests sent this long before the stop may still be in flight and
    /// held with it (ms, default 150: a loaded host stalls for up to 110 ms).
    /// A paused VM queues far more: its whole ring (256) or, past the
    /// sidecar's timeout, every request of the pause.
    pub held_span_ms: u32,
    /// The first post-resume replies count as a sawtooth when their largest
    /// RTT is at least this (µs, default 12 000; measured 15–45 ms, while
    /// the baseline's tail stays below 15 ms) ...
    pub sawtooth_min_us: u32,
    /// ... and at most this (µs, default 100 000). Larger post-outage RTTs
    /// are a queue released at once (an ARP flap held them hundreds of ms).
    pub sawtooth_max_us: u32,
    /// The sawtooth must be back to baseline within this many ms of send
    /// time after the first answered probe (default 150; measured ~50).
    pub sawtooth_window_ms: u32,
    /// The sawtooth falls away over at least this many ms after resume
    /// (default 40; measured 40–60). At a coarse interval the first reply
    /// after the loss is sent up to an interval after the resume, so it
    /// samples the sawtooth that much into its fall: the peak bar
    /// (`sawtooth_min_us`) is lowered by the fraction of the fall an
    /// interval covers, to at most a quarter (at 10 ms: 9 ms). Without it,
    /// 20–41 ms stops at 10 ms were missed at some sampling offsets (their
    /// first replies read 9–11 ms).
    pub sawtooth_decay_ms: u32,
    /// Elevated replies a sawtooth needs (default 3; elevated here means
    /// [`Self::elev_floor_us`] above the baseline median or the median of
    /// the 32 replies before the outage, whichever is higher), lowered for
    /// coarse
    /// intervals to what fits in [`Self::sawtooth_min_span_ms`] (at least 1).
    /// One fewer when the replies came in two teeth or more and peaked at
    /// [`Self::sawtooth_min_us`], on a loaded host only once its level fell
    /// back after the outage ([`Self::load_fall`]). At 10 ms a 40–60 ms
    /// fall holds only two replies above a 2–7 ms level (26 of the 51
    /// loaded migrations missed in the offsets sweep, seeds 1–40, and no
    /// loaded cut made red; with one tooth or a 9 ms peak allowed too, 9
    /// more and 2 cuts: a short stall released at once is the same trace),
    /// and a quiet host's fall sampled late can leave two as well (seed
    /// 42's 794 ms stop: 12.3 ms twice, 10 ms apart, then 2.3 ms; the one
    /// quiet miss of seeds 1–100). After a quiet cut that takes two of the
    /// path's tail replies of 12 ms or more in a row: none of the 18 000
    /// quiet cuts of seeds 1–100, nor any decoy of the standard suite
    /// (seeds 1–40), is red with it; on seeds 101–200, drawn after it was
    /// chosen, no quiet migration is missed and no quiet cut is red.
    pub sawtooth_min_probes: u32,
    /// See [`Self::sawtooth_min_probes`] (ms, default 30).
    pub sawtooth_min_span_ms: u32,
    /// A guest that resumes slowly (TCG in the lab) answers nothing for
    /// 40–160 ms and then releases its queue at once: replies one interval
    /// apart in send time, RTT one interval lower each, arriving within
    /// 0–3 ms of each other (12 lab migrations at 10 ms). Such a ramp,
    /// from the first reply after the outage, is the resume's release even
    /// when the guest stalls again for 10–25 ms before it is back at its
    /// level (4 of those 12 stayed elevated 160–180 ms, past
    /// [`Self::sawtooth_window_ms`]): the sawtooth is judged on the ramp
    /// alone when it has [`Self::sawtooth_min_probes`] replies, peaks
    /// above [`Self::path_tail_us`] and within [`Self::ramp_max_us`], is
    /// the shape's highest point and ends within the window. A reply
    /// continues the ramp when it arrives within this many µs of the one
    /// before (default 5 000, at most half an interval: a reply that was
    /// not queued comes a full interval later).
    pub ramp_gap_us: u32,
    /// The highest peak of such a ramp (µs, default 130 000). The lab's
    /// resume releases peaked at 38–157 ms (11 of 12 at 115 ms or less);
    /// the synthetic monitor-side flap releases its ARP queue after
    /// 150–500 ms, whose first reply reads as low as 140 ms: with 150 ms
    /// here 7 of the 800 flap decoys of the standard suite (seeds 1–40)
    /// were red, with 130 ms none, and nothing else changed. (Linux sends
    /// the first ARP request at once and repeats it every
    /// `retrans_time_ms`, 1 s by default: a re-resolved queue waited about
    /// a LAN round trip, or a second and more.)
    pub ramp_max_us: u32,
    /// The sawtooth's peak must be at least this many times the median RTT
    /// of the last 32 replies before the outage (default 1.5), so RTT
    /// inflation that merely continues after a loss is not a sawtooth.
    pub sawtooth_rise: f32,
    /// Replies arriving within this many µs of the first of a group were
    /// released together: one "tooth" (default 1 000, at most half an
    /// interval).
    pub align_us: u32,
    /// Fewest lost probes that can be red (default 2): a single lost probe
    /// next to a stall looks exactly like a tiny migration, and isolated
    /// single losses are ordinary.
    pub min_red_probes: u64,
    /// Congestion or CPU starvation before an outage: at least
    /// [`Self::congestion_frac`] of the replies of the last
    /// [`Self::congestion_window_ms`] had an RTT of at least this (µs,
    /// default 20 000; a loaded host's pre-copy raised the median to 2–7 ms
    /// only) ...
    pub congestion_min_us: u32,
    /// ... and at least this many times the baseline median (default 5) ...
    pub congestion_factor: f32,
    /// ... fraction (default 0.25: a ramp or repeated stalls; one stall of
    /// a loaded host, 30–110 ms, stays below it).
    pub congestion_frac: f32,
    /// See [`Self::congestion_frac`] (ms of probes, default 500; at most 256
    /// replies).
    pub congestion_window_ms: u32,
    /// The level before an outage (the median of the 32 replies before it)
    /// is a loaded host's when at least this many times the path's quiet
    /// level (`Baseline::floor`, the lowest block median of the last
    /// 8–82 s; default 3). A loaded pre-copy runs at 2–7 ms over a quiet
    /// 0.15–0.4 ms (5–47×). On such a host the first replies after a
    /// path cut take every shape of a stop: a stall of 30–110 ms right
    /// after the cut is a one-tooth sawtooth, one across its start
    /// releases held replies, and the load's own noise (log-normal,
    /// σ 0.5) puts three replies in a row 2 ms above its median. Of
    /// 7 200 loaded cuts of the offsets sweep (seeds 1–40) 226 were red by
    /// the sawtooth and held-reply rules alone. A mildly loaded host
    /// stalls as well: on the `mild` sweep (load 2–8 × the quiet level,
    /// seeds 1–40) 26 of 7 200 cuts were red at 4, 35 at 5, 13 at 3, 4 at
    /// 2; misses were 9 of 7 200 at 3 to 5, 21 at 2.5, 239 at 2 (a level
    /// that low has no room to fall by half). Seeds 41–100, held out:
    /// 39 → 19 red cuts of 10 800 from 4 to 3, misses 5 → 8. Nothing
    /// else measured moves between 3 and 4 (offsets seeds 1–200,
    /// standard 1–40, channels 1–20, 13 lab runs).
    pub load_ratio: f32,
    /// So after such an outage a weak signal confirms a stop only once the
    /// level fell back, as a pre-copy's does when the stop ends it: replies
    /// at most the level before divided by this (default 2) ...
    pub load_fall: f32,
    /// ... for at least this many ms of send time in a row (default 30: 4
    /// replies at 10 ms, 16 at 2 ms; a load going on puts a reply at half
    /// its median or less 8 % of the time, four in a row 4 in 100 000) ...
    pub load_quiet_ms: u32,
    /// ... starting within this many ms after the reply that ended the
    /// post-resume shape (default 150, the sawtooth's own window). With
    /// it, 3 of those 7 200 loaded cuts stayed red, every one where the
    /// load ended with the cut (see `docs/DETECTION.md`, "Loaded hosts").
    pub load_fall_ms: u32,
    /// Two stalls of a loaded pre-copy in the last 500 ms before a stop
    /// can make a quarter of the replies ≥ 20 ms (the congestion veto,
    /// [`Self::congestion_frac`]). When a loaded level fell back and
    /// stayed down (never two replies in a row above the fall bar) for
    /// this many ms (default 250) after it fell, the veto is lifted: a
    /// starved host's next stall comes 60–120 ms after the last one ends.
    /// Lifting it as soon as the level fell made 74 of 200 CPU-starvation
    /// decoys red (standard suite, seeds 1–10); after 250 ms quiet, none,
    /// and 6 of the 9 loaded migrations it had vetoed (offsets sweep,
    /// seeds 1–40) are red.
    pub load_settle_ms: u32,
    /// On a loaded host, two replies or more released at once ([`Self::align_us`])
    /// within the 32 before an outage, the first at least this slow (µs,
    /// default 30 000, a loaded host's shortest stall), are a host stall:
    /// the level before the outage is then the one before the stall, if
    /// lower. At 2 ms a stall of 30–110 ms in the last 64 ms raised it to
    /// 12–30 ms, above the post-resume fall (15–30 ms): 11 loaded
    /// migrations missed in the offsets sweep (seeds 1–60), 10 of them red
    /// with it (5 of 6 on seeds 1–40, where it was chosen; 5 of 5 on
    /// 41–60), no loaded cut made red. At 20 ms the same; at 15 ms one 2 ms
    /// miss lost, one 10 ms one gained; at 45 ms only 3 of 6.
    pub load_stall_us: u32,
    /// A loaded level that does not fall still lets a sawtooth confirm a
    /// stop when its replies came back in at least this many releases
    /// ("teeth", [`Self::align_us`] apart) each led by a reply of
    /// [`Self::sawtooth_min_us`] or more (default 3; 0: off) ...
    ///
    /// The fall assumes the load is the pre-copy's. A guest whose own
    /// work loads the path keeps it after the move: on the lab's TCG
    /// guests (3–6 × the quiet level before the stop, 120 migrations of
    /// sessions 5–8) 6 migrations stayed yellow on echo alone for want of
    /// a fall. Each resumed guest released its queue in 3–5 such bursts,
    /// led by replies of 15–115 ms (the guest warming up on its new
    /// host). A host stall releases its queue once: one tooth, the load's
    /// noise after it adds only short ones. Measured with 3 against off
    /// (seeds 1–200, `loaded_sep`): offsets sweep 63 → 63 of 72 000
    /// misses and 15 → 15 loaded cuts red; mild sweep 27 → 17 misses,
    /// 63 → 63 cuts red; lab echo only 113 → 119 of 120 migrations red,
    /// 0 of 250 cuts either way. Counting every tooth instead of the tall
    /// ones made 73 loaded cuts red (seeds 1–40); 4 teeth gained 3 lab
    /// migrations of 6.
    pub load_teeth: u32,
    /// ... and its peak is at least this many times the level before
    /// (default 20). The lab's peaks were 37–83 × their level; in the
    /// offsets sweep (seeds 1–200) a bar of 10 made 3 more loaded cuts
    /// red, 15 and 25 none.
    pub load_teeth_rise: f32,
    /// Outages longer than this (ms, default 5 000) are not a stop-and-copy
    /// (measured 10–1 420 ms): yellow at most.
    pub max_downtime_ms: u32,
    /// A reply is elevated when its RTT exceeds the baseline median by this
    /// many robust standard deviations (1.4826 × MAD; default 8) ...
    pub elev_mad_k: f32,
    /// ... and is at least this many times the median (default 4) ...
    pub elev_ratio: f32,
    /// ... and exceeds the median by at least this many µs (default 2 000).
    /// Baseline p99 reaches 2–15 ms, so single elevated replies are common;
    /// only runs of them mean something.
    pub elev_floor_us: u32,
    /// Lower bound of the MAD in µs (default 20): quantised or very steady
    /// RTTs give MAD = 0, which must not make every wiggle elevated.
    pub mad_floor_us: u32,
    /// A run of mostly elevated replies (12 of the last 16) lasting at least
    /// this many ms of send time is an RTT peak: yellow (default 200, longer
    /// than the 40–70 ms spikes seen on a quiet host).
    pub peak_min_ms: u32,
    /// The baseline is frozen while an anomaly is in progress, but for at
    /// most this many ms (default 30 000): a lasting change of level becomes
    /// the new normal.
    pub freeze_max_ms: u32,
    /// An outage whose lost probes have not been reported within this many
    /// ms after it ended is "no data" and withdrawn (default 5 000; the
    /// sidecar reports a loss one timeout after the send, 1 s by default).
    pub resolve_ms: u32,
    /// With ticks on, a stream silent for this many ms (and at least 4
    /// intervals) was itself down: a hole, never evidence (default 1 000).
    pub hole_ms: u32,
    /// Migration events kept in [`crate::Detector::migrations`]; the oldest
    /// are dropped first (default 1 024).
    pub max_events: u32,
    /// A clock reading is used only if its RTT exceeds the path's recent
    /// minimum by at most this (µs, default 8 000): the legs' asymmetry can
    /// shift a reading by up to half the excess, and the first replies
    /// after a resume are slow.
    pub clock_max_excess_us: u32,
    /// The line a step is judged against is drawn only through readings
    /// whose RTT exceeds the path's minimum *as now known* by at most this
    /// (µs, default 4 000: error ≤ 2.5 ms), and only once two such exist
    /// (one is a level that only a reading beyond both error bounds
    /// leaves: the first after a stop in a run's first 200 ms).
    /// The first readings of a run are often slow (a cold ARP cache: 8–21 ms
    /// in 7 of 17 lab recordings) and shifted by half that; judged against
    /// them, the first fast readings looked like a 3–7 ms step back.
    pub clock_fit_excess_us: u32,
    /// Readings agree with the fit (or with each other) within their error
    /// bounds (±0.5 ms quantisation plus half the RTT excess) plus this (µs,
    /// default 1 000; the lab's guests scatter 0.1–0.5 ms).
    pub clock_tol_us: u32,
    /// Smallest clock step that counts (µs, default 3 000): a stop-and-copy
    /// lasts 10 ms or more.
    pub clock_step_min_us: u32,
    /// Readings off the fit that must agree before a step is believed
    /// (default 2): one stray reading is not a step.
    pub clock_confirm: u32,
    /// A step's size is refined with the readings of this many ms after it
    /// (default 3 000): the most precise ones win.
    pub clock_refine_ms: u32,
    /// The clock channel counts as live for an outage when a reading came
    /// at most this many ms before it (default 5 000).
    pub clock_live_ms: u32,
    /// Announce frames less than this many ms apart form one burst
    /// (default 2 000; QEMU sends 5 RARPs over 800 ms, the guest 5
    /// gratuitous ARPs).
    pub announce_gap_ms: u32,
    /// An announce burst confirms an outage when it starts between the
    /// outage's first lost probe and this many ms after its first answered
    /// one (default 3 000).
    pub announce_window_ms: u32,
    /// How long after an outage ends (ms, default 2 500) a live channel may
    /// still confirm it before the outage is called "not a migration"
    /// (clock readings come every 200 ms, and a resumed guest is slow for a
    /// while).
    pub confirm_wait_ms: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            interval_us: None,
            min_burst: 3,
            silence_ms: 30,
            silence_hold_ms: 100,
            red_hold_ms: 10_000,
            yellow_hold_ms: 5_000,
            held_min_us: 5_000,
            held_tol_ms: 10,
            held_release_us: 1_000,
            path_tail_us: 15_000,
            max_held: 2,
            held_span_ms: 150,
            sawtooth_min_us: 12_000,
            sawtooth_decay_ms: 40,
            sawtooth_max_us: 100_000,
            sawtooth_window_ms: 150,
            sawtooth_min_probes: 3,
            sawtooth_min_span_ms: 30,
            ramp_gap_us: 5_000,
            ramp_max_us: 130_000,
            sawtooth_rise: 1.5,
            align_us: 1_000,
            min_red_probes: 2,
            congestion_min_us: 20_000,
            congestion_factor: 5.0,
            congestion_frac: 0.25,
            congestion_window_ms: 500,
            load_ratio: 3.0,
            load_fall: 2.0,
            load_quiet_ms: 30,
            load_fall_ms: 150,
            load_settle_ms: 250,
            load_stall_us: 30_000,
            load_teeth: 3,
            load_teeth_rise: 20.0,
            max_downtime_ms: 5_000,
            elev_mad_k: 8.0,
            elev_ratio: 4.0,
            elev_floor_us: 2_000,
            mad_floor_us: 20,
            peak_min_ms: 200,
            freeze_max_ms: 30_000,
            resolve_ms: 5_000,
            hole_ms: 1_000,
            max_events: 1_024,
            clock_max_excess_us: 8_000,
            clock_fit_excess_us: 4_000,
            clock_tol_us: 1_000,
            clock_step_min_us: 3_000,
            clock_confirm: 2,
            clock_refine_ms: 3_000,
            clock_live_ms: 5_000,
            announce_gap_ms: 2_000,
            announce_window_ms: 3_000,
            confirm_wait_ms: 2_500,
        }
    }
}
