//! The adversarial trainer of dualspace and the MLP GAN that learns the
//! distribution of standardised latent codes.
//!
//! - [`trainer`]: one trainer for both GANs (losses non-saturating, hinge,
//!   WGAN-GP; R1; `n_critic`; Adam with saveable state; EMA generator;
//!   divergence guard; JSONL log; exact-resume checkpoints). It drives any
//!   pair of networks built by a [`GanNets`] on batches from a
//!   [`BatchSource`]; it knows nothing about images or codes.
//! - [`model`]: the latent GAN's MLP generator and discriminator
//!   ([`LatentGanConfig`]) and its run configuration.
//! - [`layers`]: spectral normalisation and the fused leaky ReLU (slope
//!   0.2), shared with the pixel GAN.
//!
//! Other crates: `dualspace-tensor` (optimiser, checkpoints, clock, seeds)
//! below; `dualspace-pixel-gan` (the DCGAN baseline, same trainer) and
//! `dualspace-sampler` (latent generator -> decoder -> images) above. This
//! crate knows no data set, no mapping and no CLI.
#![warn(missing_docs)]

pub mod error;
pub mod layers;
pub mod model;
pub mod trainer;

pub use error::{Error, Result};
pub use model::{DNorm, LatentGanConfig, LatentRunConfig};
pub use trainer::{BatchSource, GanNets, Loss, RunPlan, RunSummary, StepStats, StopReason, TrainConfig, Trainer};

/// A trainer for the latent GAN on standardised `codes` `[N, D]` (moved to
/// `device` once), with batches of `train.batch_size` drawn by seed.
pub fn latent_trainer(model: &LatentGanConfig, train: TrainConfig, codes: &Tensor, device: Device) -> Result<Trainer> {
    model.validate()?;
    let size = codes.size();
    if size.len() != 2 || size[1] != model.data_dim {
        return Err(Error::Data(format!("codes: expected shape [N, {}], got {size:?}", model.data_dim)));
    }
    let data = codes.to_kind(Kind::Float).to_device(device);
    let source = trainer::tensor_batches(data, train.batch_size, train.seed, device, |b| b)?;
    Trainer::new(model, train, source, device)
}

use tch::{Device, Kind, Tensor};
