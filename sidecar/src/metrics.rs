//! Counters and histograms, lock-free so the prober can update them on its
//! hot path, rendered as Prometheus text for `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram buckets, in microseconds.
const BUCKETS_US: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cum += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cum}", *b as f64 / 1e6);
        }
        cum += self.counts[BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cum}");
    }
}

/// Everything the sidecar counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Echo requests sent.
    pub sent: AtomicU64,
    /// ICMP Timestamp requests sent.
    pub clock_sent: AtomicU64,
    /// Timestamp replies used as clock readings.
    pub clock_replies: AtomicU64,
    /// Sends the kernel refused.
    pub send_errors: AtomicU64,
    /// Replies in time.
    pub replies: AtomicU64,
    /// Probes with no reply within the timeout.
    pub lost: AtomicU64,
    /// Replies after the timeout.
    pub late: AtomicU64,
    /// Second replies to one probe.
    pub duplicates: AtomicU64,
    /// Packets the raw socket saw that were not replies to our probes.
    pub foreign: AtomicU64,
    /// Schedule slots skipped after a stall.
    pub skipped: AtomicU64,
    /// Receive errors other than timeouts.
    pub receive_errors: AtomicU64,
    /// Replies dropped between the receiver and scheduler threads.
    pub dropped_replies: AtomicU64,
    /// Events dropped because the stream hub was not keeping up.
    pub dropped_events: AtomicU64,
    /// Replies timed by the monotonic clock because the wall clock stepped.
    pub clock_fallbacks: AtomicU64,
    /// SSE clients connected now.
    pub clients: AtomicU64,
    /// Clients cut off for falling behind.
    pub overflows: AtomicU64,
    /// Round-trip times of in-time replies.
    pub rtt: Histogram,
    /// How late each send was against its schedule.
    pub send_lateness: Histogram,
}

impl Metrics {
    /// Adds one.
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Stores the prober's final clock-fallback count.
    pub fn set_clock_fallbacks(&self, n: u64) {
        self.clock_fallbacks.store(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self, version: &str, target: &str) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 14] = [
            (
                "clock_probes_sent_total",
                "ICMP Timestamp requests sent.",
                &self.clock_sent,
            ),
            (
                "clock_replies_total",
                "Timestamp replies used as clock readings.",
                &self.clock_replies,
            ),
            ("probes_sent_total", "Echo requests sent.", &self.sent),
            (
                "probe_send_errors_total",
                "Sends the kernel refused.",
                &self.send_errors,
            ),
            (
                "replies_total",
                "Replies within the timeout.",
                &self.replies,
            ),
            (
                "lost_total",
                "Probes with no reply within the timeout.",
                &self.lost,
            ),
            ("late_total", "Replies after the timeout.", &self.late),
            ("duplicate_total", "Duplicate replies.", &self.duplicates),
            (
                "foreign_packets_total",
                "Packets that were not replies to our probes.",
                &self.foreign,
            ),
            (
                "skipped_total",
                "Schedule slots skipped after a stall.",
                &self.skipped,
            ),
            (
                "receive_errors_total",
                "Socket receive errors.",
                &self.receive_errors,
            ),
            (
                "dropped_replies_total",
                "Replies dropped inside the prober.",
                &self.dropped_replies,
            ),
            (
                "dropped_events_total",
                "Events the stream hub could not take.",
                &self.dropped_events,
            ),
            (
                "overflow_disconnects_total",
                "Clients cut off for falling behind.",
                &self.overflows,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP migwatch_{name} {help}\n# TYPE migwatch_{name} counter\nmigwatch_{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP migwatch_clients Connected SSE clients.\n# TYPE migwatch_clients gauge\nmigwatch_clients {}",
            self.clients.load(Ordering::Relaxed)
        );
        self.rtt.render(
            "migwatch_rtt_seconds",
            "Round-trip time of in-time replies.",
            &mut out,
        );
        self.send_lateness.render(
            "migwatch_send_lateness_seconds",
            "How late each probe left against its schedule.",
            &mut out,
        );
        let _ = writeln!(
            out,
            "# HELP migwatch_build_info Build information.\n# TYPE migwatch_build_info gauge\nmigwatch_build_info{{version=\"{version}\",target=\"{target}\"}} 1"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.rtt.observe(Duration::from_micros(5));
        m.rtt.observe(Duration::from_micros(300));
        m.rtt.observe(Duration::from_secs(10));
        let text = m.render("0.1.0", "127.0.0.1");
        assert!(text.contains("migwatch_rtt_seconds_bucket{le=\"0.00001\"} 1"));
        assert!(text.contains("migwatch_rtt_seconds_bucket{le=\"0.0005\"} 2"));
        assert!(text.contains("migwatch_rtt_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("migwatch_rtt_seconds_count 3"));
    }
}
