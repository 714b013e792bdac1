//! Invertible mappings for dualspace: a convolutional autoencoder
//! ([`ConvAe`]), a VAE ([`Vae`]) and PCA ([`Pca`]) behind one [`Mapping`]
//! trait. A mapping takes images to a compact "dual space" of codes, where the
//! latent GAN trains, and brings generated codes back to images.
//!
//! - [`train_map`] trains or fits a mapping from image tensors into a run
//!   folder (`config.json`, `meta.json`, weights, Adam state, `log.jsonl`,
//!   `recon.png`), with exact resume; [`load_mapping`] rebuilds any kind
//!   from such a folder.
//! - [`write_codes`] / [`read_codes`]: the codes file of `dualspace encode`
//!   (standardised codes, labels, and the mean and std to undo it).
//!
//! Neighbours: `dualspace-tensor` (checkpoints, Adam, clock, seeding, grids)
//! below it; `dualspace-latent-gan` trains on the codes, `dualspace-sampler`
//! decodes through [`Mapping`], and `dualspace-cli` wires it to the data
//! sets. This crate knows nothing about GANs, data loaders or the CLI: it
//! takes tensors.
#![warn(missing_docs)]

pub mod codes;
pub mod config;
pub mod error;
pub mod mapping;
pub mod net;
pub mod pca;
pub mod train;

pub use codes::{read_codes, write_codes, Codes};
pub use config::{
    DataInfo, ImageShape, MapKind, MapSpec, NetConfig, Norm, PcaConfig, ReconLoss, RunConfig, RunOptions, TrainConfig,
    VaeConfig,
};
pub use error::{Error, Result};
pub use mapping::{
    decode_batched, encode_batched, load_mapping, read_run_config, reconstruction_error, save_mapping, Mapping, Recon,
};
pub use net::{kl_divergence, ConvAe, Vae};
pub use pca::Pca;
pub use train::{split_by_classes, train_map, TrainSummary};

/// Standard normal noise drawn on the Rust side from stream `stream` of
/// `seed` (Box-Muller over ChaCha8), then moved to `device`: independent of
/// libtorch's global generator, identical on every device.
pub(crate) fn normal_noise(seed: u64, stream: u64, shape: &[i64], device: tch::Device) -> tch::Tensor {
    use rand::Rng;
    let n: i64 = shape.iter().product();
    let mut rng = dualspace_tensor::seed::rng(seed, stream);
    let mut out = Vec::with_capacity(n as usize + 1);
    while (out.len() as i64) < n {
        // u1 in (0, 1] keeps the logarithm finite.
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n as usize);
    tch::Tensor::from_slice(&out).view(shape).to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_noise_repeats_by_seed_and_is_standard() {
        let a = normal_noise(1, 2, &[100, 50], tch::Device::Cpu);
        assert!(a.equal(&normal_noise(1, 2, &[100, 50], tch::Device::Cpu)));
        assert!(!a.equal(&normal_noise(1, 3, &[100, 50], tch::Device::Cpu)));
        let mean = a.mean(tch::Kind::Double).double_value(&[]);
        let std = a.to_kind(tch::Kind::Double).std(true).double_value(&[]);
        // 5000 draws: the mean's standard error is about 0.014.
        assert!(mean.abs() < 0.05 && (std - 1.0).abs() < 0.05, "mean {mean}, std {std}");
    }
}
