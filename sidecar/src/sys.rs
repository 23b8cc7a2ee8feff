//! The few Linux syscalls neither pnet nor std wrap: socket options for
//! kernel receive timestamps, the ICMP type filter, error reporting
//! (`IP_RECVERR`) and the receive buffer, non-blocking `recvmsg` with its
//! control messages and of the error queue, the announce capture's
//! `AF_PACKET` socket, `ppoll` with a
//! nanosecond timeout, timer slack, thread nice values, and the privilege
//! drop.
//!
//! This is the only module allowed `unsafe`. Each block is one FFI call on
//! values owned by the caller, with the pointer/length pairs taken from Rust
//! objects that outlive the call.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `SOL_RAW` / `ICMP_FILTER` from `<linux/icmp.h>` (not in the libc crate).
const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live reference, and we pass its exact size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

/// Asks the kernel to stamp every received packet (`SO_TIMESTAMPNS`,
/// CLOCK_REALTIME, taken when the packet reached the socket layer).
pub fn enable_rx_timestamps(fd: RawFd) -> io::Result<()> {
    setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_TIMESTAMPNS,
        &1 as &libc::c_int,
    )
}

/// Lets only the given ICMP types reach this raw socket (`ICMP_FILTER`), so
/// the host's own echo requests, unreachables etc. never wake the receiver.
pub fn icmp_accept_only(fd: RawFd, types: &[u8]) -> io::Result<()> {
    // The filter's bits are the types to *drop*.
    let mut drop_mask: u32 = !0;
    for t in types.iter().filter(|t| **t < 32) {
        drop_mask &= !(1u32 << t);
    }
    setsockopt(fd, SOL_RAW, ICMP_FILTER, &drop_mask)
}

/// Turns on `IP_RECVERR`. Without it the kernel hides from a raw socket
/// that the transmit queue dropped a packet (`sendto` returns success on
/// `ENOBUFS`) and discards the ICMP errors our probes cause. With it,
/// `sendto` reports the drop, and each ICMP error about a packet we sent
/// (destination unreachable, time exceeded, ...) is queued on the socket's
/// error queue: `poll` then says `POLLERR` and the next `recvmsg` fails
/// with the error until [`recv_error`] has read the queue empty. The queue
/// counts against the receive buffer, so it must be drained.
pub fn enable_recverr(fd: RawFd) -> io::Result<()> {
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_RECVERR, &1 as &libc::c_int)
}

/// Sets the receive buffer, past `rmem_max` when we have CAP_NET_ADMIN
/// (`SO_RCVBUFFORCE`), else as far as `SO_RCVBUF` allows. Returns the
/// size the kernel granted.
pub fn set_rcvbuf(fd: RawFd, bytes: usize) -> io::Result<usize> {
    let want = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    if setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &want).is_err() {
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &want)?;
    }
    let mut got: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `got` and `len` are live locals of the right types.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(usize::try_from(got).unwrap_or(0))
}

/// What [`wait_readable`] saw on the socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// Data is queued (`POLLIN`).
    pub readable: bool,
    /// An error is pending or queued (`POLLERR`): with `IP_RECVERR` this
    /// stays set until the error queue is drained with [`recv_error`].
    pub error: bool,
}

/// Waits until `fd` is readable, has an error, or `timeout` has passed
/// (`ppoll`, whose timeout is a nanosecond hrtimer, unlike `SO_RCVTIMEO`
/// or `poll`'s milliseconds). A signal counts as "nothing yet".
///
/// For a thread at nice 0 or below the kernel lets a poll timer fire up
/// to 0.1 % of the timeout late (`select_estimate_accuracy`: 10 µs of a
/// 10 ms wait), and on an otherwise idle CPU it fires at that latest
/// point; so this asks for 1000/1001 of `timeout`, which ends on time.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> io::Result<Ready> {
    let timeout = timeout - timeout / 1001;
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one live pollfd and a live timespec, for the call only; no
    // signal mask.
    let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted => Ok(Ready::default()),
            _ => Err(e),
        };
    }
    if n == 0 {
        return Ok(Ready::default());
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    Ok(Ready {
        readable: pfd.revents & libc::POLLIN != 0,
        error: pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0,
    })
}

/// One received datagram: its length in the buffer and the kernel's
/// receive timestamp, when the kernel gave one.
pub struct Received {
    /// Bytes written to the buffer.
    pub len: usize,
    /// Kernel receive time (CLOCK_REALTIME).
    pub kernel_time: Option<SystemTime>,
}

/// `recvmsg` into `buf` without blocking (`MSG_DONTWAIT`: `WouldBlock` when
/// nothing is queued), collecting the `SCM_TIMESTAMPNS` control message.
pub fn recv_with_timestamp(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; zero is a valid "empty" value for it.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (into `buf`) and `control`, all live
    // for the call and sized as declared.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut kernel_time = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just
    // filled, within `msg_controllen`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let h = &*cmsg;
            if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                if ts.tv_sec >= 0 {
                    kernel_time =
                        Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received {
        len: n as usize,
        kernel_time,
    })
}

/// One entry of a socket's error queue (`IP_RECVERR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedError {
    /// Where it came from (`SO_EE_ORIGIN_*`; [`ORIGIN_ICMP`] for an ICMP
    /// error a router or this host sent about our packet).
    pub origin: u8,
    /// The error as an errno (`EHOSTUNREACH` for a host unreachable, ...).
    pub errno: u32,
    /// The ICMP type and code, for [`ORIGIN_ICMP`].
    pub icmp_type: u8,
    /// See `icmp_type`.
    pub icmp_code: u8,
    /// The destination of the packet the error is about.
    pub dest: Option<Ipv4Addr>,
    /// Bytes of that packet written to the buffer: for a raw ICMP socket,
    /// from its ICMP header on (at least 8 bytes: type, code, checksum,
    /// identifier, sequence).
    pub len: usize,
}

/// `SO_EE_ORIGIN_ICMP`: the error is an ICMP message.
pub const ORIGIN_ICMP: u8 = libc::SO_EE_ORIGIN_ICMP;

/// Reads one entry of the socket's error queue without blocking
/// (`recvmsg(MSG_ERRQUEUE)`; `WouldBlock` when it is empty). The packet
/// the error is about goes to `buf`.
pub fn recv_error(fd: RawFd, buf: &mut [u8]) -> io::Result<QueuedError> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: sockaddr_in is plain data; zero is a valid value for it.
    let mut name: libc::sockaddr_in = unsafe { mem::zeroed() };
    // u64 elements keep the control buffer aligned for cmsghdr; room for
    // the extended error, its offender address and a timestamp.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; zero is a valid "empty" value for it.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `name`, `iov` (into `buf`) and `control`,
    // all live for the call and sized as declared. MSG_ERRQUEUE never
    // blocks.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let dest = (name.sin_family == libc::AF_INET as libc::sa_family_t
        && msg.msg_namelen as usize >= mem::size_of::<libc::sockaddr_in>())
    .then(|| Ipv4Addr::from(u32::from_be(name.sin_addr.s_addr)));
    let mut out = QueuedError {
        origin: 0,
        errno: 0,
        icmp_type: 0,
        icmp_code: 0,
        dest,
        len: (n as usize).min(buf.len()),
    };
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just
    // filled, within `msg_controllen`; the extended error is read
    // unaligned from inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let h = &*cmsg;
            if h.cmsg_level == libc::IPPROTO_IP
                && h.cmsg_type == libc::IP_RECVERR
                && h.cmsg_len as usize
                    >= libc::CMSG_LEN(mem::size_of::<libc::sock_extended_err>() as u32) as usize
            {
                let ee: libc::sock_extended_err =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                out.origin = ee.ee_origin;
                out.errno = ee.ee_errno;
                out.icmp_type = ee.ee_type;
                out.icmp_code = ee.ee_code;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(out)
}

/// Opens an `AF_PACKET` raw socket that receives nothing yet (protocol 0
/// until [`packet_bind`]). Needs CAP_NET_RAW; binding it later does not.
pub fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a packet socket to interface `ifindex`, receiving every protocol
/// (`ETH_P_ALL`). No privilege needed; binding again moves it (after its
/// interface was deleted the socket is unbound and can be bound to the
/// new one).
pub fn packet_bind(fd: RawFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; zero is a valid value for it.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex =
        libc::c_int::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: `sll` is a live sockaddr_ll and we pass its exact size.
    check(unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
}

/// The index of interface `name` now, or `None` when there is none
/// (`SIOCGIFINDEX` on `fd`, a socket we already hold: no new socket,
/// so it works under a seccomp filter on address families).
pub fn ifindex(fd: RawFd, name: &str) -> io::Result<Option<u32>> {
    // SAFETY: ifreq is plain data; zero is a valid value for it.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not an interface name"),
        ));
    }
    for (d, b) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *b as libc::c_char;
    }
    // SAFETY: `req` is a live ifreq the kernel reads the name from and
    // writes the index into.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFINDEX as _, &mut req) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODEV) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: SIOCGIFINDEX filled the union's ifindex member.
    let idx = unsafe { req.ifr_ifru.ifru_ifindex };
    Ok(u32::try_from(idx).ok().filter(|i| *i > 0))
}

/// Receives one frame into `buf` without blocking (`WouldBlock` when none
/// is queued); a frame longer than `buf` is cut. A pending socket error
/// (`ENETDOWN` when the bound interface went down or away) is returned,
/// and cleared, instead.
pub fn recv_frame(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is live and writable for its whole length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize).min(buf.len()))
}

/// Reads and clears the socket's pending error (`SO_ERROR`), 0 if none.
pub fn take_socket_error(fd: RawFd) -> io::Result<i32> {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are live locals of the right types.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(err)
}

/// Sets this thread's timer slack to 1 ns, so timed waits wake on time
/// instead of up to 50 µs late (the default slack).
pub fn tight_timer_slack() {
    // SAFETY: prctl with integer arguments only; failure is harmless.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Sets the calling thread's nice value (Linux nice values are per
/// thread; threads it spawns afterwards inherit it). Lowering it below 0
/// needs CAP_SYS_NICE, raising it never does.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    // SAFETY: integer arguments only; `who` 0 is the calling thread.
    check(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) })
}

/// Puts the calling thread in the SCHED_FIFO class at `prio` (1 is the
/// lowest real-time priority), or back in SCHED_OTHER with `None`. Threads
/// it spawns afterwards inherit the class. Entering it needs CAP_SYS_NICE;
/// leaving it never does.
pub fn set_thread_fifo(prio: Option<i32>) -> io::Result<()> {
    let (policy, prio) = match prio {
        Some(p) => (libc::SCHED_FIFO, p),
        None => (libc::SCHED_OTHER, 0),
    };
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: `param` is a valid sched_param for the duration of the call;
    // pid 0 is the calling thread.
    check(unsafe { libc::sched_setscheduler(0, policy, &param) })
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Looks up a user's uid and primary gid.
pub fn lookup_user(name: &str) -> io::Result<(u32, u32)> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"))?;
    // SAFETY: passwd is plain data; getpwnam_r fills it, pointing into `buf`,
    // which outlives the reads below.
    unsafe {
        let mut pw: libc::passwd = mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            cname.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such user {name:?}"),
            ));
        }
        Ok((pw.pw_uid, pw.pw_gid))
    }
}

/// Switches the whole process to `uid`/`gid` with no supplementary groups.
/// Must run before any thread is spawned.
pub fn switch_user(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: plain integer syscalls.
    unsafe {
        check(libc::setgroups(0, std::ptr::null()))?;
        check(libc::setgid(gid))?;
        check(libc::setuid(uid))?;
    }
    Ok(())
}

/// Clears every capability from the effective, permitted and inheritable
/// sets and the ambient set, and forbids regaining any through exec.
pub fn clear_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads a v3 header and two data structs, as declared;
    // prctl takes integers only.
    unsafe {
        // Ambient capabilities may be unsupported on old kernels: ignore.
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        check(libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as libc::c_ulong,
            0,
            0,
            0,
        ))?;
    }
    Ok(())
}
