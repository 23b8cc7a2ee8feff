//! What to generate: the random source, the scenarios and a trace's spec.

use serde::{Deserialize, Serialize};

/// SplitMix64: tiny, fast, and good enough for noise.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for this seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-300);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Exponential with this mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).max(1e-300).ln()
    }
}

/// What a trace holds besides baseline noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scenario {
    /// Baseline noise only.
    Baseline,
    /// A live migration.
    Migration {
        /// Guest-visible downtime, ms.
        downtime_ms: f64,
        /// The last request before the stop is held and answered at resume.
        held: bool,
        /// Pre-copy on a loaded host.
        loaded: bool,
    },
    /// RTT inflation without loss.
    BulkCopy,
    /// A plain loss burst.
    LinkOutage,
    /// A plain loss burst of a chosen length.
    LinkOutageOf {
        /// How long the path is cut, ms.
        ms: f64,
    },
    /// A path cut of a chosen length on a loaded host: the load (median
    /// 2–7 ms, stalls of 30–110 ms, 0.2 a second, as in a loaded
    /// migration's pre-copy) runs 0.5–9 s before the cut and goes on
    /// 0–9 s after it, independent of it.
    LoadedCut {
        /// How long the path is cut, ms.
        ms: f64,
    },
    /// Loss, then ARP-queued replies released together.
    LinkFlap,
    /// Replies queued in the paused guest, released at once.
    VmPause,
    /// A QMP stop/cont of a chosen length, no move: the guest clock stands
    /// still, no announce; requests sent during the stop wait in the
    /// guest's queue and are answered at resume, except those of its last
    /// `lose_ms` (the queue was full).
    Pause {
        /// How long the VM is stopped, ms.
        stop_ms: f64,
        /// Requests of the stop's end that are dropped, ms.
        lose_ms: f64,
    },
    /// RTT ramps up, then loss.
    Congestion,
    /// Growing stalls, then loss.
    CpuStarvation,
    /// Dense isolated losses and spikes.
    Isolated,
    /// Events lost in the stream (a `gap` event).
    StreamGap,
    /// The sidecar stalled and skipped slots.
    SidecarStall,
    /// The sidecar restarted.
    SidecarRestart,
}

impl Scenario {
    /// On a loaded host: a loaded migration or a loaded cut.
    pub fn on_loaded_host(&self) -> bool {
        matches!(
            self,
            Scenario::LoadedCut { .. } | Scenario::Migration { loaded: true, .. }
        )
    }

    /// Short name for file names.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Migration { .. } => "migration",
            Scenario::BulkCopy => "bulk_copy",
            Scenario::LinkOutage | Scenario::LinkOutageOf { .. } => "link_outage",
            Scenario::LoadedCut { .. } => "loaded_cut",
            Scenario::LinkFlap => "link_flap",
            Scenario::VmPause => "vm_pause",
            Scenario::Pause { .. } => "pause",
            Scenario::Congestion => "congestion",
            Scenario::CpuStarvation => "cpu_starvation",
            Scenario::Isolated => "isolated",
            Scenario::StreamGap => "stream_gap",
            Scenario::SidecarStall => "sidecar_stall",
            Scenario::SidecarRestart => "sidecar_restart",
        }
    }

    /// Every decoy, for suites and tests.
    pub const DECOYS: [Scenario; 10] = [
        Scenario::BulkCopy,
        Scenario::LinkOutage,
        Scenario::LinkFlap,
        Scenario::VmPause,
        Scenario::Congestion,
        Scenario::CpuStarvation,
        Scenario::Isolated,
        Scenario::StreamGap,
        Scenario::SidecarStall,
        Scenario::SidecarRestart,
    ];
}

/// One trace to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSpec {
    /// File name stem.
    pub name: String,
    /// Seed for everything random in it.
    pub seed: u64,
    /// Probe interval, µs.
    pub interval_us: u32,
    /// Sidecar timeout, µs.
    pub timeout_us: u32,
    /// Length in seconds.
    pub duration_s: f64,
    /// What happens in it.
    pub scenario: Scenario,
    /// Where the event (a stop, a cut) begins within the probe interval:
    /// 0 just after a probe's scheduled send, 0.5 halfway to the next.
    /// `None`: anywhere (seeded). Sweeping it shows what the sampling
    /// offset does at coarse intervals.
    #[serde(default)]
    pub phase: Option<f64>,
    /// The guest's clock is read (ICMP Timestamp every 200 ms).
    #[serde(default)]
    pub clock: bool,
    /// Announces are watched (the trace's info names a capture
    /// interface); a migration's hypervisor sends RARP at resume.
    #[serde(default)]
    pub announce: bool,
    /// A loaded host's load (median RTT) as a multiple of its quiet level,
    /// drawn in `[lo, hi)`. `None`: 2–7 ms, 5–47 × the quiet level (the
    /// offsets sweep's loaded hosts). The `mild` sweep sets 2–8 ×, around
    /// the detector's `load_ratio` (the lab's TCG pre-copy: 4.3 ×).
    #[serde(default)]
    pub load_x: Option<[f64; 2]>,
    /// A loaded host's load without its stalls (a jittery path rather
    /// than a busy host): the `steady` sweep.
    #[serde(default)]
    pub steady_load: bool,
    /// The quiet path's spread, log-normal σ. `None`: 0.15 (issue 4's
    /// model). The lab's loopback path to a TCG guest measures 0.3 at
    /// its core (p90 1.7 × its median with its tail): the `jitter` sweep.
    #[serde(default)]
    pub quiet_sigma: Option<f64>,
}

impl TraceSpec {
    /// A 30 s trace at `interval_us` with the default 1 s timeout.
    pub fn new(name: &str, seed: u64, interval_us: u32, scenario: Scenario) -> Self {
        TraceSpec {
            name: name.into(),
            seed,
            interval_us,
            timeout_us: 1_000_000,
            duration_s: 30.0,
            scenario,
            phase: None,
            clock: false,
            announce: false,
            load_x: None,
            steady_load: false,
            quiet_sigma: None,
        }
    }
}
