//! A target host in its own network namespace, one veth away.
//!
//! Layout: the root namespace holds `mwNa` with 198.18.N.1/30; the test
//! namespace holds `mwNb` with 198.18.N.2/30 and no default route, so
//! nothing in it can reach anywhere else. The sidecar runs in the root
//! namespace and probes 198.18.N.2.
//!
//! While any [`TargetNs`] exists, the root namespace holds the range guard,
//! `unreachable 198.18.0.0/15 metric 4000` (see `scripts/range-guard.sh`):
//! if a test's veth disappears under a running sidecar, its probes fail
//! with "no route" here instead of following the default route out.

use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// How many [`TargetNs`] of this process hold the range guard. The process
/// is one holder of `scripts/range-guard.sh` while this is above zero.
static GUARD_HOLDS: Mutex<usize> = Mutex::new(0);

/// The route every test, benchmark and lab run keeps in the root namespace.
pub const RANGE_GUARD: &str = "unreachable 198.18.0.0/15 metric 4000";

fn range_guard(op: &str) -> Result<()> {
    let script = crate::repo_root().join("scripts").join("range-guard.sh");
    let script = script.to_string_lossy();
    sh(&[&script, op, &std::process::id().to_string()]).map(|_| ())
}

/// One hold on the range guard, released on drop. The process is one
/// holder of `scripts/range-guard.sh` while any hold exists: the first
/// hold adds the route if it is absent; the last one to go lets the script
/// remove it (only if a holder added it and no other process still holds
/// it). A process killed before that is pruned by the next acquire or
/// release of any holder.
pub struct RangeHold(());

impl RangeHold {
    /// Joins the range guard.
    pub fn acquire() -> Result<RangeHold> {
        // A poisoned lock only means a panic elsewhere; the count is intact.
        let mut n = GUARD_HOLDS.lock().unwrap_or_else(|e| e.into_inner());
        if *n == 0 {
            range_guard("acquire").context("cannot put the range guard in place")?;
        }
        *n += 1;
        Ok(RangeHold(()))
    }
}

impl Drop for RangeHold {
    fn drop(&mut self) {
        let mut n = GUARD_HOLDS.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            if let Err(e) = range_guard("release") {
                eprintln!("warning: {e:#}");
            }
        }
    }
}

/// True when the root namespace holds [`RANGE_GUARD`].
pub fn range_guard_present() -> Result<bool> {
    let out = sh(&[
        "ip",
        "-4",
        "route",
        "show",
        "exact",
        "198.18.0.0/15",
        "type",
        "unreachable",
        "metric",
        "4000",
    ])?;
    Ok(!out.trim().is_empty())
}

/// Runs a command, failing with its stderr.
pub fn sh(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("cannot run {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A namespace with a target address. Removed on drop.
pub struct TargetNs {
    /// Namespace name.
    pub name: String,
    /// The veth end in the root namespace.
    pub host_if: String,
    /// The veth end inside the namespace.
    pub ns_if: String,
    /// The root side's address.
    pub host_addr: Ipv4Addr,
    /// The target's address (inside the namespace).
    pub target: Ipv4Addr,
    /// Its hold on the range guard. A field drops after `Drop::drop`'s
    /// body, so the route stays until the namespace is gone.
    _guard: Option<RangeHold>,
}

impl TargetNs {
    /// Creates the namespace and veth pair and brings them up.
    pub fn create() -> Result<TargetNs> {
        // Subnet index from the pid and a counter, so parallel tests and a
        // concurrent run of the suite do not collide.
        let n = (std::process::id() % 200 + NEXT.fetch_add(1, Ordering::Relaxed) * 7) % 250 + 1;
        let tag = format!("{}{}", std::process::id() % 100_000, n);
        let mut ns = TargetNs {
            name: format!("mwt{tag}"),
            host_if: format!("mw{tag}a"),
            ns_if: format!("mw{tag}b"),
            host_addr: Ipv4Addr::new(198, 18, n as u8, 1),
            target: Ipv4Addr::new(198, 18, n as u8, 2),
            _guard: None,
        };
        // The guard goes up before anything can be probed; from here on,
        // Drop cleans up whatever got created.
        ns._guard = Some(RangeHold::acquire()?);
        sh(&["ip", "netns", "add", &ns.name])?;
        ns.make_link()?;
        Ok(ns)
    }

    /// Creates the veth pair, addresses it, brings it up and pins both
    /// neighbour entries.
    fn make_link(&self) -> Result<()> {
        sh(&[
            "ip",
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &self.ns_if,
        ])?;
        sh(&["ip", "link", "set", &self.ns_if, "netns", &self.name])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", self.host_addr),
            "dev",
            &self.host_if,
        ])?;
        sh(&["ip", "link", "set", &self.host_if, "up"])?;
        self.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", self.target),
            "dev",
            &self.ns_if,
        ])?;
        self.exec(&["ip", "link", "set", &self.ns_if, "up"])?;
        self.exec(&["ip", "link", "set", "lo", "up"])?;
        // Pin the target's neighbour entry for us: taking its link down
        // flushes dynamic entries, and a re-resolution would add ARP delay
        // to the first replies after an outage.
        let host_mac = sh(&["cat", &format!("/sys/class/net/{}/address", self.host_if)])?;
        let ns_mac = self.exec(&["cat", &format!("/sys/class/net/{}/address", self.ns_if)])?;
        sh(&[
            "ip",
            "neigh",
            "replace",
            &self.target.to_string(),
            "lladdr",
            ns_mac.trim(),
            "dev",
            &self.host_if,
            "nud",
            "permanent",
        ])?;
        self.pin_neighbour(host_mac.trim())
    }

    /// Deletes the veth pair if it still exists and creates it again with
    /// the same names and addresses (new interface indexes, new MACs): a
    /// target whose interface went away and came back.
    pub fn recreate_link(&self) -> Result<()> {
        let _ = sh(&["ip", "link", "del", &self.host_if]);
        self.make_link()
    }

    fn pin_neighbour(&self, host_mac: &str) -> Result<()> {
        self.exec(&[
            "ip",
            "neigh",
            "replace",
            &self.host_addr.to_string(),
            "lladdr",
            host_mac,
            "dev",
            &self.ns_if,
            "nud",
            "permanent",
        ])
        .map(|_| ())
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Takes the target's link down: its probes get no reply until
    /// [`TargetNs::link_up`].
    pub fn link_down(&self) -> Result<()> {
        self.exec(&["ip", "link", "set", &self.ns_if, "down"])
            .map(|_| ())
    }

    /// Brings the target's link back and re-pins its neighbour entry, which
    /// link-down flushed.
    pub fn link_up(&self) -> Result<()> {
        let host_mac = sh(&["cat", &format!("/sys/class/net/{}/address", self.host_if)])?;
        self.exec(&["ip", "link", "set", &self.ns_if, "up"])?;
        self.pin_neighbour(host_mac.trim())
    }

    /// An outage of length `d`: link down, wait, link up. The sleep *is*
    /// the outage, not a synchronisation. Returns bounds on how long the
    /// link was really down (the `ip` commands take time of their own,
    /// more on a loaded machine): (down-done to up-start, down-start to
    /// up-done).
    pub fn link_outage(&self, d: Duration) -> Result<(Duration, Duration)> {
        let t0 = std::time::Instant::now();
        self.link_down()?;
        let t1 = std::time::Instant::now();
        std::thread::sleep(d);
        let t2 = std::time::Instant::now();
        self.link_up()?;
        Ok((t2 - t1, t0.elapsed()))
    }
}

/// The scripted ICMP responder (`mw-responder`) answering for the target
/// instead of the namespace's kernel. Killed by PID on drop.
pub struct Responder {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Responder {
    /// Sends one command (see `tests/responder.rs`) and waits for its `ok`.
    pub fn cmd(&mut self, c: &str) -> Result<()> {
        use std::io::Write;
        writeln!(self.stdin, "{c}")?;
        self.stdin.flush()?;
        match self.lines.next() {
            Some(Ok(l)) if l == "ok" => Ok(()),
            other => bail!("responder answered {other:?} to {c:?}"),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TargetNs {
    /// Silences the namespace kernel's echo replies and starts `bin`
    /// (the `mw-responder` binary) to answer instead.
    pub fn responder(&self, bin: &std::path::Path) -> Result<Responder> {
        self.responder_with(bin, &[])
    }

    /// [`Self::responder`] with extra `mw-responder` flags.
    pub fn responder_with(&self, bin: &std::path::Path, args: &[&str]) -> Result<Responder> {
        use std::io::BufRead;
        use std::process::Stdio;
        self.exec(&["sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1"])?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start mw-responder")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut r = Responder {
            child,
            stdin,
            lines: std::io::BufReader::new(stdout).lines(),
        };
        // The first answered command proves it is up (socket open).
        r.cmd("normal")?;
        Ok(r)
    }
}

impl Drop for TargetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the pair.
        let _ = sh(&["ip", "netns", "del", &self.name]);
        let _ = sh(&["ip", "link", "del", &self.host_if]);
    }
}

/// An nft table of our own with one counter per named rule on the
/// postrouting hook (every routed packet that leaves passes it). Deleted
/// on drop.
pub struct NftCounters {
    table: String,
}

impl NftCounters {
    /// Creates the table with one `counter` rule per (name, match).
    pub fn create(rules: &[(&str, String)]) -> Result<NftCounters> {
        let t = NftCounters {
            table: format!("mwfault{}", std::process::id()),
        };
        sh(&["nft", "add", "table", "inet", &t.table])?;
        sh(&[
            "nft",
            &format!(
                "add chain inet {} post {{ type filter hook postrouting priority 0; policy accept; }}",
                t.table
            ),
        ])?;
        for (name, rule) in rules {
            sh(&[
                "nft",
                &format!(
                    "add rule inet {} post {rule} counter comment \"{name}\"",
                    t.table
                ),
            ])?;
        }
        Ok(t)
    }

    /// Packets the rule commented `name` has counted.
    pub fn packets(&self, name: &str) -> Result<u64> {
        let out = sh(&["nft", "list", "chain", "inet", &self.table, "post"])?;
        let line = out
            .lines()
            .find(|l| l.contains(&format!("comment \"{name}\"")))
            .with_context(|| format!("no rule {name} in {out}"))?;
        line.split_once("counter packets ")
            .and_then(|(_, v)| v.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no counter in {line:?}"))
    }
}

impl Drop for NftCounters {
    fn drop(&mut self) {
        let _ = sh(&["nft", "delete", "table", "inet", &self.table]);
    }
}

/// The interface of the root namespace's default route, if there is one.
pub fn default_iface() -> Result<Option<String>> {
    let out = sh(&["ip", "-4", "route", "show", "default"])?;
    Ok(out
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .map(String::from))
}
