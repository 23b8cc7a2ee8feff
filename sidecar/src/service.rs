//! Starting the instrument: the privileged steps, the privilege drop, then
//! the threads (prober, hub pump, capture, detectors), and reloading the
//! targets file. Both the serving sidecar and `watch` start it this way.
//!
//! Start-up order matters: open the raw socket (and the packet socket) while
//! privileged, let the caller bind its port, drop privileges, and only then
//! start threads.

use crate::capture;
use crate::cli::ProbePriority;
use crate::feed;
use crate::metrics::Metrics;
use crate::privilege;
use crate::probe;
use crate::stream::HubConfig;
use crate::sys;
use crate::targets::{self, check_set, Defaults, Fleet, Target, TargetSpec, RATE_BUDGET};
use anyhow::{bail, Context, Result};
use migwatch_shared::wire::Event;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Nice value of the hub's pump, which renders the prober's batches.
const PUMP_NICE: i32 = 5;
/// Nice value of the detectors' thread: below the pump, it only ever
/// falls behind.
const VERDICT_NICE: i32 = 10;
/// The prober's nice value with `--probe-priority high`.
const PROBE_NICE: i32 = -10;

/// What to start.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `--target` addresses, in order, before the targets file's.
    pub targets: Vec<Ipv4Addr>,
    /// `--targets-file`, made absolute.
    pub targets_file: Option<PathBuf>,
    /// Settings targets inherit.
    pub defaults: Defaults,
    /// `--capture-iface`.
    pub capture_iface: Option<String>,
    /// `--probe-priority`.
    pub probe_priority: ProbePriority,
    /// `--user`.
    pub user: String,
    /// `--history`.
    pub history: Duration,
    /// `--history-memory`, bytes.
    pub history_memory: usize,
    /// `--client-queue`.
    pub client_queue: usize,
}

/// The sockets opened while privileged.
pub struct Opened {
    setup: Setup,
    socket: probe::Socket,
    capture: Option<capture::Capture>,
    /// Receive buffer the kernel granted, bytes.
    pub rcvbuf: usize,
    /// The targets to start with.
    specs: Vec<TargetSpec>,
}

/// The running instrument.
pub struct Service {
    setup: Setup,
    /// The targets being probed.
    pub fleet: Arc<Fleet>,
    /// Process-wide counters.
    pub metrics: Arc<Metrics>,
    /// The priority the prober got.
    pub probe_priority: ProbePriority,
    /// Who we run as now.
    pub dropped: privilege::Dropped,
    prober: Mutex<Option<probe::Prober>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The broadcast addresses of this host's IPv4 networks.
fn local_broadcasts() -> Vec<Ipv4Addr> {
    pnet::datalink::interfaces()
        .iter()
        .flat_map(|i| i.ips.iter())
        .filter_map(|n| match n {
            pnet::ipnetwork::IpNetwork::V4(v4) if v4.prefix() < 31 => Some(v4.broadcast()),
            _ => None,
        })
        .collect()
}

/// Reads and parses the targets file, printing each skipped entry.
fn read_targets_file(path: &std::path::Path, d: &Defaults) -> Result<Vec<TargetSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --targets-file {}: {e}", path.display()))?;
    let (good, bad) = targets::parse_targets_file(&path.display().to_string(), &text, d)?;
    for b in bad {
        tracing::warn!("{b}");
    }
    Ok(good)
}

impl Setup {
    /// The targets wanted now: the command line's, then the file's, checked
    /// as a set (each refusal printed).
    pub fn wanted(&self) -> Result<Vec<TargetSpec>, String> {
        let mut specs: Vec<TargetSpec> = self
            .targets
            .iter()
            .map(|a| TargetSpec::from_address(*a, &self.defaults))
            .collect();
        if let Some(path) = &self.targets_file {
            specs.extend(read_targets_file(path, &self.defaults)?);
        }
        // A subnet's broadcast address would make every host on it answer.
        let broadcasts = local_broadcasts();
        specs.retain(|t| {
            let bad = broadcasts.contains(&t.address);
            if bad {
                eprintln!(
                    "migwatch-sidecar: target {:?} skipped: {} is the broadcast address of a local \
                     network; give one host's address",
                    t.name, t.address
                );
            }
            !bad
        });
        let (kept, why) = check_set(specs, RATE_BUDGET);
        for w in why {
            tracing::warn!("{w}");
        }
        Ok(kept)
    }

    fn hub_config(&self, spec: &TargetSpec, n: usize) -> HubConfig {
        let mut cfg = HubConfig::for_interval(spec.interval);
        cfg.capacity = targets::ring_capacity(spec, self.history, self.history_memory, n);
        cfg.client_queue = self.client_queue;
        cfg
    }
}

/// Gives the calling thread the prober's scheduling (inherited by the
/// probe thread spawned next) while the privilege to do so is still held.
/// Returns what it got.
fn raise_for_prober(want: ProbePriority) -> ProbePriority {
    let got = match want {
        ProbePriority::Realtime => sys::set_thread_fifo(Some(1)),
        ProbePriority::High => sys::set_thread_nice(PROBE_NICE),
        ProbePriority::Normal => return want,
    };
    match got {
        Ok(()) => want,
        Err(e) => {
            tracing::warn!(
                "the prober runs at normal priority (--probe-priority \
                 {}: {e}; it needs root or CAP_SYS_NICE at start): its sends may be late while \
                 many clients are served",
                want.name()
            );
            ProbePriority::Normal
        }
    }
}

/// Puts the calling thread back to normal scheduling after
/// [`raise_for_prober`] gave it `got` (lowering needs no privilege).
fn lower_after_prober(got: ProbePriority) -> std::io::Result<()> {
    match got {
        ProbePriority::Realtime => sys::set_thread_fifo(None),
        ProbePriority::High => sys::set_thread_nice(0),
        ProbePriority::Normal => Ok(()),
    }
}

/// The privileged steps: checks the targets, opens the raw socket and the
/// capture. The caller binds its port next, then calls [`Opened::start`].
pub fn open(setup: Setup) -> Result<Opened> {
    let specs = setup.wanted().map_err(anyhow::Error::msg)?;
    if specs.is_empty() {
        bail!(
            "no valid target to watch (see the messages above): give --target ADDR or fix \
             --targets-file"
        );
    }
    let socket = probe::Socket::open()?;
    let rcvbuf = socket.rcvbuf;
    let capture = match &setup.capture_iface {
        Some(name) => Some(capture::open(name)?),
        None => None,
    };
    Ok(Opened {
        setup,
        socket,
        capture,
        rcvbuf,
        specs,
    })
}

impl Opened {
    /// Raises the prober's priority, drops privileges, and starts every
    /// thread.
    pub fn start(self) -> Result<Service> {
        let Opened {
            setup,
            socket,
            capture,
            specs,
            ..
        } = self;
        // The prober inherits this thread's scheduling, and raising it
        // needs a privilege that is about to go: raise it now (the threads
        // spawned after the prober drop back, which needs none).
        let probe_priority = raise_for_prober(setup.probe_priority);
        let dropped = privilege::drop_privileges(&setup.user)?;
        let caps = privilege::effective_capabilities()?;
        if caps != 0 {
            bail!("capabilities {caps:#x} are still in effect after the privilege drop; refusing to serve");
        }
        if let Some(path) = &setup.targets_file {
            if std::fs::read(path).is_err() {
                tracing::warn!(
                    "{} is not readable after the privilege drop (uid {}): \
                     SIGHUP will not be able to re-read it; make it readable by --user {}",
                    path.display(),
                    dropped.uid,
                    setup.user
                );
            }
        }
        let n = specs.len();
        let list: Vec<Arc<Target>> = specs
            .into_iter()
            .map(|s| {
                let cfg = setup.hub_config(&s, n);
                Target::new(s, cfg, setup.capture_iface.clone())
            })
            .collect();
        let fleet = Arc::new(Fleet::default());
        fleet.replace(list.clone());
        let metrics = Arc::new(Metrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        // Up to 256 batches (about 2.5 s of events) wait for the pump.
        let (feed, pump) = feed::feed(256);
        let prober = probe::start(socket, list, feed, metrics.clone(), stop.clone())?;
        if let Err(e) = lower_after_prober(probe_priority) {
            bail!("cannot give up the prober's priority for the other threads: {e}");
        }
        let mut threads = Vec::new();
        threads.push(
            std::thread::Builder::new()
                .name("hub-pump".into())
                .spawn(move || {
                    // Below the prober, so waking this thread never
                    // preempts it (the channel holds seconds of batches).
                    let _ = sys::set_thread_nice(PUMP_NICE);
                    // Ends when the prober drops its feed.
                    pump.run();
                })?,
        );
        if let Some(c) = capture {
            // Announces are rare: one at a time, straight into the hub.
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Arc<Target>, Event)>(1024);
            threads.push(
                std::thread::Builder::new()
                    .name("capture-pump".into())
                    .spawn(move || {
                        for (t, ev) in rx {
                            t.hub.push(ev);
                        }
                    })?,
            );
            threads.push(capture::start(
                c,
                fleet.clone(),
                tx,
                metrics.clone(),
                stop.clone(),
            )?);
        }
        let (f, s) = (fleet.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("detect".into())
                .spawn(move || {
                    let _ = sys::set_thread_nice(VERDICT_NICE);
                    targets::verdict::run(f, s);
                })?,
        );
        Ok(Service {
            setup,
            fleet,
            metrics,
            probe_priority,
            dropped,
            prober: Mutex::new(Some(prober)),
            stop,
            threads: Mutex::new(threads),
        })
    }
}

/// What a reload changed.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// Targets started.
    pub added: Vec<String>,
    /// Targets stopped.
    pub removed: Vec<String>,
    /// Targets now.
    pub total: usize,
}

impl Service {
    /// Re-reads the targets file (SIGHUP): added targets start, removed
    /// ones stop, unchanged ones go on with the same stream and run id. A
    /// file that cannot be read or parsed, or that leaves no valid target,
    /// changes nothing.
    pub fn reload(&self) -> Result<Reloaded> {
        let wanted = self.setup.wanted().map_err(|e| {
            self.metrics.inc(&self.metrics.reload_errors);
            anyhow::anyhow!("{e}; keeping the {} targets running", self.fleet.len())
        })?;
        if wanted.is_empty() {
            self.metrics.inc(&self.metrics.reload_errors);
            bail!(
                "the reloaded set has no valid target; keeping the {} targets running",
                self.fleet.len()
            );
        }
        let n = wanted.len();
        let plan = targets::plan(&self.fleet.list(), wanted, |s| {
            let cfg = self.setup.hub_config(&s, n);
            Target::new(s, cfg, self.setup.capture_iface.clone())
        });
        // Keep every ring within the memory budget for the new count.
        for t in &plan.list {
            t.hub
                .set_capacity(self.setup.hub_config(&t.spec, n).capacity);
        }
        let guard = self.prober.lock().unwrap_or_else(|p| p.into_inner());
        let prober = guard.as_ref().context("the prober has stopped")?;
        prober
            .set_targets(plan.list.clone())
            .map_err(anyhow::Error::msg)?;
        self.fleet.replace(plan.list);
        Ok(Reloaded {
            added: plan.added,
            removed: plan.removed,
            total: n,
        })
    }

    /// Stops every thread and waits for them.
    pub fn stop(&self) {
        self.fleet.close_all();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.prober.lock().unwrap_or_else(|p| p.into_inner()).take() {
            p.join();
        }
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = t.join();
        }
    }
}
