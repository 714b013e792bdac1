//! `dualspace data ...`
use anyhow::{bail, Result};

/// Data set commands.
#[derive(clap::Subcommand, Debug)]
pub enum DataCmd {
    /// Print classes and counts, load time, and write a grid of samples per class.
    Inspect(InspectArgs),
}

/// `data inspect` arguments.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {}

/// Runs a data command.
pub fn run(cmd: DataCmd) -> Result<()> {
    match cmd {
        DataCmd::Inspect(_) => bail!("data inspect is not implemented yet"),
    }
}
