//! The few Linux syscalls neither pnet nor std wrap: socket options for
//! kernel receive timestamps, the ICMP type filter and the receive buffer,
//! non-blocking `recvmsg` with its control messages, `ppoll` with a
//! nanosecond timeout, timer slack, thread nice values, and the privilege
//! drop.
//!
//! This is the only module allowed `unsafe`. Each block is one FFI call on
//! values owned by the caller, with the pointer/length pairs taken from Rust
//! objects that outlive the call.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::RawFd;
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

/// Waits until `fd` is readable or `timeout` has passed (`ppoll`, whose
/// timeout is a nanosecond hrtimer, unlike `SO_RCVTIMEO` or `poll`'s
/// milliseconds). Returns whether it is readable; a signal counts as
/// "not yet".
///
/// For a thread at nice 0 or below the kernel lets a poll timer fire up
/// to 0.1 % of the timeout late (`select_estimate_accuracy`: 10 µs of a
/// 10 ms wait), and on an otherwise idle CPU it fires at that latest
/// point; so this asks for 1000/1001 of `timeout`, which ends on time.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
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
            io::ErrorKind::Interrupted => Ok(false),
            _ => Err(e),
        };
    }
    Ok(n > 0 && pfd.revents & (libc::POLLIN | libc::POLLERR) != 0)
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
