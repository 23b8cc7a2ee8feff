//! Dropping privileges once the raw socket is open: the sidecar keeps its
//! socket and gives up root and every capability before it serves anyone.

use crate::sys;
use std::io;

/// What the process runs as after [`drop_privileges`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The uid now in effect.
    pub uid: u32,
    /// True when the process switched away from root.
    pub switched_user: bool,
}

/// Switches to `user` when running as root, then clears all capabilities
/// (also when started unprivileged with `setcap cap_net_raw+ep`). Call it
/// before spawning any thread, so every thread ends up unprivileged.
pub fn drop_privileges(user: &str) -> io::Result<Dropped> {
    let switched_user = if sys::euid() == 0 {
        let (uid, gid) = sys::lookup_user(user).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot drop root privileges to user {user:?} ({e}); pass --user NAME with an existing unprivileged user"),
            )
        })?;
        if uid == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("--user {user:?} is root; name an unprivileged user"),
            ));
        }
        sys::switch_user(uid, gid)?;
        true
    } else {
        false
    };
    sys::clear_capabilities()?;
    Ok(Dropped {
        uid: sys::euid(),
        switched_user,
    })
}

/// This process's effective capability mask, from `/proc/self/status`.
pub fn effective_capabilities() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| io::Error::other("no CapEff line in /proc/self/status"))
}
