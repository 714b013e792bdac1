//! `dualspace train-map`, `encode`, `decode`.
use anyhow::{bail, Result};

/// `train-map` arguments.
#[derive(clap::Args, Debug)]
pub struct TrainMapArgs {}
/// `encode` arguments.
#[derive(clap::Args, Debug)]
pub struct EncodeArgs {}
/// `decode` arguments.
#[derive(clap::Args, Debug)]
pub struct DecodeArgs {}

/// Trains a mapping.
pub fn train(_a: TrainMapArgs) -> Result<()> {
    bail!("train-map is not implemented yet")
}
/// Encodes a data set.
pub fn encode(_a: EncodeArgs) -> Result<()> {
    bail!("encode is not implemented yet")
}
/// Decodes codes into a grid.
pub fn decode(_a: DecodeArgs) -> Result<()> {
    bail!("decode is not implemented yet")
}
