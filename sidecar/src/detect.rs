//! Offline subcommands over trace files: `detect`, `eval`, `synth`.

use anyhow::{bail, Result};
use std::path::PathBuf;

/// `detect FILE`
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// The trace file.
    pub file: PathBuf,
}

/// `eval DIR`
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Folder of labelled traces.
    pub dir: PathBuf,
}

/// `synth DIR`
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Output folder.
    pub dir: PathBuf,
}

/// Runs `detect`.
pub fn run_detect(a: DetectArgs) -> Result<()> {
    bail!("detect {}: not built yet", a.file.display())
}

/// Runs `eval`.
pub fn run_eval(a: EvalArgs) -> Result<()> {
    bail!("eval {}: not built yet", a.dir.display())
}

/// Runs `synth`.
pub fn run_synth(a: SynthArgs) -> Result<()> {
    bail!("synth {}: not built yet", a.dir.display())
}
