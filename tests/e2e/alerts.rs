//! Alerting end to end, with the real parts: one sidecar watching two
//! namespace targets (scripted guests, `mw-responder`), real Prometheus
//! scraping it every second with the shipped rules
//! (`deploy/prometheus/migwatch-rules.yml`), real Alertmanager with the
//! shipped route (`deploy/alertmanager/alertmanager.yml`), and a webhook
//! receiver in the test. A scripted migration of one guest fires
//! MigwatchMigrationDetected at the webhook with that guest's `target`; a
//! plain outage of another fires nothing; a long migration of a third fires
//! MigwatchLongDowntime, which inhibits its MigwatchMigrationDetected. It
//! prints the latency from the guest's resume to the webhook.

use crate::app_common::GuestResponder;
use crate::require_root;
use anyhow::{bail, Context, Result};
use migwatch_tests::netns::TargetNs;
use migwatch_tests::promstack::{Alertmanager, Prometheus, TempDir};
use migwatch_tests::webhook::{Notification, Webhook};
use migwatch_tests::{repo_root, wait_for};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Prometheus' scrape and evaluation interval in these tests.
const EVERY: Duration = Duration::from_secs(1);
/// The scripted migration's stop-and-copy.
const STOP_MS: u64 = 300;
/// The long one's, over the rules' 0.5 s.
const LONG_STOP_MS: u64 = 700;

/// The sidecar started with `--targets-file`, killed by PID on drop.
struct MultiSidecar {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl MultiSidecar {
    fn start(targets_file: &Path, log: std::path::PathBuf) -> Result<MultiSidecar> {
        let mut child = Command::new(migwatch_tests::sidecar::binary()?)
            .arg("--targets-file")
            .arg(targets_file)
            .args(["--listen", "127.0.0.1:0", "--interval", "10ms"])
            .args(["--timeout", "500ms", "--clock-interval", "100ms"])
            .current_dir(repo_root())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start the sidecar")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("migwatch: open ") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
            }
        });
        let mut sc = MultiSidecar {
            child,
            base: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(base) => sc.base = base,
            Err(_) => bail!(
                "the sidecar did not start within 10 s; its log: {}",
                sc.log()
            ),
        }
        Ok(sc)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `host:port`, for Prometheus.
    fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }
}

impl Drop for MultiSidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The firing alerts named `alertname` in a notification, by `target`.
fn firing<'a>(n: &'a Notification, alertname: &str) -> Vec<&'a Value> {
    n.alerts()
        .into_iter()
        .filter(|a| a["status"] == "firing" && a["labels"]["alertname"] == alertname)
        .collect()
}

/// The milliseconds in "... downtime 301.2ms".
fn summary_downtime_ms(summary: &str) -> Option<f64> {
    summary
        .rsplit("downtime ")
        .next()?
        .strip_suffix("ms")?
        .parse()
        .ok()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[test]
fn alerts_a_scripted_migration_fires_at_the_webhook_with_its_target_and_an_outage_does_not(
) -> Result<()> {
    require_root!();
    let dir = TempDir::new("alerts")?;
    let (ns_a, ns_b, ns_c) = (
        TargetNs::create()?,
        TargetNs::create()?,
        TargetNs::create()?,
    );
    let mut guest_a = GuestResponder::start(&ns_a)?;
    let mut guest_b = GuestResponder::start(&ns_b)?;
    let mut guest_c = GuestResponder::start(&ns_c)?;
    let targets = dir.0.join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[[target]]\naddress = \"{}\"\nname = \"vm-a\"\nlabels = {{ role = \"migrates\" }}\n\n\
             [[target]]\naddress = \"{}\"\nname = \"vm-b\"\nlabels = {{ role = \"outage\" }}\n\n\
             [[target]]\naddress = \"{}\"\nname = \"vm-c\"\nlabels = {{ role = \"long\" }}\n",
            ns_a.target, ns_b.target, ns_c.target
        ),
    )?;
    let sc = MultiSidecar::start(&targets, dir.0.join("sidecar.log"))?;

    // The real exposition passes promtool, and names every metric the
    // dashboard queries.
    let metrics = ureq::get(&format!("{}/metrics", sc.base))
        .call()?
        .into_string()?;
    let metrics_file = dir.0.join("metrics.txt");
    std::fs::write(&metrics_file, &metrics)?;
    check_exposition(&metrics_file)?;

    let hook = Webhook::start()?;
    let am = Alertmanager::start(&format!("{}/migwatch", hook.base))?;
    let rules = repo_root().join("deploy/prometheus/migwatch-rules.yml");
    let prom = Prometheus::start(&[sc.addr().to_string()], &rules, &am.addr, EVERY)?;

    // Prometheus has every target's counters, with a few samples each, so
    // increase() has something to compare with.
    wait_for(
        "Prometheus to hold 3 samples of each target's migrations counter",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let r = prom
                .query("count_over_time(migwatch_migrations_total[1m]) >= 3")
                .ok()?;
            (r.len() == 3).then_some(())
        },
    )
    .with_context(|| format!("prometheus log:\n{}", prom.log()))?;

    // 1. A plain outage of vm-b: the detector calls it an outage (its clock
    // kept time), Prometheus records it, and the rules are evaluated on it.
    guest_b.cmd("blackout 400")?;
    wait_for(
        "Prometheus to see vm-b's outage in migwatch_outages_total",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let r = prom
                .query(r#"migwatch_outages_total{target="vm-b"} >= 1"#)
                .ok()?;
            (!r.is_empty()).then_some(())
        },
    )
    .with_context(|| format!("sidecar log:\n{}", sc.log()))?;
    let seen = SystemTime::now();
    wait_for(
        "two rule evaluations after the outage was scraped",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let t = prom.last_evaluation("migwatch").ok()??;
            (t > seen + EVERY).then_some(())
        },
    )?;
    let alerts = prom.alerts()?;
    assert!(
        alerts.is_empty(),
        "an outage fired or pended alerts: {alerts:?}"
    );
    let migrations = prom.query("sum(migwatch_migrations_total)")?;
    assert_eq!(migrations.first().map(|m| m.1), Some(0.0), "{migrations:?}");

    // 2. A scripted live migration of vm-a: loss, a reply held across the
    // stop, the sawtooth, the guest clock lagging by the stop, announces.
    guest_a.cmd(&format!("migrate {STOP_MS}"))?;
    // The responder set the resume time just before it answered ok.
    let resume = SystemTime::now() + Duration::from_millis(STOP_MS);
    let (at, alert) = hook
        .wait_for(
            "MigwatchMigrationDetected for vm-a at the webhook",
            Duration::from_secs(30),
            |n| {
                firing(n, "MigwatchMigrationDetected")
                    .first()
                    .map(|a| (n.at, (*a).clone()))
            },
        )
        .with_context(|| {
            format!(
                "sidecar log:\n{}\nprometheus log:\n{}\nalertmanager log:\n{}",
                sc.log(),
                prom.log(),
                am.log()
            )
        })?;
    assert_eq!(alert["labels"]["target"], "vm-a", "{alert}");
    assert_eq!(alert["labels"]["job"], "migwatch", "{alert}");
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    // The summary gives migwatch_last_migration_downtime_seconds as the
    // rule saw it: the detector's first estimate (289-295 ms here for a
    // 300 ms stop), which the sidecar's record later refines from the clock
    // step (to within 1 ms) while the gauge keeps the first value.
    let summary = alert["annotations"]["summary"].as_str().unwrap_or_default();
    let downtime = summary_downtime_ms(summary);
    assert!(
        summary.starts_with("vm-a was live-migrated, downtime ")
            && downtime.is_some_and(|d| (d - STOP_MS as f64).abs() <= 15.0),
        "summary {summary:?}"
    );
    let starts = alert["startsAt"]
        .as_str()
        .and_then(migwatch_tests::promstack::parse_rfc3339)
        .context("startsAt")?;
    eprintln!(
        "alert latency: resume -> webhook {} ms (resume -> Prometheus fired {} ms, -> webhook {} ms more); \
         scrape and evaluation every {EVERY:?}, Alertmanager group_wait 1s; downtime in the alert {summary:?}",
        ms(since(at, resume)),
        ms(since(starts, resume)),
        ms(since(at, starts)),
    );
    // What the sidecar's own record says (the alert shows the gauge as it
    // was when the rule fired).
    let record: Value = ureq::get(&format!("{}/targets/vm-a/migrations", sc.base))
        .call()?
        .into_json()?;
    eprintln!(
        "the sidecar's record: {}; its gauge in Prometheus now: {:?}",
        record["migrations"][0],
        prom.query(r#"migwatch_last_migration_downtime_seconds{target="vm-a"}"#)?
    );
    // 1 s scrape + 1 s evaluation + 1 s group_wait, plus the detector's
    // decision (it waits for clock readings after the resume).
    assert!(
        since(at, resume) < Duration::from_secs(8),
        "{} ms from resume to webhook",
        ms(since(at, resume))
    );

    // 3. A long migration of vm-c: MigwatchLongDowntime (critical) from the
    // downtime histogram; Prometheus fires MigwatchMigrationDetected too,
    // but Alertmanager's inhibit rule holds that one back.
    guest_c.cmd(&format!("migrate {LONG_STOP_MS}"))?;
    let long = hook.wait_for(
        "MigwatchLongDowntime for vm-c at the webhook",
        Duration::from_secs(30),
        |n| {
            firing(n, "MigwatchLongDowntime")
                .first()
                .map(|a| (*a).clone())
        },
    )?;
    assert_eq!(long["labels"]["target"], "vm-c", "{long}");
    assert_eq!(long["labels"]["severity"], "critical", "{long}");
    let summary = long["annotations"]["summary"].as_str().unwrap_or_default();
    let downtime = summary
        .strip_prefix("vm-c was stopped for ")
        .and_then(|r| r.strip_suffix("ms by a live migration"))
        .and_then(|d| d.parse::<f64>().ok());
    assert!(
        downtime.is_some_and(|d| (d - LONG_STOP_MS as f64).abs() <= 30.0),
        "summary {summary:?}"
    );
    eprintln!("long migration ({LONG_STOP_MS} ms stop): {summary:?}");
    wait_for(
        "Alertmanager to hold vm-c's MigwatchMigrationDetected inhibited",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            am.alerts().ok()?.iter().find_map(|a| {
                (a["labels"]["alertname"] == "MigwatchMigrationDetected"
                    && a["labels"]["target"] == "vm-c"
                    && a["status"]["inhibitedBy"]
                        .as_array()
                        .is_some_and(|i| !i.is_empty()))
                .then_some(())
            })
        },
    )?;
    // A sentinel through the same route: once it is delivered (after its
    // own group_wait), every notification decided before it has been too.
    am.post_alerts(
        &json!([{"labels": {"alertname": "MigwatchMigrationDetected",
        "target": "sentinel", "instance": "test", "job": "migwatch"}}]),
    )?;
    hook.wait_for(
        "the sentinel at the webhook",
        Duration::from_secs(10),
        |n| {
            n.alerts()
                .iter()
                .any(|a| a["labels"]["target"] == "sentinel")
                .then_some(())
        },
    )?;
    let c_migrated: Vec<Value> = hook
        .all()
        .iter()
        .flat_map(|n| firing(n, "MigwatchMigrationDetected").into_iter().cloned())
        .filter(|a| a["labels"]["target"] == "vm-c")
        .collect();
    assert!(c_migrated.is_empty(), "not inhibited: {c_migrated:?}");

    // Every query of the Grafana dashboard answers with real data now.
    dashboard_queries_answer(&prom)?;

    // Nothing ever fired for vm-b, in Prometheus' own record of its alerts
    // or at the webhook.
    let ever = prom.query(r#"max_over_time(ALERTS{target="vm-b"}[10m])"#)?;
    assert!(ever.is_empty(), "alerts for vm-b: {ever:?}");
    let for_b: Vec<Value> = hook
        .all()
        .iter()
        .flat_map(|n| n.alerts().into_iter().cloned())
        .filter(|a| a["labels"]["target"] == "vm-b")
        .collect();
    assert!(for_b.is_empty(), "notifications for vm-b: {for_b:?}");
    assert!(hook.errors().is_empty(), "{:?}", hook.errors());
    Ok(())
}

/// Runs every PromQL expression of `deploy/grafana/migwatch-dashboard.json`
/// (panels, annotations) against the real Prometheus, with Grafana's
/// variables given values, and requires each to return series: after the
/// test's outage and migrations, every panel has something to draw.
fn dashboard_queries_answer(prom: &Prometheus) -> Result<()> {
    let path = repo_root().join("deploy/grafana/migwatch-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    let mut exprs: Vec<(String, String)> = Vec::new();
    for p in dash["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                exprs.push((format!("panel {:?} {}", p["title"], t["refId"]), e.into()));
            }
        }
    }
    for a in dash["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(e) = a["expr"].as_str() {
            exprs.push((format!("annotation {:?}", a["name"]), e.into()));
        }
    }
    assert!(exprs.len() >= 10, "only {} expressions", exprs.len());
    for (where_, e) in exprs {
        // $__rate_interval is at least 4 scrape intervals in Grafana.
        let q = e
            .replace("$__rate_interval", "4s")
            .replace("$__range", "5m")
            .replace("$job", "migwatch")
            .replace("$target", ".+");
        let got = prom.query(&q).with_context(|| format!("{where_}: {q}"))?;
        assert!(!got.is_empty(), "{where_}: no data for {q}");
    }
    Ok(())
}

/// `promtool check metrics` on a real exposition, and the dashboard's
/// queries checked against the names in it.
fn check_exposition(file: &Path) -> Result<()> {
    let text = std::fs::read(file)?;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run promtool (scripts/check-deploy.sh installs it)")?;
    std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, &text)?;
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("python3")
        .arg(repo_root().join("deploy/grafana/check_dashboard.py"))
        .arg("--metrics")
        .arg(file)
        .output()?;
    assert!(
        out.status.success(),
        "the dashboard queries metrics the sidecar does not export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Alertmanager with the shipped config delivers a migwatch alert to the
/// webhook about `group_wait` (1 s) after it gets it, and keeps other
/// alerts away from it. No sidecar and no root needed.
#[test]
fn alerts_alertmanager_routes_a_migwatch_alert_to_the_webhook() -> Result<()> {
    let hook = Webhook::start()?;
    let am = Alertmanager::start(&format!("{}/migwatch", hook.base))?;
    let sent = Instant::now();
    let sent_at = SystemTime::now();
    am.post_alerts(&json!([
        {"labels": {"alertname": "SomethingElse", "target": "vm-x"}},
        {"labels": {"alertname": "MigwatchMigrationDetected", "target": "vm-z",
                    "instance": "127.0.0.1:1", "job": "migwatch", "severity": "warning"},
         "annotations": {"summary": "vm-z was live-migrated, downtime 312ms"}},
    ]))?;
    let (at, n) = hook
        .wait_for(
            "the migwatch alert at the webhook",
            Duration::from_secs(15),
            |n| (!firing(n, "MigwatchMigrationDetected").is_empty()).then(|| (n.at, n.clone())),
        )
        .with_context(|| format!("alertmanager log:\n{}", am.log()))?;
    eprintln!(
        "alertmanager: alert posted -> webhook in {} ms (group_wait 1s)",
        ms(since(at, sent_at))
    );
    assert_eq!(n.path, "/migwatch");
    assert_eq!(n.body["receiver"], "migwatch-webhook", "{}", n.body);
    let alerts = n.alerts();
    assert_eq!(alerts.len(), 1, "{}", n.body);
    assert_eq!(alerts[0]["labels"]["target"], "vm-z");
    assert_eq!(
        alerts[0]["annotations"]["summary"],
        "vm-z was live-migrated, downtime 312ms"
    );
    // group_wait is 1 s: not sooner (it batches), not much later.
    let took = sent.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    // The other alert goes to the null receiver: by the time the migwatch
    // one came, it had been routed too (both were posted together).
    assert!(
        hook.all().iter().all(|n| n
            .alerts()
            .iter()
            .all(|a| a["labels"]["alertname"] != "SomethingElse")),
        "{:?}",
        hook.all()
    );
    Ok(())
}
