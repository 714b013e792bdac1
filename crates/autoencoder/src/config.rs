//! Configurations: what a mapping is ([`MapSpec`]), how it is trained
//! ([`TrainConfig`]), and the `config.json` of a run folder ([`RunConfig`]).
use crate::{Error, Result};
use dualspace_tensor::optim::AdamConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The three kinds of mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapKind {
    /// Deterministic convolutional autoencoder.
    Ae,
    /// Variational autoencoder (codes are the posterior means).
    Vae,
    /// Principal component analysis.
    Pca,
}

impl MapKind {
    /// `ae`, `vae` or `pca`.
    pub fn as_str(self) -> &'static str {
        match self {
            MapKind::Ae => "ae",
            MapKind::Vae => "vae",
            MapKind::Pca => "pca",
        }
    }
}

impl std::fmt::Display for MapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Normalisation after the hidden convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Batch norm (running statistics are used when encoding and decoding).
    Batch,
    /// Group norm with [`NetConfig::groups`] groups.
    Group,
    /// No normalisation.
    None,
}

/// The reconstruction loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReconLoss {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    L1,
}

/// Shape of the images a mapping takes: channels and square side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// 1 (gray) or 3 (RGB).
    pub channels: i64,
    /// Side of the square images.
    pub size: i64,
}

impl ImageShape {
    /// A shape.
    pub fn new(channels: i64, size: i64) -> Self {
        Self { channels, size }
    }

    /// Values per image.
    pub fn numel(&self) -> i64 {
        self.channels * self.size * self.size
    }

    /// `[C, H, W]`.
    pub fn chw(&self) -> [i64; 3] {
        [self.channels, self.size, self.size]
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.size, self.size)
    }
}

/// The convolutional encoder/decoder shared by [`crate::ConvAe`] and
/// [`crate::Vae`]: stride-2 4x4 convolutions with `widths` channels, a linear
/// bottleneck of `latent_dim`, and the mirror image with transposed
/// convolutions and a tanh output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// The images.
    pub image: ImageShape,
    /// Size of the code.
    pub latent_dim: i64,
    /// Channels of each stride-2 convolution; the image side must be
    /// divisible by `2^widths.len()`.
    pub widths: Vec<i64>,
    /// Normalisation of the hidden layers.
    pub norm: Norm,
    /// Groups of group norm (ignored otherwise).
    pub groups: i64,
    /// Reconstruction loss.
    pub loss: ReconLoss,
}

impl NetConfig {
    /// 28x28 gray (Fashion-MNIST, MNIST): 32 and 64 channels, latent 32,
    /// batch norm, MSE.
    pub fn fashion_mnist() -> Self {
        Self {
            image: ImageShape::new(1, 28),
            latent_dim: 32,
            widths: vec![32, 64],
            norm: Norm::Batch,
            groups: 8,
            loss: ReconLoss::Mse,
        }
    }

    /// 64x64 RGB (dogs): 32, 64, 128, 256 channels down to 4x4, latent 128.
    pub fn dogs64() -> Self {
        Self {
            image: ImageShape::new(3, 64),
            latent_dim: 128,
            widths: vec![32, 64, 128, 256],
            norm: Norm::Batch,
            groups: 8,
            loss: ReconLoss::Mse,
        }
    }

    /// The preset for an image shape: [`NetConfig::fashion_mnist`] for 28x28,
    /// [`NetConfig::dogs64`] for 64x64 (with the given channels), otherwise as
    /// many stride-2 layers (at most 4) as keep the side whole and at least 4,
    /// latent 32 up to 32x32 and 128 above.
    pub fn for_image(image: ImageShape) -> Result<Self> {
        let mut cfg = match image.size {
            28 => Self::fashion_mnist(),
            64 => Self::dogs64(),
            s => {
                let mut layers = 0;
                let mut side = s;
                while layers < 4 && side % 2 == 0 && side / 2 >= 4 {
                    side /= 2;
                    layers += 1;
                }
                if layers == 0 {
                    return Err(Error::Invalid(format!(
                        "images of side {s} cannot be halved by a stride-2 convolution; resize them (--size 28, 32 or 64)"
                    )));
                }
                Self {
                    image,
                    latent_dim: if s <= 32 { 32 } else { 128 },
                    widths: [32, 64, 128, 256][..layers].to_vec(),
                    norm: Norm::Batch,
                    groups: 8,
                    loss: ReconLoss::Mse,
                }
            }
        };
        cfg.image = image;
        Ok(cfg)
    }

    /// Side of the feature map after the last convolution.
    pub fn bottom_side(&self) -> i64 {
        self.image.size >> self.widths.len()
    }

    /// Estimated FLOPs of one encoder forward pass per image (convolutions
    /// and the linear bottleneck, 2 per multiply-add).
    pub fn encoder_flops(&self) -> f64 {
        let mut flops = 0.0;
        let mut side = self.image.size as f64;
        let mut cin = self.image.channels as f64;
        for &w in &self.widths {
            side /= 2.0;
            flops += 2.0 * cin * w as f64 * 16.0 * side * side;
            cin = w as f64;
        }
        flops + 2.0 * cin * side * side * self.latent_dim as f64
    }

    /// Estimated FLOPs of one decoder forward pass per image (the mirror
    /// image of [`NetConfig::encoder_flops`]).
    pub fn decoder_flops(&self) -> f64 {
        // A transposed convolution costs what the convolution it mirrors costs.
        self.encoder_flops()
    }

    /// Checks that the network can be built.
    pub fn validate(&self) -> Result<()> {
        let layers = self.widths.len();
        if layers == 0 || self.widths.iter().any(|&w| w < 1) {
            return Err(Error::Invalid(format!("network widths {:?}: need at least one positive width", self.widths)));
        }
        if self.image.channels < 1 || self.image.size < 1 {
            return Err(Error::Invalid(format!("image shape {} is not valid", self.image)));
        }
        if self.image.size % (1 << layers) != 0 {
            return Err(Error::Invalid(format!(
                "image side {} is not divisible by 2^{layers} = {} ({layers} stride-2 layers); use fewer widths or another --size",
                self.image.size,
                1 << layers
            )));
        }
        if self.latent_dim < 1 {
            return Err(Error::Invalid(format!("latent dimension {} must be at least 1", self.latent_dim)));
        }
        if let Some(w) = self.widths.iter().chain([&self.latent_dim]).find(|&&w| w > MAX_WIDTH) {
            return Err(Error::Invalid(format!("width or latent dimension {w} is over the {MAX_WIDTH} limit")));
        }
        if self.norm == Norm::Group {
            if let Some(w) = self.widths.iter().find(|&&w| self.groups < 1 || w % self.groups != 0) {
                return Err(Error::Invalid(format!(
                    "group norm with {} groups does not divide {w} channels",
                    self.groups
                )));
            }
        }
        Ok(())
    }
}

/// Largest channel count or code length accepted (a guard against typos
/// that would ask libtorch for terabytes).
pub const MAX_WIDTH: i64 = 1 << 16;

/// A VAE: the network of [`NetConfig`] with mean and log-variance heads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeConfig {
    /// Encoder and decoder bodies.
    pub net: NetConfig,
    /// Weight of the KL term (beta-VAE; 1 is Kingma & Welling's ELBO with a
    /// summed reconstruction error).
    pub beta: f64,
}

/// PCA: `components` principal directions of the training images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaConfig {
    /// The images.
    pub image: ImageShape,
    /// Number of components kept (the code size).
    pub components: i64,
    /// Divide codes by the square root of their eigenvalues (unit variance).
    pub whiten: bool,
    /// Largest pixel dimension fitted by the exact covariance eigendecomposition;
    /// above it a randomized SVD (Halko et al., in f64) is used.
    pub exact_max_dim: i64,
}

impl PcaConfig {
    /// PCA of `components` components, no whitening.
    pub fn new(image: ImageShape, components: i64) -> Self {
        Self { image, components, whiten: false, exact_max_dim: 4096 }
    }
}

/// What a mapping is; stored under `map` in a run's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MapSpec {
    /// Convolutional autoencoder.
    Ae(NetConfig),
    /// Variational autoencoder.
    Vae(VaeConfig),
    /// PCA.
    Pca(PcaConfig),
}

impl MapSpec {
    /// The kind.
    pub fn kind(&self) -> MapKind {
        match self {
            MapSpec::Ae(_) => MapKind::Ae,
            MapSpec::Vae(_) => MapKind::Vae,
            MapSpec::Pca(_) => MapKind::Pca,
        }
    }

    /// The images it takes.
    pub fn image(&self) -> ImageShape {
        match self {
            MapSpec::Ae(n) => n.image,
            MapSpec::Vae(v) => v.net.image,
            MapSpec::Pca(p) => p.image,
        }
    }

    /// The code size.
    pub fn latent_dim(&self) -> i64 {
        match self {
            MapSpec::Ae(n) => n.latent_dim,
            MapSpec::Vae(v) => v.net.latent_dim,
            MapSpec::Pca(p) => p.components,
        }
    }

    /// One line for messages: `ae on 1x28x28 images, latent 32`.
    pub fn describe(&self) -> String {
        let extra = match self {
            MapSpec::Ae(n) => format!(", widths {:?}, {:?} norm", n.widths, n.norm).to_lowercase(),
            MapSpec::Vae(v) => {
                format!(", widths {:?}, {:?} norm, beta {}", v.net.widths, v.net.norm, v.beta).to_lowercase()
            }
            MapSpec::Pca(p) => {
                if p.whiten {
                    ", whitened".into()
                } else {
                    String::new()
                }
            }
        };
        format!("{} on {} images, latent {}{extra}", self.kind(), self.image(), self.latent_dim())
    }

    /// Checks that the mapping can be built.
    pub fn validate(&self) -> Result<()> {
        match self {
            MapSpec::Ae(n) => n.validate(),
            MapSpec::Vae(v) => {
                if !(v.beta >= 0.0 && v.beta.is_finite()) {
                    return Err(Error::Invalid(format!("VAE beta {} must be a finite number >= 0", v.beta)));
                }
                v.net.validate()
            }
            MapSpec::Pca(p) => {
                let d = p.image.numel();
                if p.components < 1 || p.components > d {
                    return Err(Error::Invalid(format!(
                        "PCA with {} components on {} images: need between 1 and {d}",
                        p.components, p.image
                    )));
                }
                Ok(())
            }
        }
    }
}

/// How a network mapping is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Stop after this many steps (total, counting those before a resume).
    pub steps: Option<u64>,
    /// Stop after this many training seconds (evaluation excluded).
    pub budget_s: Option<f64>,
    /// Images per step.
    pub batch_size: usize,
    /// Adam's hyperparameters.
    pub optim: AdamConfig,
    /// Seed of the initialisation, the batches and the VAE's noise.
    pub seed: u64,
    /// Checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Evaluate on the fixed test batch every this many steps (0 = only at the end).
    pub eval_every: u64,
    /// Size of the fixed test batch (the first test images).
    pub eval_batch: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: Some(2000),
            budget_s: None,
            batch_size: 64,
            optim: AdamConfig::default(),
            seed: 0,
            checkpoint_every: 500,
            eval_every: 100,
            eval_batch: 512,
        }
    }
}

impl TrainConfig {
    /// Checks the stopping rule and sizes.
    pub fn validate(&self) -> Result<()> {
        if self.steps.is_none() && self.budget_s.is_none() {
            return Err(Error::Invalid("training needs a number of steps or a time budget in seconds".into()));
        }
        if let Some(b) = self.budget_s {
            if !(b > 0.0 && b.is_finite()) {
                return Err(Error::Invalid(format!("time budget {b} s must be a positive number")));
            }
        }
        if self.batch_size == 0 || self.eval_batch == 0 {
            return Err(Error::Invalid("batch sizes must be at least 1".into()));
        }
        if !(self.optim.lr > 0.0 && self.optim.lr.is_finite()) {
            return Err(Error::Invalid(format!("learning rate {} must be a positive number", self.optim.lr)));
        }
        Ok(())
    }
}

/// Where the training images came from, recorded for `encode` and reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// Data set name or spec.
    pub name: String,
    /// Class names, index = label.
    pub classes: Vec<String>,
    /// Held-out class names (never seen by the map).
    pub holdout: Vec<String>,
}

/// The `config.json` of a run folder: everything needed to rebuild the map
/// and to continue its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The mapping.
    pub map: MapSpec,
    /// Training settings (absent for a map saved outside training).
    #[serde(default)]
    pub train: Option<TrainConfig>,
    /// The training data.
    #[serde(default)]
    pub data: Option<DataInfo>,
}

/// Where a training run writes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run folder (`runs/<name>`).
    pub dir: PathBuf,
    /// Continue the checkpoint in `dir` instead of starting afresh.
    pub resume: bool,
    /// JSONL log (default `<dir>/log.jsonl`).
    pub log: Option<PathBuf>,
    /// Recorded in `config.json`.
    pub data: Option<DataInfo>,
}

impl RunOptions {
    /// A fresh run in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), resume: false, log: None, data: None }
    }

    /// The log path.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone().unwrap_or_else(|| self.dir.join("log.jsonl"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_the_image_shape() {
        let f = NetConfig::for_image(ImageShape::new(1, 28)).unwrap();
        assert_eq!((f.latent_dim, f.widths.clone(), f.bottom_side()), (32, vec![32, 64], 7));
        let d = NetConfig::for_image(ImageShape::new(3, 64)).unwrap();
        assert_eq!((d.latent_dim, d.bottom_side()), (128, 4));
        let s = NetConfig::for_image(ImageShape::new(3, 16)).unwrap();
        assert_eq!((s.widths.len(), s.bottom_side(), s.latent_dim), (2, 4, 32));
        assert!(NetConfig::for_image(ImageShape::new(1, 7)).unwrap_err().to_string().contains("side 7"));
    }

    #[test]
    fn spec_round_trips_through_json_with_a_kind_tag() {
        let spec = MapSpec::Vae(VaeConfig { net: NetConfig::fashion_mnist(), beta: 0.5 });
        let text = serde_json::to_string(&spec).unwrap();
        assert!(text.contains("\"kind\":\"vae\""), "{text}");
        let back: MapSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec);
        assert_eq!(back.describe(), "vae on 1x28x28 images, latent 32, widths [32, 64], batch norm, beta 0.5");
    }

    #[test]
    fn flop_estimates_by_hand() {
        // 1 -> 32 out 14x14, 32 -> 64 out 7x7, 64*49 -> 32.
        let n = NetConfig::fashion_mnist();
        let e = 2.0 * 32.0 * 16.0 * 196.0 + 2.0 * 32.0 * 64.0 * 16.0 * 49.0 + 2.0 * 64.0 * 49.0 * 32.0;
        assert_eq!(n.encoder_flops(), e);
        assert_eq!(n.decoder_flops(), e);
    }

    #[test]
    fn invalid_specs_are_refused() {
        let mut n = NetConfig::fashion_mnist();
        n.widths = vec![8, 8, 8];
        assert!(n.validate().unwrap_err().to_string().contains("not divisible by 2^3"));
        let huge = NetConfig { latent_dim: 1 << 40, ..NetConfig::fashion_mnist() };
        assert!(huge.validate().unwrap_err().to_string().contains("over the 65536 limit"));
        let p = MapSpec::Pca(PcaConfig::new(ImageShape::new(1, 4), 17));
        assert!(p.validate().unwrap_err().to_string().contains("between 1 and 16"));
        let t = TrainConfig { steps: None, budget_s: None, ..TrainConfig::default() };
        assert!(t.validate().is_err());
    }
}
