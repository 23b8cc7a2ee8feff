//! Section `fanout`: 100 reading SSE clients and 100 stalled ones against
//! one sidecar at 1 kHz: the prober's lateness, CPU and memory.

use crate::metrics::{named, thread_deltas, Lateness, Snapshot, ThreadDelta};
use crate::{CLIENTS, ON_TIME_US, PROBE_THREAD};
use anyhow::{Context, Result};
use migwatch_tests::benchlib::stats::{mb, us, yes};
use migwatch_tests::benchlib::Report;
use migwatch_tests::netns::TargetNs;
use migwatch_tests::procstat;
use migwatch_tests::sidecar::Sidecar;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `http://127.0.0.1:PORT` → the socket address.
fn addr_of(base: &str) -> Result<SocketAddr> {
    base.trim_start_matches("http://")
        .parse()
        .with_context(|| format!("cannot parse {base}"))
}

const GET_EVENTS: &[u8] =
    b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n";

/// Light SSE clients: one small thread each that only counts bytes.
struct Readers {
    stop: Arc<AtomicBool>,
    bytes: Vec<Arc<AtomicU64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Readers {
    fn start(addr: SocketAddr, n: usize) -> Result<Readers> {
        let mut rd = Readers {
            stop: Arc::new(AtomicBool::new(false)),
            bytes: Vec::new(),
            threads: Vec::new(),
        };
        for _ in 0..n {
            let mut s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            s.write_all(GET_EVENTS)?;
            let (stop, count) = (rd.stop.clone(), Arc::new(AtomicU64::new(0)));
            rd.bytes.push(count.clone());
            rd.threads
                .push(
                    std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || {
                            let mut buf = [0u8; 8192];
                            while !stop.load(Ordering::Relaxed) {
                                match s.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => {
                                        count.fetch_add(n as u64, Ordering::Relaxed);
                                    }
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            std::io::ErrorKind::WouldBlock
                                                | std::io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => return,
                                }
                            }
                        })?,
                );
        }
        Ok(rd)
    }

    fn counts(&self) -> Vec<u64> {
        self.bytes
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Clients that send the request and never read, with a small receive
/// buffer so they stall quickly.
fn stalled_clients(addr: SocketAddr, n: usize) -> Result<Vec<TcpStream>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut v = Vec::new();
    for _ in 0..n {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_recv_buffer_size(4096)?;
        s.connect(&addr.into())?;
        let mut s: TcpStream = s.into();
        s.write_all(GET_EVENTS)?;
        v.push(s);
    }
    Ok(v)
}

fn wait_metric(sc: &Sidecar, name: &str, want: impl Fn(u64) -> bool, t: Duration) -> Result<u64> {
    migwatch_tests::wait_for(name, t, Duration::from_millis(100), || {
        Snapshot::take(sc)
            .ok()
            .map(|m| m.get(name))
            .filter(|v| want(*v))
    })
}

/// One fan-out window: lateness, CPU, the probe thread, loss, overflows.
struct FanWindow {
    late: Lateness,
    cpu: f64,
    sched: ThreadDelta,
    /// The HTTP side (tokio workers), share of a core.
    http_cpu: f64,
    sent: u64,
    lost: u64,
    overflows: u64,
}

fn fan_window(sc: &Sidecar, window: Duration) -> Result<FanWindow> {
    let pid = sc.pid();
    let (c0, t0, m0) = (
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
        Snapshot::take(sc)?,
    );
    let t = Instant::now();
    std::thread::sleep(window);
    let (c1, t1, m1) = (
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
        Snapshot::take(sc)?,
    );
    let d = thread_deltas(&t0, &t1);
    let secs = t.elapsed().as_secs_f64();
    Ok(FanWindow {
        late: Lateness::between(&m0, &m1),
        cpu: c1.run_since(&c0).as_secs_f64() / secs,
        sched: named(&d, PROBE_THREAD),
        http_cpu: named(&d, "tokio-rt-worker").run_ns as f64 / 1e9 / secs,
        sent: m1.get("probes_sent_total") - m0.get("probes_sent_total"),
        lost: m1.get("lost_total") - m0.get("lost_total"),
        overflows: m1.get("overflow_disconnects_total") - m0.get("overflow_disconnects_total"),
    })
}

pub(crate) fn bench_fanout(ns: &TargetNs, r: &mut Report) -> Result<()> {
    const WINDOW: Duration = Duration::from_secs(5);
    r.line(format!(
        "### Fan-out (one sidecar at 1 kHz, per-client queue capped at 128 KiB; {} s windows)\n",
        WINDOW.as_secs()
    ));
    let sc = Sidecar::start(&ns.target.to_string(), &["--interval", "1ms"])?;
    let pid = sc.pid();
    let addr = addr_of(&sc.base)?;
    std::thread::sleep(Duration::from_secs(1));
    let row = |name: &str, w: &FanWindow, rss: u64, extra: String| {
        vec![
            name.to_string(),
            format!("{:.1} %", w.late.frac_le(25.0) * 100.0),
            format!("{:.2} %", w.late.frac_le(ON_TIME_US) * 100.0),
            w.late.p99_text(),
            us(w.late.mean_us),
            us(w.sched.wait_ns as f64 / w.sched.slices.max(1) as f64 / 1e3),
            format!("{:.1} % ({:.1} %)", w.cpu * 100.0, w.http_cpu * 100.0),
            format!("{}/{}", w.lost, w.sent),
            w.overflows.to_string(),
            mb(rss),
            extra,
        ]
    };
    let mut rows = Vec::new();
    let base = fan_window(&sc, WINDOW)?;
    rows.push(row(
        "0 clients",
        &base,
        procstat::rss_kb(pid)?,
        String::new(),
    ));

    let readers = Readers::start(addr, CLIENTS)?;
    wait_metric(
        &sc,
        "clients",
        |v| v >= CLIENTS as u64,
        Duration::from_secs(10),
    )?;
    let b0 = readers.counts();
    let me0 = procstat::cpu(std::process::id())?;
    let with = fan_window(&sc, WINDOW)?;
    let me = procstat::cpu(std::process::id())?.run_since(&me0);
    let b1 = readers.counts();
    let per: Vec<f64> = b0
        .iter()
        .zip(&b1)
        .map(|(a, b)| (b - a) as f64 / WINDOW.as_secs_f64() / 1e3)
        .collect();
    let (lo, hi) = per
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
    rows.push(row(
        &format!("{CLIENTS} reading clients"),
        &with,
        procstat::rss_kb(pid)?,
        format!(
            "each client received {lo:.0}–{hi:.0} kB/s; the bench's reader threads used {:.1} % of a core",
            me.as_secs_f64() / WINDOW.as_secs_f64() * 100.0
        ),
    ));
    drop(readers);
    wait_metric(&sc, "clients", |v| v == 0, Duration::from_secs(10))?;
    // The baseline again, so the machine's own drift during the test shows
    // (the clients' effect is judged against the mean of the two).
    let base2 = fan_window(&sc, WINDOW)?;
    rows.push(row(
        "0 clients again",
        &base2,
        procstat::rss_kb(pid)?,
        String::new(),
    ));

    let rss_before = procstat::rss_kb(pid)?;
    let ovf_before = Snapshot::take(&sc)?.get("overflow_disconnects_total");
    let stalled = stalled_clients(addr, CLIENTS)?;
    let (m0, c0, th0) = (
        Snapshot::take(&sc)?,
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
    );
    let t = Instant::now();
    let mut peak = rss_before;
    let mut trace = Vec::new();
    let mut cut_off_after = None;
    // Until every stalled client is cut off, or 40 s.
    while t.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_secs(2));
        let rss = procstat::rss_kb(pid)?;
        peak = peak.max(rss);
        let ovf = Snapshot::take(&sc)?.get("overflow_disconnects_total") - ovf_before;
        trace.push(format!(
            "{:.0} s: {}, {ovf} cut off",
            t.elapsed().as_secs_f64(),
            mb(rss)
        ));
        if ovf >= CLIENTS as u64 {
            cut_off_after = Some(t.elapsed());
            break;
        }
    }
    let (m1, c1, th1) = (
        Snapshot::take(&sc)?,
        procstat::cpu(pid)?,
        procstat::threads(pid)?,
    );
    let d = thread_deltas(&th0, &th1);
    let secs = t.elapsed().as_secs_f64();
    let stalled_w = FanWindow {
        late: Lateness::between(&m0, &m1),
        cpu: c1.run_since(&c0).as_secs_f64() / secs,
        sched: named(&d, PROBE_THREAD),
        http_cpu: named(&d, "tokio-rt-worker").run_ns as f64 / 1e9 / secs,
        sent: m1.get("probes_sent_total") - m0.get("probes_sent_total"),
        lost: m1.get("lost_total") - m0.get("lost_total"),
        overflows: m1.get("overflow_disconnects_total") - ovf_before,
    };
    let rss_cut = procstat::rss_kb(pid)?;
    std::thread::sleep(Duration::from_secs(2));
    let rss_cut_later = procstat::rss_kb(pid)?;
    drop(stalled);
    std::thread::sleep(Duration::from_secs(3));
    let rss_after = procstat::rss_kb(pid)?;
    let per_client = (peak.saturating_sub(rss_before)) as f64 / CLIENTS as f64 / 1024.0;
    rows.push(row(
        &format!("{CLIENTS} stalled clients"),
        &stalled_w,
        rss_cut,
        format!(
            "cut off after {}",
            cut_off_after.map_or("> 40 s".into(), |d| format!("{:.0} s", d.as_secs_f64()))
        ),
    ));
    r.table(
        &[
            "clients",
            "sends ≤ 25 µs late",
            "≤ 100 µs",
            "p99 (histogram)",
            "mean lateness",
            "`probe` thread runqueue wait per wakeup",
            "sidecar CPU (of it HTTP workers)",
            "lost/sent",
            "overflows",
            "RSS",
            "notes",
        ],
        &rows,
    );
    r.line(format!(
        "Stalled clients (4 KB receive buffer, never read), RSS over time: {}. RSS: {} before → peak {} (≈ {per_client:.2} MB per stalled client) → {} 2 s after all were cut off → {} 3 s after they closed.\n",
        trace.join("; "),
        mb(rss_before),
        mb(peak),
        mb(rss_cut_later),
        mb(rss_after)
    ));
    let base_share = (base.late.frac_le(ON_TIME_US) + base2.late.frac_le(ON_TIME_US)) / 2.0;
    let base_mean = (base.late.mean_us + base2.late.mean_us) / 2.0;
    let unchanged = with.late.frac_le(ON_TIME_US) >= base_share - 0.005
        && with.late.mean_us <= base_mean + 10.0;
    r.line(format!(
        "* Zero overflows with {CLIENTS} reading clients: **{}** ({}).\n* Send lateness unchanged with {CLIENTS} reading clients (share ≤ 100 µs within 0.5 points of the two 0-client windows' mean, mean lateness within 10 µs of theirs): **{}** ({:.2} % and {:.2} % → {:.2} %, mean {} and {} → {}).\n* {CLIENTS} stalled clients all cut off and RSS bounded (peak within 32 MB of the start): **{}** ({}/{CLIENTS} cut off, peak {} vs {} before).\n",
        yes(with.overflows == 0),
        with.overflows,
        yes(unchanged),
        base.late.frac_le(ON_TIME_US) * 100.0,
        base2.late.frac_le(ON_TIME_US) * 100.0,
        with.late.frac_le(ON_TIME_US) * 100.0,
        us(base.late.mean_us),
        us(base2.late.mean_us),
        us(with.late.mean_us),
        yes(stalled_w.overflows >= CLIENTS as u64 && peak <= rss_before + 32 * 1024),
        stalled_w.overflows,
        mb(peak),
        mb(rss_before)
    ));
    Ok(())
}
