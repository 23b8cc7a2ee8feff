//! Drives Debian's Chromium through chromedriver with plain W3C WebDriver
//! calls. Both processes run in their own process group and are killed by
//! PID on drop; a browser that fails to start fails the test with a clear
//! message instead of hanging it.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Flags for headless Chromium on a machine with no network but loopback.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// A Chromium session. Dropping it ends the session and kills chromedriver
/// and the browser.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    profile: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, at
    /// `width`×`height` CSS pixels, optionally in dark mode.
    pub fn start(width: u32, height: u32, dark: bool) -> Result<Browser> {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            if !Path::new(bin).exists() {
                bail!("{bin} is missing: install Debian's chromium and chromium-driver (scripts/setup.sh --test does)");
            }
        }
        let port = free_port()?;
        let log = crate::out_dir().join(format!("chromedriver-{port}.log"));
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start /usr/bin/chromedriver")?;
        let profile = std::env::temp_dir().join(format!("mw-chrome-{}-{port}", std::process::id()));
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            profile,
        };
        crate::wait_for(
            "chromedriver to answer /status",
            Duration::from_secs(15),
            Duration::from_millis(50),
            || ureq::get(&format!("{}/status", b.base)).call().ok(),
        )
        .with_context(|| format!("chromedriver did not come up; see {}", log.display()))?;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", b.profile.display()));
        args.push(format!("--window-size={width},{height}"));
        if dark {
            args.push("--force-dark-mode".into());
            args.push("--blink-settings=preferredColorScheme=0".into());
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let resp = ureq::post(&format!("{}/session", b.base))
            .timeout(Duration::from_secs(60))
            .send_json(caps);
        let v: Value = match resp {
            Ok(r) => r.into_json()?,
            Err(ureq::Error::Status(code, r)) => bail!(
                "Chromium failed to start (chromedriver said {code}): {}; see {}",
                r.into_string().unwrap_or_default(),
                log.display()
            ),
            Err(e) => bail!("Chromium failed to start: {e}; see {}", log.display()),
        };
        b.session = v["value"]["sessionId"]
            .as_str()
            .context("no sessionId in chromedriver's answer")?
            .to_string();
        Ok(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(30));
        let resp = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match resp {
            Ok(r) => Ok(r.into_json::<Value>()?["value"].take()),
            Err(ureq::Error::Status(code, r)) => {
                bail!(
                    "WebDriver {method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => bail!("WebDriver {method} {path}: {e}"),
        }
    }

    /// Loads a page.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(json!({ "url": url })))
            .map(|_| ())
    }

    /// Runs JavaScript (a function body; use `return`) and returns its value.
    pub fn eval(&self, script: &str) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Saves a PNG screenshot of the viewport.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let b64 = self.call("GET", "/screenshot", None)?;
        let png = base64_decode(b64.as_str().context("screenshot is not a string")?)?;
        std::fs::write(path, png)?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", "", None);
        }
        // chromedriver and any Chromium it left: the whole process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (with padding), as WebDriver returns screenshots.
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("invalid base64 byte {c}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::base64_decode("aGk=").unwrap(), b"hi");
        assert!(super::base64_decode("a$b").is_err());
    }
}
