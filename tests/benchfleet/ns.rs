//! The fleet benchmark's network: one namespace (`mwbfleet`) behind one
//! veth, holding up to 1000 /32 target addresses, and the root namespace's
//! `unreachable 198.18.0.0/15` guard route while the bench runs.
//!
//! Addresses: the veth is 198.18.251.0/30 and the targets are
//! 198.19.252.1 to 198.19.255.250, reached by one /22 route through the
//! namespace. The e2e harness's namespaces use 198.18.N.0/30 and
//! 198.19.N.0/24 with N in 1..=250, so a test running beside the bench never
//! takes these. The namespace does not forward and has no default route:
//! nothing sent to these addresses leaves the machine.

use anyhow::{bail, Result};
use migwatch_tests::netns::{sh, RangeHold};
use std::net::Ipv4Addr;

/// The namespace's name; it is removed by this name on drop (and by
/// `scripts/bench-fleet.sh` if the bench itself was killed).
pub const NS: &str = "mwbfleet";
/// Veth end in the root namespace.
const HOST_IF: &str = "mwbfa";
/// Veth end inside the namespace.
const NS_IF: &str = "mwbfb";
const HOST_ADDR: &str = "198.18.251.1";
const NS_ADDR: &str = "198.18.251.2";
const TARGETS_NET: &str = "198.19.252.0/22";
/// Most targets the /22 holds as laid out (250 per /24).
pub const MAX_TARGETS: usize = 1000;

/// The `i`-th target address.
pub fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 252 + (i / 250) as u8, 1 + (i % 250) as u8)
}

/// The namespace with its addresses; removes the namespace and the veth
/// on drop, then leaves the range guard.
pub struct FleetNet {
    /// The target addresses, in order.
    pub addrs: Vec<Ipv4Addr>,
    /// Its hold on the range guard (`scripts/range-guard.sh`, shared with
    /// the tests and the lab); a field drops after `Drop::drop`'s body.
    _guard: RangeHold,
}

impl FleetNet {
    /// Creates the namespace with `count` target addresses.
    pub fn create(count: usize) -> Result<FleetNet> {
        if count > MAX_TARGETS {
            bail!("at most {MAX_TARGETS} targets (asked for {count})");
        }
        // A namespace of this name is only ever this bench's: one left by a
        // killed run goes first, so the addresses below are not doubled.
        if sh(&["ip", "netns", "list"])?
            .lines()
            .any(|l| l.split_whitespace().next() == Some(NS))
        {
            eprintln!("mw-bench-fleet: removing a namespace {NS} left by an earlier run");
            teardown();
        }
        // The guard goes up before anything can be probed.
        let mut net = FleetNet {
            addrs: Vec::new(),
            _guard: RangeHold::acquire()?,
        };
        // From here on, Drop removes whatever got created.
        sh(&["ip", "netns", "add", NS])?;
        sh(&[
            "ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF,
        ])?;
        sh(&["ip", "link", "set", NS_IF, "netns", NS])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_ADDR}/30"),
            "dev",
            HOST_IF,
        ])?;
        sh(&["ip", "link", "set", HOST_IF, "up"])?;
        let mut batch =
            format!("addr add {NS_ADDR}/30 dev {NS_IF}\nlink set {NS_IF} up\nlink set lo up\n");
        for i in 0..count {
            let a = address(i);
            batch.push_str(&format!("addr add {a}/32 dev {NS_IF}\n"));
            net.addrs.push(a);
        }
        let file = migwatch_tests::out_dir().join("bench-fleet-ns.batch");
        std::fs::write(&file, batch)?;
        sh(&["ip", "-n", NS, "-batch", &file.to_string_lossy()])?;
        sh(&[
            "ip",
            "route",
            "replace",
            TARGETS_NET,
            "via",
            NS_ADDR,
            "dev",
            HOST_IF,
        ])?;
        // The namespace's kernel answers every probe: no ICMP rate limit
        // (echo replies are not limited by default; timestamp replies and
        // the global budget may be).
        sh(&[
            "ip",
            "netns",
            "exec",
            NS,
            "sysctl",
            "-qw",
            "net.ipv4.icmp_ratelimit=0",
            "net.ipv4.icmp_msgs_per_sec=1000000",
            "net.ipv4.icmp_msgs_burst=1000000",
        ])?;
        // Pin the next hop so no ARP re-resolution shows up as latency.
        let mac = sh(&[
            "ip",
            "netns",
            "exec",
            NS,
            "cat",
            &format!("/sys/class/net/{NS_IF}/address"),
        ])?;
        sh(&[
            "ip",
            "neigh",
            "replace",
            NS_ADDR,
            "lladdr",
            mac.trim(),
            "dev",
            HOST_IF,
            "nud",
            "permanent",
        ])?;
        Ok(net)
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        format!(
            "veth {HOST_IF} ({HOST_ADDR}) -> namespace {NS} ({NS_ADDR}), {} target addresses {}..{} routed by {TARGETS_NET}",
            self.addrs.len(),
            address(0),
            address(self.addrs.len().saturating_sub(1)),
        )
    }
}

/// Removes the namespace (its veth end, and so the pair and the /22 route,
/// go with it) and the root end if it survived.
fn teardown() {
    let _ = sh(&["ip", "netns", "del", NS]);
    let _ = sh(&["ip", "link", "del", HOST_IF]);
}

impl Drop for FleetNet {
    fn drop(&mut self) {
        teardown();
    }
}
