//! The HTTP surface as an attacker probes it: idle and slow connections,
//! too many connections, a stalled client's socket, foreign `Host`
//! names, symlinks and odd paths, plus HEAD, CORS on 401, the token's
//! three ways in, and the page's security headers.

use crate::icmp::metric;
use crate::require_root;
use migwatch_tests::sidecar::Sidecar;
use migwatch_tests::wait_for;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn addr(sc: &Sidecar) -> SocketAddr {
    sc.base
        .trim_start_matches("http://")
        .parse()
        .expect("the sidecar prints http://ADDR")
}

/// One answer to a raw request: status, head, body.
pub struct Raw {
    /// The status code.
    pub status: u16,
    /// Status line and headers, lower-cased.
    pub head: String,
    /// The body as text (chunked bodies unparsed).
    pub body: String,
}

/// Sends `req` (a full request; `Connection: close` is up to the caller)
/// and reads the answer to the end.
pub fn raw(addr: SocketAddr, req: &str) -> anyhow::Result<Raw> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(req.as_bytes())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let text = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(Raw {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    })
}

fn get(addr: SocketAddr, path: &str, host: &str, extra: &str) -> anyhow::Result<Raw> {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"),
    )
}

/// Reads until the peer closes (Ok(true)) or `limit` passes (Ok(false)).
fn closed_within(s: &mut TcpStream, limit: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(true),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Ok(false)
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() -> anyhow::Result<()> {
    require_root!();
    let sc = Sidecar::start("127.0.0.1", &["--interval", "50ms", "--idle-timeout", "2s"])?;
    let t = Instant::now();
    let mut s = TcpStream::connect(addr(&sc))?;
    assert!(
        closed_within(&mut s, Duration::from_secs(8))?,
        "a connection that sent nothing was still open after 8 s"
    );
    let took = t.elapsed();
    eprintln!("idle connection closed after {took:?}");
    assert!(
        took >= Duration::from_millis(1900),
        "closed too early: {took:?}"
    );
    // After a request, the kept-alive connection is closed the same way.
    let mut s = TcpStream::connect(addr(&sc))?;
    write!(s, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    assert!(closed_within(&mut s, Duration::from_secs(8))?);
    Ok(())
}

#[test]
fn a_request_dribbling_its_headers_is_closed() -> anyhow::Result<()> {
    require_root!();
    let sc = Sidecar::start(
        "127.0.0.1",
        &[
            "--interval",
            "50ms",
            "--header-timeout",
            "1s",
            "--idle-timeout",
            "60s",
        ],
    )?;
    let mut s = TcpStream::connect(addr(&sc))?;
    let t = Instant::now();
    write!(s, "GET /healthz HTTP/1.1\r\n")?;
    let mut closed = false;
    // One header line every 200 ms: never idle, never complete.
    for i in 0..50 {
        if write!(s, "X-Slow-{i}: x\r\n").is_err()
            || closed_within(&mut s, Duration::from_millis(200))?
        {
            closed = true;
            break;
        }
    }
    let took = t.elapsed();
    eprintln!("slow header closed after {took:?}");
    assert!(
        closed,
        "a request dribbling headers for 10 s was never closed"
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    Ok(())
}

/// The sidecar's open TCP sockets on its port, from /proc/net/tcp:
/// (remote port, state) of each.
fn server_sockets(port: u16) -> Vec<(u16, u8)> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let lport = u16::from_str_radix(f.get(1)?.split(':').nth(1)?, 16).ok()?;
            let rport = u16::from_str_radix(f.get(2)?.split(':').nth(1)?, 16).ok()?;
            let st = u8::from_str_radix(f.get(3)?, 16).ok()?;
            (lport == port && rport != 0).then_some((rport, st))
        })
        .collect()
}

/// TCP_ESTABLISHED in /proc/net/tcp.
const ESTABLISHED: u8 = 1;

#[test]
fn connections_are_capped_the_idle_make_room_and_healthz_answers() -> anyhow::Result<()> {
    require_root!();
    let sc = Sidecar::start(
        "127.0.0.1",
        &["--interval", "50ms", "--max-connections", "8"],
    )?;
    let a = addr(&sc);
    let idle: Vec<TcpStream> = (0..30)
        .map(|_| TcpStream::connect(a))
        .collect::<Result<_, _>>()?;
    for _ in 0..5 {
        let r = get(a, "/healthz", "127.0.0.1", "")?;
        assert_eq!(r.status, 200, "healthz with 30 idle connections open");
    }
    let open = wait_for(
        "the sidecar to hold at most 8 connections",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let n = server_sockets(a.port())
                .iter()
                .filter(|(_, st)| *st == ESTABLISHED)
                .count();
            (n <= 8).then_some(n)
        },
    )?;
    eprintln!("30 idle connections opened; the sidecar holds {open}");
    drop(idle);
    // When every slot is busy with a stream, a new connection is refused.
    let streams: Vec<TcpStream> = (0..8)
        .map(|_| -> anyhow::Result<TcpStream> {
            let mut s = TcpStream::connect(a)?;
            write!(s, "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut line = String::new();
            BufReader::new(s.try_clone()?).read_line(&mut line)?;
            assert!(line.starts_with("HTTP/1.1 200"), "{line}");
            Ok(s)
        })
        .collect::<Result<_, _>>()?;
    let r = get(a, "/healthz", "127.0.0.1", "")?;
    assert_eq!(
        r.status, 503,
        "all 8 slots stream: the 9th is refused; got {}",
        r.head
    );
    drop(streams);
    wait_for(
        "healthz to answer again once the streams are gone",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            get(a, "/healthz", "127.0.0.1", "")
                .ok()
                .filter(|r| r.status == 200)
        },
    )?;
    Ok(())
}

#[test]
fn an_overflowed_client_s_socket_is_closed_at_once() -> anyhow::Result<()> {
    require_root!();
    let sc = Sidecar::start(
        "127.0.0.1",
        &[
            "--interval",
            "500us",
            "--client-queue",
            "8",
            "--timeout",
            "100ms",
        ],
    )?;
    let a = addr(&sc);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_recv_buffer_size(4096)?;
    sock.connect(&a.into())?;
    let mut stalled: TcpStream = sock.into();
    let my_port = stalled.local_addr()?.port();
    write!(stalled, "GET /events HTTP/1.1\r\nHost: {a}\r\n\r\n")?;
    wait_for(
        "the stalled client to be cut off",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            metric(&sc, "migwatch_overflow_disconnects_total")
                .ok()
                .filter(|n| *n >= 1.0)
        },
    )?;
    let t = Instant::now();
    // The sidecar closes its end: the socket leaves ESTABLISHED (it
    // lingers in FIN_WAIT in the kernel only, with no process holding it).
    wait_for(
        "the sidecar to close the overflowed connection",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let st = server_sockets(a.port());
            st.iter()
                .find(|(rport, _)| *rport == my_port)
                .is_none_or(|(_, s)| *s != ESTABLISHED)
                .then_some(())
        },
    )?;
    eprintln!(
        "overflowed connection closed {:?} after the overflow was counted",
        t.elapsed()
    );
    assert!(
        sc.log().contains("overflow"),
        "no overflow log line: {}",
        sc.log()
    );
    Ok(())
}

#[test]
fn a_foreign_host_is_refused_and_listed_names_served() -> anyhow::Result<()> {
    require_root!();
    let sc = Sidecar::start(
        "127.0.0.1",
        &["--interval", "50ms", "--allow-host", "mon.example"],
    )?;
    let a = addr(&sc);
    let port = a.port();
    let r = get(a, "/info", &format!("rebind.example:{port}"), "")?;
    assert_eq!(r.status, 421, "{}", r.head);
    assert!(r.body.contains("--allow-host"), "{}", r.body);
    for ok in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("mon.example:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(get(a, "/info", &ok, "")?.status, 200, "{ok}");
    }
    Ok(())
}

#[test]
fn symlinks_out_of_the_web_root_and_odd_paths_get_clean_404s() -> anyhow::Result<()> {
    require_root!();
    let root = std::env::temp_dir().join(format!("mw-webroot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("index.html"), "<!doctype html><p>page</p>")?;
    std::os::unix::fs::symlink("/etc/passwd", root.join("leak.txt"))?;
    std::os::unix::fs::symlink("/etc", root.join("etc"))?;
    let sc = Sidecar::start(
        "127.0.0.1",
        &[
            "--interval",
            "50ms",
            "--web-root",
            &root.display().to_string(),
        ],
    )?;
    let a = addr(&sc);
    assert_eq!(get(a, "/", "127.0.0.1", "")?.status, 200);
    for path in [
        "/leak.txt".to_string(),
        "/etc/passwd".to_string(),
        "/index.html%00.js".to_string(),
        format!("/{}", "a".repeat(300)),
        "/%2e%2e/%2e%2e/etc/passwd".to_string(),
        "/nope.js".to_string(),
    ] {
        let r = get(a, &path, "127.0.0.1", "")?;
        assert_eq!(r.status, 404, "{path}: {}", r.head);
        assert_eq!(r.body, "not found\n", "{path}");
        assert!(!r.body.contains("root:"), "{path} leaked /etc/passwd");
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn head_works_and_the_page_has_its_security_headers() -> anyhow::Result<()> {
    require_root!();
    let sc = Sidecar::start("127.0.0.1", &["--interval", "50ms"])?;
    let a = addr(&sc);
    for path in ["/healthz", "/info", "/targets", "/metrics", "/"] {
        let r = raw(
            a,
            &format!("HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )?;
        assert_eq!(r.status, 200, "HEAD {path}: {}", r.head);
        assert!(r.body.is_empty(), "HEAD {path} sent a body");
    }
    let r = get(a, "/", "127.0.0.1", "")?;
    assert_eq!(r.status, 200, "the page is built in or in dist/");
    for h in [
        "content-security-policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'sha256-",
        "x-content-type-options: nosniff",
        "referrer-policy: no-referrer",
        "vary: origin",
    ] {
        assert!(r.head.contains(h), "no {h:?} in {}", r.head);
    }
    Ok(())
}

/// Starts the sidecar with this environment, returning it, its base URL
/// and its log path.
fn start_with_env(
    flags: &[&str],
    env: &[(&str, &str)],
) -> anyhow::Result<(std::process::Child, String, std::path::PathBuf)> {
    let log = migwatch_tests::out_dir().join(format!(
        "sidecar-env-{}-{}.log",
        std::process::id(),
        flags.len()
    ));
    let mut child = Command::new(migwatch_tests::sidecar::binary()?)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--target",
            "127.0.0.1",
            "--interval",
            "50ms",
        ])
        .args(flags)
        .envs(env.iter().copied())
        .current_dir(migwatch_tests::repo_root())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("migwatch: open ")
        .ok_or_else(|| anyhow::anyhow!("unexpected first line {line:?}"))?
        .trim_end_matches('/')
        .to_string();
    Ok((child, base, log))
}

#[test]
fn the_token_works_as_bearer_and_from_the_environment_and_401s_carry_cors() -> anyhow::Result<()> {
    require_root!();
    let good = "http://127.0.0.2:9999";
    let secret = "env-s3cret-value";
    let (mut child, base, log) =
        start_with_env(&["--allow-origin", good], &[("MIGWATCH_TOKEN", secret)])?;
    let a: SocketAddr = base.trim_start_matches("http://").parse()?;
    let with = |extra: &str| get(a, "/info", "127.0.0.1", extra);
    let r = with(&format!(
        "Origin: {good}\r\nAuthorization: Bearer wrong\r\n"
    ))?;
    assert_eq!(r.status, 401);
    assert!(
        r.head
            .contains(&format!("access-control-allow-origin: {good}")),
        "{}",
        r.head
    );
    assert!(r.head.contains("vary: origin"), "{}", r.head);
    assert!(r.body.contains("Authorization: Bearer"), "{}", r.body);
    assert_eq!(
        with(&format!("Authorization: Bearer {secret}\r\n"))?.status,
        200
    );
    assert_eq!(
        with(&format!("Authorization: bearer {secret}\r\n"))?.status,
        200
    );
    assert_eq!(
        get(a, &format!("/info?token={secret}"), "127.0.0.1", "")?.status,
        200
    );
    assert_eq!(with("Authorization: Basic eDp5\r\n")?.status, 401);
    assert_eq!(get(a, "/healthz", "127.0.0.1", "")?.status, 200);
    // A preflight for the Bearer header is allowed.
    let pre = raw(a, &format!(
        "OPTIONS /info HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {good}\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\nConnection: close\r\n\r\n"
    ))?;
    assert_eq!(pre.status, 200);
    assert!(
        pre.head
            .contains("access-control-allow-headers: last-event-id, cache-control, authorization"),
        "{}",
        pre.head
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log)?;
    assert!(!text.contains(secret), "the token is in the log: {text}");
    assert!(
        !text.contains("/proc/PID/cmdline"),
        "no warning for the env token: {text}"
    );

    // On the command line it works too, with a warning.
    let (mut child, _base, log) = start_with_env(&["--token", "cmdline-token"], &[])?;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log)?;
    assert!(
        text.contains("/proc/PID/cmdline"),
        "no warning about --token: {text}"
    );
    assert!(
        !text.contains("cmdline-token"),
        "the token is in the log: {text}"
    );
    Ok(())
}
