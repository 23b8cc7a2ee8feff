//! L2 announce capture: after a live migration the destination hypervisor
//! announces the guest's MAC (QEMU sends RARP frames) and the guest sends
//! gratuitous ARPs, so switches learn its new port. A monitor on the same
//! segment sees them through a packet socket (pnet datalink), not through
//! its IP stack.
//!
//! The target's MAC is learned from the frames themselves: any IPv4 frame or
//! ARP from the target's address names it (our echo replies do, within the
//! first probe interval).

use crate::targets::{Fleet, Target};
use migwatch_shared::wire::{Announce, AnnounceKind as WireKind, Event, Mac};
use pnet::datalink::{self, Channel, Config, DataLinkReceiver, NetworkInterface};
use pnet::packet::arp::{ArpOperations, ArpPacket};
use pnet::packet::ethernet::{EtherType, EtherTypes, EthernetPacket};
use pnet::packet::ipv4::Ipv4Packet;
use pnet::packet::Packet;
use pnet::util::MacAddr;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Why capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No such interface.
    #[error("no network interface named {name:?}; pick one of: {known}")]
    NoInterface {
        /// Asked for.
        name: String,
        /// What exists.
        known: String,
    },
    /// Opening the packet socket failed.
    #[error("cannot capture on {name}: {source} (needs root or CAP_NET_RAW)")]
    Open {
        /// Interface.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// pnet gave a channel type we cannot read.
    #[error("interface {0} is not an Ethernet-like interface")]
    NotEthernet(String),
}

/// An open, read-only capture on one interface.
pub struct Capture {
    /// The receiving half; the sending half is dropped at once.
    pub rx: Box<dyn DataLinkReceiver>,
    /// The interface's name.
    pub iface: String,
}

/// Opens a packet socket on `name` (before the privilege drop). Not
/// promiscuous: the announces are broadcasts, and our own replies are
/// addressed to us.
pub fn open(name: &str) -> Result<Capture, CaptureError> {
    let all = datalink::interfaces();
    let iface: NetworkInterface =
        all.iter()
            .find(|i| i.name == name)
            .cloned()
            .ok_or_else(|| CaptureError::NoInterface {
                name: name.into(),
                known: all
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    let cfg = Config {
        read_timeout: Some(std::time::Duration::from_millis(100)),
        promiscuous: false,
        ..Config::default()
    };
    match datalink::channel(&iface, cfg) {
        Ok(Channel::Ethernet(_tx, rx)) => Ok(Capture {
            rx,
            iface: name.into(),
        }),
        Ok(_) => Err(CaptureError::NotEthernet(name.into())),
        Err(source) => Err(CaptureError::Open {
            name: name.into(),
            source,
        }),
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

/// Reads frames until `stop`, emitting an `announce` event for each
/// announce of any target in `fleet` (looked up per frame, so targets
/// added by a reload are watched at once). Runs on its own thread: pnet's
/// receive blocks. A target's MAC is learned from its own frames; a new
/// MAC at the same address (a new VM there) replaces the old one.
pub fn start(
    mut cap: Capture,
    fleet: Arc<Fleet>,
    out: SyncSender<(Arc<Target>, Event)>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let mut mac_of: HashMap<Ipv4Addr, MacAddr> = HashMap::new();
            let mut mac_owner: HashMap<MacAddr, Ipv4Addr> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let frame = match cap.rx.next() {
                    Ok(f) => f,
                    // The read timeout: check `stop` again.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(e) => {
                        tracing::error!("capture on {} failed: {e}", cap.iface);
                        return;
                    }
                };
                let Some(addr) = about(frame, &mac_owner) else {
                    continue;
                };
                let Some(target) = fleet.by_address(addr) else {
                    continue;
                };
                match classify(frame, addr, mac_of.get(&addr).copied()) {
                    Some(Seen::Mac(m)) => {
                        if let Some(old) = mac_of.insert(addr, m) {
                            mac_owner.remove(&old);
                        }
                        mac_owner.insert(m, addr);
                    }
                    Some(Seen::Announce(kind, m)) => {
                        let at_us = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .map_or(0, |d| d.as_micros() as i64);
                        let kind = match kind {
                            AnnounceKind::Rarp => WireKind::Rarp,
                            AnnounceKind::Garp => WireKind::Garp,
                        };
                        // Never blocks: a full channel drops the event.
                        let _ = out.try_send((
                            target,
                            Event::Announce(Announce {
                                at_us,
                                kind,
                                mac: Mac(m.octets()),
                            }),
                        ));
                    }
                    None => {}
                }
            }
        })
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
}
