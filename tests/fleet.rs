//! Many targets in one namespace: one veth, many addresses inside it, as a
//! hypervisor's VMs look from a sidecar on the same host.
//!
//! The extra addresses are /32s on the namespace's end of the veth, from
//! 198.19.N.0/24 (inside the test range, apart from the /30s `TargetNs`
//! uses), reached through one route via the namespace's first address. The
//! route goes with the veth when the namespace is removed.

use crate::netns::{sh, TargetNs};
use anyhow::Result;
use std::net::Ipv4Addr;

/// A namespace holding `count` target addresses.
pub struct FleetNs {
    /// The namespace (its own first address is not one of the targets).
    pub ns: TargetNs,
    /// The target addresses, in order.
    pub addrs: Vec<Ipv4Addr>,
}

impl FleetNs {
    /// Creates the namespace with `count` (at most 200) addresses.
    pub fn create(count: usize) -> Result<FleetNs> {
        anyhow::ensure!(count <= 200, "at most 200 addresses per namespace");
        let ns = TargetNs::create()?;
        let subnet = ns.target.octets()[2];
        sh(&[
            "ip",
            "route",
            "replace",
            &format!("198.19.{subnet}.0/24"),
            "via",
            &ns.target.to_string(),
            "dev",
            &ns.host_if,
        ])?;
        let mut f = FleetNs {
            ns,
            addrs: Vec::new(),
        };
        for i in 0..count {
            let a = Ipv4Addr::new(198, 19, subnet, 10 + i as u8);
            f.add(a)?;
        }
        Ok(f)
    }

    /// The `i`-th address this namespace can hold (whether added or not).
    pub fn address(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.ns.target.octets()[2], 10 + i as u8)
    }

    /// Adds `a` inside the namespace: it answers from now on.
    pub fn add(&mut self, a: Ipv4Addr) -> Result<()> {
        self.ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{a}/32"),
            "dev",
            &self.ns.ns_if,
        ])?;
        self.addrs.push(a);
        Ok(())
    }

    /// Removes `a` from the namespace: its probes go unanswered (the
    /// namespace does not forward, and the route still leads into it, so
    /// nothing leaves the machine).
    pub fn remove(&mut self, a: Ipv4Addr) -> Result<()> {
        self.ns.exec(&[
            "ip",
            "addr",
            "del",
            &format!("{a}/32"),
            "dev",
            &self.ns.ns_if,
        ])?;
        self.addrs.retain(|x| *x != a);
        Ok(())
    }
}
