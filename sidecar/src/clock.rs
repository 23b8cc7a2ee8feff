//! ICMP Timestamp probes (RFC 792 types 13/14): reading the target's clock.
//!
//! A live migration stops the guest's clock for the stop-and-copy, so after
//! resume the guest lags by the downtime. The target answers a timestamp
//! request with its own "receive" and "transmit" times in milliseconds since
//! midnight UTC; comparing them with our send and receive times gives the
//! offset of its clock from ours, to about a millisecond.

use pnet::packet::icmp::{checksum, IcmpPacket, IcmpTypes, MutableIcmpPacket};
use pnet::packet::ipv4::Ipv4Packet;
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Size of a timestamp message: 8 header bytes and three 32-bit times.
pub const LEN: usize = 20;
/// Milliseconds in a day: the timestamps wrap at midnight UTC.
const DAY_MS: i64 = 86_400_000;

/// Milliseconds since midnight UTC of `t`, as ICMP timestamps count.
pub fn ms_since_midnight(t: SystemTime) -> u32 {
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    (ms % DAY_MS as u128) as u32
}

/// Builds timestamp request `seq` (wire seq is its low 16 bits) with our
/// originate time.
pub fn build_request(buf: &mut [u8; LEN], ident: u16, seq: u64, originate_ms: u32) {
    buf.fill(0);
    buf[0] = IcmpTypes::Timestamp.0;
    buf[4..6].copy_from_slice(&ident.to_be_bytes());
    buf[6..8].copy_from_slice(&(seq as u16).to_be_bytes());
    buf[8..12].copy_from_slice(&originate_ms.to_be_bytes());
    if let Some(mut icmp) = MutableIcmpPacket::new(&mut buf[..]) {
        let sum = checksum(&icmp.to_immutable());
        icmp.set_checksum(sum);
    }
}

/// A timestamp reply, as parsed from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Its 16-bit sequence number.
    pub seq16: u16,
    /// Our originate time, echoed back.
    pub originate_ms: u32,
    /// The target's clock when the request arrived.
    pub receive_ms: u32,
    /// The target's clock when the reply left.
    pub transmit_ms: u32,
}

/// Parses a timestamp reply from the target with our identifier, from a
/// packet read on the raw socket (IPv4 header included).
pub fn parse_reply(packet: &[u8], target: Ipv4Addr, ident: u16) -> Option<Reply> {
    let ip = Ipv4Packet::new(packet)?;
    let hlen = usize::from(ip.get_header_length()) * 4;
    if ip.get_version() != 4 || hlen < 20 || hlen > packet.len() || ip.get_source() != target {
        return None;
    }
    let end = usize::from(ip.get_total_length()).clamp(hlen, packet.len());
    let body = &packet[hlen..end];
    let icmp = IcmpPacket::new(body)?;
    if icmp.get_icmp_type() != IcmpTypes::TimestampReply
        || body.len() < LEN
        || checksum(&icmp) != icmp.get_checksum()
    {
        return None;
    }
    let u16_at = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    if u16_at(4) != ident {
        return None;
    }
    Some(Reply {
        seq16: u16_at(6),
        originate_ms: u32_at(8),
        receive_ms: u32_at(12),
        transmit_ms: u32_at(16),
    })
}

/// `a - b` for times of day, folded into (−12 h, +12 h] so that a pair on
/// either side of midnight still differs by a little.
pub fn day_diff(a: i64, b: i64) -> i64 {
    let d = (a - b).rem_euclid(DAY_MS);
    if d > DAY_MS / 2 {
        d - DAY_MS
    } else {
        d
    }
}

/// The target clock's offset from ours in ms (positive: it runs ahead),
/// from our send and receive times (µs since the epoch) and its receive and
/// transmit times, as the midpoint estimate of NTP. `None` for
/// non-standard timestamps (high bit set: RFC 792's escape for clocks that
/// are not UTC milliseconds).
pub fn offset_ms(sent_us: i64, recv_us: i64, reply: &Reply) -> Option<f64> {
    if reply.receive_ms & 0x8000_0000 != 0 || reply.transmit_ms & 0x8000_0000 != 0 {
        return None;
    }
    let to_day_ms = |us: i64| us.div_euclid(1000).rem_euclid(DAY_MS);
    let there = day_diff(i64::from(reply.receive_ms), to_day_ms(sent_us));
    let back = day_diff(i64::from(reply.transmit_ms), to_day_ms(recv_us));
    Some((there + back) as f64 / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet::packet::ip::IpNextHeaderProtocols;
    use pnet::packet::ipv4::MutableIpv4Packet;

    const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn reply_packet(ident: u16, seq: u16, o: u32, r: u32, t: u32) -> Vec<u8> {
        let mut icmp = [0u8; LEN];
        build_request(&mut icmp, ident, u64::from(seq), o);
        icmp[0] = IcmpTypes::TimestampReply.0;
        icmp[12..16].copy_from_slice(&r.to_be_bytes());
        icmp[16..20].copy_from_slice(&t.to_be_bytes());
        icmp[2] = 0;
        icmp[3] = 0;
        let sum = checksum(&IcmpPacket::new(&icmp).unwrap());
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut v = vec![0u8; 20 + LEN];
        let mut ip = MutableIpv4Packet::new(&mut v).unwrap();
        ip.set_version(4);
        ip.set_header_length(5);
        ip.set_total_length((20 + LEN) as u16);
        ip.set_source(TARGET);
        ip.set_next_level_protocol(IpNextHeaderProtocols::Icmp);
        ip.set_payload(&icmp);
        v
    }

    #[test]
    fn parses_our_replies_only() {
        let p = reply_packet(7, 3, 1000, 1500, 1501);
        assert_eq!(
            parse_reply(&p, TARGET, 7),
            Some(Reply {
                seq16: 3,
                originate_ms: 1000,
                receive_ms: 1500,
                transmit_ms: 1501
            })
        );
        assert_eq!(parse_reply(&p, TARGET, 8), None);
        assert_eq!(parse_reply(&p, Ipv4Addr::new(198, 18, 0, 3), 7), None);
        let mut bad = p.clone();
        bad[30] ^= 1;
        assert_eq!(parse_reply(&bad, TARGET, 7), None);
        for n in 0..p.len() {
            let _ = parse_reply(&p[..n], TARGET, 7);
        }
    }

    #[test]
    fn offset_is_the_midpoint_estimate_and_survives_midnight() {
        // Sent at 10:00:00.000, received back at .002; the target's clock
        // said 09:59:59.501 on both: it lags by 500 ms.
        let day0 = 1_700_006_400_000_000i64; // a UTC midnight, in µs
        let ten = day0 + 36_000_000_000;
        let r = Reply {
            seq16: 0,
            originate_ms: 0,
            receive_ms: 35_999_501,
            transmit_ms: 35_999_501,
        };
        assert_eq!(offset_ms(ten, ten + 2_000, &r), Some(-500.0));
        // Across midnight: we are at 00:00:00.100, the target at 23:59:59.900.
        let r = Reply {
            receive_ms: 86_399_900,
            transmit_ms: 86_399_900,
            ..r
        };
        assert_eq!(offset_ms(day0 + 100_000, day0 + 100_000, &r), Some(-200.0));
        // Non-standard timestamps are not a clock reading.
        let r = Reply {
            receive_ms: 0x8000_0001,
            ..r
        };
        assert_eq!(offset_ms(day0, day0, &r), None);
    }

    #[test]
    fn day_diff_folds() {
        assert_eq!(day_diff(10, 86_399_990), 20);
        assert_eq!(day_diff(86_399_990, 10), -20);
        assert_eq!(day_diff(500, 200), 300);
    }
}
