//! `mw-responder`: an ICMP echo responder with scripted impairments, run
//! inside a test namespace (whose kernel echo replies are switched off) so
//! tests can produce exact outages, late replies, pauses, migration-like
//! signatures and forged replies.
//!
//! It reads commands on stdin, one per line, and answers `ok` on stdout once
//! a command is in force, so a test can wait for that instead of sleeping:
//! * `normal`: answer every request at once
//! * `blackout MS`: drop every request for MS ms
//! * `pause MS`: hold every request for MS ms, then answer them all (a VM
//!   pause: late, not lost)
//! * `migrate MS`: a stop-and-copy of MS ms: drop requests, except the first
//!   one, which is answered at resume (a late reply); then answer the next
//!   50 ms of requests with a delay falling from 40 ms to 0 (the sawtooth)
//! * `forge`: from now on, also send a forged copy of each reply: one with
//!   a flipped payload byte (wrong cookie) and one with another identifier
//! * `quit`

use pnet::packet::icmp::echo_request::EchoRequestPacket;
use pnet::packet::icmp::{checksum, IcmpPacket, IcmpTypes, MutableIcmpPacket};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::Packet;
use pnet::transport::{
    icmp_packet_iter, transport_channel, TransportChannelType, TransportProtocol, TransportSender,
};
use std::collections::BinaryHeap;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    Blackout { until: Instant },
    Pause { until: Instant },
    Migrate { resume: Instant, held_one: bool },
}

/// A reply due at a time: (when, tie-breaker, bytes, to whom).
type Due = std::cmp::Reverse<(Instant, u64, Vec<u8>, IpAddr)>;

struct State {
    mode: Mode,
    forge: bool,
    /// Replies waiting for their send time (min-heap by time).
    queue: BinaryHeap<Due>,
    /// The sawtooth after a migration: (start, end).
    sawtooth: Option<(Instant, Instant)>,
    counter: u64,
}

fn reply_from(request: &[u8]) -> Option<Vec<u8>> {
    let req = EchoRequestPacket::new(request)?;
    if req.get_icmp_type() != IcmpTypes::EchoRequest {
        return None;
    }
    let mut out = request.to_vec();
    let mut icmp = MutableIcmpPacket::new(&mut out)?;
    icmp.set_icmp_type(IcmpTypes::EchoReply);
    icmp.set_checksum(0);
    let sum = checksum(&icmp.to_immutable());
    icmp.set_checksum(sum);
    Some(out)
}

fn refresh_checksum(p: &mut [u8]) {
    if let Some(mut icmp) = MutableIcmpPacket::new(p) {
        icmp.set_checksum(0);
        let sum = checksum(&icmp.to_immutable());
        icmp.set_checksum(sum);
    }
}

fn forgeries(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut wrong_cookie = reply.to_vec();
    if wrong_cookie.len() > 8 {
        wrong_cookie[8] ^= 0x5a;
    }
    refresh_checksum(&mut wrong_cookie);
    let mut wrong_ident = reply.to_vec();
    if wrong_ident.len() > 5 {
        wrong_ident[4] ^= 0xff;
    }
    refresh_checksum(&mut wrong_ident);
    vec![wrong_cookie, wrong_ident]
}

fn send(tx: &Mutex<TransportSender>, bytes: &[u8], to: IpAddr) {
    if let (Some(p), Ok(mut tx)) = (IcmpPacket::new(bytes), tx.lock()) {
        let _ = tx.send_to(p, to);
    }
}

fn main() {
    let kind = TransportChannelType::Layer4(TransportProtocol::Ipv4(IpNextHeaderProtocols::Icmp));
    let (tx, mut rx) = match transport_channel(1 << 16, kind) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mw-responder: cannot open a raw ICMP socket: {e} (needs root)");
            std::process::exit(1);
        }
    };
    let tx = Arc::new(Mutex::new(tx));
    let state = Arc::new((
        Mutex::new(State {
            mode: Mode::Normal,
            forge: false,
            queue: BinaryHeap::new(),
            sawtooth: None,
            counter: 0,
        }),
        Condvar::new(),
    ));

    // Sender of delayed replies.
    {
        let (state, tx) = (state.clone(), tx.clone());
        std::thread::spawn(move || {
            let (lock, cv) = &*state;
            let Ok(mut st) = lock.lock() else { return };
            loop {
                let now = Instant::now();
                let next = st.queue.peek().map(|r| r.0 .0);
                match next {
                    Some(t) if t <= now => {
                        if let Some(std::cmp::Reverse((_, _, bytes, to))) = st.queue.pop() {
                            send(&tx, &bytes, to);
                        }
                    }
                    Some(t) => match cv.wait_timeout(st, t - now) {
                        Ok((g, _)) => st = g,
                        Err(_) => return,
                    },
                    None => match cv.wait(st) {
                        Ok(g) => st = g,
                        Err(_) => return,
                    },
                }
            }
        });
    }

    // Receiver: every echo request, answered per the mode in force.
    {
        let (state, tx) = (state.clone(), tx.clone());
        std::thread::spawn(move || {
            let mut it = icmp_packet_iter(&mut rx);
            loop {
                let Ok((packet, from)) = it.next() else {
                    continue;
                };
                let Some(reply) = reply_from(packet.packet()) else {
                    continue;
                };
                let now = Instant::now();
                let (lock, cv) = &*state;
                let Ok(mut st) = lock.lock() else { return };
                let mut delay = None; // None: drop
                match st.mode {
                    Mode::Normal => delay = Some(Duration::ZERO),
                    Mode::Blackout { until } if now < until => {}
                    Mode::Pause { until } if now < until => delay = Some(until - now),
                    Mode::Migrate { resume, held_one } if now < resume => {
                        if !held_one {
                            st.mode = Mode::Migrate {
                                resume,
                                held_one: true,
                            };
                            delay = Some(resume - now);
                        }
                    }
                    _ => {
                        if let Mode::Migrate { resume, .. } = st.mode {
                            st.sawtooth = Some((resume, resume + Duration::from_millis(50)));
                        }
                        st.mode = Mode::Normal;
                        delay = Some(Duration::ZERO);
                    }
                }
                if let (Some(d), Some((s, e))) = (delay, st.sawtooth) {
                    if now < e {
                        // Falls from 40 ms at resume to 0 at the end.
                        let left = (e - now).as_secs_f64() / (e - s).as_secs_f64();
                        delay = Some(d + Duration::from_secs_f64(0.040 * left));
                    } else {
                        st.sawtooth = None;
                    }
                }
                let Some(d) = delay else { continue };
                let mut out = vec![reply.clone()];
                if st.forge {
                    out.extend(forgeries(&reply));
                }
                if d.is_zero() {
                    drop(st);
                    for b in out {
                        send(&tx, &b, from);
                    }
                } else {
                    for b in out {
                        st.counter += 1;
                        let c = st.counter;
                        st.queue.push(std::cmp::Reverse((now + d, c, b, from)));
                    }
                    cv.notify_all();
                }
            }
        });
    }

    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let ms = words
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .map(Duration::from_millis);
        let now = Instant::now();
        let (lock, _) = &*state;
        let Ok(mut st) = lock.lock() else { break };
        let ok = match (cmd, ms) {
            ("normal", _) => {
                st.mode = Mode::Normal;
                true
            }
            ("blackout", Some(d)) => {
                st.mode = Mode::Blackout { until: now + d };
                true
            }
            ("pause", Some(d)) => {
                st.mode = Mode::Pause { until: now + d };
                true
            }
            ("migrate", Some(d)) => {
                st.mode = Mode::Migrate {
                    resume: now + d,
                    held_one: false,
                };
                true
            }
            ("forge", _) => {
                st.forge = true;
                true
            }
            ("quit", _) => break,
            _ => false,
        };
        drop(st);
        let mut out = stdout.lock();
        let _ = writeln!(out, "{}", if ok { "ok" } else { "error: unknown command" });
        let _ = out.flush();
    }
}
