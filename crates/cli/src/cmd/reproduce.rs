//! `dualspace reproduce`: the benchmark harness.
use anyhow::{bail, Result};

/// `reproduce` arguments.
#[derive(clap::Args, Debug)]
pub struct ReproduceArgs {}

/// Runs the reproduction.
pub fn run(_a: ReproduceArgs) -> Result<()> {
    bail!("reproduce is not implemented yet")
}
