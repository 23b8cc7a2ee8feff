//! migwatch's end-to-end tests, in one binary: real ICMP between network
//! namespaces, the real sidecar, and the real page in headless Chromium.
//!
//! They need root (namespaces, raw sockets). Run them with `scripts/test.sh`,
//! which installs and builds what they need first.

mod alerts;
mod app_bench;
mod app_common;
mod app_fleet;
mod app_history;
mod app_multi;
mod app_newcomer;
mod app_replay;
mod app_resume;
mod app_signals;
mod faults;
mod faults_send;
mod fleet;
mod hardening;
mod icmp;
mod onefile;
mod page;
mod stream;
mod timebase;
mod tls;
mod watch;

/// Fails the test at once when not root: these tests must never pass
/// vacuously.
#[macro_export]
macro_rules! require_root {
    () => {
        assert!(
            migwatch_tests::have_root(),
            "end-to-end tests need root (network namespaces, raw ICMP): run scripts/test.sh as root"
        );
    };
}
