//! The MLP GAN on standardised latent codes: configuration, networks, and
//! the run configuration written to `config.json`.
use crate::layers::{sn_linear, SnLinear};
use crate::trainer::{GanNets, TrainConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Normalisation inside the discriminator's hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DNorm {
    /// Plain linear layers.
    None,
    /// Layer norm after each hidden linear layer (safe with gradient penalties).
    Layer,
    /// Spectral norm of every linear layer's weight.
    Spectral,
}

/// Shape of the latent GAN.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatentGanConfig {
    /// Length of a code (the mapping's latent dimension).
    pub data_dim: i64,
    /// Length of the noise vector.
    pub noise_dim: i64,
    /// Widths of the generator's hidden layers (ReLU after each).
    pub g_hidden: Vec<i64>,
    /// Widths of the discriminator's hidden layers (leaky ReLU 0.2 after each).
    pub d_hidden: Vec<i64>,
    /// Normalisation in the discriminator.
    pub d_norm: DNorm,
}

impl LatentGanConfig {
    /// The default for codes of length `data_dim`: noise 64, two hidden
    /// layers of 512 in both networks, no normalisation.
    pub fn new(data_dim: i64) -> Self {
        Self { data_dim, noise_dim: 64, g_hidden: vec![512, 512], d_hidden: vec![512, 512], d_norm: DNorm::None }
    }

    /// A small one for 2-D toy data: noise 16, two hidden layers of 128.
    pub fn toy(data_dim: i64) -> Self {
        Self { data_dim, noise_dim: 16, g_hidden: vec![128, 128], d_hidden: vec![128, 128], d_norm: DNorm::None }
    }

    /// Estimated FLOPs of one generator forward pass per sample: 2 per
    /// multiply-add of its linear layers.
    pub fn g_flops(&self) -> f64 {
        let dims: Vec<i64> =
            std::iter::once(self.noise_dim).chain(self.g_hidden.iter().copied()).chain([self.data_dim]).collect();
        dims.windows(2).map(|w| 2.0 * (w[0] * w[1]) as f64).sum()
    }

    /// Estimated FLOPs of one discriminator forward pass per sample.
    pub fn d_flops(&self) -> f64 {
        let dims: Vec<i64> = std::iter::once(self.data_dim).chain(self.d_hidden.iter().copied()).chain([1]).collect();
        dims.windows(2).map(|w| 2.0 * (w[0] * w[1]) as f64).sum()
    }

    /// Checks ranges; the message names the field.
    pub fn validate(&self) -> Result<()> {
        if self.data_dim < 1 || self.noise_dim < 1 {
            return Err(Error::Config(format!(
                "data_dim and noise_dim must be at least 1, got {} and {}",
                self.data_dim, self.noise_dim
            )));
        }
        if self.g_hidden.iter().chain(&self.d_hidden).any(|&w| w < 1) {
            return Err(Error::Config("hidden widths must be at least 1".into()));
        }
        let all = [self.data_dim, self.noise_dim];
        if let Some(w) = self.g_hidden.iter().chain(&self.d_hidden).chain(&all).find(|&&w| w > MAX_WIDTH) {
            return Err(Error::Config(format!("width {w} is over the {MAX_WIDTH} limit")));
        }
        Ok(())
    }
}

/// Largest layer width, code length or noise length accepted (a guard
/// against typos that would ask libtorch for terabytes).
pub const MAX_WIDTH: i64 = 1 << 16;

/// The generator: noise -> hidden (ReLU) ... -> code, linear output.
#[derive(Debug)]
pub struct MlpGenerator {
    layers: Vec<nn::Linear>,
}

impl MlpGenerator {
    /// Layers `fc0`, `fc1`, ... under `p`.
    pub fn new(p: nn::Path, cfg: &LatentGanConfig) -> Self {
        let mut dims = vec![cfg.noise_dim];
        dims.extend(&cfg.g_hidden);
        dims.push(cfg.data_dim);
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| nn::linear(&p / format!("fc{i}"), w[0], w[1], Default::default()))
            .collect();
        Self { layers }
    }
}

impl nn::ModuleT for MlpGenerator {
    fn forward_t(&self, z: &Tensor, _train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut x = z.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = nn::Module::forward(l, &x);
            if i < last {
                x = x.relu();
            }
        }
        x
    }
}

#[derive(Debug)]
enum DLayer {
    Plain(nn::Linear),
    Sn(SnLinear),
}

/// The discriminator: code -> hidden (norm, leaky ReLU 0.2) ... -> one logit.
#[derive(Debug)]
pub struct MlpDiscriminator {
    layers: Vec<DLayer>,
    norms: Vec<nn::LayerNorm>,
}

impl MlpDiscriminator {
    /// Layers `fc0`, `fc1`, ... (and `ln0`, ... with layer norm) under `p`.
    pub fn new(p: nn::Path, cfg: &LatentGanConfig) -> Self {
        let mut dims = vec![cfg.data_dim];
        dims.extend(&cfg.d_hidden);
        dims.push(1);
        let mut layers = Vec::new();
        let mut norms = Vec::new();
        for (i, w) in dims.windows(2).enumerate() {
            let lp = &p / format!("fc{i}");
            layers.push(match cfg.d_norm {
                DNorm::Spectral => DLayer::Sn(sn_linear(&lp, w[0], w[1])),
                _ => DLayer::Plain(nn::linear(&lp, w[0], w[1], Default::default())),
            });
            if cfg.d_norm == DNorm::Layer && i + 2 < dims.len() {
                norms.push(nn::layer_norm(&p / format!("ln{i}"), vec![w[1]], Default::default()));
            }
        }
        Self { layers, norms }
    }
}

impl nn::ModuleT for MlpDiscriminator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.layers.len() - 1;
        let mut h = x.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = match l {
                DLayer::Plain(l) => nn::Module::forward(l, &h),
                DLayer::Sn(l) => nn::ModuleT::forward_t(l, &h, train),
            };
            if i < last {
                if let Some(n) = self.norms.get(i) {
                    h = nn::Module::forward(n, &h);
                }
                h = crate::layers::leaky_relu(&h);
            }
        }
        h.view([-1])
    }
}

impl GanNets for LatentGanConfig {
    fn noise_dim(&self) -> i64 {
        self.noise_dim
    }
    fn generator(&self, p: nn::Path) -> Box<dyn nn::ModuleT> {
        Box::new(MlpGenerator::new(p, self))
    }
    fn discriminator(&self, p: nn::Path) -> Box<dyn nn::ModuleT> {
        Box::new(MlpDiscriminator::new(p, self))
    }
    /// Plain and layer-normalised MLPs score each code on its own. With
    /// spectral norm every training pass also advances the power
    /// iteration, so two passes differ from one: those keep two.
    fn per_item_discriminator(&self) -> bool {
        self.d_norm != DNorm::Spectral
    }
}

/// The `kind` written into a latent GAN's `config.json`.
pub const KIND: &str = "latent-gan";

/// The file of a latent GAN run folder that keeps the codes' `mean` and
/// `std` (and `image_shape` when known), so samples can be un-standardised
/// without the codes file.
pub const CODE_STATS: &str = "code_stats.safetensors";

/// Everything a latent GAN run folder's `config.json` holds: enough to
/// rebuild the networks and to find the codes and the mapping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatentRunConfig {
    /// Always [`KIND`]; tells a latent GAN run from a pixel GAN run.
    pub kind: String,
    /// The networks.
    pub model: LatentGanConfig,
    /// The training.
    pub train: TrainConfig,
    /// The codes file it was trained on.
    pub codes: String,
    /// The mapping run folder that decodes its samples, when known.
    pub map: Option<String>,
}

impl LatentRunConfig {
    /// A run configuration of [`KIND`].
    pub fn new(model: LatentGanConfig, train: TrainConfig, codes: String, map: Option<String>) -> Self {
        Self { kind: KIND.into(), model, train, codes, map }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_bounds_the_widths() {
        assert!(LatentGanConfig::new(32).validate().is_ok());
        let e = LatentGanConfig { g_hidden: vec![1 << 20], ..LatentGanConfig::new(32) }.validate().unwrap_err();
        assert!(e.to_string().contains("over the 65536 limit"), "{e}");
        assert!(LatentGanConfig { noise_dim: 0, ..LatentGanConfig::new(32) }.validate().is_err());
    }

    #[test]
    fn flop_estimates_by_hand() {
        let c = LatentGanConfig::new(32);
        assert_eq!(c.g_flops(), 2.0 * (64.0 * 512.0 + 512.0 * 512.0 + 512.0 * 32.0));
        assert_eq!(c.d_flops(), 2.0 * (32.0 * 512.0 + 512.0 * 512.0 + 512.0));
    }
}
