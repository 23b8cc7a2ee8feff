//! `mw-soak`: the sidecar at 1 kHz for N minutes under a steady load of
//! clients, with a figure row every minute (see `scripts/soak.sh`, which
//! builds and runs it under the range guard, and docs/RELIABILITY.md).
//!
//! Load: 10 clients that read everything; one client that reconnects with
//! `Last-Event-ID` every 10 s; every minute, a client that connects and
//! never reads (it must be cut off with `overflow`, costing the others
//! nothing). The target is a namespace host answered by its own kernel: a
//! quiet path, so any lost probe is the sidecar's fault.
//!
//! Checks at the end (exit 1 if any fails): the reconnecting client lost
//! and repeated no id; no reading client saw a hole; no probe was lost;
//! RSS, and its anonymous part on its own, stayed flat after the warm-up.
//! Each minute's row also gives the file-backed part of RSS, the major
//! faults (file pages read back from disk) and the machine's load, so a
//! step in RSS can be told apart: the heap, or code pages the kernel
//! dropped and read back.

use anyhow::{bail, Context, Result};
use migwatch_shared::wire::Event;
use migwatch_tests::netns::TargetNs;
use migwatch_tests::sidecar::{parse_sse, Sidecar};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: mw-soak [--minutes N] [--history DURATION] [--out FILE]";
/// Reading clients, as the issue asks.
const READERS: usize = 10;
/// How often the resuming client reconnects.
const RECONNECT_EVERY: Duration = Duration::from_secs(10);
/// Longest a stalled client is kept if the sidecar does not cut it off.
const STALL_MAX: Duration = Duration::from_secs(45);
/// Minutes of warm-up before RSS must stay flat (long runs).
const WARMUP_MIN: usize = 5;
/// RSS, and its anonymous part, may grow this much after the warm-up
/// (long runs), KiB.
const RSS_GROWTH_KB: i64 = 1024;
/// RSS may grow this much from minute 1 to the end of a short run, KiB.
/// Looser than [`RSS_GROWTH_KB`] per minute watched, because one minute of
/// warm-up is too short for every allocator arena (glibc keeps one per
/// thread that allocates: tokio workers, client tasks, the pump) and each
/// stalled client's queue high-water mark (128 KiB of chunks plus socket
/// buffers, freed but kept in the heap) to settle; measured: +192 KiB from
/// minute 1 to 3 (docs/RELIABILITY.md). A leak of 1 MiB an hour would
/// still pass this; the 1 h run is the one that finds it.
const RSS_GROWTH_SHORT_KB: i64 = 2 * 1024;

struct Opts {
    minutes: usize,
    history: Option<String>,
    out: Option<std::path::PathBuf>,
}

fn opts() -> Result<Opts> {
    let mut o = Opts {
        minutes: 60,
        history: None,
        out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .with_context(|| format!("{a} needs a value; {USAGE}"))
        };
        match a.as_str() {
            "--minutes" => {
                let v = val()?;
                o.minutes = v
                    .parse()
                    .ok()
                    .filter(|m| *m >= 2)
                    .with_context(|| format!("--minutes {v:?}: a whole number ≥ 2"))?;
            }
            "--history" => o.history = Some(val()?),
            "--out" => o.out = Some(val()?.into()),
            _ => bail!("unknown argument {a:?}; {USAGE}"),
        }
    }
    Ok(o)
}

/// What a client saw; shared with the sampler.
#[derive(Default)]
struct Seen {
    events: AtomicU64,
    /// Ids missing between two events (or a `gap` event's count).
    lost_ids: AtomicU64,
    /// Ids seen again or out of order.
    repeated_ids: AtomicU64,
    /// `overflow` events, undecodable events, or a stream that ended.
    faults: AtomicU64,
    reconnects: AtomicU64,
}

impl Seen {
    /// Accounts for event `id` after `last`.
    fn id(&self, last: &mut Option<u64>, id: u64) {
        if let Some(l) = *last {
            if id <= l {
                self.repeated_ids.fetch_add(1, Ordering::Relaxed);
                return;
            }
            self.lost_ids.fetch_add(id - l - 1, Ordering::Relaxed);
        }
        *last = Some(id);
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    fn event(&self, ev: &Event) {
        match ev {
            Event::Gap(g) => {
                self.lost_ids.fetch_add(g.missing, Ordering::Relaxed);
            }
            Event::Overflow(_) => {
                self.faults.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// A client that reads everything until `stop`.
fn reader(base: String, seen: Arc<Seen>, stop: Arc<AtomicBool>) -> Result<()> {
    let resp = ureq::get(&format!("{base}/events")).call()?;
    let mut last = None;
    parse_sse(resp.into_reader(), |r| {
        match r {
            Ok(r) => {
                seen.id(&mut last, r.id);
                seen.event(&r.event);
            }
            Err(_) => {
                seen.faults.fetch_add(1, Ordering::Relaxed);
            }
        }
        !stop.load(Ordering::Relaxed)
    });
    if !stop.load(Ordering::Relaxed) {
        seen.faults.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// A client that drops its connection every [`RECONNECT_EVERY`] and
/// resumes with `Last-Event-ID`, as a browser does.
fn resumer(base: String, seen: Arc<Seen>, stop: Arc<AtomicBool>) -> Result<()> {
    let mut last: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut req = ureq::get(&format!("{base}/events"));
        if let Some(l) = last {
            req = req.set("Last-Event-ID", &l.to_string());
        }
        let resp = req.call()?;
        let t = Instant::now();
        parse_sse(resp.into_reader(), |r| {
            match r {
                Ok(r) => {
                    seen.id(&mut last, r.id);
                    seen.event(&r.event);
                }
                Err(_) => {
                    seen.faults.fetch_add(1, Ordering::Relaxed);
                }
            }
            t.elapsed() < RECONNECT_EVERY && !stop.load(Ordering::Relaxed)
        });
        seen.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// A client that asks for the stream and never reads it. Returns how long
/// the sidecar took to cut it off (`None`: not within [`STALL_MAX`]).
fn stall(base: &str, sc: &Sidecar) -> Result<Option<Duration>> {
    let addr: std::net::SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .with_context(|| format!("odd base URL {base}"))?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    // A small window, so the sidecar's side fills soon.
    sock.set_recv_buffer_size(4096)?;
    sock.connect(&addr.into())?;
    let mut s: std::net::TcpStream = sock.into();
    let before = counter(&scrape(sc)?, "migwatch_overflow_disconnects_total");
    // The sidecar answers only its own names (DNS-rebinding guard): ask
    // by its address.
    s.write_all(format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let t = Instant::now();
    while t.elapsed() < STALL_MAX {
        std::thread::sleep(Duration::from_millis(200));
        if counter(&scrape(sc)?, "migwatch_overflow_disconnects_total") > before {
            return Ok(Some(t.elapsed()));
        }
    }
    Ok(None)
}

/// One `/metrics` scrape: series name (labels dropped) → summed value,
/// and the send-lateness histogram as (upper bound in s, cumulative count).
struct Scrape {
    values: BTreeMap<String, f64>,
    lateness: Vec<(f64, f64)>,
}

fn scrape(sc: &Sidecar) -> Result<Scrape> {
    let text = sc.get("/metrics")?;
    let mut values = BTreeMap::new();
    let mut lateness = Vec::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, v)) = l.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = v.parse::<f64>() else { continue };
        let name = series.split('{').next().unwrap_or(series);
        if name == "migwatch_send_lateness_seconds_bucket" {
            let le = series
                .split("le=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .context("a bucket without le")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()?
            };
            lateness.push((le, v));
        }
        *values.entry(name.to_string()).or_insert(0.0) += v;
    }
    Ok(Scrape { values, lateness })
}

fn counter(s: &Scrape, name: &str) -> f64 {
    s.values.get(name).copied().unwrap_or(0.0)
}

/// The `q` quantile of the lateness between two scrapes, as the upper
/// bound of its bucket (seconds).
fn lateness_q(a: &Scrape, b: &Scrape, q: f64) -> f64 {
    let n = |s: &Scrape, i: usize| s.lateness.get(i).map_or(0.0, |x| x.1);
    let total = n(b, b.lateness.len().saturating_sub(1)) - n(a, a.lateness.len().saturating_sub(1));
    if total <= 0.0 {
        return 0.0;
    }
    for (i, (le, cum)) in b.lateness.iter().enumerate() {
        if cum - n(a, i) >= q * total {
            return *le;
        }
    }
    f64::INFINITY
}

/// What a process uses, read from `/proc`.
#[derive(Clone, Copy)]
struct Usage {
    /// Resident set, KiB.
    rss_kb: i64,
    /// Its anonymous part (heap, malloc arenas, stacks, the ring), KiB.
    /// The rest is file pages (the binary's code, libraries): bounded by
    /// the files' sizes, and the kernel may drop them under memory
    /// pressure and read them back later (a major fault each).
    anon_kb: i64,
    /// CPU time used, seconds.
    cpu_s: f64,
    /// Major page faults so far: pages read back from disk.
    majflt: u64,
}

/// Reads `pid`'s [`Usage`]. Memory from `smaps_rollup`, which walks every
/// mapping: exact, where `/proc/PID/status`'s counters may lag.
fn proc_usage(pid: u32) -> Result<Usage> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let rollup = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kb = |key: &str| -> Result<i64> {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no {key} in {path}"))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("odd stat")?.1;
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // Fields after the name start at field 3: majflt is field 12, utime
    // and stime are 14 and 15, in USER_HZ (100 on Linux).
    let field = |n: usize| f.get(n - 3).copied().unwrap_or(0.0);
    Ok(Usage {
        rss_kb: kb("Rss:")?,
        anon_kb: kb("Anonymous:")?,
        cpu_s: (field(14) + field(15)) / 100.0,
        majflt: field(12) as u64,
    })
}

/// The machine's 1-minute load average: the soak shares its cores, and a
/// lateness figure means little without it.
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// One minute's figures.
struct Row {
    minute: usize,
    rss_kb: i64,
    anon_kb: i64,
    majflt: u64,
    cpu_pct: f64,
    load: f64,
    p50_ms: f64,
    p99_ms: f64,
    sent: f64,
    lost: f64,
    skipped: f64,
    reader_events: u64,
    stall_cutoff_s: Option<f64>,
}

fn main() -> Result<()> {
    let o = opts()?;
    if !migwatch_tests::have_root() {
        bail!("mw-soak needs root (a network namespace, raw ICMP)");
    }
    // The resume ring fills for `history` at 24 B an event (14 MB for the
    // default 10 min at 1 kHz): bounded, but growth. Keep it shorter than
    // the warm-up, so RSS is flat when it is measured.
    let history = o.history.clone().unwrap_or_else(|| {
        if o.minutes > WARMUP_MIN {
            "4m".into()
        } else {
            "30s".into()
        }
    });
    let ns = TargetNs::create()?;
    let sc = Sidecar::start(
        &ns.target.to_string(),
        &[
            "--interval",
            "1ms",
            "--timeout",
            "500ms",
            "--history",
            &history,
        ],
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<Arc<Seen>> = (0..READERS).map(|_| Arc::default()).collect();
    let resumed = Arc::new(Seen::default());
    let mut threads = Vec::new();
    for seen in &readers {
        let (b, s, st) = (sc.base.clone(), seen.clone(), stop.clone());
        threads.push(std::thread::spawn(move || reader(b, s, st)));
    }
    {
        let (b, s, st) = (sc.base.clone(), resumed.clone(), stop.clone());
        threads.push(std::thread::spawn(move || resumer(b, s, st)));
    }
    let mut out: Box<dyn Write> = match &o.out {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        ),
        None => Box::new(std::io::sink()),
    };
    let header = "| minute | RSS KiB | anon KiB | file KiB | major faults | CPU % | load | lateness p50 ms | p99 ms | probes sent | lost | skipped | reader events | stalled client cut off after s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";
    println!("{header}");
    writeln!(out, "{header}")?;

    let t0 = Instant::now();
    let first = scrape(&sc)?;
    let (mut prev, mut prev_use) = (scrape(&sc)?, proc_usage(sc.pid())?);
    let mut rows: Vec<Row> = Vec::new();
    for minute in 1..=o.minutes {
        // The stalled client comes 5 s into the minute and is gone well
        // before its end, so every RSS reading is taken without one.
        let minute_end = t0 + Duration::from_secs(60 * minute as u64);
        std::thread::sleep(Duration::from_secs(5));
        let cut = stall(&sc.base, &sc)?;
        std::thread::sleep(minute_end.saturating_duration_since(Instant::now()));
        let now = scrape(&sc)?;
        let used = proc_usage(sc.pid())?;
        let row = Row {
            minute,
            rss_kb: used.rss_kb,
            anon_kb: used.anon_kb,
            majflt: used.majflt - prev_use.majflt,
            cpu_pct: (used.cpu_s - prev_use.cpu_s) / 60.0 * 100.0,
            load: load1(),
            p50_ms: lateness_q(&prev, &now, 0.5) * 1e3,
            p99_ms: lateness_q(&prev, &now, 0.99) * 1e3,
            sent: counter(&now, "migwatch_probes_sent_total")
                - counter(&prev, "migwatch_probes_sent_total"),
            lost: counter(&now, "migwatch_lost_total") - counter(&prev, "migwatch_lost_total"),
            skipped: counter(&now, "migwatch_skipped_total")
                - counter(&prev, "migwatch_skipped_total"),
            reader_events: readers
                .iter()
                .map(|r| r.events.load(Ordering::Relaxed))
                .sum(),
            stall_cutoff_s: cut.map(|d| d.as_secs_f64()),
        };
        let line = format!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
            row.minute,
            row.rss_kb,
            row.anon_kb,
            row.rss_kb - row.anon_kb,
            row.majflt,
            row.cpu_pct,
            row.load,
            row.p50_ms,
            row.p99_ms,
            row.sent,
            row.lost,
            row.skipped,
            row.reader_events,
            row.stall_cutoff_s
                .map_or("not cut off".into(), |s| format!("{s:.1}")),
        );
        println!("{line}");
        writeln!(out, "{line}")?;
        rows.push(row);
        (prev, prev_use) = (now, used);
    }
    stop.store(true, Ordering::Relaxed);
    let last = scrape(&sc)?;
    drop(sc);
    for t in threads {
        let _ = t.join();
    }
    drop(ns);

    let mut fails = Vec::new();
    let sum = |f: fn(&Seen) -> &AtomicU64| {
        readers
            .iter()
            .map(|r| f(r).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let (r_lost, r_rep, r_faults) = (
        sum(|s| &s.lost_ids),
        sum(|s| &s.repeated_ids),
        sum(|s| &s.faults),
    );
    let (lost_ids, repeated, reconnects) = (
        resumed.lost_ids.load(Ordering::Relaxed),
        resumed.repeated_ids.load(Ordering::Relaxed),
        resumed.reconnects.load(Ordering::Relaxed),
    );
    let probe_loss = counter(&last, "migwatch_lost_total") - counter(&first, "migwatch_lost_total");
    let send_errors = counter(&last, "migwatch_probe_send_errors_total");
    if lost_ids + repeated > 0 || resumed.faults.load(Ordering::Relaxed) > 0 {
        fails.push(format!(
            "the resuming client lost {lost_ids} ids and saw {repeated} again"
        ));
    }
    if reconnects < (o.minutes as u64 * 60 / RECONNECT_EVERY.as_secs()).saturating_sub(1) {
        fails.push(format!(
            "the resuming client reconnected only {reconnects} times"
        ));
    }
    if r_lost + r_rep + r_faults > 0 {
        fails.push(format!(
            "reading clients: {r_lost} ids lost, {r_rep} repeated, {r_faults} faults"
        ));
    }
    if probe_loss > 0.0 || send_errors > 0.0 {
        fails.push(format!(
            "{probe_loss} probes lost, {send_errors} send errors on the quiet path"
        ));
    }
    let (from, bound) = if o.minutes > WARMUP_MIN {
        (WARMUP_MIN, RSS_GROWTH_KB)
    } else {
        (1, RSS_GROWTH_SHORT_KB)
    };
    let base_rss = rows[from - 1].rss_kb;
    let peak = rows[from - 1..]
        .iter()
        .map(|r| r.rss_kb)
        .max()
        .unwrap_or(base_rss);
    if peak - base_rss > bound {
        fails.push(format!(
            "RSS grew {} KiB after minute {from} (bound {bound} KiB)",
            peak - base_rss
        ));
    }
    let anon_growth = rows[from - 1..]
        .iter()
        .map(|r| r.anon_kb)
        .max()
        .unwrap_or(0)
        - rows[from - 1].anon_kb;
    // The anonymous part on its own too: file pages the kernel dropped
    // under memory pressure before the base minute and read back after it
    // look like growth in RSS, and pages dropped after it can hide a leak
    // there; the heap cannot.
    if anon_growth > bound {
        fails.push(format!(
            "anonymous memory grew {anon_growth} KiB after minute {from} (bound {bound} KiB)"
        ));
    }
    let majflt: u64 = rows[from - 1..].iter().map(|r| r.majflt).sum();
    let stalls_cut = rows.iter().filter(|r| r.stall_cutoff_s.is_some()).count();
    if stalls_cut < rows.len() {
        fails.push(format!(
            "only {stalls_cut} of {} stalled clients were cut off",
            rows.len()
        ));
    }
    let summary = format!(
        "\nsoak {} min at 1 kHz: resuming client {reconnects} reconnects, {lost_ids} ids lost, {repeated} repeated; \
         {READERS} readers {r_lost} ids lost; probes lost {probe_loss}, send errors {send_errors}; \
         RSS minute {from} {base_rss} KiB, peak after {peak} KiB (+{} KiB, bound {bound}; anonymous +{anon_growth} KiB; \
         {majflt} major faults after minute {from}); \
         lateness p99 first {} ms, last {} ms; stalled clients cut off {stalls_cut}/{}",
        o.minutes,
        peak - base_rss,
        rows[0].p99_ms,
        rows[rows.len() - 1].p99_ms,
        rows.len()
    );
    println!("{summary}");
    writeln!(out, "{summary}")?;
    if !fails.is_empty() {
        for f in &fails {
            eprintln!("FAIL: {f}");
        }
        std::process::exit(1);
    }
    println!("soak: all checks passed");
    Ok(())
}
