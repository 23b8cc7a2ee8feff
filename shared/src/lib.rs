//! migwatch's shared vocabulary and judgement.
//!
//! * [`wire`]: the serde types of every event the sidecar streams and of
//!   `GET /info`, defined once for the sidecar, the page and the tools.
//! * [`detector`]: turns a stream of events into a traffic-light verdict with
//!   reasons and a list of migration events. It does no I/O and never reads
//!   a clock: time comes from the events, so replaying a trace gives exactly
//!   what the live run gave.
//! * [`trace`]: reads and writes trace files (JSON lines of wire events, or
//!   CSV with `seq,t_send,rtt_ms`) from and to strings.
//! * [`synth`]: seeded synthetic labelled traces: migrations and decoys.
//! * [`eval`]: scores the detector on labelled traces.
//! * [`report`]: the printed shape of a detected event (`detect`, `watch`,
//!   `/migrations`).
//!
//! The crate compiles for `wasm32-unknown-unknown` and natively alike.

#![forbid(unsafe_code)]

pub mod detector;
pub mod eval;
pub mod report;
pub mod synth;
pub mod trace;
pub mod wire;

pub use detector::{
    BaselineInfo, Detector, DetectorConfig, Evidence, Light, Migration, Reason, Verdict,
};
pub use wire::{Event, EventKind, Info, Late, Sample, Tick, WireError};
