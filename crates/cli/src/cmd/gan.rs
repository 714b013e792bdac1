//! `dualspace train-latent-gan`, `train-pixel-gan`, `sample`.
use anyhow::{bail, Result};

/// `train-latent-gan` arguments.
#[derive(clap::Args, Debug)]
pub struct TrainLatentArgs {}
/// `train-pixel-gan` arguments.
#[derive(clap::Args, Debug)]
pub struct TrainPixelArgs {}
/// `sample` arguments.
#[derive(clap::Args, Debug)]
pub struct SampleArgs {}

/// Trains the latent GAN.
pub fn train_latent(_a: TrainLatentArgs) -> Result<()> {
    bail!("train-latent-gan is not implemented yet")
}
/// Trains the pixel GAN.
pub fn train_pixel(_a: TrainPixelArgs) -> Result<()> {
    bail!("train-pixel-gan is not implemented yet")
}
/// Samples a GAN.
pub fn sample(_a: SampleArgs) -> Result<()> {
    bail!("sample is not implemented yet")
}
