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
//!
//! Flags (all optional; without them it answers echo requests only):
//! * `--timestamps`: also answer ICMP Timestamp requests (type 13 → 14, ms
//!   since midnight UTC) from a *guest clock*: this host's clock, except
//!   that it stands still during each `migrate MS`, so afterwards it lags
//!   by the sum of those MS, as a migrated guest's does. Timestamp requests
//!   are dropped, held and delayed like echo requests (none is held across
//!   a migration). The namespace's kernel answers timestamps too: the test
//!   must drop its replies (an nft output rule that only lets replies from
//!   user-space sockets through, see `tests/e2e/app_common.rs`).
//! * `--announce-iface IF` (with optional `--mac MAC`, default IF's own,
//!   and `--ip ADDR`, default IF's first IPv4 address): after each migrate's
//!   resume, announce the guest on IF through a packet socket as QEMU and
//!   the guest do: 5 RARP frames from MAC (ethertype 0x8035) at 0, 50, 200,
//!   450 and 800 ms, and 5 gratuitous ARPs for ADDR at 20, 70, 170, 370 and
//!   770 ms.

use pnet::datalink::{self, Channel, DataLinkSender};
use pnet::packet::icmp::echo_request::EchoRequestPacket;
use pnet::packet::icmp::{checksum, IcmpPacket, IcmpTypes, MutableIcmpPacket};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::Packet;
use pnet::transport::{
    icmp_packet_iter, transport_channel, TransportChannelType, TransportProtocol, TransportSender,
};
use std::collections::BinaryHeap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// How far the guest clock is behind this host's: the sum of the
    /// migrations' stops.
    clock_lag: Duration,
}

/// What the responder was started with.
#[derive(Debug, Default)]
struct Opts {
    timestamps: bool,
    announce_iface: Option<String>,
    mac: Option<[u8; 6]>,
    ip: Option<Ipv4Addr>,
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut it = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(it.next()?, 16).ok()?;
    }
    it.next().is_none().then_some(out)
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--timestamps" => o.timestamps = true,
            "--announce-iface" => o.announce_iface = Some(val("--announce-iface")?),
            "--mac" => {
                let v = val("--mac")?;
                o.mac = Some(parse_mac(&v).ok_or(format!("{v:?} is not a MAC address"))?);
            }
            "--ip" => {
                let v = val("--ip")?;
                o.ip = Some(
                    v.parse()
                        .map_err(|_| format!("{v:?} is not an IPv4 address"))?,
                );
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(o)
}

/// Milliseconds since midnight UTC of this host's clock less `lag`, as ICMP
/// timestamps count.
fn guest_ms(lag: Duration, after: Duration) -> u32 {
    let t = SystemTime::now() + after - lag;
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    (ms % 86_400_000) as u32
}

/// The reply to a timestamp request: originate echoed, receive and
/// transmit from the guest clock (the transmit time `delay` later).
fn timestamp_reply(request: &[u8], lag: Duration, delay: Duration) -> Option<Vec<u8>> {
    let icmp = IcmpPacket::new(request)?;
    if icmp.get_icmp_type() != IcmpTypes::Timestamp || request.len() < 20 {
        return None;
    }
    let mut out = request[..20].to_vec();
    out[0] = IcmpTypes::TimestampReply.0;
    out[12..16].copy_from_slice(&guest_ms(lag, Duration::ZERO).to_be_bytes());
    out[16..20].copy_from_slice(&guest_ms(lag, delay).to_be_bytes());
    refresh_checksum(&mut out);
    Some(out)
}

/// The announcer: a packet socket on the guest's interface.
struct Announcer {
    tx: Box<dyn DataLinkSender>,
    mac: [u8; 6],
    ip: Ipv4Addr,
}

impl Announcer {
    fn open(o: &Opts) -> Result<Option<Announcer>, String> {
        let Some(name) = &o.announce_iface else {
            return Ok(None);
        };
        let iface = datalink::interfaces()
            .into_iter()
            .find(|i| &i.name == name)
            .ok_or(format!("no interface {name:?}"))?;
        let mac = o
            .mac
            .or(iface.mac.map(|m| m.octets()))
            .ok_or(format!("{name} has no MAC address: give --mac"))?;
        let ip =
            o.ip.or(iface.ips.iter().find_map(|n| match n.ip() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            }))
            .ok_or(format!("{name} has no IPv4 address: give --ip"))?;
        match datalink::channel(&iface, datalink::Config::default()) {
            Ok(Channel::Ethernet(tx, _rx)) => Ok(Some(Announcer { tx, mac, ip })),
            Ok(_) => Err(format!("{name} is not an Ethernet interface")),
            Err(e) => Err(format!("cannot open a packet socket on {name}: {e}")),
        }
    }

    /// A broadcast ARP-format frame: RARP (QEMU's self-announce: reverse
    /// request, sender and target hardware = MAC, no addresses) or a
    /// gratuitous ARP (request, sender and target address = IP).
    fn frame(&self, rarp: bool) -> Vec<u8> {
        let mut f = Vec::with_capacity(60);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(if rarp { &[0x80, 0x35] } else { &[0x08, 0x06] });
        f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, if rarp { 3 } else { 1 }]);
        let ip = if rarp { [0; 4] } else { self.ip.octets() };
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&ip);
        f.extend_from_slice(if rarp { &self.mac } else { &[0; 6] });
        f.extend_from_slice(&ip);
        f.resize(60, 0);
        f
    }

    /// The burst after a resume at `resume`: RARP and gratuitous ARPs, each
    /// sent when due (the sleeps are the schedule).
    fn burst(&mut self, resume: Instant) {
        let mut plan: Vec<(u64, bool)> = [0, 50, 200, 450, 800]
            .into_iter()
            .map(|ms| (ms, true))
            .chain([20, 70, 170, 370, 770].into_iter().map(|ms| (ms, false)))
            .collect();
        plan.sort_unstable();
        for (ms, rarp) in plan {
            let due = resume + Duration::from_millis(ms);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let f = self.frame(rarp);
            if let Some(Err(e)) = self.tx.send_to(&f, None) {
                eprintln!("mw-responder: announce: {e}");
            }
        }
    }
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
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mw-responder: {e}");
            std::process::exit(2);
        }
    };
    let announcer = match Announcer::open(&opts) {
        Ok(a) => a.map(|a| Arc::new(Mutex::new(a))),
        Err(e) => {
            eprintln!("mw-responder: {e}");
            std::process::exit(1);
        }
    };
    let timestamps = opts.timestamps;
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
            clock_lag: Duration::ZERO,
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
                let echo = reply_from(packet.packet());
                let is_timestamp =
                    timestamps && echo.is_none() && packet.get_icmp_type() == IcmpTypes::Timestamp;
                if echo.is_none() && !is_timestamp {
                    continue;
                }
                let now = Instant::now();
                let (lock, cv) = &*state;
                let Ok(mut st) = lock.lock() else { return };
                let mut delay = None; // None: drop
                match st.mode {
                    Mode::Normal => delay = Some(Duration::ZERO),
                    Mode::Blackout { until } if now < until => {}
                    Mode::Pause { until } if now < until => delay = Some(until - now),
                    Mode::Migrate { resume, held_one } if now < resume => {
                        // A stopped guest answers nothing; only one echo
                        // request is held in its queue across the stop.
                        if !held_one && echo.is_some() {
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
                let mut out = Vec::new();
                match &echo {
                    Some(reply) => {
                        out.push(reply.clone());
                        if st.forge {
                            out.extend(forgeries(reply));
                        }
                    }
                    None => out.extend(timestamp_reply(packet.packet(), st.clock_lag, d)),
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
                // The guest clock stands still for the stop: it answers
                // nothing meanwhile, so it may fall behind at once.
                st.clock_lag += d;
                if let Some(a) = &announcer {
                    let a = a.clone();
                    std::thread::spawn(move || {
                        if let Ok(mut a) = a.lock() {
                            a.burst(now + d);
                        }
                    });
                }
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
