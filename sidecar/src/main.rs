//! `migwatch-sidecar`: probes one target with ICMP echo (pnet, raw socket)
//! and serves every sample as Server-Sent Events, plus the page itself.
//!
//! Start-up order matters: open the raw socket and bind the port while
//! privileged, drop privileges, and only then start threads and serve.
#![deny(unsafe_code)]

use migwatch_sidecar::http::{self, auth, static_files::Source};
use migwatch_sidecar::{cli, detect, embedded, logging, service, sys, watch};

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

/// Connections kept free of `--max-connections` below the open-files
/// limit, for the raw socket, the capture, files and the listener.
const FD_RESERVE: u64 = 64;

fn run(args: cli::Args) -> Result<()> {
    logging::init(args.http.log_format);
    args.validate().map_err(anyhow::Error::msg)?;
    let argv: Vec<String> = std::env::args().collect();
    let token = auth::resolve(args.token.as_deref(), args.token_file.as_deref(), &argv)
        .map_err(anyhow::Error::msg)?;
    if let Some(t) = &token {
        for w in &t.warnings {
            tracing::warn!("{w}");
        }
        tracing::info!(source = ?t.source, "clients need the token (?token= or Authorization: Bearer)");
    }
    // Before the privilege drop: the key may be readable by root only.
    let tls = match (&args.http.tls_cert, &args.http.tls_key) {
        (Some(c), Some(k)) => Some(http::tls::load(c, k).map_err(anyhow::Error::msg)?),
        _ => None,
    };

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

    // The page: --web-root if given, else the one built in, else ./dist.
    // A folder is served from inside: the process moves there while it may
    // still read anything, so after the drop `nobody` needs access to that
    // folder only, not to every folder above it.
    let page = match (&args.web_root, embedded::page()) {
        (Some(dir), _) => Some(enter_web_root(dir)?),
        (None, Some(files)) => {
            tracing::info!(
                files = files.len(),
                "serving the page built into the binary"
            );
            Some(Source::Embedded(files))
        }
        (None, None) if std::path::Path::new("dist/index.html").is_file() => {
            Some(enter_web_root(std::path::Path::new("dist"))?)
        }
        (None, None) => {
            tracing::warn!(
                "no page built into this binary and no dist/index.html here: serving the API only. \
                 Build the page with scripts/run.sh or pass --web-root DIR"
            );
            None
        }
    };

    let mut max_connections = args.http.max_connections as u64;
    if let Some(limit) = http::serve::open_files_limit() {
        if max_connections + FD_RESERVE > limit {
            let fit = limit.saturating_sub(FD_RESERVE).max(1);
            tracing::warn!(
                wanted = max_connections,
                open_files_limit = limit,
                "--max-connections lowered to {fit} to stay under the open-files limit (raise it with ulimit -n or LimitNOFILE=)"
            );
            max_connections = fit;
        }
    }
    let limits = http::serve::Limits {
        idle_timeout: args.http.idle_timeout,
        header_timeout: args.http.header_timeout,
        max_connections: max_connections as usize,
    };

    // 2. Give up root and every capability, then start the threads.
    let svc = Arc::new(opened.start()?);

    // 4. Serve until SIGINT/SIGTERM. Serving yields to probing: this
    //    thread and the runtime's workers (which inherit its nice value)
    //    run at nice 10, so a burst of client writes never holds the CPU
    //    when the prober wakes to send. Raising one's own nice value needs
    //    no privilege; if it fails anyway, serving just competes evenly.
    if let Err(e) = sys::set_thread_nice(HTTP_NICE) {
        tracing::warn!("cannot lower the HTTP threads' priority: {e}");
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
        shutdown: shutdown_rx.clone(),
        page,
        token: token.map(|t| t.value),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut origins = args.allow_origin.clone();
    origins.push(format!("{scheme}://{local}"));
    if local.ip().is_loopback() {
        origins.push(format!("{scheme}://localhost:{}", local.port()));
    }
    let front = http::front::Front {
        hosts: http::policy::HostPolicy::new(local, &args.http.allow_host),
        cors: http::policy::Cors::new(&origins),
        scheme,
    };
    let routes = warp::service(http::routes(state));

    let list = svc.fleet.list();
    let history: Vec<String> = list
        .iter()
        .map(|t| {
            let n = migwatch_sidecar::targets::ring_capacity(
                &t.spec,
                args.history,
                args.history_memory as usize * (1 << 20),
                list.len(),
            );
            format!("{}={:?}", t.spec.name, t.spec.interval * n as u32)
        })
        .collect();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        targets = list.len(),
        uid = svc.dropped.uid,
        user = if svc.dropped.switched_user {
            args.user.as_str()
        } else {
            "(unchanged)"
        },
        "privileges dropped: running with no capabilities"
    );
    tracing::info!(
        receive_buffer_kib = rcvbuf / 1024,
        "prober started at {} priority",
        svc.probe_priority.name()
    );
    for t in &list {
        tracing::info!(
            target_name = %t.spec.name,
            interval = ?t.spec.interval,
            timeout = ?t.spec.timeout,
            "probing"
        );
    }
    tracing::info!(history = %history.join(" "), "history kept per target for resuming clients");
    tracing::info!(
        listen = %local,
        tls = tls.is_some(),
        idle_timeout = ?limits.idle_timeout,
        header_timeout = ?limits.header_timeout,
        max_connections = limits.max_connections,
        "serving"
    );
    println!("migwatch: open {scheme}://{local}/");

    let svc_sig = svc.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tokio::spawn(async move {
            wait_for_signal(&svc_sig).await;
            tracing::info!("shutting down");
            // Ends every SSE stream, which lets the graceful shutdown finish.
            shutdown_tx.send_replace(true);
            svc_sig.fleet.close_all();
        });
        let mut stopping = shutdown_watch;
        let server = http::serve::run(listener, routes, front, limits, tls, shutdown_rx);
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

/// Moves into the page's folder and serves it from there.
fn enter_web_root(dir: &std::path::Path) -> Result<Source> {
    if !dir.join("index.html").is_file() {
        bail!(
            "--web-root {}: no index.html in it (build the page with `trunk build --release`, or point at Trunk's dist/)",
            dir.display()
        );
    }
    std::env::set_current_dir(dir)
        .with_context(|| format!("cannot enter --web-root {}", dir.display()))?;
    tracing::info!(web_root = %dir.display(), "serving the page from a folder");
    Ok(Source::Dir(std::path::PathBuf::from(".")))
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
                Ok(r) => tracing::info!(
                    targets = r.total,
                    started = ?r.added,
                    stopped = ?r.removed,
                    "reloaded the targets file"
                ),
                Err(e) => tracing::error!("reload failed: {e:#}"),
            },
        }
    }
}
