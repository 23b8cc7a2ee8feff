//! HTTPS: a sidecar with a certificate from a test CA, read over TLS by
//! curl and by the real page served from another HTTPS origin in headless
//! Chromium (the CA trusted through Chromium's SPKI flag); start-up errors
//! for bad certificate files.

use crate::require_root;
use migwatch_tests::sidecar::Sidecar;
use migwatch_tests::{out_dir, wait_for};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A throwaway CA and a server certificate for 127.0.0.1 and localhost,
/// made with Debian's openssl; removed on drop.
struct TestPki {
    dir: PathBuf,
}

fn run(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

impl TestPki {
    fn new(tag: &str) -> anyhow::Result<TestPki> {
        let dir = std::env::temp_dir().join(format!("mw-pki-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let p = |f: &str| dir.join(f).display().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args(["-keyout", &p("ca.key"), "-out", &p("ca.pem"), "-days", "2"])
            .args(["-subj", "/CN=migwatch test CA"]))?;
        run(Command::new("openssl")
            .args(["req"])
            .args(ec)
            .args(["-keyout", &p("server.key"), "-out", &p("server.csr")])
            .args(["-subj", "/CN=localhost"]))?;
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )?;
        run(Command::new("openssl")
            .args(["x509", "-req", "-in", &p("server.csr"), "-CA", &p("ca.pem")])
            .args([
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-out",
                &p("server.pem"),
            ])
            .args(["-days", "2", "-extfile", &p("ext.cnf")]))?;
        Ok(TestPki { dir })
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }

    /// base64(sha256(SubjectPublicKeyInfo)) of the server certificate, as
    /// `--ignore-certificate-errors-spki-list` takes it.
    fn spki_hash(&self) -> anyhow::Result<String> {
        let pubkey = run(Command::new("openssl").args([
            "x509",
            "-in",
            &self.path("server.pem"),
            "-pubkey",
            "-noout",
        ]))?;
        let der = pipe(&["openssl", "pkey", "-pubin", "-outform", "der"], &pubkey)?;
        let digest = pipe(&["openssl", "dgst", "-sha256", "-binary"], &der)?;
        let b64 = pipe(&["openssl", "base64", "-A"], &digest)?;
        Ok(String::from_utf8(b64)?.trim().to_string())
    }
}

fn pipe(cmd: &[&str], input: &[u8]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut c = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    c.stdin.take().map(|mut s| s.write_all(input)).transpose()?;
    let out = c.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `curl --cacert CA URL`: (status, body).
fn curl(ca: &str, url: &str, extra: &[&str]) -> anyhow::Result<(u16, String)> {
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            ca,
            "-w",
            "\n%{http_code}",
        ])
        .args(extra)
        .arg(url))?;
    let text = String::from_utf8(out)?;
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    Ok((code.trim().parse()?, body.to_string()))
}

#[test]
fn https_sidecar_answers_curl_and_refuses_bad_certificates_at_start() -> anyhow::Result<()> {
    require_root!();
    let pki = TestPki::new("curl")?;
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let sc = Sidecar::start(
        "127.0.0.1",
        &[
            "--interval",
            "50ms",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--token",
            "t0k",
        ],
    )?;
    assert!(sc.base.starts_with("https://127.0.0.1:"), "{}", sc.base);
    let ca = pki.path("ca.pem");
    assert_eq!(
        curl(&ca, &format!("{}/healthz", sc.base), &[])?,
        (200, "ok\n".into())
    );
    let (code, body) = curl(
        &ca,
        &format!("{}/info", sc.base),
        &["-H", "Authorization: Bearer t0k"],
    )?;
    assert_eq!(code, 200);
    assert!(body.contains("\"name\""), "{body}");
    assert_eq!(curl(&ca, &format!("{}/info", sc.base), &[])?.0, 401);
    // HTTP/2 through ALPN.
    let (code, _) = curl(
        &ca,
        &format!("{}/healthz", sc.base),
        &["--http2", "-o", "/dev/null"],
    )?;
    assert_eq!(code, 200);
    // By name too: the certificate names localhost.
    let port = sc.base.rsplit(':').next().unwrap_or("");
    let (code, _) = curl(
        &ca,
        &format!("https://localhost:{port}/healthz"),
        &["--resolve", &format!("localhost:{port}:127.0.0.1")],
    )?;
    assert_eq!(code, 200);
    // Plain HTTP to the HTTPS port gets nothing useful and no hang.
    let plain = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/healthz"),
        ])
        .output()?;
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("ok"));

    // Start-up errors name the file at fault.
    let other = TestPki::new("other")?;
    let cases = [
        (pki.path("missing.pem"), key.clone(), "missing.pem"),
        (key.clone(), key.clone(), "--tls-cert"),
        (cert.clone(), cert.clone(), "--tls-key"),
        (cert.clone(), other.path("server.key"), "does not belong"),
    ];
    for (c, k, want) in cases {
        let out = Command::new(migwatch_tests::sidecar::binary()?)
            .args([
                "--target",
                "127.0.0.1",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                &c,
                "--tls-key",
                &k,
            ])
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {c} / {k}");
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    Ok(())
}

/// A minimal WebDriver session on Debian's Chromium with extra flags; the
/// process group is killed on drop.
struct Chromium {
    driver: Child,
    base: String,
    session: String,
    profile: PathBuf,
}

impl Chromium {
    fn start(extra: &[String]) -> anyhow::Result<Chromium> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = out_dir().join(format!("chromedriver-tls-{port}.log"));
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let profile =
            std::env::temp_dir().join(format!("mw-chrome-tls-{}-{port}", std::process::id()));
        let mut c = Chromium {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
        };
        wait_for(
            "chromedriver",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || ureq::get(&format!("{}/status", c.base)).call().ok(),
        )?;
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", c.profile.display()));
        args.extend(extra.iter().cloned());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "acceptInsecureCerts": false,
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let v: Value = ureq::post(&format!("{}/session", c.base))
            .timeout(Duration::from_secs(60))
            .send_json(caps)?
            .into_json()?;
        c.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        anyhow::ensure!(
            !c.session.is_empty(),
            "no session: {v}; see {}",
            log.display()
        );
        Ok(c)
    }

    fn call(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        match ureq::post(&url)
            .timeout(Duration::from_secs(30))
            .send_json(body)
        {
            Ok(r) => Ok(r.into_json::<Value>()?["value"].take()),
            Err(ureq::Error::Status(code, r)) => {
                anyhow::bail!(
                    "WebDriver {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => anyhow::bail!("WebDriver {path}: {e}"),
        }
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

const READ_TILES: &str = "
    return Array.from(document.querySelectorAll('#tiles .tile')).map(t => [
        t.dataset.source || '', t.dataset.light || '', Number(t.dataset.samples || 0)]);
";

#[test]
fn the_page_from_one_https_origin_reads_another_https_sidecar() -> anyhow::Result<()> {
    require_root!();
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "chromium is missing (scripts/setup.sh --test)"
    );
    let pki = TestPki::new("page")?;
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let tls = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    // The page's origin: a sidecar serving the page (its own target too).
    let mut flags = vec!["--interval", "10ms"];
    flags.extend(tls);
    let page = Sidecar::start("127.0.0.1", &flags)?;
    // The sidecar the page reads, from that other origin, with a token.
    let mut flags = vec![
        "--interval",
        "10ms",
        "--allow-origin",
        page.base.as_str(),
        "--token",
        "tls-t0k",
    ];
    flags.extend(tls);
    let data = Sidecar::start("127.0.0.1", &flags)?;
    assert_ne!(page.base, data.base);
    let chrome = Chromium::start(&[format!(
        "--ignore-certificate-errors-spki-list={}",
        pki.spki_hash()?
    )])?;
    let source = format!("{}/?token=tls-t0k", data.base);
    let url = format!("{}/?s={}", page.base, urlencode(&source));
    chrome.call("/url", json!({ "url": url }))?;
    let row = wait_for(
        "the page (https origin A) to show live samples from sidecar B over https",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let v = chrome
                .call("/execute/sync", json!({"script": READ_TILES, "args": []}))
                .ok()?;
            let rows = v.as_array()?.clone();
            rows.into_iter().find(|r| {
                r[0].as_str().is_some_and(|s| s.starts_with(&data.base))
                    && r[1].as_str() == Some("green")
                    && r[2].as_u64().unwrap_or(0) >= 100
            })
        },
    )?;
    eprintln!("tile over https: {row}");
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
