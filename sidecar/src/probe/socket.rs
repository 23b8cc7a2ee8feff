//! The raw ICMP socket and the per-target keys replies must echo back.

use crate::sys;
use pnet::packet::icmp::IcmpTypes;
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::transport::{
    transport_channel, TransportChannelType, TransportProtocol, TransportReceiver, TransportSender,
};
use std::io;

/// Receive buffer asked for: unpaced bursts lose replies with the default.
const RCVBUF: usize = 8 << 20;

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
    pub(super) tx: TransportSender,
    pub(super) rx: TransportReceiver,
    /// Receive buffer the kernel granted, in bytes.
    pub rcvbuf: usize,
}

impl Socket {
    /// Opens the raw ICMP socket and sets it up: kernel receive timestamps,
    /// send and ICMP errors reported (`IP_RECVERR`), echo replies only, a
    /// large receive buffer. Needs CAP_NET_RAW, so call
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
        // Send errors (ENOBUFS from a dropping qdisc) and ICMP errors about
        // our probes are reported, not hidden; the prober drains the error
        // queue this fills (schedule.rs, `drain_errors`).
        sys::enable_recverr(fd)?;
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
        RunKeys::random_avoiding(&idents_in_use())
    }

    /// Like [`RunKeys::random`], with the identifiers to avoid given (one
    /// scan of `/proc` for a whole set of targets).
    pub fn random_avoiding(busy: &std::collections::HashSet<u16>) -> io::Result<RunKeys> {
        let candidates = (0..64)
            .map(|_| getrandom::u64().map(|r| (r >> 48) as u16))
            .collect::<Result<Vec<u16>, _>>()
            .map_err(io::Error::other)?;
        let ident = pick_ident(busy, &candidates);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Until the child has exec'd, /proc shows the parent's name: look
        // again for a moment rather than race it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let found = loop {
            let found = idents_in_use().contains(&(child.id() as u16));
            if found || std::time::Instant::now() >= deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(found, "a running *ping* process must be avoided");
    }
}
