//! Per-target state, in one place: what a target is ([`TargetSpec`]), and
//! what the sidecar keeps for it while it runs ([`Target`]: its `/info`,
//! its event hub, its counters, its detector). The [`Fleet`] is the set
//! being probed now; the HTTP side looks targets up in it by name, and a
//! targets-file reload swaps it.
//!
//! Nothing here can be changed from the network: the set comes from the
//! command line and the targets file only.

pub mod spec;
pub mod verdict;

use crate::metrics::TargetMetrics;
use crate::stream::{Hub, HubConfig};
use migwatch_shared::wire::Info;
pub use spec::{check_set, parse_targets_file, Defaults, TargetSpec, RATE_BUDGET};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
pub use verdict::Verdicts;

/// Bytes one ring entry takes (`stream::ring::Entry`).
const ENTRY_BYTES: usize = 24;

/// How much history the rings may hold, all targets together, unless
/// `--history-memory` says otherwise: 64 MiB. With `--history 10m` one
/// target at 100 Hz keeps its full 10 minutes (about 21 MB); 1000 targets
/// at 10 Hz (15 events a second each with timestamp probes) keep about
/// 3 minutes each, and the whole sidecar stays under 128 MB.
pub const HISTORY_MEMORY: usize = 64 << 20;

/// The fewest events a ring keeps whatever the budget: about 100 s at
/// 10 Hz, enough for a page to resume across a reconnect.
pub const MIN_RING: usize = 1000;

/// Events a target's ring keeps: its `history` at its rate (echo plus
/// timestamp events), capped by its share of `memory` among `n` targets.
pub fn ring_capacity(spec: &TargetSpec, history: Duration, memory: usize, n: usize) -> usize {
    let by_time = (history.as_secs_f64() * spec.rate()).ceil() as usize;
    let by_memory = memory / ENTRY_BYTES / n.max(1);
    by_time.min(by_memory).clamp(MIN_RING, 20_000_000)
}

/// A target being probed: everything the sidecar keeps for it.
pub struct Target {
    /// Unique for the life of the process (a target removed and added
    /// again gets a new one): how the prober tells its targets apart.
    pub id: u64,
    /// What it is.
    pub spec: TargetSpec,
    /// What `/targets/{name}/info` says (with its own `run_id`).
    pub info: Info,
    /// Its events, for its SSE clients and its detector.
    pub hub: Arc<Hub>,
    /// Its counters.
    pub metrics: TargetMetrics,
    /// Its detector's verdicts, for `/metrics` and `/migrations`.
    pub verdicts: Verdicts,
    /// Set to true when it is removed (or the sidecar stops): its streams
    /// end.
    pub closed: watch::Sender<bool>,
}

/// Numbers targets for [`Target::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Target {
    /// A new target with an empty hub and a fresh `run_id`.
    pub fn new(spec: TargetSpec, hub_cfg: HubConfig, capture_iface: Option<String>) -> Arc<Target> {
        let run_id = format!(
            "{:016x}",
            getrandom::u64().unwrap_or_else(|_| fallback_id())
        );
        let info = Info {
            target: spec.address.to_string(),
            interval_ms: spec.interval.as_secs_f64() * 1e3,
            timeout_ms: spec.timeout.as_secs_f64() * 1e3,
            version: env!("CARGO_PKG_VERSION").to_string(),
            run_id,
            clock_interval_ms: spec.clock_interval.map(|d| d.as_secs_f64() * 1e3),
            capture_iface,
            name: spec.name.clone(),
            labels: spec.labels.clone(),
        };
        Arc::new(Target {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            verdicts: Verdicts::new(&spec, &info),
            spec,
            info,
            hub: Hub::new(hub_cfg),
            metrics: TargetMetrics::default(),
            closed: watch::Sender::new(false),
        })
    }

    /// A receiver that flips to true when this target's streams must end.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

/// A run id when the system has no randomness to give (never seen): the
/// time, so two runs still differ.
fn fallback_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The targets being probed now, in the order given (the first one is what
/// `/events` and `/info` mean).
#[derive(Default)]
pub struct Fleet {
    inner: RwLock<FleetInner>,
}

#[derive(Default)]
struct FleetInner {
    list: Vec<Arc<Target>>,
    by_name: HashMap<String, Arc<Target>>,
    by_addr: HashMap<Ipv4Addr, Arc<Target>>,
}

impl Fleet {
    /// Every target, in order.
    pub fn list(&self) -> Vec<Arc<Target>> {
        self.read().list.clone()
    }

    /// The target named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Target>> {
        self.read().by_name.get(name).cloned()
    }

    /// The target probed at `addr`.
    pub fn by_address(&self, addr: Ipv4Addr) -> Option<Arc<Target>> {
        self.read().by_addr.get(&addr).cloned()
    }

    /// The first target.
    pub fn first(&self) -> Option<Arc<Target>> {
        self.read().list.first().cloned()
    }

    /// How many targets there are.
    pub fn len(&self) -> usize {
        self.read().list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the set. Targets no longer in it are closed (their streams
    /// end); the ones kept are the same `Arc`s, so their streams go on.
    pub fn replace(&self, list: Vec<Arc<Target>>) {
        let mut w = self.inner.write().unwrap_or_else(|p| p.into_inner());
        for old in &w.list {
            if !list.iter().any(|t| t.id == old.id) {
                old.closed.send_replace(true);
            }
        }
        w.by_name = list
            .iter()
            .map(|t| (t.spec.name.clone(), t.clone()))
            .collect();
        w.by_addr = list.iter().map(|t| (t.spec.address, t.clone())).collect();
        w.list = list;
    }

    /// Closes every target's streams (shutdown).
    pub fn close_all(&self) {
        for t in &self.read().list {
            t.closed.send_replace(true);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, FleetInner> {
        // Every write replaces whole fields, so a poisoned lock still
        // holds a consistent set.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a reload does: the new list (kept targets reused) and which
/// targets it added and removed, by name.
pub struct Plan {
    /// The set to probe from now on.
    pub list: Vec<Arc<Target>>,
    /// Names of the targets that start.
    pub added: Vec<String>,
    /// Names of the targets that stop.
    pub removed: Vec<String>,
}

/// Works out the new set from the specs wanted: a target whose spec is
/// unchanged keeps its `Target` (hub, run id, detector); a changed or new
/// one gets a new `Target` from `make`.
pub fn plan(
    current: &[Arc<Target>],
    wanted: Vec<TargetSpec>,
    mut make: impl FnMut(TargetSpec) -> Arc<Target>,
) -> Plan {
    let mut added = Vec::new();
    let list: Vec<Arc<Target>> = wanted
        .into_iter()
        .map(|spec| match current.iter().find(|t| t.spec == spec) {
            Some(t) => t.clone(),
            None => {
                added.push(spec.name.clone());
                make(spec)
            }
        })
        .collect();
    let removed = current
        .iter()
        .filter(|t| !list.iter().any(|n| n.id == t.id))
        .map(|t| t.spec.name.clone())
        .collect();
    Plan {
        list,
        added,
        removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addr: &str) -> TargetSpec {
        TargetSpec::from_address(
            addr.parse().unwrap(),
            &Defaults {
                interval: Duration::from_millis(100),
                timeout: Duration::from_secs(1),
                clock_interval: Some(Duration::from_millis(200)),
            },
        )
    }

    fn make(s: TargetSpec) -> Arc<Target> {
        Target::new(s, HubConfig::for_interval(Duration::from_millis(100)), None)
    }

    #[test]
    fn a_reload_keeps_unchanged_targets_and_closes_removed_ones() {
        let fleet = Fleet::default();
        let first = plan(&[], vec![spec("198.18.0.2"), spec("198.18.0.3")], make);
        assert_eq!(first.added.len(), 2);
        fleet.replace(first.list);
        let kept = fleet.get("198.18.0.2").unwrap();
        let gone = fleet.get("198.18.0.3").unwrap();
        let mut changed = spec("198.18.0.4");
        changed.labels.insert("rack".into(), "a".into());
        let next = plan(&fleet.list(), vec![spec("198.18.0.2"), changed], make);
        assert_eq!(next.added, vec!["198.18.0.4"]);
        assert_eq!(next.removed, vec!["198.18.0.3"]);
        fleet.replace(next.list);
        assert_eq!(fleet.get("198.18.0.2").unwrap().id, kept.id);
        assert_eq!(
            fleet.get("198.18.0.2").unwrap().info.run_id,
            kept.info.run_id
        );
        assert!(*gone.closed.borrow());
        assert!(!*kept.closed.borrow());
        assert!(fleet.get("198.18.0.3").is_none());
        assert_eq!(
            fleet
                .by_address("198.18.0.4".parse().unwrap())
                .unwrap()
                .info
                .labels["rack"],
            "a"
        );
    }

    #[test]
    fn rings_fit_the_memory_budget() {
        let s = spec("198.18.0.2"); // 10 + 5 events a second
        let ten_min = Duration::from_secs(600);
        // One target keeps its whole history.
        assert_eq!(ring_capacity(&s, ten_min, HISTORY_MEMORY, 1), 9000);
        // 1000 targets share 64 MiB: 2796 events each, about 3 minutes.
        let n = ring_capacity(&s, ten_min, HISTORY_MEMORY, 1000);
        assert_eq!(n, HISTORY_MEMORY / 24 / 1000);
        assert!(n * 24 * 1000 <= HISTORY_MEMORY);
        // Never below the floor.
        assert_eq!(ring_capacity(&s, ten_min, 1 << 20, 100_000), MIN_RING);
    }
}
