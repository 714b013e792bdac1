//! `dualspace judge ...` and `dualspace eval`.
use anyhow::{bail, Result};

/// Judge commands.
#[derive(clap::Subcommand, Debug)]
pub enum JudgeCmd {
    /// Train (or reuse the cached) judge classifier on all classes of a data set.
    Train(JudgeTrainArgs),
}
/// `judge train` arguments.
#[derive(clap::Args, Debug)]
pub struct JudgeTrainArgs {}
/// `eval` arguments.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {}

/// Runs a judge command.
pub fn run(cmd: JudgeCmd) -> Result<()> {
    match cmd {
        JudgeCmd::Train(_) => bail!("judge train is not implemented yet"),
    }
}
/// Evaluates samples.
pub fn eval(_a: EvalArgs) -> Result<()> {
    bail!("eval is not implemented yet")
}
