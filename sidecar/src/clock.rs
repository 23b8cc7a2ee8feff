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

/// Microseconds in a day.
const DAY_US: i64 = DAY_MS * 1000;

/// `a - b` for times of day in µs, folded into (−12 h, +12 h] so that a
/// pair on either side of midnight still differs by a little.
pub fn day_diff_us(a: i64, b: i64) -> i64 {
    let d = (a - b).rem_euclid(DAY_US);
    if d > DAY_US / 2 {
        d - DAY_US
    } else {
        d
    }
}

/// The target clock's offset from ours in µs (positive: it runs ahead),
/// from our send and receive times (µs since the epoch) and its receive and
/// transmit times, as the midpoint estimate of NTP. `None` for
/// non-standard timestamps (high bit set: RFC 792's escape for clocks that
/// are not UTC milliseconds).
///
/// The target reads whole milliseconds (its true time is somewhere in
/// `[ms, ms + 1)`), so its readings are centred with +500 µs, while our own
/// times keep their µs: with the send phase dithered against the target's
/// millisecond edges, the quantisation averages out over a few replies
/// instead of biasing every reading the same way.
pub fn offset_us(sent_us: i64, recv_us: i64, reply: &Reply) -> Option<i64> {
    if reply.receive_ms & 0x8000_0000 != 0 || reply.transmit_ms & 0x8000_0000 != 0 {
        return None;
    }
    let there_us = |ms: u32| i64::from(ms) * 1000 + 500;
    let day_us = |us: i64| us.rem_euclid(DAY_US);
    let there = day_diff_us(there_us(reply.receive_ms), day_us(sent_us));
    let back = day_diff_us(there_us(reply.transmit_ms), day_us(recv_us));
    Some((there + back) / 2)
}

/// A pseudo-random delay in `[0, 1000)` µs for timestamp probe `j`: it moves
/// each send to a different phase of the target's millisecond, which is
/// what lets the quantisation of its readings average out.
pub fn dither_us(j: u64, key: u64) -> u64 {
    // splitmix64: cheap, and well mixed for consecutive inputs.
    let mut z = j.wrapping_add(key).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % 1000
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
        // Centred in its millisecond: 09:59:59.5015 against our midpoint
        // 10:00:00.001.
        assert_eq!(offset_us(ten, ten + 2_000, &r), Some(-499_500));
        // Across midnight: we are at 00:00:00.100, the target at 23:59:59.900.
        let r = Reply {
            receive_ms: 86_399_900,
            transmit_ms: 86_399_900,
            ..r
        };
        assert_eq!(
            offset_us(day0 + 100_000, day0 + 100_000, &r),
            Some(-199_500)
        );
        // Non-standard timestamps are not a clock reading.
        let r = Reply {
            receive_ms: 0x8000_0001,
            ..r
        };
        assert_eq!(offset_us(day0, day0, &r), None);
    }

    #[test]
    fn day_diff_folds() {
        assert_eq!(day_diff_us(10, DAY_US - 10), 20);
        assert_eq!(day_diff_us(DAY_US - 10, 10), -20);
        assert_eq!(day_diff_us(500, 200), 300);
    }

    #[test]
    fn quantisation_averages_out_with_dither() {
        // A target 12.3456 ms ahead, reading whole ms; 64 dithered probes
        // 200 ms apart with a 300 µs RTT.
        let truth = 12_345.6f64;
        let day0 = 1_700_006_400_000_000i64;
        let mut sum = 0i64;
        for j in 0..64u64 {
            let sent = day0 + 3_600_000_000 + j as i64 * 200_000 + dither_us(j, 77) as i64;
            let recv = sent + 300;
            let target_ms =
                |us: i64| (((us as f64 + truth) / 1000.0).floor() as i64 % DAY_MS) as u32;
            let r = Reply {
                seq16: j as u16,
                originate_ms: 0,
                receive_ms: target_ms(sent + 150),
                transmit_ms: target_ms(sent + 150),
            };
            sum += offset_us(sent, recv, &r).unwrap();
        }
        let mean = sum as f64 / 64.0;
        assert!(
            (mean - truth).abs() < 150.0,
            "mean offset {mean} vs {truth}"
        );
    }
}
