//! The prober's loop: one schedule for every target (a min-heap of what is
//! due next), one socket, replies routed to their target by source
//! address. See the module doc of [`super`].

use super::echo::{build_request, PAYLOAD_LEN};
use super::socket::RunKeys;
use super::target::{classify, originate_key, ProbeTarget};
use super::timebase::{self, ClockSource, Reading, StepWatch, SystemClocks, Timebase};
use super::{
    DIRECT_MAX, DIRECT_SPARE, DRAIN_MAX, FLUSH_EVERY, MAX_BATCH, MAX_WAIT, READ_DELAY_MAX,
};
use crate::clock;
use crate::feed::{Batch, Feed};
use crate::metrics::{icmp_error_index, Metrics};
use crate::sys;
use crate::targets::Target;
use pnet::packet::icmp::echo_request::MutableEchoRequestPacket;
use pnet::packet::icmp::IcmpPacket;
use pnet::transport::TransportSender;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a schedule entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    /// Send the next echo probe.
    Echo,
    /// Send the next timestamp probe.
    Clock,
    /// Declare lost the probes whose timeout passed.
    Expire,
    /// Tick if the target's stream has been quiet.
    Quiet,
}

/// One schedule entry: at `at`, do `job` for the target in `slot`, if that
/// slot still holds generation `gen` (else the target was removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Instant,
    slot: u32,
    gen: u32,
    job: Job,
}

/// Where in its interval a new target's probes go, as a fraction: the
/// middle of the widest gap between the fractions already taken (so
/// targets added one by one stay spread out).
pub fn widest_gap_middle(taken: &mut [f64]) -> f64 {
    if taken.is_empty() {
        return 0.0;
    }
    taken.sort_by(f64::total_cmp);
    let mut best = (
        taken[0] + 1.0 - taken[taken.len() - 1],
        taken[taken.len() - 1],
    );
    for w in taken.windows(2) {
        if w[1] - w[0] > best.0 {
            best = (w[1] - w[0], w[0]);
        }
    }
    (best.1 + best.0 / 2.0).rem_euclid(1.0)
}

/// The prober's state.
struct Loop<'a> {
    slots: Vec<Option<ProbeTarget>>,
    gens: Vec<u32>,
    by_addr: HashMap<Ipv4Addr, u32>,
    heap: BinaryHeap<Reverse<Entry>>,
    /// When the schedule began: every origin is this plus a phase.
    base: Instant,
    /// Slots with events not yet handed over, and how many events.
    dirty: Vec<u32>,
    unflushed: usize,
    /// When the oldest unflushed event was emitted.
    oldest: Option<Instant>,
    feed: &'a Feed,
    metrics: &'a Metrics,
    /// Every streamed time comes from it.
    tb: Timebase,
    /// Watches the wall clock against `tb`.
    watch: StepWatch,
}

impl Loop<'_> {
    fn push(&mut self, at: Instant, slot: u32, job: Job) {
        let gen = self.gens[slot as usize];
        self.heap.push(Reverse(Entry { at, slot, gen, job }));
    }

    /// Replaces the target set: keeps the ones still wanted (by id), drops
    /// the rest, and schedules the new ones at evenly spread phases.
    fn set_targets(&mut self, wanted: Vec<Arc<Target>>, now: Instant) {
        for i in 0..self.slots.len() {
            let keep = self.slots[i]
                .as_ref()
                .is_some_and(|p| wanted.iter().any(|t| t.id == p.target.id));
            if !keep {
                if let Some(p) = self.slots[i].take() {
                    self.by_addr.remove(&p.addr);
                    self.gens[i] = self.gens[i].wrapping_add(1);
                }
            }
        }
        let fresh: Vec<Arc<Target>> = wanted
            .into_iter()
            .filter(|t| !self.slots.iter().flatten().any(|p| p.target.id == t.id))
            .collect();
        let all_new = self.slots.iter().all(Option::is_none);
        // One scan of the host's pingers for the whole set; each new
        // target's identifier then avoids them and the ones taken here.
        let mut busy = if fresh.is_empty() {
            Default::default()
        } else {
            super::socket::idents_in_use()
        };
        busy.extend(self.slots.iter().flatten().map(|p| p.keys.ident));
        let n = fresh.len();
        for (i, t) in fresh.into_iter().enumerate() {
            let interval = t.spec.interval;
            let frac = if all_new {
                // The first set: exactly even.
                i as f64 / n as f64
            } else {
                let mut taken: Vec<f64> = self
                    .slots
                    .iter()
                    .flatten()
                    .map(|p| {
                        let off = p.origin.saturating_duration_since(self.base).as_secs_f64();
                        (off / p.target.spec.interval.as_secs_f64()).fract()
                    })
                    .collect();
                widest_gap_middle(&mut taken)
            };
            // The first slot of this phase at or after now (the first set
            // starts at once: its first target's probe 0 goes at start).
            let phase = interval.mul_f64(frac);
            let first = self.base + phase;
            let origin = if first >= now {
                first
            } else {
                let behind = (now - first).as_nanos();
                let step = interval.as_nanos().max(1);
                first + interval * behind.div_ceil(step) as u32
            };
            let keys = match RunKeys::random_avoiding(&busy) {
                Ok(k) => {
                    busy.insert(k.ident);
                    k
                }
                Err(e) => {
                    eprintln!(
                        "migwatch-sidecar: target {}: no randomness for its keys ({e}); not probed",
                        t.spec.name
                    );
                    continue;
                }
            };
            let slot = match self.slots.iter().position(Option::is_none) {
                Some(s) => s,
                None => {
                    self.slots.push(None);
                    self.gens.push(0);
                    self.slots.len() - 1
                }
            };
            let gen = self.gens[slot];
            let p = ProbeTarget::new(t, keys, origin, gen, self.tb);
            let s = slot as u32;
            self.by_addr.insert(p.addr, s);
            let (echo_at, clock_at, quiet_at) = (p.due(0), p.clock_due(0), now + p.quiet);
            self.slots[slot] = Some(p);
            self.push(echo_at, s, Job::Echo);
            if let Some(c) = clock_at {
                self.push(c, s, Job::Clock);
            }
            self.push(quiet_at, s, Job::Quiet);
        }
        let live = self.slots.iter().flatten().count() as u64;
        self.metrics.targets.store(live, Ordering::Relaxed);
    }

    /// Compares the wall clock with the timebase (every
    /// [`timebase::CHECK_EVERY`]): exports their difference, and logs and
    /// counts a step. The timebase is not re-anchored (see its module doc).
    fn check_clock(&mut self, r: Reading) {
        let (offset_ns, step) = self.watch.check(&self.tb, r);
        self.metrics
            .timebase_offset_us
            .store(offset_ns.div_euclid(1000), Ordering::Relaxed);
        if let Some(s) = step {
            self.metrics.inc(&self.metrics.wallclock_steps);
            tracing::warn!(
                step_s = s.by_ns as f64 / 1e9,
                timebase_minus_wall_s = s.offset_ns as f64 / 1e9,
                "the wall clock stepped {} by {:.3} s; streamed times stay on the sidecar's \
                 timebase (monotonic since start), now {:.3} s off the wall clock \
                 (migwatch_timebase_offset_seconds); a restart re-anchors it",
                if s.by_ns < 0 { "back" } else { "forward" },
                s.by_ns.unsigned_abs() as f64 / 1e9,
                s.offset_ns as f64 / 1e9,
            );
        }
    }

    /// Notes that `slot` has new events.
    fn touched(&mut self, slot: u32, before: usize, now: Instant) {
        let Some(p) = self.slots[slot as usize].as_ref() else {
            return;
        };
        let added = p.batch.len().saturating_sub(before);
        if added == 0 {
            return;
        }
        if before == 0 {
            self.dirty.push(slot);
        }
        self.unflushed += added;
        self.oldest.get_or_insert(now);
        if self.unflushed >= MAX_BATCH {
            self.flush(false);
        }
    }

    /// Hands every unflushed event over; `direct` lets the feed store a
    /// small batch from this thread.
    fn flush(&mut self, direct: bool) {
        if self.dirty.is_empty() {
            return;
        }
        let mut batch: Batch = Vec::with_capacity(self.dirty.len());
        for slot in self.dirty.drain(..) {
            if let Some(p) = self.slots[slot as usize].as_mut() {
                if !p.batch.is_empty() {
                    batch.push((p.target.clone(), std::mem::take(&mut p.batch)));
                }
            }
        }
        self.unflushed = 0;
        self.oldest = None;
        let dropped = self.feed.send(batch, direct);
        self.metrics
            .add(&self.metrics.dropped_events, dropped as u64);
    }

    /// Before sleeping until `wake`: hands the batch over once its oldest
    /// event has waited [`FLUSH_EVERY`], or now if the prober would not
    /// wake again before then, so holding events never adds a wake-up.
    fn flush_before_sleep(&mut self, now: Instant, wake: Instant) {
        let Some(oldest) = self.oldest else { return };
        let by = oldest + FLUSH_EVERY;
        if now >= by || wake > by {
            let direct = self.unflushed <= DIRECT_MAX && wake >= now + DIRECT_SPARE;
            self.flush(direct);
        }
    }

    /// Reads up to `max` packets queued on the socket, without blocking,
    /// and resolves each at the target that sent it. A receive error is
    /// the socket's pending ICMP error (`IP_RECVERR`): the error queue is
    /// drained and reading goes on.
    fn drain(&mut self, fd: RawFd, buf: &mut [u8], max: usize) {
        let mut read = 0;
        let mut errors_drained = false;
        while read < max {
            match sys::recv_with_timestamp(fd, buf) {
                Ok(got) => {
                    read += 1;
                    // Both clocks, to move the kernel's wall-clock stamp
                    // onto the monotonic one.
                    let now = SystemClocks.read();
                    let n = got.len.min(buf.len());
                    let kernel_ns = got.kernel_time.map(timebase::unix_ns);
                    self.packet(&buf[..n], kernel_ns, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Once per drain: a second error right after the queue was
                // read empty is a real receive error, not a pending one.
                Err(_) if !errors_drained => {
                    errors_drained = true;
                    self.drain_errors(fd, buf);
                }
                Err(_) => {
                    self.metrics.inc(&self.metrics.receive_errors);
                    return;
                }
            }
        }
    }

    /// Reads the socket's error queue empty (at most [`DRAIN_MAX`]
    /// entries), counting each ICMP error about one of our probes at its
    /// target. An undrained queue keeps `poll` returning `POLLERR` (a busy
    /// loop) and takes receive-buffer room from the replies.
    fn drain_errors(&mut self, fd: RawFd, buf: &mut [u8]) {
        for _ in 0..DRAIN_MAX {
            match sys::recv_error(fd, buf) {
                Ok(err) => {
                    let n = err.len.min(buf.len());
                    self.icmp_error(&err, &buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.metrics.inc(&self.metrics.receive_errors);
                    return;
                }
            }
        }
    }

    /// Counts one queued error: an ICMP error (from a router, or this host
    /// when the neighbour did not answer) about a probe to one of our
    /// targets, with that target's identifier. Others' probes (every raw
    /// ICMP socket hears of every ICMP error) and errors of local origin
    /// (`sendto` already returned those) are ignored.
    fn icmp_error(&mut self, err: &sys::QueuedError, about: &[u8]) {
        if err.origin != sys::ORIGIN_ICMP {
            return;
        }
        let Some(slot) = err.dest.and_then(|d| self.by_addr.get(&d).copied()) else {
            return;
        };
        let Some(p) = self.slots[slot as usize].as_ref() else {
            return;
        };
        // The probe's ICMP header: type, code, checksum, identifier.
        let ours = about
            .get(4..6)
            .is_some_and(|id| u16::from_be_bytes([id[0], id[1]]) == p.keys.ident);
        if ours {
            p.m().icmp_errors[icmp_error_index(err.icmp_type)].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn packet(&mut self, packet: &[u8], kernel_ns: Option<i64>, read: Reading) {
        // The IPv4 source address; the target's own checks follow.
        let slot = packet
            .get(12..16)
            .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]))
            .and_then(|src| self.by_addr.get(&src).copied());
        let Some(slot) = slot else {
            self.metrics.inc(&self.metrics.foreign);
            return;
        };
        let Some(p) = self.slots[slot as usize].as_mut() else {
            return;
        };
        let before = p.batch.len();
        match classify(packet, p.addr, p.keys) {
            Some(what) => p.resolve(what, kernel_ns, read),
            None => {
                p.m().foreign.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.touched(slot, before, read.mono);
    }
}

/// The prober: one thread that sends on an absolute schedule and reads
/// replies in between (see the module doc), so a probe costs one wake-up,
/// not a hand-off between threads.
pub(super) fn run(
    mut tx: TransportSender,
    fd: RawFd,
    targets: Vec<Arc<Target>>,
    sets: Receiver<Vec<Arc<Target>>>,
    feed: &Feed,
    metrics: &Metrics,
    stop: &AtomicBool,
) {
    sys::tight_timer_slack();
    let tb = *timebase::process();
    let start = SystemClocks.read();
    let base = start.mono;
    let mut l = Loop {
        slots: Vec::new(),
        gens: Vec::new(),
        by_addr: HashMap::new(),
        heap: BinaryHeap::new(),
        base,
        dirty: Vec::new(),
        unflushed: 0,
        oldest: None,
        feed,
        metrics,
        tb,
        watch: StepWatch::new(&tb, start),
    };
    l.check_clock(start);
    l.set_targets(targets, base);
    let mut rx_buf = [0u8; 2048];
    let mut buf = [0u8; 8 + PAYLOAD_LEN];
    let mut clock_buf = [0u8; clock::LEN];
    while !stop.load(Ordering::Relaxed) {
        if let Ok(wanted) = sets.try_recv() {
            l.flush(false);
            l.set_targets(wanted, Instant::now());
        }
        let now = Instant::now();
        if l.watch.due(now) {
            l.check_clock(SystemClocks.read());
        }
        let Some(&Reverse(e)) = l.heap.peek() else {
            // No targets: wait for a set.
            l.flush(false);
            std::thread::sleep(MAX_WAIT);
            continue;
        };
        if e.at <= now {
            l.heap.pop();
            let slot = e.slot as usize;
            if l.gens[slot] != e.gen {
                continue;
            }
            let Some(p) = l.slots[slot].as_mut() else {
                continue;
            };
            let before = p.batch.len();
            match e.job {
                Job::Echo => {
                    p.skip_if_far_behind(now);
                    let k = p.k;
                    let due = p.due(k);
                    // The payload carries the send time; the RTT uses the
                    // clock read after the packet is built, right before
                    // `sendto`, as iputils ping does.
                    let payload_ns = l.tb.ns(Instant::now()).max(0) as u64;
                    build_request(&mut buf, p.keys, k, payload_ns);
                    let sent_mono = Instant::now();
                    let sent = MutableEchoRequestPacket::new(&mut buf[..])
                        .map(|pk| tx.send_to(pk, IpAddr::V4(p.addr)));
                    match sent {
                        Some(Ok(_)) => {
                            p.m().sent.fetch_add(1, Ordering::Relaxed);
                        }
                        // A failed send (no route, queue full) is still a
                        // probe with no reply: it times out as lost.
                        Some(Err(e)) => p.m().send_error(&e),
                        None => p.m().send_error(&io::Error::other("no room")),
                    }
                    metrics
                        .send_lateness
                        .observe(sent_mono.saturating_duration_since(due));
                    p.pending.sent(k, sent_mono);
                    p.k += 1;
                    let next = p.due(p.k);
                    let expire = (!p.expire_scheduled).then(|| sent_mono + p.target.spec.timeout);
                    p.expire_scheduled = true;
                    l.push(next, e.slot, Job::Echo);
                    if let Some(at) = expire {
                        l.push(at, e.slot, Job::Expire);
                    }
                    l.touched(e.slot, before, now);
                    // On a veth or LAN path the reply is often queued
                    // already. One read; the rest at the next wake-up.
                    l.drain(fd, &mut rx_buf, 1);
                }
                Job::Clock => {
                    // Like echo probes, skip rather than flood after a stall.
                    if let (Some(c), Some(when)) = (p.clock_ns(), p.clock_due(p.j)) {
                        p.j += now.saturating_duration_since(when).as_nanos() as u64 / c;
                    }
                    let j = p.j;
                    let originate = originate_key(j, p.keys.cookie);
                    clock::build_request(&mut clock_buf, p.keys.ident, j, originate);
                    let sent_mono = Instant::now();
                    match IcmpPacket::new(&clock_buf[..])
                        .map(|pk| tx.send_to(pk, IpAddr::V4(p.addr)))
                    {
                        Some(Ok(_)) => {
                            p.m().clock_sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Err(e)) => p.m().send_error(&e),
                        None => p.m().send_error(&io::Error::other("no room")),
                    }
                    p.clocks.sent(j, originate, sent_mono);
                    p.j += 1;
                    if let Some(next) = p.clock_due(p.j) {
                        l.push(next, e.slot, Job::Clock);
                    }
                    l.drain(fd, &mut rx_buf, 1);
                }
                Job::Expire => {
                    p.expire(now);
                    let next = p.pending.next_deadline();
                    p.expire_scheduled = next.is_some();
                    if let Some(at) = next {
                        l.push(at, e.slot, Job::Expire);
                    }
                    l.touched(e.slot, before, now);
                }
                Job::Quiet => {
                    let next = p.tick_if_quiet(now);
                    l.push(next, e.slot, Job::Quiet);
                    l.touched(e.slot, before, now);
                }
            }
            continue;
        }
        let wake = e.at.min(now + MAX_WAIT);
        l.flush_before_sleep(now, wake);
        let wait = wake.saturating_duration_since(now);
        if wait <= READ_DELAY_MAX {
            // Sleep until the next thing due without watching the socket,
            // then read everything queued. Every reply carries its kernel
            // receive stamp, so reading it a little later changes no RTT,
            // and other pingers' replies cost no wake-up of their own.
            std::thread::sleep(wait);
            l.drain(fd, &mut rx_buf, DRAIN_MAX);
            continue;
        }
        match sys::wait_readable(fd, wait) {
            Ok(ready) => {
                // POLLERR stays up until the error queue is empty: drain
                // it first, or this wait returns at once, again and again.
                if ready.error {
                    l.drain_errors(fd, &mut rx_buf);
                }
                if ready.readable || ready.error {
                    l.drain(fd, &mut rx_buf, DRAIN_MAX);
                }
            }
            Err(e) => {
                // Cannot happen with a valid fd; don't spin if it does.
                eprintln!("migwatch-sidecar: waiting on the socket failed: {e}");
                metrics.inc(&metrics.receive_errors);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    l.flush(false);
    let fallbacks: u64 = l
        .slots
        .iter()
        .flatten()
        .map(|p| p.pending.clock_fallbacks)
        .sum();
    metrics.clock_fallbacks.store(fallbacks, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_phases_go_in_the_middle_of_the_widest_gap() {
        assert_eq!(widest_gap_middle(&mut []), 0.0);
        assert_eq!(widest_gap_middle(&mut [0.0]), 0.5);
        assert_eq!(widest_gap_middle(&mut [0.5, 0.0]), 0.75);
        let m = widest_gap_middle(&mut [0.0, 0.25, 0.5]);
        assert!((m - 0.75).abs() < 1e-12, "{m}");
        // The gap that wraps past 1.0.
        let m = widest_gap_middle(&mut [0.3, 0.4]);
        assert!((m - 0.85).abs() < 1e-12, "{m}");
    }
}
