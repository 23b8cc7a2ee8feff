//! What the benchmark binaries (`mw-bench`, `mw-bench-fleet`) share: the
//! Markdown report and its machine header, child-process guards, the
//! statistics and the number formats of their tables, and the readers of
//! the reference tools' (`ping`, `fping`) output.
//!
//! Each binary keeps only its own sections; nothing here measures.

pub mod guard;
pub mod report;
pub mod stats;
pub mod tools;

pub use guard::Guard;
pub use report::Report;
