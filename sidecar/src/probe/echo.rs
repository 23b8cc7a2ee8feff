//! Echo requests and replies: building a probe and verifying that a reply
//! answers one of ours (source, identifier, sequence, cookie, checksum).

use super::socket::RunKeys;
use pnet::packet::icmp::echo_reply::EchoReplyPacket;
use pnet::packet::icmp::echo_request::MutableEchoRequestPacket;
use pnet::packet::icmp::{checksum, IcmpPacket, IcmpTypes, MutableIcmpPacket};
use pnet::packet::ipv4::Ipv4Packet;
use pnet::packet::{MutablePacket, Packet};
use std::net::Ipv4Addr;

/// Echo payload size, as `ping`'s default, so RTTs compare like for like.
pub const PAYLOAD_LEN: usize = 56;
/// Bytes of the payload we use: cookie, 64-bit seq, send time.
pub const STAMP_LEN: usize = 24;

/// Builds echo request `seq` into `buf` (8 header bytes + payload).
pub fn build_request(buf: &mut [u8; 8 + PAYLOAD_LEN], keys: RunKeys, seq: u64, sent_ns: u64) {
    buf.fill(0);
    {
        // The buffer is exactly the packet's size, so this cannot fail.
        let Some(mut p) = MutableEchoRequestPacket::new(&mut buf[..]) else {
            return;
        };
        p.set_icmp_type(IcmpTypes::EchoRequest);
        p.set_identifier(keys.ident);
        p.set_sequence_number(seq as u16);
        let payload = p.payload_mut();
        payload[0..8].copy_from_slice(&keys.cookie.to_be_bytes());
        payload[8..16].copy_from_slice(&seq.to_be_bytes());
        payload[16..24].copy_from_slice(&sent_ns.to_be_bytes());
    }
    // A raw IPv4 socket does not fill in the ICMP checksum: with 0, every
    // probe is dropped.
    if let Some(mut icmp) = MutableIcmpPacket::new(&mut buf[..]) {
        let sum = checksum(&icmp.to_immutable());
        icmp.set_checksum(sum);
    }
}

/// Why a received packet is not a reply to one of our probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not a well-formed IPv4 + ICMP packet.
    Malformed,
    /// From some host other than the target.
    OtherSource,
    /// An ICMP type other than echo reply.
    NotEchoReply,
    /// An echo reply for another identifier (another pinger on this host).
    OtherIdent,
    /// Our identifier but not our cookie, seq or checksum: forged or stale.
    BadPayload,
}

/// A verified echo reply to one of our probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    /// Full 64-bit sequence number.
    pub seq: u64,
}

/// Checks a packet read from the raw socket (IPv4 header included).
pub fn match_reply(packet: &[u8], target: Ipv4Addr, keys: RunKeys) -> Result<Matched, Reject> {
    let ip = Ipv4Packet::new(packet).ok_or(Reject::Malformed)?;
    let hlen = usize::from(ip.get_header_length()) * 4;
    if ip.get_version() != 4 || hlen < 20 || hlen > packet.len() {
        return Err(Reject::Malformed);
    }
    if ip.get_source() != target {
        return Err(Reject::OtherSource);
    }
    let end = usize::from(ip.get_total_length()).clamp(hlen, packet.len());
    let body = &packet[hlen..end];
    let icmp = IcmpPacket::new(body).ok_or(Reject::Malformed)?;
    if icmp.get_icmp_type() != IcmpTypes::EchoReply {
        return Err(Reject::NotEchoReply);
    }
    let echo = EchoReplyPacket::new(body).ok_or(Reject::Malformed)?;
    if echo.get_identifier() != keys.ident {
        return Err(Reject::OtherIdent);
    }
    let payload = echo.payload();
    if payload.len() < STAMP_LEN || checksum(&icmp) != icmp.get_checksum() {
        return Err(Reject::BadPayload);
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let seq = word(8);
    if word(0) != keys.cookie || seq as u16 != echo.get_sequence_number() {
        return Err(Reject::BadPayload);
    }
    Ok(Matched { seq })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet::packet::ip::IpNextHeaderProtocols;
    use pnet::packet::ipv4::MutableIpv4Packet;

    const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const KEYS: RunKeys = RunKeys {
        ident: 0xbeef,
        cookie: 0x0123_4567_89ab_cdef,
    };

    /// Wraps an ICMP message in an IPv4 header, as the raw socket sees it.
    fn ip_wrap(src: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 20 + icmp.len()];
        let mut ip = MutableIpv4Packet::new(&mut v).unwrap();
        ip.set_version(4);
        ip.set_header_length(5);
        ip.set_total_length((20 + icmp.len()) as u16);
        ip.set_source(src);
        ip.set_next_level_protocol(IpNextHeaderProtocols::Icmp);
        ip.set_payload(icmp);
        v
    }

    /// The reply a well-behaved target sends to our request `seq`.
    fn reply_to(seq: u64, keys: RunKeys) -> Vec<u8> {
        let mut buf = [0u8; 8 + PAYLOAD_LEN];
        build_request(&mut buf, keys, seq, 42);
        let mut icmp = MutableIcmpPacket::new(&mut buf[..]).unwrap();
        icmp.set_icmp_type(IcmpTypes::EchoReply);
        icmp.set_checksum(0);
        let sum = checksum(&icmp.to_immutable());
        icmp.set_checksum(sum);
        ip_wrap(TARGET, &buf)
    }

    #[test]
    fn request_has_valid_checksum_and_carries_seq() {
        let mut buf = [0u8; 8 + PAYLOAD_LEN];
        build_request(&mut buf, KEYS, 70_000, 1);
        let icmp = IcmpPacket::new(&buf).unwrap();
        assert_eq!(checksum(&icmp), icmp.get_checksum());
        assert_ne!(icmp.get_checksum(), 0);
        let echo = EchoReplyPacket::new(&buf).unwrap();
        assert_eq!(echo.get_sequence_number(), (70_000u64 & 0xffff) as u16);
        assert_eq!(echo.get_identifier(), KEYS.ident);
    }

    #[test]
    fn our_reply_matches_with_its_64_bit_seq() {
        assert_eq!(
            match_reply(&reply_to(70_000, KEYS), TARGET, KEYS),
            Ok(Matched { seq: 70_000 })
        );
    }

    #[test]
    fn foreign_packets_are_rejected() {
        let p = reply_to(5, KEYS);
        assert_eq!(
            match_reply(&p, Ipv4Addr::new(198, 18, 0, 9), KEYS),
            Err(Reject::OtherSource)
        );
        let other_ident = RunKeys { ident: 1, ..KEYS };
        assert_eq!(
            match_reply(&reply_to(5, other_ident), TARGET, KEYS),
            Err(Reject::OtherIdent)
        );
        let other_cookie = RunKeys { cookie: 7, ..KEYS };
        assert_eq!(
            match_reply(&reply_to(5, other_cookie), TARGET, KEYS),
            Err(Reject::BadPayload)
        );
        // Our own request echoed back (as on loopback) is not a reply.
        let mut req = [0u8; 8 + PAYLOAD_LEN];
        build_request(&mut req, KEYS, 5, 1);
        assert_eq!(
            match_reply(&ip_wrap(TARGET, &req), TARGET, KEYS),
            Err(Reject::NotEchoReply)
        );
        // A flipped payload byte breaks the checksum.
        let mut bad = reply_to(5, KEYS);
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        assert_eq!(match_reply(&bad, TARGET, KEYS), Err(Reject::BadPayload));
    }

    #[test]
    fn truncated_and_garbage_packets_never_panic() {
        let p = reply_to(5, KEYS);
        for n in 0..p.len() {
            let _ = match_reply(&p[..n], TARGET, KEYS);
        }
        let mut x: u32 = 1;
        for _ in 0..2000 {
            let v: Vec<u8> = (0..(x % 100))
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = match_reply(&v, TARGET, KEYS);
        }
    }

    proptest::proptest! {
        /// Any bytes at all: no panic, and nothing without our cookie matches.
        #[test]
        fn arbitrary_packets_never_panic_or_match(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let r = match_reply(&bytes, TARGET, KEYS);
            if let Ok(m) = r {
                // Only possible if the bytes carry our exact cookie and seq.
                let ours = reply_to(m.seq, KEYS);
                proptest::prop_assert!(bytes.len() >= 20 + 8 + STAMP_LEN);
                proptest::prop_assert_eq!(&bytes[28..36], &ours[28..36]);
            }
        }

        /// A valid reply with any single byte changed in the ICMP part is
        /// either rejected or still names the same probe.
        #[test]
        fn one_byte_mutations_are_rejected_or_harmless(seq in 0u64..1_000_000, pos in 20usize..84, flip in 1u8..=255) {
            let mut p = reply_to(seq, KEYS);
            p[pos] ^= flip;
            if let Ok(m) = match_reply(&p, TARGET, KEYS) {
                proptest::prop_assert_eq!(m.seq, seq);
            }
        }
    }
}
