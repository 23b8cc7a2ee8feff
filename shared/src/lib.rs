//! migwatch's shared vocabulary and judgement.
//!
//! * [`wire`]: the serde types of every event the sidecar streams and of
//!   `GET /info`, defined once for the sidecar, the page and the tools.
//! * [`detector`]: turns a stream of events into a traffic-light verdict with
//!   reasons. It does no I/O and never reads a clock: time comes from the
//!   samples, so replaying a trace gives exactly what the live run gave.
//!
//! The crate compiles for `wasm32-unknown-unknown` and natively alike.

#![forbid(unsafe_code)]

pub mod detector;
pub mod wire;

pub use detector::{Detector, DetectorConfig, Light, Reason, Verdict};
pub use wire::{Event, EventKind, Info, Late, Sample, Tick, WireError};
