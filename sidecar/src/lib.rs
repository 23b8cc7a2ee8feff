//! The migwatch sidecar as a library: the prober, the stream hub, the HTTP
//! routes and the offline tools. `main.rs` is the thin binary over it; the
//! fuzz targets and benches reach the parsers through it.
#![deny(unsafe_code)]

pub mod capture;
pub mod cli;
pub mod clock;
pub mod detect;
pub mod embedded;
pub mod feed;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod privilege;
pub mod probe;
pub mod service;
pub mod stream;
pub mod sys;
pub mod targets;
pub mod watch;
