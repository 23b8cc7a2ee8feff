//! What a captured frame says about a target: its MAC (learned from its
//! own frames) or an announce of it (RARP from its MAC, gratuitous ARP for
//! its address).

use pnet::packet::arp::{ArpOperations, ArpPacket};
use pnet::packet::ethernet::{EtherType, EtherTypes, EthernetPacket};
use pnet::packet::ipv4::Ipv4Packet;
use pnet::packet::Packet;
use pnet::util::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// RARP's ethertype, which QEMU uses for its self-announce.
const RARP: EtherType = EtherType(0x8035);

/// What kind of announce a frame was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceKind {
    /// A RARP frame from the target's MAC (QEMU's self-announce).
    Rarp,
    /// A gratuitous ARP for the target's address (sender IP = target IP).
    Garp,
}

/// What a frame told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The target's MAC, learned from its traffic.
    Mac(MacAddr),
    /// An announce of the target.
    Announce(AnnounceKind, MacAddr),
}

/// Classifies one Ethernet frame. `known` is the target's MAC if learned.
pub fn classify(frame: &[u8], target: Ipv4Addr, known: Option<MacAddr>) -> Option<Seen> {
    let eth = EthernetPacket::new(frame)?;
    let src = eth.get_source();
    match eth.get_ethertype() {
        EtherTypes::Ipv4 => {
            let ip = Ipv4Packet::new(eth.payload())?;
            (ip.get_source() == target && known != Some(src)).then_some(Seen::Mac(src))
        }
        EtherTypes::Arp => {
            let arp = ArpPacket::new(eth.payload())?;
            if arp.get_sender_proto_addr() != target {
                return None;
            }
            let gratuitous = arp.get_target_proto_addr() == target
                || (arp.get_operation() == ArpOperations::Reply
                    && arp.get_target_hw_addr() == MacAddr::broadcast());
            if gratuitous {
                Some(Seen::Announce(AnnounceKind::Garp, arp.get_sender_hw_addr()))
            } else if known != Some(arp.get_sender_hw_addr()) {
                Some(Seen::Mac(arp.get_sender_hw_addr()))
            } else {
                None
            }
        }
        t if t == RARP => (known == Some(src)).then_some(Seen::Announce(AnnounceKind::Rarp, src)),
        _ => None,
    }
}

/// The address a frame may be about: its IPv4 source, an ARP's sender
/// address, or for RARP (which carries no IP) the target whose MAC sent
/// it. The target's own [`classify`] decides what the frame means.
pub fn about(frame: &[u8], mac_owner: &HashMap<MacAddr, Ipv4Addr>) -> Option<Ipv4Addr> {
    let eth = EthernetPacket::new(frame)?;
    match eth.get_ethertype() {
        EtherTypes::Ipv4 => Ipv4Packet::new(eth.payload()).map(|ip| ip.get_source()),
        EtherTypes::Arp => ArpPacket::new(eth.payload()).map(|a| a.get_sender_proto_addr()),
        t if t == RARP => mac_owner.get(&eth.get_source()).copied(),
        _ => None,
    }
}

/// An announce heard for a target's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heard {
    /// The target's address.
    pub addr: Ipv4Addr,
    /// RARP or gratuitous ARP.
    pub kind: AnnounceKind,
    /// The MAC announced.
    pub mac: MacAddr,
    /// The MAC learned at this address before, when the announce names
    /// another one: a different machine now claims the address (a live
    /// migration keeps the MAC).
    pub previous: Option<MacAddr>,
}

/// The MACs learned for target addresses, from the targets' own frames.
#[derive(Debug, Default)]
pub struct Learned {
    mac_of: HashMap<Ipv4Addr, MacAddr>,
    mac_owner: HashMap<MacAddr, Ipv4Addr>,
}

impl Learned {
    /// The MAC learned for `addr`.
    pub fn mac_of(&self, addr: Ipv4Addr) -> Option<MacAddr> {
        self.mac_of.get(&addr).copied()
    }

    fn learn(&mut self, addr: Ipv4Addr, mac: MacAddr) {
        if let Some(old) = self.mac_of.insert(addr, mac) {
            self.mac_owner.remove(&old);
        }
        self.mac_owner.insert(mac, addr);
    }

    /// Reads one frame: learns a target's MAC from it, or returns the
    /// announce it is. `is_target` says whether an address is watched. An
    /// announce of a MAC other than the learned one is marked with the old
    /// one, and the new one is learned: later frames from it are the
    /// target's.
    pub fn frame(&mut self, frame: &[u8], is_target: impl Fn(Ipv4Addr) -> bool) -> Option<Heard> {
        let addr = about(frame, &self.mac_owner)?;
        if !is_target(addr) {
            return None;
        }
        let known = self.mac_of(addr);
        match classify(frame, addr, known)? {
            Seen::Mac(m) => {
                self.learn(addr, m);
                None
            }
            Seen::Announce(kind, mac) => {
                let previous = known.filter(|k| *k != mac);
                if previous.is_some() || known.is_none() {
                    self.learn(addr, mac);
                }
                Some(Heard {
                    addr,
                    kind,
                    mac,
                    previous,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet::packet::arp::{ArpHardwareTypes, MutableArpPacket};
    use pnet::packet::ethernet::MutableEthernetPacket;
    use pnet::packet::ipv4::MutableIpv4Packet;

    const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const GUEST: MacAddr = MacAddr(0x52, 0x54, 0, 0x12, 0x34, 0x56);

    fn frame(ethertype: EtherType, src: MacAddr, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 14 + payload.len()];
        let mut e = MutableEthernetPacket::new(&mut v).unwrap();
        e.set_source(src);
        e.set_destination(MacAddr::broadcast());
        e.set_ethertype(ethertype);
        e.set_payload(payload);
        v
    }

    fn arp(
        op: pnet::packet::arp::ArpOperation,
        spa: Ipv4Addr,
        tpa: Ipv4Addr,
        tha: MacAddr,
    ) -> Vec<u8> {
        let mut v = vec![0u8; 28];
        let mut a = MutableArpPacket::new(&mut v).unwrap();
        a.set_hardware_type(ArpHardwareTypes::Ethernet);
        a.set_protocol_type(EtherTypes::Ipv4);
        a.set_hw_addr_len(6);
        a.set_proto_addr_len(4);
        a.set_operation(op);
        a.set_sender_hw_addr(GUEST);
        a.set_sender_proto_addr(spa);
        a.set_target_hw_addr(tha);
        a.set_target_proto_addr(tpa);
        v
    }

    #[test]
    fn learns_the_mac_from_ipv4_then_recognises_rarp() {
        let mut ip = vec![0u8; 20];
        let mut p = MutableIpv4Packet::new(&mut ip).unwrap();
        p.set_version(4);
        p.set_header_length(5);
        p.set_source(TARGET);
        let f = frame(EtherTypes::Ipv4, GUEST, &ip);
        assert_eq!(classify(&f, TARGET, None), Some(Seen::Mac(GUEST)));
        assert_eq!(classify(&f, TARGET, Some(GUEST)), None);
        let rarp = frame(RARP, GUEST, &[0u8; 28]);
        assert_eq!(
            classify(&rarp, TARGET, Some(GUEST)),
            Some(Seen::Announce(AnnounceKind::Rarp, GUEST))
        );
        // RARP from a MAC we do not know is someone else's.
        assert_eq!(classify(&rarp, TARGET, None), None);
    }

    #[test]
    fn gratuitous_arp_is_an_announce_and_ordinary_arp_teaches_the_mac() {
        let garp = frame(
            EtherTypes::Arp,
            GUEST,
            &arp(ArpOperations::Request, TARGET, TARGET, MacAddr::zero()),
        );
        assert_eq!(
            classify(&garp, TARGET, None),
            Some(Seen::Announce(AnnounceKind::Garp, GUEST))
        );
        let who_has = frame(
            EtherTypes::Arp,
            GUEST,
            &arp(
                ArpOperations::Request,
                TARGET,
                Ipv4Addr::new(198, 18, 0, 1),
                MacAddr::zero(),
            ),
        );
        assert_eq!(classify(&who_has, TARGET, None), Some(Seen::Mac(GUEST)));
        let other = frame(
            EtherTypes::Arp,
            GUEST,
            &arp(
                ArpOperations::Request,
                Ipv4Addr::new(198, 18, 0, 9),
                Ipv4Addr::new(198, 18, 0, 9),
                MacAddr::zero(),
            ),
        );
        assert_eq!(classify(&other, TARGET, None), None);
        for n in 0..garp.len() {
            let _ = classify(&garp[..n], TARGET, None);
        }
    }

    #[test]
    fn an_announce_of_another_mac_names_the_one_learned_before() {
        const NEW: MacAddr = MacAddr(0x02, 0x6d, 0x77, 0x0e, 0x0e, 0x01);
        let mut ip = vec![0u8; 20];
        let mut p = MutableIpv4Packet::new(&mut ip).unwrap();
        p.set_version(4);
        p.set_header_length(5);
        p.set_source(TARGET);
        let reply = frame(EtherTypes::Ipv4, GUEST, &ip);
        let watched = |a: Ipv4Addr| a == TARGET;
        let mut l = Learned::default();
        // Nothing learned yet: an announce is just an announce.
        let garp_body = arp(ArpOperations::Request, TARGET, TARGET, MacAddr::zero());
        let garp = frame(EtherTypes::Arp, GUEST, &garp_body);
        let heard = l.frame(&garp, watched).unwrap();
        assert_eq!((heard.mac, heard.previous), (GUEST, None));
        assert_eq!(l.frame(&reply, watched), None);
        assert_eq!(l.mac_of(TARGET), Some(GUEST));
        // The same MAC again (a live migration keeps it): no previous.
        assert_eq!(l.frame(&garp, watched).unwrap().previous, None);
        // A new machine at the address: its GARP names the old MAC once.
        let mut body = garp_body.clone();
        MutableArpPacket::new(&mut body)
            .unwrap()
            .set_sender_hw_addr(NEW);
        let new_garp = frame(EtherTypes::Arp, NEW, &body);
        let heard = l.frame(&new_garp, watched).unwrap();
        assert_eq!((heard.mac, heard.previous), (NEW, Some(GUEST)));
        assert_eq!(l.mac_of(TARGET), Some(NEW));
        assert_eq!(l.frame(&new_garp, watched).unwrap().previous, None);
        // Its RARP is recognised now; the old MAC's is no longer ours.
        assert!(l.frame(&frame(RARP, NEW, &[0u8; 28]), watched).is_some());
        assert_eq!(l.frame(&frame(RARP, GUEST, &[0u8; 28]), watched), None);
        // An address nobody watches teaches nothing.
        assert_eq!(l.frame(&garp, |_| false), None);
    }
}
