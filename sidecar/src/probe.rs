//! The prober: raw ICMP echo through pnet on an absolute schedule, exact
//! reply matching, and kernel receive timestamps.
//!
//! One thread, `probe`, does everything on the hot path, as `ping` and
//! `fping` do:
//! * it sends probe `k` at `start + k × interval` (so a late wake-up never
//!   shifts later probes), and ICMP Timestamp probes on their own schedule;
//! * it reads the socket with a non-blocking `recvmsg`: once right after
//!   each send (on a veth or LAN path the reply is often queued already),
//!   and everything queued at each scheduled wake-up. Between wake-ups at
//!   most [`READ_DELAY_MAX`] apart it just sleeps: replies carry the
//!   kernel's receive timestamp (`SO_TIMESTAMPNS`), so reading them later
//!   changes no RTT, and no packet (ours or another pinger's) costs a
//!   wake-up of its own. For longer waits it sleeps in `ppoll` on the
//!   socket and reads each reply as it comes. Every packet is checked to
//!   be one of ours and resolved;
//! * it declares a probe lost at `send + timeout`. Timeouts come from this
//!   schedule (its sleeps are nanosecond hrtimers), never from
//!   socket timeouts, which the kernel rounds to ticks.
//!
//! Resolved probes leave as [`Event`]s, in batches, through a bounded
//! channel with `try_send`: the prober never waits for the network side.

use crate::clock;
use crate::metrics::Metrics;
use crate::stream::Feed;
use crate::sys;
use migwatch_shared::wire::{Clock, Event, Late, Sample, Tick};
use pnet::packet::icmp::echo_reply::EchoReplyPacket;
use pnet::packet::icmp::echo_request::MutableEchoRequestPacket;
use pnet::packet::icmp::{checksum, IcmpPacket, IcmpTypes, MutableIcmpPacket};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::ipv4::Ipv4Packet;
use pnet::packet::{MutablePacket, Packet};
use pnet::transport::{
    transport_channel, TransportChannelType, TransportProtocol, TransportReceiver, TransportSender,
};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Echo payload size, as `ping`'s default, so RTTs compare like for like.
pub const PAYLOAD_LEN: usize = 56;
/// Bytes of the payload we use: cookie, 64-bit seq, send time.
const STAMP_LEN: usize = 24;
/// Receive buffer asked for: unpaced bursts lose replies with the default.
const RCVBUF: usize = 8 << 20;
/// The schedule never bursts more than this far behind: after a longer
/// stall (a suspended process) the missed slots are skipped, not flooded.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// What to probe and how often.
#[derive(Debug, Clone, Copy)]
pub struct ProbeConfig {
    /// The target, fixed for the life of the process.
    pub target: Ipv4Addr,
    /// Time between probe sends.
    pub interval: Duration,
    /// How long a probe may wait for its reply before it counts as lost.
    pub timeout: Duration,
    /// Time between ICMP Timestamp probes, if they are on.
    pub clock_interval: Option<Duration>,
}

/// Why the raw socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// EPERM / EACCES: no CAP_NET_RAW.
    #[error(
        "opening a raw ICMP socket needs root or CAP_NET_RAW. Run it with sudo, or grant \
         the capability once: sudo setcap cap_net_raw+ep {exe}"
    )]
    NotPermitted {
        /// This program's path, for the setcap hint.
        exe: String,
    },
    /// Anything else.
    #[error("opening the raw ICMP socket failed: {0}")]
    Io(#[from] io::Error),
}

/// The open raw socket (pnet's sender and receiver share one fd).
pub struct Socket {
    tx: TransportSender,
    rx: TransportReceiver,
    /// Receive buffer the kernel granted, in bytes.
    pub rcvbuf: usize,
}

impl Socket {
    /// Opens the raw ICMP socket and sets it up: kernel receive timestamps,
    /// echo replies only, a large receive buffer. Needs CAP_NET_RAW, so call
    /// it before dropping privileges.
    pub fn open() -> Result<Socket, OpenError> {
        let kind =
            TransportChannelType::Layer4(TransportProtocol::Ipv4(IpNextHeaderProtocols::Icmp));
        let (tx, rx) = transport_channel(4096, kind).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => OpenError::NotPermitted {
                exe: std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "migwatch-sidecar".into()),
            },
            _ => OpenError::Io(e),
        })?;
        let fd = rx.socket.fd;
        sys::enable_rx_timestamps(fd)?;
        sys::icmp_accept_only(fd, &[IcmpTypes::EchoReply.0, IcmpTypes::TimestampReply.0])?;
        let rcvbuf = sys::set_rcvbuf(fd, RCVBUF)?;
        Ok(Socket { tx, rx, rcvbuf })
    }
}

/// Per-run identity that replies must echo back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunKeys {
    /// ICMP identifier.
    pub ident: u16,
    /// Random 64-bit token carried in every payload.
    pub cookie: u64,
}

impl RunKeys {
    /// Fresh random keys, with an identifier no local pinger is using as
    /// far as we can tell (see [`idents_in_use`]). The cookie keeps matching
    /// exact even if one collides anyway.
    pub fn random() -> io::Result<RunKeys> {
        let busy = idents_in_use();
        let candidates = (0..64)
            .map(|_| getrandom::u64().map(|r| (r >> 48) as u16))
            .collect::<Result<Vec<u16>, _>>()
            .map_err(io::Error::other)?;
        let ident = pick_ident(&busy, &candidates);
        Ok(RunKeys {
            ident,
            cookie: getrandom::u64().map_err(io::Error::other)?,
        })
    }
}

/// The first candidate not in `busy` (the last one if all are).
fn pick_ident(busy: &std::collections::HashSet<u16>, candidates: &[u16]) -> u16 {
    candidates
        .iter()
        .copied()
        .find(|c| !busy.contains(c))
        .or_else(|| candidates.last().copied())
        .unwrap_or(0)
}

/// ICMP identifiers other pingers on this host probably use: the ports of
/// unprivileged ICMP sockets (`/proc/net/icmp`, where the kernel's ident is
/// the local port) and the PIDs of processes named like pingers (raw-socket
/// `ping` uses its PID).
pub fn idents_in_use() -> std::collections::HashSet<u16> {
    let mut out = std::collections::HashSet::new();
    for table in ["/proc/net/icmp", "/proc/net/icmp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            out.extend(text.lines().skip(1).filter_map(|l| {
                let local = l.split_whitespace().nth(1)?;
                u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
            }));
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if comm.contains("ping") {
                out.insert(pid as u16);
            }
        }
    }
    out
}

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

/// What a verified reply answers.
#[derive(Debug, Clone, Copy)]
enum What {
    /// Echo probe with this 64-bit seq.
    Echo(u64),
    /// A timestamp probe.
    Clock(clock::Reply),
}

/// What a packet from the raw socket is, if it is a reply of ours.
fn classify(packet: &[u8], target: Ipv4Addr, keys: RunKeys) -> Option<What> {
    match match_reply(packet, target, keys) {
        Ok(m) => Some(What::Echo(m.seq)),
        Err(Reject::NotEchoReply) => {
            clock::parse_reply(packet, target, keys.ident).map(What::Clock)
        }
        Err(_) => None,
    }
}

/// The RTT of a reply: the kernel's receive stamp against our send time,
/// unless the wall clock stepped in between (the stamp is then later than
/// the monotonic reading, which it can never be, or far earlier than any
/// scheduling delay explains); then the monotonic clock. The flag says
/// which.
fn measure_rtt(
    kernel_time: Option<SystemTime>,
    mono: Instant,
    sent_real: SystemTime,
    sent_mono: Instant,
) -> (Duration, bool) {
    let by_mono = mono.saturating_duration_since(sent_mono);
    match kernel_time.map(|k| k.duration_since(sent_real)) {
        Some(Ok(k)) if k <= by_mono + Duration::from_micros(50) => (k, false),
        _ => (by_mono, true),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum SlotState {
    #[default]
    Empty,
    Waiting,
    Answered,
    Lost,
    LateAnswered,
}

/// One outstanding (or recently resolved) probe, in 32 bytes: both send
/// times as plain nanosecond counts.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    seq: u64,
    /// Monotonic send time, ns after the table's epoch.
    sent_mono_ns: u64,
    /// Wall-clock send time, ns since the Unix epoch.
    sent_real_ns: i64,
    state: SlotState,
}

/// What a reply meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// In time: a sample with this RTT.
    Answered(Event),
    /// After the probe was declared lost: a `late` event.
    Late(Event),
    /// A second reply to the same probe.
    Duplicate,
    /// For a probe we no longer (or never) had.
    Unknown,
}

/// How long after its send a reply is still recognised (as `late` once
/// its timeout has passed), at least: the outstanding-probe table keeps
/// this many intervals, or 4 timeouts if longer, up to 65 536 intervals
/// (the 16-bit wire seq).
pub const LATE_HORIZON: Duration = Duration::from_secs(30);

/// Slots of the outstanding-probe table for a rate and timeout: a power of
/// two covering [`LATE_HORIZON`] (or 4 timeouts), between 1024 and 65 536.
/// At 100 Hz that is 4096 slots (128 KiB), not a fixed 65 536 (2 MiB).
pub fn table_slots(interval: Duration, timeout: Duration) -> usize {
    let horizon = LATE_HORIZON.max(timeout.saturating_mul(4));
    let n = horizon.as_nanos() / interval.as_nanos().max(1) + 1;
    usize::try_from(n)
        .unwrap_or(usize::MAX)
        .clamp(1024, 1 << 16)
        .next_power_of_two()
}

/// The outstanding-probe table: pure bookkeeping, no I/O, so it is tested
/// without a network. A reply is matched (or reported late) while its slot
/// has not been reused, i.e. for `slots` probe intervals.
pub struct Pending {
    slots: Box<[Slot]>,
    /// `slots.len() - 1` (the length is a power of two).
    mask: u64,
    /// Monotonic origin of the slots' send times.
    epoch: Instant,
    timeout: Duration,
    /// Next seq to be sent.
    next_seq: u64,
    /// Oldest seq whose timeout has not been processed yet.
    next_expiry: u64,
    /// Replies whose kernel timestamp disagreed with the monotonic clock
    /// (a wall-clock step), timed by the monotonic clock instead.
    pub clock_fallbacks: u64,
}

fn unix_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

fn unix_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

fn from_unix_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// Whole microseconds, rounded to the nearest: iputils `ping` subtracts
/// two µs-truncated stamps, which is unbiased; truncating the difference
/// would read 0.5 µs low on average.
fn micros_u32(d: Duration) -> u32 {
    u32::try_from(d.as_nanos().saturating_add(500) / 1000).unwrap_or(u32::MAX)
}

impl Pending {
    /// An empty table of `slots` (rounded up to a power of two) for probes
    /// that time out after `timeout`, with send times counted from `epoch`
    /// (no probe may be sent before it).
    pub fn new(timeout: Duration, slots: usize, epoch: Instant) -> Pending {
        let n = slots.max(2).next_power_of_two();
        Pending {
            slots: vec![Slot::default(); n].into_boxed_slice(),
            mask: n as u64 - 1,
            epoch,
            timeout,
            next_seq: 0,
            next_expiry: 0,
            clock_fallbacks: 0,
        }
    }

    fn slot(&self, seq: u64) -> &Slot {
        &self.slots[(seq & self.mask) as usize]
    }

    fn slot_mut(&mut self, seq: u64) -> &mut Slot {
        &mut self.slots[(seq & self.mask) as usize]
    }

    fn mono(&self, s: &Slot) -> Instant {
        self.epoch + Duration::from_nanos(s.sent_mono_ns)
    }

    /// Records that probe `seq` (the next one) left now.
    pub fn sent(&mut self, seq: u64, mono: Instant, real: SystemTime) {
        self.next_seq = seq + 1;
        let sent_mono_ns = u64::try_from(mono.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX);
        *self.slot_mut(seq) = Slot {
            seq,
            sent_mono_ns,
            sent_real_ns: unix_ns(real),
            state: SlotState::Waiting,
        };
    }

    /// Skips seqs that were never sent (after a stall).
    pub fn skip_to(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
        self.next_expiry = self.next_expiry.max(self.next_seq);
    }

    /// When the oldest outstanding probe times out, if any is outstanding.
    pub fn next_deadline(&self) -> Option<Instant> {
        (self.next_expiry..self.next_seq).find_map(|q| {
            let s = self.slot(q);
            (s.seq == q && s.state == SlotState::Waiting).then(|| self.mono(s) + self.timeout)
        })
    }

    /// Declares lost every probe whose timeout has passed at `now`,
    /// calling `lost` with each one's sample, in seq order.
    pub fn expire(&mut self, now: Instant, mut lost: impl FnMut(Event)) {
        while self.next_expiry < self.next_seq {
            let q = self.next_expiry;
            let s = *self.slot(q);
            if s.seq == q && s.state == SlotState::Waiting {
                if self.mono(&s) + self.timeout > now {
                    return;
                }
                self.slot_mut(q).state = SlotState::Lost;
                lost(Event::Sample(Sample {
                    seq: q,
                    sent_us: s.sent_real_ns.div_euclid(1000),
                    rtt_us: None,
                }));
            }
            self.next_expiry += 1;
        }
    }

    /// Resolves a verified reply to `seq` that reached the socket at
    /// `kernel_time` (if the kernel stamped it) and was read at `mono`.
    pub fn reply(&mut self, seq: u64, kernel_time: Option<SystemTime>, mono: Instant) -> Outcome {
        if seq >= self.next_seq {
            return Outcome::Unknown;
        }
        let s = *self.slot(seq);
        if s.seq != seq || s.state == SlotState::Empty {
            return Outcome::Unknown;
        }
        let (sent_mono, sent_real) = (self.mono(&s), from_unix_ns(s.sent_real_ns));
        let (rtt, fell_back) = measure_rtt(kernel_time, mono, sent_real, sent_mono);
        self.clock_fallbacks += u64::from(fell_back);
        let rtt_us = micros_u32(rtt);
        let sent_us = s.sent_real_ns.div_euclid(1000);
        let out = match s.state {
            SlotState::Waiting if rtt <= self.timeout => Outcome::Answered(Event::Sample(Sample {
                seq,
                sent_us,
                rtt_us: Some(rtt_us),
            })),
            // Answered after its deadline but before the scheduler got to
            // expire it: report it as lost *and* late, like any other.
            SlotState::Waiting | SlotState::Lost => {
                Outcome::Late(Event::Late(Late { seq, rtt_us }))
            }
            SlotState::Answered | SlotState::LateAnswered => return Outcome::Duplicate,
            SlotState::Empty => return Outcome::Unknown,
        };
        self.slot_mut(seq).state = match out {
            Outcome::Answered(_) => SlotState::Answered,
            _ => SlotState::LateAnswered,
        };
        out
    }

    /// For a reply that came after its deadline while the probe was still
    /// waiting: the `sample` (lost) that must precede its `late` event.
    fn lost_sample(&self, seq: u64) -> Event {
        Event::Sample(Sample {
            seq,
            sent_us: self.slot(seq).sent_real_ns.div_euclid(1000),
            rtt_us: None,
        })
    }
}

/// Outstanding ICMP Timestamp probes. They are few (5 per second by
/// default), so 256 slots hold far more than a timeout's worth.
pub struct ClockTable {
    slots: [Option<ClockSlot>; 256],
    timeout: Duration,
}

#[derive(Debug, Clone, Copy)]
struct ClockSlot {
    seq: u64,
    originate_ms: u32,
    sent_real: SystemTime,
    sent_mono: Instant,
}

impl ClockTable {
    /// An empty table; replies later than `timeout` are not used.
    pub fn new(timeout: Duration) -> ClockTable {
        ClockTable {
            slots: [None; 256],
            timeout,
        }
    }

    /// Records timestamp probe `seq`.
    pub fn sent(&mut self, seq: u64, originate_ms: u32, sent_real: SystemTime, sent_mono: Instant) {
        self.slots[(seq % 256) as usize] = Some(ClockSlot {
            seq,
            originate_ms,
            sent_real,
            sent_mono,
        });
    }

    /// Resolves a reply into a `clock` event, if it answers a probe of ours
    /// in time and carries a standard timestamp. Each probe resolves once.
    pub fn reply(
        &mut self,
        r: &clock::Reply,
        kernel_time: Option<SystemTime>,
        mono: Instant,
    ) -> Option<Event> {
        let slot = &mut self.slots[usize::from(r.seq16) % 256];
        let s = (*slot).filter(|s| s.seq as u16 == r.seq16 && s.originate_ms == r.originate_ms)?;
        *slot = None;
        let (rtt, _) = measure_rtt(kernel_time, mono, s.sent_real, s.sent_mono);
        if rtt > self.timeout {
            return None;
        }
        let sent_us = unix_us(s.sent_real);
        let rtt_us = micros_u32(rtt);
        let offset_us = clock::offset_us(sent_us, sent_us + i64::from(rtt_us), r)?;
        Some(Event::Clock(Clock {
            seq: s.seq,
            sent_us,
            rtt_us,
            offset_us,
        }))
    }
}

/// Events wait at most this long in the prober before they are handed to
/// the stream, in one batch (about one SSE batch window): at 1 kHz the
/// hub's thread wakes about 100 times a second, not 1000–2000, and at
/// 100 Hz for every other probe.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// A batch this small is stored by the prober itself when the hub is
/// free (rendering it takes a few µs), sparing the pump thread a
/// wake-up; larger ones, and any when the next send is near, go to the
/// pump.
const DIRECT_MAX: usize = 8;
/// ... and only with at least this much time before the next wake-up.
const DIRECT_SPARE: Duration = Duration::from_micros(500);
/// A batch is handed over at once when it reaches this many events.
const MAX_BATCH: usize = 1024;
/// Replies are read at the prober's next scheduled wake-up when that is at
/// most this far off (so a sample reaches the stream at most this much
/// later); for longer waits it watches the socket and wakes on a reply.
const READ_DELAY_MAX: Duration = Duration::from_millis(20);
/// Packets read in one go before the schedule is checked again.
const DRAIN_MAX: usize = 256;
/// The longest wait, so `stop` is noticed within it.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// The handle to the running prober thread.
pub struct Prober {
    thread: JoinHandle<()>,
}

impl Prober {
    /// Waits for the thread to finish (after `stop` was set).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// Starts probing in one thread, `probe`. Events go to `out` in batches;
/// `stop` ends the thread within about 100 ms.
pub fn start(
    socket: Socket,
    cfg: ProbeConfig,
    keys: RunKeys,
    out: Feed,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> io::Result<Prober> {
    let thread = std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let Socket { tx, rx, .. } = socket;
            let fd = rx.socket.fd;
            // pnet's receiver shares the fd with the sender; keep it alive
            // while the fd is read directly.
            let _rx = rx;
            probe_loop(tx, fd, cfg, keys, &out, &metrics, &stop);
        })?;
    Ok(Prober { thread })
}

/// The prober's output: batches of events through a bounded channel it
/// never blocks on, remembering when it last emitted (so quiet spells get
/// ticks).
struct Out<'a> {
    feed: &'a Feed,
    metrics: &'a Metrics,
    batch: Vec<Event>,
    last_emit: Instant,
    /// When the oldest event in `batch` was emitted.
    oldest: Instant,
}

impl Out<'_> {
    fn emit(&mut self, ev: Event) {
        self.last_emit = Instant::now();
        if self.batch.is_empty() {
            self.oldest = self.last_emit;
        }
        self.batch.push(ev);
        if self.batch.len() >= MAX_BATCH {
            self.flush(false);
        }
    }

    /// Hands the batch over; `direct` lets the feed render and store a
    /// small one in this thread (no other thread's wake-up).
    fn flush(&mut self, direct: bool) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(64));
        let dropped = self.feed.send(batch, direct);
        self.metrics
            .add(&self.metrics.dropped_events, dropped as u64);
    }

    /// Called before sleeping until `wake`: hands the batch over once its
    /// oldest event has waited [`FLUSH_EVERY`], or now if the prober would
    /// not wake again before then, so holding events never adds a wake-up.
    fn flush_before_sleep(&mut self, now: Instant, wake: Instant) {
        let by = self.oldest + FLUSH_EVERY;
        if !self.batch.is_empty() && (now >= by || wake > by) {
            let direct = self.batch.len() <= DIRECT_MAX && wake >= now + DIRECT_SPARE;
            self.flush(direct);
        }
    }
}

/// Everything that resolves replies: the two probe tables and the output.
struct Resolver<'a> {
    target: Ipv4Addr,
    keys: RunKeys,
    pending: Pending,
    clocks: ClockTable,
    out: Out<'a>,
    metrics: &'a Metrics,
}

impl Resolver<'_> {
    /// Reads up to `max` packets queued on the socket, without blocking,
    /// and resolves them.
    fn drain(&mut self, fd: RawFd, buf: &mut [u8], max: usize) {
        for _ in 0..max {
            match sys::recv_with_timestamp(fd, buf) {
                Ok(got) => {
                    let mono = Instant::now();
                    let n = got.len.min(buf.len());
                    self.packet(&buf[..n], got.kernel_time, mono);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.metrics.inc(&self.metrics.receive_errors);
                    return;
                }
            }
        }
    }

    /// Resolves one packet read at `mono`.
    fn packet(&mut self, packet: &[u8], kernel_time: Option<SystemTime>, mono: Instant) {
        let metrics = self.metrics;
        let seq = match classify(packet, self.target, self.keys) {
            Some(What::Echo(seq)) => seq,
            Some(What::Clock(r)) => {
                match self.clocks.reply(&r, kernel_time, mono) {
                    Some(ev) => {
                        metrics.inc(&metrics.clock_replies);
                        self.out.emit(ev);
                    }
                    None => metrics.inc(&metrics.foreign),
                }
                return;
            }
            None => {
                metrics.inc(&metrics.foreign);
                return;
            }
        };
        match self.pending.reply(seq, kernel_time, mono) {
            Outcome::Answered(ev) => {
                metrics.inc(&metrics.replies);
                if let Event::Sample(Sample {
                    rtt_us: Some(r), ..
                }) = ev
                {
                    metrics.rtt.observe(Duration::from_micros(u64::from(r)));
                }
                self.out.emit(ev);
            }
            Outcome::Late(ev) => {
                // Not yet expired by us: emit its loss first, so every
                // `late` follows the `sample` that reported it lost.
                if seq >= self.pending.next_expiry {
                    metrics.inc(&metrics.lost);
                    self.out.emit(self.pending.lost_sample(seq));
                }
                metrics.inc(&metrics.late);
                self.out.emit(ev);
            }
            Outcome::Duplicate => metrics.inc(&metrics.duplicates),
            Outcome::Unknown => metrics.inc(&metrics.foreign),
        }
    }
}

/// The prober: one thread that sends on an absolute schedule and reads
/// replies in between (see the module doc), so a probe costs one wake-up,
/// not a hand-off between threads.
fn probe_loop(
    mut tx: TransportSender,
    fd: RawFd,
    cfg: ProbeConfig,
    keys: RunKeys,
    out: &Feed,
    metrics: &Metrics,
    stop: &AtomicBool,
) {
    sys::tight_timer_slack();
    let start = Instant::now();
    let mut r = Resolver {
        target: cfg.target,
        keys,
        pending: Pending::new(cfg.timeout, table_slots(cfg.interval, cfg.timeout), start),
        clocks: ClockTable::new(cfg.timeout),
        out: Out {
            feed: out,
            metrics,
            batch: Vec::with_capacity(64),
            last_emit: start,
            oldest: start,
        },
        metrics,
    };
    let mut rx_buf = [0u8; 2048];
    // A quiet stream gets a tick this often, so clients see time pass.
    let quiet = (cfg.interval * 2).max(Duration::from_millis(20));
    let interval_ns = cfg.interval.as_nanos().max(1) as u64;
    let catch_up_slots = (MAX_CATCH_UP.as_nanos() as u64 / interval_ns).max(1);
    let mut buf = [0u8; 8 + PAYLOAD_LEN];
    let due = |k: u64| start + Duration::from_nanos(interval_ns.saturating_mul(k));
    let mut k: u64 = 0;
    // Timestamp probes go half an interval after an echo probe, so the two
    // schedules interleave instead of colliding.
    let mut clock_buf = [0u8; clock::LEN];
    let clock_ns = cfg.clock_interval.map(|d| d.as_nanos().max(1) as u64);
    let clock_due = |j: u64| {
        clock_ns.map(|c| {
            start
                + cfg.interval / 2
                + Duration::from_nanos(c.saturating_mul(j))
                + Duration::from_micros(clock::dither_us(j, keys.cookie))
        })
    };
    let mut j: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        r.pending.expire(now, |ev| {
            metrics.inc(&metrics.lost);
            r.out.emit(ev);
        });
        if now >= r.out.last_emit + quiet {
            r.out.emit(Event::Tick(Tick {
                now_us: unix_us(SystemTime::now()),
                next_seq: k,
            }));
        }
        if due(k) <= now {
            // Far behind (the process was stopped): skip, don't flood.
            let behind = (now - due(k)).as_nanos() as u64 / interval_ns;
            if behind > catch_up_slots {
                metrics.add(&metrics.skipped, behind);
                k += behind;
                r.pending.skip_to(k);
            }
            // The payload carries the send time; the RTT uses the clock
            // read after the packet is built, right before `sendto`, as
            // iputils ping does (gettimeofday, then sendmsg).
            let payload_ns = unix_ns(SystemTime::now()).max(0) as u64;
            build_request(&mut buf, keys, k, payload_ns);
            let sent_mono = Instant::now();
            let sent_real = SystemTime::now();
            let sent = MutableEchoRequestPacket::new(&mut buf[..])
                .map(|p| tx.send_to(p, IpAddr::V4(cfg.target)));
            match sent {
                Some(Ok(_)) => metrics.inc(&metrics.sent),
                // A failed send (no route, buffer full) is still a probe with
                // no reply: the target is unreachable from here.
                Some(Err(_)) | None => metrics.inc(&metrics.send_errors),
            }
            metrics
                .send_lateness
                .observe(sent_mono.saturating_duration_since(due(k)));
            r.pending.sent(k, sent_mono, sent_real);
            k += 1;
            // On a veth or LAN path the reply is often queued already.
            // One read; anything else is read at the next wake-up.
            r.drain(fd, &mut rx_buf, 1);
            continue;
        }
        if let Some(when) = clock_due(j).filter(|w| *w <= now) {
            // Like echo probes, skip rather than flood after a stall.
            if let Some(c) = clock_ns {
                j += (now - when).as_nanos() as u64 / c;
            }
            let sent_real = SystemTime::now();
            let originate = clock::ms_since_midnight(sent_real);
            clock::build_request(&mut clock_buf, keys.ident, j, originate);
            let sent_mono = Instant::now();
            match IcmpPacket::new(&clock_buf[..]).map(|p| tx.send_to(p, IpAddr::V4(cfg.target))) {
                Some(Ok(_)) => metrics.inc(&metrics.clock_sent),
                Some(Err(_)) | None => metrics.inc(&metrics.send_errors),
            }
            r.clocks.sent(j, originate, sent_real, sent_mono);
            j += 1;
            r.drain(fd, &mut rx_buf, 1);
            continue;
        }
        let mut wake = match r.pending.next_deadline() {
            Some(d) => d.min(due(k)),
            None => due(k),
        }
        .min(r.out.last_emit + quiet)
        .min(now + MAX_WAIT);
        if let Some(c) = clock_due(j) {
            wake = wake.min(c);
        }
        r.out.flush_before_sleep(now, wake);
        let wait = wake.saturating_duration_since(now);
        if wait <= READ_DELAY_MAX {
            // Sleep until the next thing due without watching the socket,
            // then read everything queued. Every reply carries its kernel
            // receive stamp, so reading it a little later changes no RTT,
            // and other pingers' replies (a raw socket sees all of them)
            // cost no wake-up of their own.
            std::thread::sleep(wait);
            r.drain(fd, &mut rx_buf, DRAIN_MAX);
            continue;
        }
        match sys::wait_readable(fd, wait) {
            Ok(true) => r.drain(fd, &mut rx_buf, DRAIN_MAX),
            Ok(false) => {}
            Err(e) => {
                // Cannot happen with a valid fd; don't spin if it does.
                eprintln!("migwatch-sidecar: waiting on the socket failed: {e}");
                metrics.inc(&metrics.receive_errors);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    r.out.flush(false);
    metrics.set_clock_fallbacks(r.pending.clock_fallbacks);
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn idents_of_running_pingers_are_avoided() {
        let busy: std::collections::HashSet<u16> = [7, 9].into();
        assert_eq!(pick_ident(&busy, &[7, 9, 11, 12]), 11);
        assert_eq!(pick_ident(&busy, &[7, 9]), 9);
        // A process called like a pinger is found by its PID.
        let dir = std::env::temp_dir().join(format!("mw-ident-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("xping");
        std::fs::copy("/bin/sleep", &fake).unwrap();
        let mut child = std::process::Command::new(&fake).arg("5").spawn().unwrap();
        let found = idents_in_use().contains(&(child.id() as u16));
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(found, "a running *ping* process must be avoided");
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

    #[test]
    fn pending_answers_expires_reports_late_and_duplicates() {
        let t0 = Instant::now();
        let r0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ms = Duration::from_millis;
        let mut p = Pending::new(ms(100), 1024, t0);
        for k in 0..3 {
            p.sent(k, t0 + ms(10 * k), r0 + ms(10 * k));
        }
        // seq 0 answered in 1 ms, by the kernel stamp.
        match p.reply(0, Some(r0 + ms(1)), t0 + ms(2)) {
            Outcome::Answered(Event::Sample(s)) => assert_eq!(s.rtt_us, Some(1000)),
            o => panic!("{o:?}"),
        }
        assert_eq!(p.reply(0, Some(r0 + ms(1)), t0 + ms(2)), Outcome::Duplicate);
        assert_eq!(p.next_deadline(), Some(t0 + ms(110)));
        let mut lost = vec![];
        p.expire(t0 + ms(115), |e| lost.push(e));
        assert_eq!(
            lost,
            vec![Event::Sample(Sample {
                seq: 1,
                sent_us: 1_700_000_000_010_000,
                rtt_us: None
            })]
        );
        // seq 1 answered after its loss was reported: late, with its RTT.
        assert_eq!(
            p.reply(1, Some(r0 + ms(400)), t0 + ms(400)),
            Outcome::Late(Event::Late(Late {
                seq: 1,
                rtt_us: 390_000
            }))
        );
        // Unsent seqs are unknown.
        assert_eq!(p.reply(99, None, t0), Outcome::Unknown);
    }

    #[test]
    fn wall_clock_step_falls_back_to_monotonic() {
        let t0 = Instant::now();
        let r0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut p = Pending::new(Duration::from_secs(1), 1024, t0);
        p.sent(0, t0, r0);
        // The wall clock jumped 5 s ahead between send and receive.
        let out = p.reply(
            0,
            Some(r0 + Duration::from_secs(5)),
            t0 + Duration::from_micros(300),
        );
        match out {
            Outcome::Answered(Event::Sample(s)) => assert_eq!(s.rtt_us, Some(300)),
            o => panic!("{o:?}"),
        }
        assert_eq!(p.clock_fallbacks, 1);
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
