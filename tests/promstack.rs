//! Real Prometheus and Alertmanager (Debian's `prometheus` and
//! `prometheus-alertmanager`) as child processes on free loopback ports,
//! each with its own config and data folder under a throwaway directory,
//! loaded with the shipped `deploy/` files. Killed by PID on drop.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A folder removed (with everything in it) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/mw-NAME-PID-N`.
    pub fn new(name: &str) -> Result<TempDir> {
        let d = std::env::temp_dir().join(format!(
            "mw-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port (bound and released: another process could take it
/// in between, which the start-up wait then reports).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process with its log file, killed by PID on drop.
struct Proc {
    child: Child,
    log: PathBuf,
    what: &'static str,
}

impl Proc {
    fn spawn(what: &'static str, cmd: &mut Command, log: PathBuf) -> Result<Proc> {
        let out = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {what} ({cmd:?}); is it installed? scripts/check-deploy.sh installs it"))?;
        Ok(Proc { child, log, what })
    }

    /// Waits until `GET {base}/-/ready` answers 200, failing early if the
    /// process exits.
    fn wait_ready(&mut self, base: &str) -> Result<()> {
        let what = self.what;
        crate::wait_for(
            &format!("{what} to be ready at {base}"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Some(Err(anyhow::anyhow!(
                        "{what} exited with {status}; its log:\n{}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    )));
                }
                match ureq::get(&format!("{base}/-/ready"))
                    .timeout(Duration::from_secs(2))
                    .call()
                {
                    Ok(r) if r.status() == 200 => Some(Ok(())),
                    _ => None,
                }
            },
        )?
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Real Prometheus scraping sidecars with the shipped rules.
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    proc: Proc,
    _dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `sidecars` (`host:port`) as job
    /// `migwatch` every `every`, evaluating `rules` as often, and sending
    /// alerts to the Alertmanager at `alertmanager` (`host:port`).
    pub fn start(
        sidecars: &[String],
        rules: &Path,
        alertmanager: &str,
        every: Duration,
    ) -> Result<Prometheus> {
        let dir = TempDir::new("prometheus")?;
        let secs = every.as_secs_f64();
        let targets = sidecars
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: {secs}s\n  evaluation_interval: {secs}s\n  scrape_timeout: {secs}s\n\
             rule_files:\n  - \"{}\"\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{alertmanager}\"]\n\
             scrape_configs:\n  - job_name: migwatch\n    static_configs:\n      - targets: [{targets}]\n",
            rules.display()
        );
        let config_path = dir.0.join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let port = free_port()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut proc = Proc::spawn(
            "prometheus",
            Command::new("prometheus")
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.0.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn"),
            dir.0.join("prometheus.log"),
        )?;
        proc.wait_ready(&base)?;
        Ok(Prometheus {
            base,
            proc,
            _dir: dir,
        })
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.proc.log).unwrap_or_default()
    }

    fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let mut req = ureq::get(&format!("{}{path}", self.base)).timeout(Duration::from_secs(5));
        for (k, v) in query {
            req = req.query(k, v);
        }
        let v: Value = req
            .call()
            .with_context(|| format!("GET {path} {query:?}"))?
            .into_json()?;
        if v["status"] != "success" {
            bail!("GET {path} {query:?} answered {v}");
        }
        Ok(v["data"].clone())
    }

    /// An instant query: each result's labels and value.
    pub fn query(&self, expr: &str) -> Result<Vec<(Value, f64)>> {
        let data = self.api("/api/v1/query", &[("query", expr)])?;
        Ok(data["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|s| {
                        let v = s["value"][1].as_str()?.parse().ok()?;
                        Some((s["metric"].clone(), v))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The alerts Prometheus holds now (pending and firing).
    pub fn alerts(&self) -> Result<Vec<Value>> {
        Ok(self.api("/api/v1/alerts", &[])?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// When the rule group `group` last finished an evaluation.
    pub fn last_evaluation(&self, group: &str) -> Result<Option<SystemTime>> {
        let data = self.api("/api/v1/rules", &[])?;
        let g = data["groups"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["name"] == group));
        Ok(g.and_then(|g| parse_rfc3339(g["lastEvaluation"].as_str()?)))
    }
}

/// Real Alertmanager loaded with the shipped config, its webhook pointed
/// at a test receiver.
pub struct Alertmanager {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// `127.0.0.1:PORT`, for Prometheus' config.
    pub addr: String,
    proc: Proc,
    _dir: TempDir,
}

/// The webhook URL in the shipped config that the tests replace.
pub const SHIPPED_WEBHOOK_URL: &str = "http://127.0.0.1:9095/migwatch";

impl Alertmanager {
    /// Starts Alertmanager with `deploy/alertmanager/alertmanager.yml`,
    /// whose webhook URL is replaced by `webhook_url`, gossip off.
    pub fn start(webhook_url: &str) -> Result<Alertmanager> {
        let dir = TempDir::new("alertmanager")?;
        let shipped = crate::repo_root().join("deploy/alertmanager/alertmanager.yml");
        let text = std::fs::read_to_string(&shipped)
            .with_context(|| format!("cannot read {}", shipped.display()))?;
        if !text.contains(SHIPPED_WEBHOOK_URL) {
            bail!(
                "{} no longer holds the webhook URL {SHIPPED_WEBHOOK_URL} that the tests replace",
                shipped.display()
            );
        }
        let config_path = dir.0.join("alertmanager.yml");
        std::fs::write(&config_path, text.replace(SHIPPED_WEBHOOK_URL, webhook_url))?;
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let base = format!("http://{addr}");
        let mut proc = Proc::spawn(
            "alertmanager",
            Command::new("prometheus-alertmanager")
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.path={}", dir.0.join("data").display()))
                .arg(format!("--web.listen-address={addr}"))
                // No cluster: no gossip port, nothing but loopback HTTP.
                .arg("--cluster.listen-address=")
                .arg("--log.level=warn"),
            dir.0.join("alertmanager.log"),
        )?;
        proc.wait_ready(&base)?;
        Ok(Alertmanager {
            base,
            addr,
            proc,
            _dir: dir,
        })
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.proc.log).unwrap_or_default()
    }

    /// The alerts it holds now, each with `labels` and `status`
    /// (`state`, `inhibitedBy`, `silencedBy`).
    pub fn alerts(&self) -> Result<Vec<Value>> {
        let v: Value = ureq::get(&format!("{}/api/v2/alerts", self.base))
            .timeout(Duration::from_secs(5))
            .call()
            .context("GET /api/v2/alerts")?
            .into_json()?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Posts alerts to its API, as Prometheus does (`alerts` is a JSON array
    /// of `{labels, annotations, startsAt?}`).
    pub fn post_alerts(&self, alerts: &Value) -> Result<()> {
        ureq::post(&format!("{}/api/v2/alerts", self.base))
            .timeout(Duration::from_secs(5))
            .send_json(alerts.clone())
            .context("POST /api/v2/alerts")?;
        Ok(())
    }
}

/// Parses Prometheus' and Alertmanager's RFC 3339 times
/// (`2026-12-05T06:32:07.123456789Z`, UTC only).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?
    };
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_to_unix_time() {
        let t = parse_rfc3339("2026-12-05T06:32:07.5Z").and_then(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis())
        });
        // date -ud 2026-12-05T06:32:07Z +%s
        assert_eq!(t, Some(1_796_452_327_500));
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:00Z"),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(parse_rfc3339("2026-12-05 06:32:07"), None);
    }
}
