//! L2 announce capture: after a live migration the destination hypervisor
//! announces the guest's MAC (QEMU sends RARP frames) and the guest sends
//! gratuitous ARPs, so switches learn its new port. A monitor on the same
//! segment sees them through a packet socket, not through its IP stack.
//!
//! The target's MAC is learned from the frames themselves: any IPv4 frame or
//! ARP from the target's address names it (our echo replies do, within the
//! first probe interval). An announce of another MAC at the address names
//! the one learned before (`previous_mac`): a different machine, not a move.
//!
//! The capture owns its `AF_PACKET` socket, so it outlives its interface.
//! Creating the socket needs CAP_NET_RAW, binding it does not: when the
//! interface is deleted the kernel unbinds the socket (and reports
//! `ENETDOWN`), and after the privilege drop the capture can still bind the
//! same socket to the interface of that name once it exists again.

mod frames;

pub use frames::{about, classify, AnnounceKind, Heard, Learned, Seen};

use crate::metrics::Metrics;
use crate::sys;
use crate::targets::{Fleet, Target};
use migwatch_shared::wire::{Announce, AnnounceKind as WireKind, Event, Mac};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest wait for a frame, so `stop` is noticed within it.
const POLL: Duration = Duration::from_millis(100);
/// While the interface is gone, look for it again this often: a few
/// ioctls a second, and a re-created interface is captured on within it.
const REAPPEAR_POLL: Duration = Duration::from_millis(200);
/// How often an idle capture checks that its interface is the one bound
/// (an interface deleted while it was down reports no error).
const RECHECK: Duration = Duration::from_secs(1);
/// Bytes read of each frame: the Ethernet, ARP and IPv4 headers are all
/// the capture looks at.
const SNAP: usize = 2048;
/// Frames read in one go before `stop` is checked again.
const BATCH: usize = 256;

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
    /// Opening or binding the packet socket failed.
    #[error("cannot capture on {name}: {source} (needs root or CAP_NET_RAW)")]
    Open {
        /// Interface.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// An open, read-only capture on one interface.
pub struct Capture {
    fd: OwnedFd,
    /// The index of the interface the socket is bound to.
    ifindex: u32,
    /// The interface's name.
    pub iface: String,
}

/// Opens a packet socket on `name` (before the privilege drop). Not
/// promiscuous: the announces are broadcasts, and our own replies are
/// addressed to us.
pub fn open(name: &str) -> Result<Capture, CaptureError> {
    let err = |source| CaptureError::Open {
        name: name.into(),
        source,
    };
    let fd = sys::packet_socket().map_err(err)?;
    let Some(ifindex) = sys::ifindex(fd.as_raw_fd(), name).map_err(err)? else {
        return Err(CaptureError::NoInterface {
            name: name.into(),
            known: pnet::datalink::interfaces()
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    sys::packet_bind(fd.as_raw_fd(), ifindex).map_err(err)?;
    Ok(Capture {
        fd,
        ifindex,
        iface: name.into(),
    })
}

/// Whether the capture got past an interface change.
enum Rebound {
    /// Capturing (again).
    Yes,
    /// `stop` was set while waiting.
    Stopped,
}

impl Capture {
    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// After a socket error or on the periodic check: is the bound
    /// interface still the one of that name? If it went down and stays,
    /// the kernel hooks the socket back in when it comes up; if it was
    /// deleted, wait for an interface of the name and bind to it.
    fn follow_iface(&mut self, metrics: &Metrics, stop: &AtomicBool) -> Rebound {
        match sys::ifindex(self.raw(), &self.iface) {
            Ok(Some(i)) if i == self.ifindex => return Rebound::Yes,
            Ok(Some(i)) => {
                // Deleted and re-created between two looks.
                metrics.inc(&metrics.capture_iface_lost);
                tracing::warn!(
                    "capture: {} was re-created (ifindex {} -> {i}); capturing on the new one",
                    self.iface,
                    self.ifindex
                );
                return self.bind(i);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("capture: looking up {} failed: {e}", self.iface),
        }
        metrics.inc(&metrics.capture_iface_lost);
        metrics.capture_waiting.store(1, Ordering::Relaxed);
        tracing::warn!(
            "capture: {} went away; no announces until it is back (looking every {} ms)",
            self.iface,
            REAPPEAR_POLL.as_millis()
        );
        let since = Instant::now();
        let found = loop {
            if stop.load(Ordering::Relaxed) {
                return Rebound::Stopped;
            }
            std::thread::sleep(REAPPEAR_POLL);
            if let Ok(Some(i)) = sys::ifindex(self.raw(), &self.iface) {
                break i;
            }
        };
        metrics.capture_waiting.store(0, Ordering::Relaxed);
        tracing::info!(
            "capture: {} is back after {:.1} s (ifindex {found}); capturing again",
            self.iface,
            since.elapsed().as_secs_f64()
        );
        self.bind(found)
    }

    fn bind(&mut self, ifindex: u32) -> Rebound {
        // A leftover error from the old interface would read as a new one.
        let _ = sys::take_socket_error(self.raw());
        match sys::packet_bind(self.raw(), ifindex) {
            Ok(()) => self.ifindex = ifindex,
            // Gone again already: the next check finds out and waits.
            Err(e) => tracing::warn!("capture: binding to {} failed: {e}", self.iface),
        }
        Rebound::Yes
    }
}

/// The announce as a wire event, stamped now.
fn announce_event(h: &Heard) -> Event {
    // On the samples' timeline (never stepped), so the detector can set
    // the announce against them.
    let at_us = crate::probe::timebase::process().now_us();
    let kind = match h.kind {
        AnnounceKind::Rarp => WireKind::Rarp,
        AnnounceKind::Garp => WireKind::Garp,
    };
    Event::Announce(Announce {
        at_us,
        kind,
        mac: Mac(h.mac.octets()),
        previous_mac: h.previous.map(|m| Mac(m.octets())),
    })
}

/// Reads frames until `stop`, emitting an `announce` event for each
/// announce of any target in `fleet` (looked up per frame, so targets
/// added by a reload are watched at once). Runs on its own thread. A
/// target's MAC is learned from its own frames; an announce of a new MAC
/// at the same address (a new VM there) names the old one and replaces it.
/// The capture follows its interface through deletion and re-creation.
pub fn start(
    mut cap: Capture,
    fleet: Arc<Fleet>,
    out: SyncSender<(Arc<Target>, Event)>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let mut learned = Learned::default();
            let mut buf = vec![0u8; SNAP];
            let mut checked = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let ready = match sys::wait_readable(cap.raw(), POLL) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("capture on {}: waiting failed: {e}", cap.iface);
                        std::thread::sleep(POLL);
                        continue;
                    }
                };
                let mut trouble = ready.error;
                if ready.readable {
                    for _ in 0..BATCH {
                        let n = match sys::recv_frame(cap.raw(), &mut buf) {
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            // ENETDOWN: the interface went down or away.
                            Err(_) => {
                                trouble = true;
                                break;
                            }
                        };
                        let Some(h) = learned.frame(&buf[..n], |a| fleet.by_address(a).is_some())
                        else {
                            continue;
                        };
                        let Some(target) = fleet.by_address(h.addr) else {
                            continue;
                        };
                        // Never blocks: a full channel drops the event.
                        let _ = out.try_send((target, announce_event(&h)));
                    }
                }
                if trouble || checked.elapsed() >= RECHECK {
                    checked = Instant::now();
                    if trouble {
                        // Clears the error, so the next poll waits again.
                        let _ = sys::take_socket_error(cap.raw());
                    }
                    if let Rebound::Stopped = cap.follow_iface(&metrics, &stop) {
                        return;
                    }
                }
            }
        })
}
