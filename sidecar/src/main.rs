//! `migwatch-sidecar`: probes one target with ICMP echo (pnet, raw socket)
//! and serves every sample as Server-Sent Events, plus the page itself.
//!
//! Start-up order matters: open the raw socket and bind the port while
//! privileged, drop privileges, and only then start threads and serve.
#![deny(unsafe_code)]

use migwatch_sidecar::{cli, detect, http, service, sys, watch};

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::sync::Arc;
use std::time::Duration;

/// Nice value of the HTTP side (the main thread and tokio's workers); the
/// prober keeps the default 0.
const HTTP_NICE: i32 = 10;

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
        Some(cli::Command::Watch(a)) => match watch::run(a) {
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
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
    let token = read_token(&args)?;

    // 1. Privileged steps: the raw socket, the capture, the listening port.
    let opened = service::open(args.setup().map_err(anyhow::Error::msg)?)?;
    let rcvbuf = opened.rcvbuf;
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

    // 2. Give up root and every capability, then start the threads.
    let svc = Arc::new(opened.start()?);

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
        fleet: svc.fleet.clone(),
        metrics: svc.metrics.clone(),
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

    let list = svc.fleet.list();
    let first = &list[0].spec;
    eprintln!(
        "migwatch-sidecar {}: probing {} ({}{}) every {:?} (timeout {:?}, receive buffer {} KiB, {} priority), running as uid {} with no capabilities{}",
        env!("CARGO_PKG_VERSION"),
        if list.len() == 1 { "1 target".to_string() } else { format!("{} targets", list.len()) },
        first.name,
        if list.len() > 1 { ", ..." } else { "" },
        first.interval,
        first.timeout,
        rcvbuf / 1024,
        svc.probe_priority.name(),
        svc.dropped.uid,
        if svc.dropped.switched_user {
            format!(" ({})", args.user)
        } else {
            String::new()
        }
    );
    println!("migwatch: open http://{local}/");

    let svc_sig = svc.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let signal = async move {
            wait_for_signal(&svc_sig).await;
            eprintln!("migwatch-sidecar: shutting down");
            // Ends every SSE stream, which lets the graceful shutdown finish.
            shutdown_tx.send_replace(true);
            svc_sig.fleet.close_all();
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
    svc.stop();
    Ok(())
}

/// Waits for SIGINT or SIGTERM; re-reads the targets file on each SIGHUP
/// meanwhile (a bad file changes nothing, and says why).
async fn wait_for_signal(svc: &service::Service) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => return,
            _ = term.recv() => return,
            _ = hup.recv() => match svc.reload() {
                Ok(r) => eprintln!(
                    "migwatch-sidecar: reloaded the targets: {} now; started {:?}, stopped {:?}",
                    r.total, r.added, r.removed
                ),
                Err(e) => eprintln!("migwatch-sidecar: reload failed: {e:#}"),
            },
        }
    }
}
