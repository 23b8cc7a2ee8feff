//! Counters and histograms, lock-free so the prober can update them on its
//! hot path, rendered as Prometheus text for `GET /metrics`.
//!
//! Two scopes: [`TargetMetrics`] per target (every series labelled
//! `target="NAME"`, so one scrape covers the fleet) and [`Metrics`] for the
//! process (the socket, the schedule, the clients).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
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

    /// The series of this histogram for one label set (`labels` is empty
    /// or `k="v",...` without braces).
    pub fn render_series(&self, name: &str, labels: &str, out: &mut String) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cum += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cum}",
                *b as f64 / 1e6
            );
        }
        cum += self.counts[BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(
            out,
            "{name}_sum{} {sum}\n{name}_count{} {cum}",
            braces(labels),
            braces(labels)
        );
    }
}

/// Writes a metric family's `# HELP` and `# TYPE` lines.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped for the text format (`\`, `"` and newlines).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the prober counts for one target.
#[derive(Debug, Default)]
pub struct TargetMetrics {
    /// Echo requests sent.
    pub sent: AtomicU64,
    /// ICMP Timestamp requests sent.
    pub clock_sent: AtomicU64,
    /// Timestamp replies used as clock readings.
    pub clock_replies: AtomicU64,
    /// Sends the kernel refused, by errno (indexes of [`SEND_ERRNOS`]).
    pub send_errors: [AtomicU64; SEND_ERRNOS.len()],
    /// ICMP errors about our probes to this target, by type (indexes of
    /// [`ICMP_ERROR_TYPES`]). Never replies.
    pub icmp_errors: [AtomicU64; ICMP_ERROR_TYPES.len()],
    /// Replies in time.
    pub replies: AtomicU64,
    /// Probes with no reply within the timeout.
    pub lost: AtomicU64,
    /// Replies after the timeout.
    pub late: AtomicU64,
    /// Second replies to one probe.
    pub duplicates: AtomicU64,
    /// Packets from this target that were not replies to our probes.
    pub foreign: AtomicU64,
    /// Schedule slots skipped after a stall (reported in `skip` events).
    pub skipped: AtomicU64,
    /// Round-trip times of in-time replies.
    pub rtt: Histogram,
}

/// The `errno` label values of `migwatch_probe_send_errors_total`: the
/// errors a probe's `sendto` meets in practice, then `other`.
pub const SEND_ERRNOS: [&str; 7] = [
    // The transmit queue (qdisc) dropped it.
    "ENOBUFS",
    // The socket's send buffer is full (packets held in the qdisc).
    "EAGAIN",
    // No route, or an `unreachable` route (the test range's guard).
    "EHOSTUNREACH",
    "ENETUNREACH",
    // A firewall rule refused it.
    "EPERM",
    "EACCES",
    "other",
];

/// The index in [`SEND_ERRNOS`] of a send's error.
pub fn send_errno_index(e: &std::io::Error) -> usize {
    let errno = e.raw_os_error().unwrap_or(0);
    let name = match errno {
        libc::ENOBUFS => "ENOBUFS",
        libc::EAGAIN => "EAGAIN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        _ => "other",
    };
    SEND_ERRNOS
        .iter()
        .position(|n| *n == name)
        .unwrap_or(SEND_ERRNOS.len() - 1)
}

/// The `type` label values of `migwatch_icmp_errors_total`.
pub const ICMP_ERROR_TYPES: [&str; 4] = [
    "dest_unreachable",
    "time_exceeded",
    "parameter_problem",
    "other",
];

/// The index in [`ICMP_ERROR_TYPES`] of an ICMP error's type.
pub fn icmp_error_index(icmp_type: u8) -> usize {
    match icmp_type {
        3 => 0,
        11 => 1,
        12 => 2,
        _ => 3,
    }
}

impl TargetMetrics {
    /// Counts one refused send.
    pub fn send_error(&self, e: &std::io::Error) {
        self.send_errors[send_errno_index(e)].fetch_add(1, Ordering::Relaxed);
    }

    /// Sends refused, all errnos.
    pub fn send_errors_total(&self) -> u64 {
        self.send_errors
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// A per-target family with one more label: name, help, label name, its
/// values, and the counters (one per value).
type LabelledRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    fn(&TargetMetrics) -> &[AtomicU64],
);

/// The per-target counters, in the order rendered: name, help, field.
type CounterRow = (&'static str, &'static str, fn(&TargetMetrics) -> &AtomicU64);

const TARGET_COUNTERS: [CounterRow; 9] = [
    ("probes_sent_total", "Echo requests sent.", |m| &m.sent),
    (
        "clock_probes_sent_total",
        "ICMP Timestamp requests sent.",
        |m| &m.clock_sent,
    ),
    (
        "clock_replies_total",
        "Timestamp replies used as clock readings.",
        |m| &m.clock_replies,
    ),
    ("replies_total", "Replies within the timeout.", |m| {
        &m.replies
    }),
    (
        "lost_total",
        "Probes with no reply within the timeout.",
        |m| &m.lost,
    ),
    ("late_total", "Replies after the timeout.", |m| &m.late),
    ("duplicate_total", "Duplicate replies.", |m| &m.duplicates),
    (
        "foreign_packets_total",
        "Packets that were not replies to our probes (per target: from its address; \
         target=\"\": from no target's address).",
        |m| &m.foreign,
    ),
    (
        "skipped_total",
        "Schedule slots never sent after a stall, reported as skip events.",
        |m| &m.skipped,
    ),
];

/// Everything the sidecar counts for the process as a whole.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Packets from addresses that are no target's.
    pub foreign: AtomicU64,
    /// Receive errors other than timeouts.
    pub receive_errors: AtomicU64,
    /// Events dropped because the stream hubs were not keeping up.
    pub dropped_events: AtomicU64,
    /// Replies timed by the monotonic clock because the wall clock stepped.
    pub clock_fallbacks: AtomicU64,
    /// SSE clients connected now.
    pub clients: AtomicU64,
    /// Clients cut off for falling behind.
    pub overflows: AtomicU64,
    /// Targets being probed now.
    pub targets: AtomicU64,
    /// Targets-file reloads that failed (the old set stayed).
    pub reload_errors: AtomicU64,
    /// Times the announce capture's interface went away (deleted; the
    /// capture binds again when it is back).
    pub capture_iface_lost: AtomicU64,
    /// 1 while the announce capture waits for its interface to come back.
    pub capture_waiting: AtomicU64,
    /// How late each send was against its schedule (all targets).
    pub send_lateness: Histogram,
    /// Steps of the wall clock seen against the sidecar's timebase
    /// (`probe::timebase`).
    pub wallclock_steps: AtomicU64,
    /// The timebase minus the wall clock, µs, at the last check.
    pub timebase_offset_us: AtomicI64,
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

    /// Prometheus text exposition of the process-wide series and of every
    /// target's (`targets`: each target's escaped name and its counters).
    pub fn render(&self, version: &str, targets: &[(String, &TargetMetrics)]) -> String {
        let mut out = String::with_capacity(4096 + targets.len() * 4096);
        for (name, help, field) in TARGET_COUNTERS {
            let full = format!("migwatch_{name}");
            family(&mut out, &full, "counter", help);
            if name == "foreign_packets_total" {
                let _ = writeln!(
                    out,
                    "{full}{{target=\"\"}} {}",
                    self.foreign.load(Ordering::Relaxed)
                );
            }
            for (t, m) in targets {
                let _ = writeln!(
                    out,
                    "{full}{{target=\"{t}\"}} {}",
                    field(m).load(Ordering::Relaxed)
                );
            }
        }
        // Labelled per target and cause: every label value is rendered
        // from the start, so a rate() over it never begins mid-fault.
        let labelled: [LabelledRow; 2] = [
            (
                "migwatch_probe_send_errors_total",
                "Sends the kernel refused, by errno (each is streamed as a lost probe too).",
                "errno",
                &SEND_ERRNOS,
                |m| &m.send_errors,
            ),
            (
                "migwatch_icmp_errors_total",
                "ICMP errors about this target's probes (a router's or this host's \
                 destination unreachable, time exceeded, ...), by type; never counted as replies.",
                "type",
                &ICMP_ERROR_TYPES,
                |m| &m.icmp_errors,
            ),
        ];
        for (full, help, label, values, field) in labelled {
            family(&mut out, full, "counter", help);
            for (t, m) in targets {
                for (v, c) in values.iter().zip(field(m)) {
                    let _ = writeln!(
                        out,
                        "{full}{{target=\"{t}\",{label}=\"{v}\"}} {}",
                        c.load(Ordering::Relaxed)
                    );
                }
            }
        }
        family(
            &mut out,
            "migwatch_rtt_seconds",
            "histogram",
            "Round-trip time of in-time replies.",
        );
        for (t, m) in targets {
            m.rtt
                .render_series("migwatch_rtt_seconds", &format!("target=\"{t}\""), &mut out);
        }
        let process: [(&str, &str, &str, &AtomicU64); 8] = [
            (
                "receive_errors_total",
                "counter",
                "Socket receive errors.",
                &self.receive_errors,
            ),
            (
                "dropped_events_total",
                "counter",
                "Events the stream hubs could not take.",
                &self.dropped_events,
            ),
            (
                "overflow_disconnects_total",
                "counter",
                "Clients cut off for falling behind.",
                &self.overflows,
            ),
            (
                "reload_errors_total",
                "counter",
                "Targets-file reloads that failed (the old set stayed).",
                &self.reload_errors,
            ),
            (
                "capture_iface_lost_total",
                "counter",
                "Times the announce capture's interface went away (it captures again once an \
                 interface of that name is back).",
                &self.capture_iface_lost,
            ),
            (
                "capture_waiting",
                "gauge",
                "1 while the announce capture waits for its interface to come back.",
                &self.capture_waiting,
            ),
            ("clients", "gauge", "Connected SSE clients.", &self.clients),
            ("targets", "gauge", "Targets being probed.", &self.targets),
        ];
        for (name, kind, help, c) in process {
            let full = format!("migwatch_{name}");
            family(&mut out, &full, kind, help);
            let _ = writeln!(out, "{full} {}", c.load(Ordering::Relaxed));
        }
        family(
            &mut out,
            "migwatch_wallclock_steps_total",
            "counter",
            "Steps of the wall clock (NTP, a suspend, by hand) seen against the sidecar's \
             timebase; streamed times do not follow them.",
        );
        let _ = writeln!(
            out,
            "migwatch_wallclock_steps_total {}",
            self.wallclock_steps.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "migwatch_timebase_offset_seconds",
            "gauge",
            "The sidecar's timebase (every streamed time) minus the wall clock: 0 until the \
             wall clock steps; a restart re-anchors it.",
        );
        let _ = writeln!(
            out,
            "migwatch_timebase_offset_seconds {}",
            self.timebase_offset_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        family(
            &mut out,
            "migwatch_send_lateness_seconds",
            "histogram",
            "How late each probe left against its schedule (all targets).",
        );
        self.send_lateness
            .render_series("migwatch_send_lateness_seconds", "", &mut out);
        family(
            &mut out,
            "migwatch_build_info",
            "gauge",
            "Build information.",
        );
        let _ = writeln!(
            out,
            "migwatch_build_info{{version=\"{}\"}} 1",
            escape(version)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labelled() {
        let m = Metrics::default();
        let t = TargetMetrics::default();
        t.rtt.observe(Duration::from_micros(5));
        t.rtt.observe(Duration::from_micros(300));
        t.rtt.observe(Duration::from_secs(10));
        let text = m.render("0.1.0", &[("vm-1".into(), &t)]);
        assert!(text.contains("migwatch_rtt_seconds_bucket{target=\"vm-1\",le=\"0.00001\"} 1"));
        assert!(text.contains("migwatch_rtt_seconds_bucket{target=\"vm-1\",le=\"0.0005\"} 2"));
        assert!(text.contains("migwatch_rtt_seconds_bucket{target=\"vm-1\",le=\"+Inf\"} 3"));
        assert!(text.contains("migwatch_rtt_seconds_count{target=\"vm-1\"} 3"));
        assert!(text.contains("migwatch_send_lateness_seconds_count 0"));
    }

    #[test]
    fn wall_clock_steps_and_the_timebase_offset_are_rendered() {
        let m = Metrics::default();
        let text = m.render("0.1.0", &[]);
        assert!(text.contains("migwatch_wallclock_steps_total 0\n"));
        assert!(text.contains("migwatch_timebase_offset_seconds 0\n"));
        m.inc(&m.wallclock_steps);
        m.timebase_offset_us.store(54_000_250, Ordering::Relaxed);
        let text = m.render("0.1.0", &[]);
        assert!(text.contains("# TYPE migwatch_wallclock_steps_total counter\n"));
        assert!(text.contains("migwatch_wallclock_steps_total 1\n"));
        assert!(text.contains("# TYPE migwatch_timebase_offset_seconds gauge\n"));
        assert!(text.contains("migwatch_timebase_offset_seconds 54.00025\n"));
    }

    #[test]
    fn every_target_gets_every_counter_under_one_family() {
        let m = Metrics::default();
        let (a, b) = (TargetMetrics::default(), TargetMetrics::default());
        b.lost.fetch_add(7, Ordering::Relaxed);
        let text = m.render("0.1.0", &[("a".into(), &a), ("b".into(), &b)]);
        assert!(text.contains(
            "migwatch_lost_total{target=\"a\"} 0\nmigwatch_lost_total{target=\"b\"} 7\n"
        ));
        assert_eq!(
            text.matches("# TYPE migwatch_lost_total counter").count(),
            1
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn send_and_icmp_errors_are_labelled_by_cause() {
        let m = Metrics::default();
        let t = TargetMetrics::default();
        t.send_error(&std::io::Error::from_raw_os_error(libc::ENOBUFS));
        t.send_error(&std::io::Error::from_raw_os_error(libc::ENOBUFS));
        t.send_error(&std::io::Error::from_raw_os_error(libc::EINVAL));
        t.icmp_errors[icmp_error_index(3)].fetch_add(1, Ordering::Relaxed);
        assert_eq!(t.send_errors_total(), 3);
        let text = m.render("0.1.0", &[("a".into(), &t)]);
        assert!(
            text.contains("migwatch_probe_send_errors_total{target=\"a\",errno=\"ENOBUFS\"} 2\n")
        );
        assert!(text.contains("migwatch_probe_send_errors_total{target=\"a\",errno=\"other\"} 1\n"));
        assert!(
            text.contains("migwatch_probe_send_errors_total{target=\"a\",errno=\"EAGAIN\"} 0\n")
        );
        assert!(
            text.contains("migwatch_icmp_errors_total{target=\"a\",type=\"dest_unreachable\"} 1\n")
        );
        assert_eq!(
            text.matches("# TYPE migwatch_icmp_errors_total counter")
                .count(),
            1
        );
    }
}
