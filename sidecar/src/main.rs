//! `migwatch-sidecar`: probes one target with ICMP echo (pnet, raw socket)
//! and serves every sample as Server-Sent Events, plus the page itself.
//!
//! Start-up order matters: open the raw socket and bind the port while
//! privileged, drop privileges, and only then start threads and serve.
#![deny(unsafe_code)]

use migwatch_sidecar::{capture, cli, detect, http, metrics, privilege, probe, stream, sys};

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::ProbePriority;
use migwatch_shared::wire::{Event, Info};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Nice value of the HTTP side (the main thread and tokio's workers); the
/// prober keeps the default 0.
const HTTP_NICE: i32 = 10;

/// Nice value of the hub's pump, which renders the prober's batches.
const PUMP_NICE: i32 = 5;
/// The prober's nice value with `--probe-priority high`.
const PROBE_NICE: i32 = -10;

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
            eprintln!(
                "migwatch-sidecar: warning: the prober runs at normal priority (--probe-priority \
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

/// Kernel send buffer per client connection (the kernel doubles it).
const SEND_BUFFER: usize = 128 * 1024;

fn main() {
    let argv = match cli::expand_config(
        std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    ) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("migwatch-sidecar: error: {e}");
            std::process::exit(2);
        }
    };
    let cli = cli::Cli::parse_from(argv);
    let result = match cli.command {
        Some(cli::Command::Detect(a)) => detect::run_detect(a),
        Some(cli::Command::Eval(a)) => detect::run_eval(a),
        Some(cli::Command::Synth(a)) => detect::run_synth(a),
        None => run(cli.serve),
    };
    if let Err(e) = result {
        eprintln!("migwatch-sidecar: error: {e:#}");
        std::process::exit(1);
    }
}

fn read_token(args: &cli::Args) -> Result<Option<Arc<str>>> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --token-file {}", path.display()))?;
            Some(text.lines().next().unwrap_or("").trim().to_string())
        }
        (None, None) => None,
    };
    match token {
        Some(t) if t.is_empty() => {
            bail!("the token is empty: give a non-empty --token or --token-file")
        }
        t => Ok(t.map(Arc::from)),
    }
}

fn run(args: cli::Args) -> Result<()> {
    args.validate().map_err(anyhow::Error::msg)?;
    let target = args
        .target
        .context("--target ADDR is required: the address of the VM to watch")?;
    let token = read_token(&args)?;

    // 1. Privileged steps: the raw socket and the listening port.
    let socket = probe::Socket::open()?;
    let rcvbuf = socket.rcvbuf;
    let capture = match &args.capture_iface {
        Some(name) => Some(capture::open(name)?),
        None => None,
    };
    let listener = std::net::TcpListener::bind(args.listen).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "{} is already in use (another sidecar?): pick a free port with --listen 127.0.0.1:PORT",
            args.listen
        ),
        _ => anyhow::anyhow!("cannot listen on {}: {e}", args.listen),
    })?;
    listener.set_nonblocking(true)?;
    // Accepted connections inherit this fixed send buffer: it bounds the
    // kernel memory a client that stops reading can pin (autotuning would
    // grow it to megabytes) and lets the per-client queue notice the stall.
    socket2::SockRef::from(&listener).set_send_buffer_size(SEND_BUFFER)?;
    let local = listener.local_addr()?;

    // The page is served from inside its folder: the process moves there
    // while it may still read anything, so after the drop `nobody` needs
    // access to that folder only, not to every folder above it (a clone
    // under a private home or a 0700 temporary folder).
    let web_root = if args.web_root.join("index.html").is_file() {
        std::env::set_current_dir(&args.web_root)
            .with_context(|| format!("cannot enter --web-root {}", args.web_root.display()))?;
        Some(std::path::PathBuf::from("."))
    } else {
        eprintln!(
            "migwatch-sidecar: warning: no page at {} (index.html missing); serving the API only. \
             Build the page with scripts/run.sh or pass --web-root DIR.",
            args.web_root.display()
        );
        None
    };

    // The prober inherits this thread's scheduling, and raising it needs a
    // privilege that is about to go: raise it now (the threads spawned
    // after the prober drop back, which needs none). The prober sleeps
    // between probes, so even as a real-time thread it takes little; the
    // kernel's real-time throttling bounds it anyway.
    let probe_priority = raise_for_prober(args.probe_priority);

    // 2. Give up root and every capability before anything else runs.
    let dropped = privilege::drop_privileges(&args.user)?;
    let caps = privilege::effective_capabilities()?;
    if caps != 0 {
        bail!("capabilities {caps:#x} are still in effect after the privilege drop; refusing to serve");
    }

    let keys = probe::RunKeys::random().context("no randomness for the run keys")?;
    let run_id = format!(
        "{:016x}",
        getrandom::u64().context("no randomness for the run id")?
    );
    let info = Arc::new(Info {
        target: target.to_string(),
        interval_ms: args.interval.as_secs_f64() * 1e3,
        timeout_ms: args.timeout.as_secs_f64() * 1e3,
        version: env!("CARGO_PKG_VERSION").to_string(),
        run_id,
        clock_interval_ms: args.clock_interval.0.map(|d| d.as_secs_f64() * 1e3),
        capture_iface: args.capture_iface.clone(),
        name: target.to_string(),
        labels: Default::default(),
    });
    let metrics = Arc::new(metrics::Metrics::default());
    let mut hub_cfg = stream::HubConfig::for_interval(args.interval);
    hub_cfg.capacity = ((args.history.as_secs_f64() / args.interval.as_secs_f64()) as usize)
        .clamp(1000, 20_000_000);
    hub_cfg.client_queue = args.client_queue as usize;
    let hub = stream::Hub::new(hub_cfg);

    // 3. The prober and the thread that moves its batches into the hub
    //    (rendering each event's SSE text once there, for every client).
    let stop = Arc::new(AtomicBool::new(false));
    // Up to 256 batches (about 2.5 s of events) wait for the pump.
    let (feed, pump) = stream::feed(hub.clone(), 256);
    let prober = probe::start(
        socket,
        probe::ProbeConfig {
            target,
            interval: args.interval,
            timeout: args.timeout,
            clock_interval: args.clock_interval.0,
        },
        keys,
        feed,
        metrics.clone(),
        stop.clone(),
    )?;
    if let Err(e) = lower_after_prober(probe_priority) {
        bail!("cannot give up the prober's priority for the other threads: {e}");
    }
    let capture_thread = match capture {
        Some(c) => {
            // Announces are rare: one at a time, straight into the hub.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Event>(1024);
            let hub = hub.clone();
            std::thread::Builder::new()
                .name("capture-pump".into())
                .spawn(move || {
                    for ev in rx {
                        hub.push(ev);
                    }
                })?;
            Some(capture::start(c, target, tx, stop.clone())?)
        }
        None => None,
    };
    let pump = std::thread::Builder::new()
        .name("hub-pump".into())
        .spawn(move || {
            // Below the prober, so waking this thread never preempts it
            // (the channel holds seconds of batches).
            let _ = sys::set_thread_nice(PUMP_NICE);
            // Ends when the prober drops its feed.
            pump.run();
        })?;

    // 4. Serve until SIGINT/SIGTERM. Serving yields to probing: this
    //    thread and the runtime's workers (which inherit its nice value)
    //    run at nice 10, so a burst of client writes never holds the CPU
    //    when the prober wakes to send. Raising one's own nice value needs
    //    no privilege; if it fails anyway, serving just competes evenly.
    if let Err(e) = sys::set_thread_nice(HTTP_NICE) {
        eprintln!("migwatch-sidecar: warning: cannot lower the HTTP threads' priority: {e}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let shutdown_watch = shutdown_rx.clone();
    let state = http::AppState {
        hub,
        metrics,
        info: info.clone(),
        shutdown: shutdown_rx,
        web_root,
        token,
    };
    let mut origins = args.allow_origin.clone();
    origins.push(format!("http://{local}"));
    if local.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", local.port()));
    }
    let routes = http::routes(state, &origins);

    eprintln!(
        "migwatch-sidecar {}: probing {} every {:?} (timeout {:?}, receive buffer {} KiB, {} priority), running as uid {} with no capabilities{}",
        info.version,
        info.target,
        args.interval,
        args.timeout,
        rcvbuf / 1024,
        probe_priority.name(),
        dropped.uid,
        if dropped.switched_user {
            format!(" ({})", args.user)
        } else {
            String::new()
        }
    );
    println!("migwatch: open http://{local}/");

    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let signal = async move {
            wait_for_signal().await;
            eprintln!("migwatch-sidecar: shutting down");
            // Ends every SSE stream, which lets the graceful shutdown finish.
            shutdown_tx.send_replace(true);
        };
        let mut stopping = shutdown_watch;
        let server = warp::serve(routes)
            .incoming(listener)
            .graceful(signal)
            .run();
        // Graceful shutdown waits for every connection to finish; a client
        // that stopped reading never does, so give up on it after a moment.
        tokio::select! {
            _ = server => {}
            _ = async {
                let _ = stopping.wait_for(|s| *s).await;
                tokio::time::sleep(Duration::from_millis(700)).await;
            } => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // Connections still open (a client that never reads) must not hold the
    // exit: the runtime is dropped with a short deadline.
    rt.shutdown_timeout(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    prober.join();
    if let Some(t) = capture_thread {
        let _ = t.join();
    }
    let _ = pump.join();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
