//! What the sections read off a running sidecar: its `/metrics` (counters
//! and the send-lateness histogram), its stream's samples, and its
//! threads' scheduler statistics.

use anyhow::{bail, Result};
use migwatch_shared::wire::{Event, Sample};
use migwatch_tests::procstat;
use migwatch_tests::sidecar::{EventStream, Sidecar};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::{Duration, Instant};

/// One parsed `/metrics` scrape.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) values: HashMap<String, f64>,
    /// Send lateness histogram: (upper bound in µs, cumulative count).
    pub(crate) lateness: Vec<(f64, u64)>,
}

impl Snapshot {
    pub(crate) fn take(sc: &Sidecar) -> Result<Snapshot> {
        let text = sc.get("/metrics")?;
        let mut s = Snapshot::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            if let Some(le) = name
                .strip_prefix("migwatch_send_lateness_seconds_bucket{le=\"")
                .and_then(|x| x.strip_suffix("\"}"))
            {
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse::<f64>().unwrap_or(f64::INFINITY) * 1e6
                };
                s.lateness.push((bound, v as u64));
            } else if let Some((base, _)) = name
                .split_once("{target=\"")
                .filter(|(_, rest)| !rest.trim_end_matches("\"}").contains(','))
            {
                // Per-target series: the bench runs one target, so the
                // family's sum is that target's value.
                *s.values.entry(base.to_string()).or_default() += v;
            } else {
                s.values.insert(name.to_string(), v);
            }
        }
        if s.lateness.is_empty() {
            bail!("no send-lateness histogram in /metrics");
        }
        Ok(s)
    }

    /// ICMP requests sent: echo probes and timestamp (clock) probes, the
    /// sidecar's work per unit when its cost is set against fping's.
    pub(crate) fn requests(&self) -> u64 {
        self.get("probes_sent_total") + self.get("clock_probes_sent_total")
    }

    pub(crate) fn get(&self, name: &str) -> u64 {
        self.values
            .get(&format!("migwatch_{name}"))
            .copied()
            .unwrap_or(0.0) as u64
    }

    /// Schedule slots used so far: the next probe's seq.
    pub(crate) fn slots(&self) -> u64 {
        self.get("probes_sent_total")
            + self.get("probe_send_errors_total")
            + self.get("skipped_total")
    }

    pub(crate) fn lateness_sum_us(&self) -> f64 {
        self.values
            .get("migwatch_send_lateness_seconds_sum")
            .copied()
            .unwrap_or(0.0)
            * 1e6
    }
}

/// The send-lateness histogram between two scrapes.
pub(crate) struct Lateness {
    /// (upper bound µs, cumulative count)
    pub(crate) buckets: Vec<(f64, u64)>,
    pub(crate) mean_us: f64,
}

impl Lateness {
    pub(crate) fn between(a: &Snapshot, b: &Snapshot) -> Lateness {
        let buckets: Vec<(f64, u64)> = b
            .lateness
            .iter()
            .zip(&a.lateness)
            .map(|(&(le, nb), &(_, na))| (le, nb.saturating_sub(na)))
            .collect();
        let n = buckets.last().map_or(0, |x| x.1);
        Lateness {
            mean_us: (b.lateness_sum_us() - a.lateness_sum_us()) / n.max(1) as f64,
            buckets,
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.buckets.last().map_or(0, |x| x.1)
    }

    /// Fraction of sends at most `le` µs late (`le` must be a bucket bound).
    pub(crate) fn frac_le(&self, le: f64) -> f64 {
        let n = self.buckets.iter().find(|b| b.0 >= le).map_or(0, |b| b.1);
        n as f64 / self.count().max(1) as f64
    }

    /// The bucket bound the `q` quantile falls under.
    pub(crate) fn quantile_bound(&self, q: f64) -> f64 {
        let need = (q * self.count() as f64).ceil() as u64;
        self.buckets
            .iter()
            .find(|b| b.1 >= need)
            .map_or(f64::INFINITY, |b| b.0)
    }

    pub(crate) fn p99_text(&self) -> String {
        let b = self.quantile_bound(0.99);
        if b.is_infinite() {
            "> 1 s".into()
        } else {
            format!("≤ {b:.0} µs")
        }
    }
}

/// Reads the stream from `?since=0` until every seq in `range` has its
/// sample, or `timeout` passes. Returns the samples and the number of
/// `late` events in the range.
pub(crate) fn samples_for(
    sc: &Sidecar,
    range: Range<u64>,
    timeout: Duration,
) -> Result<(BTreeMap<u64, Sample>, u64)> {
    let stream = EventStream::open(&sc.base, "?since=0")?;
    let deadline = Instant::now() + timeout;
    let need = range.end.saturating_sub(range.start) as usize;
    let (mut got, mut late) = (BTreeMap::new(), 0);
    while got.len() < need {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match stream.next(left)?.map(|r| r.event) {
            Some(Event::Sample(s)) if range.contains(&s.seq) => {
                got.insert(s.seq, s);
            }
            Some(Event::Late(l)) if range.contains(&l.seq) => late += 1,
            _ => {}
        }
    }
    Ok((got, late))
}

/// What one thread did between two readings.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadDelta {
    pub(crate) name: String,
    pub(crate) run_ns: u64,
    pub(crate) wait_ns: u64,
    pub(crate) slices: u64,
}

pub(crate) fn thread_deltas(
    a: &[procstat::ThreadCpu],
    b: &[procstat::ThreadCpu],
) -> Vec<ThreadDelta> {
    b.iter()
        .filter_map(|tb| {
            let ta = a.iter().find(|t| t.tid == tb.tid)?;
            Some(ThreadDelta {
                name: tb.name.clone(),
                run_ns: tb.run_ns.saturating_sub(ta.run_ns),
                wait_ns: tb.wait_ns.saturating_sub(ta.wait_ns),
                slices: tb.slices.saturating_sub(ta.slices),
            })
        })
        .collect()
}

pub(crate) fn named(ts: &[ThreadDelta], name: &str) -> ThreadDelta {
    ts.iter()
        .filter(|t| t.name == name)
        .fold(ThreadDelta::default(), |acc, t| ThreadDelta {
            name: name.to_string(),
            run_ns: acc.run_ns + t.run_ns,
            wait_ns: acc.wait_ns + t.wait_ns,
            slices: acc.slices + t.slices,
        })
}
