//! The sidecar's reply parsers on raw bytes from the socket:
//! `migwatch_sidecar::probe::match_reply` (echo) and
//! `migwatch_sidecar::clock::parse_reply` (timestamp). No packet may panic
//! them; and a genuine reply built from our own request (keys, seq and
//! times taken from the input) must be matched to exactly that probe.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migwatch_sidecar::clock;
use migwatch_sidecar::probe::{build_request, match_reply, Matched, RunKeys, PAYLOAD_LEN};
use std::net::Ipv4Addr;

/// The Internet checksum (RFC 1071) of `b`.
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `icmp` behind a 20-byte IPv4 header from `src`.
fn ipv4(src: Ipv4Addr, icmp: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
    p[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&[198, 18, 0, 1]);
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(icmp);
    p
}

/// A little-endian u64 from up to 8 bytes at `at`.
fn word(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, v) in data.iter().skip(at).take(8).enumerate() {
        b[i] = *v;
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let keys = RunKeys {
        ident: word(data, 0) as u16,
        cookie: word(data, 2),
    };
    let packet = data.get(10..).unwrap_or(&[]);
    // The target is the packet's own source half the time, so the fuzzer
    // gets past the source check without guessing it.
    let target = match (keys.ident & 1, packet.get(12..16)) {
        (1, Some(s)) => Ipv4Addr::new(s[0], s[1], s[2], s[3]),
        _ => Ipv4Addr::new(198, 18, 0, 2),
    };
    // Whatever is accepted carries the wire seq where the ICMP header
    // (after the IPv4 header and its options) says.
    let wire_seq = || {
        let at = usize::from(packet[0] & 0xf) * 4 + 6;
        u16::from_be_bytes([packet[at], packet[at + 1]])
    };
    if let Ok(m) = match_reply(packet, target, keys) {
        assert_eq!(m.seq as u16, wire_seq());
    }
    if let Some(r) = clock::parse_reply(packet, target, keys.ident) {
        assert_eq!(r.seq16, wire_seq());
    }

    // A genuine echo reply to our own request.
    let (seq, sent_ns) = (word(data, 10), word(data, 18));
    let mut req = [0u8; 8 + PAYLOAD_LEN];
    build_request(&mut req, keys, seq, sent_ns);
    let mut reply = req;
    reply[0] = 0;
    reply[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(&reply);
    reply[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(
        match_reply(&ipv4(target, &reply), target, keys),
        Ok(Matched { seq })
    );
    // Another source, another identifier or another cookie: not ours.
    let other = Ipv4Addr::from(u32::from(target) ^ 1);
    assert!(match_reply(&ipv4(other, &reply), target, keys).is_err());
    let forged = RunKeys {
        cookie: keys.cookie ^ 1,
        ..keys
    };
    assert!(match_reply(&ipv4(target, &reply), target, forged).is_err());

    // A genuine timestamp reply to our own request.
    let originate = (word(data, 26) % 86_400_000) as u32;
    let (recv, xmit) = (word(data, 30) as u32, word(data, 34) as u32);
    let mut treq = [0u8; clock::LEN];
    clock::build_request(&mut treq, keys.ident, seq, originate);
    let mut trep = treq;
    trep[0] = 14;
    trep[2..4].copy_from_slice(&[0, 0]);
    trep[12..16].copy_from_slice(&recv.to_be_bytes());
    trep[16..20].copy_from_slice(&xmit.to_be_bytes());
    let sum = checksum(&trep);
    trep[2..4].copy_from_slice(&sum.to_be_bytes());
    let got = clock::parse_reply(&ipv4(target, &trep), target, keys.ident)
        .expect("our own timestamp reply");
    assert_eq!(
        (got.seq16, got.originate_ms, got.receive_ms, got.transmit_ms),
        (seq as u16, originate, recv, xmit)
    );
});
