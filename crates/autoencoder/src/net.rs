//! The convolutional autoencoder ([`ConvAe`]) and the VAE ([`Vae`]), which
//! share their encoder and decoder bodies.
use crate::config::{MapKind, MapSpec, NetConfig, Norm, ReconLoss, VaeConfig};
use crate::mapping::{prepare_codes, prepare_images, Mapping};
use crate::Result;
use dualspace_tensor::checkpoint::{load_varstore, save_varstore};
use std::path::Path;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

/// File name of a network map's weights in its run folder.
pub const MODEL_FILE: &str = "model.safetensors";

#[derive(Debug)]
enum NormLayer {
    Batch(nn::BatchNorm),
    Group(nn::GroupNorm),
    None,
}

impl NormLayer {
    fn new(p: nn::Path, cfg: &NetConfig, channels: i64) -> Self {
        match cfg.norm {
            Norm::Batch => NormLayer::Batch(nn::batch_norm2d(p, channels, Default::default())),
            Norm::Group => NormLayer::Group(nn::group_norm(p, cfg.groups, channels, Default::default())),
            Norm::None => NormLayer::None,
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            NormLayer::Batch(b) => b.forward_t(xs, train),
            NormLayer::Group(g) => nn::Module::forward(g, xs),
            NormLayer::None => xs.shallow_clone(),
        }
    }
}

fn conv_cfg() -> nn::ConvConfig {
    nn::ConvConfig { stride: 2, padding: 1, ..Default::default() }
}

/// Stride-2 convolutions down to `bottom_side`, flattened (no head).
#[derive(Debug)]
struct Encoder {
    convs: Vec<nn::Conv2D>,
    norms: Vec<NormLayer>,
}

impl Encoder {
    fn new(p: &nn::Path, cfg: &NetConfig) -> Self {
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut cin = cfg.image.channels;
        for (i, &w) in cfg.widths.iter().enumerate() {
            convs.push(nn::conv2d(p / format!("conv{i}"), cin, w, 4, conv_cfg()));
            // The first layer sees raw pixels; normalising it only costs time.
            norms.push(if i == 0 { NormLayer::None } else { NormLayer::new(p / format!("norm{i}"), cfg, w) });
            cin = w;
        }
        Self { convs, norms }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut h = xs.shallow_clone();
        for (c, n) in self.convs.iter().zip(&self.norms) {
            h = n.forward_t(&h.apply(c), train).relu();
        }
        h.flatten(1, -1)
    }
}

/// Linear layer from the code, then transposed convolutions up to the image,
/// tanh output.
#[derive(Debug)]
struct Decoder {
    fc: nn::Linear,
    convs: Vec<nn::ConvTranspose2D>,
    norms: Vec<NormLayer>,
    top: [i64; 3],
}

impl Decoder {
    fn new(p: &nn::Path, cfg: &NetConfig) -> Self {
        let last = *cfg.widths.last().unwrap_or(&1);
        let side = cfg.bottom_side();
        let fc = nn::linear(p / "fc", cfg.latent_dim, last * side * side, Default::default());
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let n = cfg.widths.len();
        let tcfg = nn::ConvTransposeConfig { stride: 2, padding: 1, ..Default::default() };
        for i in (0..n).rev() {
            let cin = cfg.widths[i];
            let cout = if i == 0 { cfg.image.channels } else { cfg.widths[i - 1] };
            convs.push(nn::conv_transpose2d(p / format!("deconv{i}"), cin, cout, 4, tcfg));
            norms.push(if i == 0 { NormLayer::None } else { NormLayer::new(p / format!("norm{i}"), cfg, cout) });
        }
        Self { fc, convs, norms, top: [last, side, side] }
    }

    fn forward_t(&self, z: &Tensor, train: bool) -> Tensor {
        let n = z.size()[0];
        let mut h = z.apply(&self.fc).relu().view([n, self.top[0], self.top[1], self.top[2]]);
        let last = self.convs.len() - 1;
        for (i, (c, nl)) in self.convs.iter().zip(&self.norms).enumerate() {
            h = h.apply(c);
            h = if i == last { h.tanh() } else { nl.forward_t(&h, train).relu() };
        }
        h
    }
}

fn recon_loss(kind: ReconLoss, y: &Tensor, x: &Tensor) -> Tensor {
    match kind {
        ReconLoss::Mse => y.mse_loss(x, tch::Reduction::Mean),
        ReconLoss::L1 => y.l1_loss(x, tch::Reduction::Mean),
    }
}

/// The loss of one training batch and its parts, for logs.
pub struct StepLoss {
    /// The objective that is minimised.
    pub loss: Tensor,
    /// Mean squared error per pixel on the [-1, 1] scale (detached).
    pub mse: Tensor,
    /// The VAE's KL term per image (detached); `None` for the AE.
    pub kl: Option<Tensor>,
}

/// A network map that can be trained by [`crate::train`].
pub trait TrainableMap: Mapping {
    /// Its variables.
    fn var_store(&self) -> &nn::VarStore;
    /// The loss of a batch `x` (f32 in [-1, 1] on the map's device), in
    /// training mode; any noise (the VAE's) is drawn from `noise_seed`.
    fn train_loss(&self, x: &Tensor, noise_seed: u64) -> StepLoss;
}

/// Deterministic convolutional autoencoder: `encoder.conv*` and a linear
/// bottleneck `encoder.fc`, `decoder.fc` and `decoder.deconv*`.
#[derive(Debug)]
pub struct ConvAe {
    cfg: NetConfig,
    vs: nn::VarStore,
    enc: Encoder,
    head: nn::Linear,
    dec: Decoder,
}

impl ConvAe {
    /// A freshly initialised autoencoder on `device` (seed libtorch first
    /// for a reproducible initialisation).
    pub fn new(cfg: NetConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (pe, pd) = (&root / "encoder", &root / "decoder");
        let enc = Encoder::new(&pe, &cfg);
        let flat = cfg.widths.last().copied().unwrap_or(1) * cfg.bottom_side() * cfg.bottom_side();
        let head = nn::linear(&pe / "fc", flat, cfg.latent_dim, Default::default());
        let dec = Decoder::new(&pd, &cfg);
        Ok(Self { cfg, vs, enc, head, dec })
    }

    /// Builds the network of `cfg` and loads `dir/model.safetensors`.
    pub fn load(cfg: NetConfig, dir: &Path, device: Device) -> Result<Self> {
        let m = Self::new(cfg, device)?;
        load_varstore(&m.vs, dir.join(MODEL_FILE))?;
        Ok(m)
    }

    /// The configuration.
    pub fn config(&self) -> &NetConfig {
        &self.cfg
    }

    fn encode_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.enc.forward_t(x, train).apply(&self.head)
    }
}

impl ModuleT for ConvAe {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.dec.forward_t(&self.encode_t(xs, train), train)
    }
}

impl Mapping for ConvAe {
    fn kind(&self) -> MapKind {
        MapKind::Ae
    }
    fn spec(&self) -> MapSpec {
        MapSpec::Ae(self.cfg.clone())
    }
    fn device(&self) -> Device {
        self.vs.device()
    }
    fn encode(&self, images: &Tensor) -> Result<Tensor> {
        let x = prepare_images(images, self.cfg.image, self.device())?;
        let _guard = tch::no_grad_guard();
        Ok(self.encode_t(&x, false))
    }
    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let z = prepare_codes(codes, self.cfg.latent_dim, self.device())?;
        let _guard = tch::no_grad_guard();
        Ok(self.dec.forward_t(&z, false))
    }
    fn save_weights(&self, dir: &Path) -> Result<()> {
        Ok(save_varstore(&self.vs, dir.join(MODEL_FILE))?)
    }
}

impl TrainableMap for ConvAe {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    fn train_loss(&self, x: &Tensor, _noise_seed: u64) -> StepLoss {
        let y = self.forward_t(x, true);
        let mse = y.detach().mse_loss(x, tch::Reduction::Mean);
        StepLoss { loss: recon_loss(self.cfg.loss, &y, x), mse, kl: None }
    }
}

/// `KL(N(mu, exp(logvar)) || N(0, I))` summed over code dimensions and
/// averaged over the batch: `0.5 * sum(mu^2 + exp(logvar) - 1 - logvar) / N`.
pub fn kl_divergence(mu: &Tensor, logvar: &Tensor) -> Tensor {
    let n = mu.size().first().copied().unwrap_or(1).max(1);
    (mu.square() + logvar.exp() - 1.0 - logvar).sum(Kind::Float) * (0.5 / n as f64)
}

/// Variational autoencoder (Kingma & Welling): the [`ConvAe`] bodies with
/// `encoder.mu` and `encoder.logvar` heads. Encoding returns the mean.
#[derive(Debug)]
pub struct Vae {
    cfg: VaeConfig,
    vs: nn::VarStore,
    enc: Encoder,
    mu: nn::Linear,
    logvar: nn::Linear,
    dec: Decoder,
}

impl Vae {
    /// A freshly initialised VAE on `device`.
    pub fn new(cfg: VaeConfig, device: Device) -> Result<Self> {
        MapSpec::Vae(cfg.clone()).validate()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (pe, pd) = (&root / "encoder", &root / "decoder");
        let net = &cfg.net;
        let enc = Encoder::new(&pe, net);
        let flat = net.widths.last().copied().unwrap_or(1) * net.bottom_side() * net.bottom_side();
        let mu = nn::linear(&pe / "mu", flat, net.latent_dim, Default::default());
        let logvar = nn::linear(&pe / "logvar", flat, net.latent_dim, Default::default());
        let dec = Decoder::new(&pd, net);
        Ok(Self { cfg, vs, enc, mu, logvar, dec })
    }

    /// Builds the network of `cfg` and loads `dir/model.safetensors`.
    pub fn load(cfg: VaeConfig, dir: &Path, device: Device) -> Result<Self> {
        let m = Self::new(cfg, device)?;
        load_varstore(&m.vs, dir.join(MODEL_FILE))?;
        Ok(m)
    }

    /// The configuration.
    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// Posterior mean and log-variance of `x`.
    pub fn posterior(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let h = self.enc.forward_t(x, train);
        (h.apply(&self.mu), h.apply(&self.logvar))
    }
}

impl Mapping for Vae {
    fn kind(&self) -> MapKind {
        MapKind::Vae
    }
    fn spec(&self) -> MapSpec {
        MapSpec::Vae(self.cfg.clone())
    }
    fn device(&self) -> Device {
        self.vs.device()
    }
    fn encode(&self, images: &Tensor) -> Result<Tensor> {
        let x = prepare_images(images, self.cfg.net.image, self.device())?;
        let _guard = tch::no_grad_guard();
        Ok(self.posterior(&x, false).0)
    }
    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let z = prepare_codes(codes, self.cfg.net.latent_dim, self.device())?;
        let _guard = tch::no_grad_guard();
        Ok(self.dec.forward_t(&z, false))
    }
    fn save_weights(&self, dir: &Path) -> Result<()> {
        Ok(save_varstore(&self.vs, dir.join(MODEL_FILE))?)
    }
}

impl TrainableMap for Vae {
    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }
    /// `(sum of per-pixel errors + beta * KL) / pixels`, averaged over the
    /// batch: the negative ELBO per pixel for beta = 1 (with a Gaussian or
    /// Laplace decoder of fixed scale).
    fn train_loss(&self, x: &Tensor, noise_seed: u64) -> StepLoss {
        let (mu, logvar) = self.posterior(x, true);
        let eps = crate::normal_noise(noise_seed, 0, &mu.size(), mu.device());
        let z = &mu + (&logvar * 0.5).exp() * eps;
        let y = self.dec.forward_t(&z, true);
        let kl = kl_divergence(&mu, &logvar);
        let pixels = self.cfg.net.image.numel() as f64;
        let loss = recon_loss(self.cfg.net.loss, &y, x) + &kl * (self.cfg.beta / pixels);
        let mse = y.detach().mse_loss(x, tch::Reduction::Mean);
        StepLoss { loss, mse, kl: Some(kl.detach()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ImageShape;

    fn tiny(norm: Norm) -> NetConfig {
        NetConfig {
            image: ImageShape::new(1, 8),
            latent_dim: 3,
            widths: vec![4, 8],
            norm,
            groups: 2,
            loss: ReconLoss::Mse,
        }
    }

    #[test]
    fn kl_matches_hand_computation_on_2x2() {
        // mu = [[0, 1], [-2, 0.5]], logvar = [[0, ln 2], [-1, 0.3]]:
        // per element 0.5 * (mu^2 + e^lv - 1 - lv):
        //   [0, 0]:  0.5 * (0 + 1 - 1 - 0)                  = 0
        //   [0, 1]:  0.5 * (1 + 2 - 1 - ln 2)               = 0.6534264097
        //   [1, 0]:  0.5 * (4 + e^-1 - 1 + 1)               = 2.1839397206
        //   [1, 1]:  0.5 * (0.25 + e^0.3 - 1 - 0.3)         = 0.1499294038
        // sum / batch 2 = 1.4936477670
        let mu = Tensor::from_slice(&[0.0f32, 1.0, -2.0, 0.5]).view([2, 2]);
        let lv = Tensor::from_slice(&[0.0f32, std::f32::consts::LN_2, -1.0, 0.3]).view([2, 2]);
        let kl = kl_divergence(&mu, &lv).double_value(&[]);
        let want = (0.0 + (2.0 - 2f64.ln()) + (4.0 + (-1f64).exp()) + (0.25 + 0.3f64.exp() - 1.3)) * 0.5 / 2.0;
        assert!((want - 1.493_647_767).abs() < 1e-8, "{want}");
        assert!((kl - want).abs() < 1e-6, "{kl} vs {want}");
        // The prior itself has no divergence.
        assert_eq!(
            kl_divergence(
                &Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
                &Tensor::zeros([2, 2], (Kind::Float, Device::Cpu))
            )
            .double_value(&[]),
            0.0
        );
    }

    #[test]
    fn shapes_and_tensor_names_follow_the_config() {
        for norm in [Norm::Batch, Norm::Group, Norm::None] {
            let _g = dualspace_tensor::seed::seed_guard(0);
            let ae = ConvAe::new(tiny(norm), Device::Cpu).unwrap();
            let x = Tensor::rand([5, 1, 8, 8], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
            let z = ae.encode(&x).unwrap();
            assert_eq!(z.size(), vec![5, 3]);
            let y = ae.decode(&z).unwrap();
            assert_eq!(y.size(), vec![5, 1, 8, 8]);
            assert!(y.abs().max().double_value(&[]) <= 1.0);
        }
        let _g = dualspace_tensor::seed::seed_guard(0);
        let ae = ConvAe::new(tiny(Norm::Batch), Device::Cpu).unwrap();
        let mut names: Vec<String> = ae.vs.variables().into_keys().collect();
        names.sort();
        assert!(names.contains(&"encoder.conv0.weight".to_string()), "{names:?}");
        assert!(names.contains(&"encoder.fc.weight".to_string()));
        assert!(names.contains(&"decoder.deconv0.weight".to_string()));
        assert!(names.contains(&"encoder.norm1.running_mean".to_string()));
        let vae = Vae::new(VaeConfig { net: tiny(Norm::Group), beta: 1.0 }, Device::Cpu).unwrap();
        assert!(vae.vs.variables().contains_key("encoder.logvar.weight"));
    }

    #[test]
    fn vae_encodes_the_posterior_mean_deterministically() {
        let _g = dualspace_tensor::seed::seed_guard(1);
        let vae = Vae::new(VaeConfig { net: tiny(Norm::Batch), beta: 1.0 }, Device::Cpu).unwrap();
        let x = Tensor::rand([4, 1, 8, 8], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let a = vae.encode(&x).unwrap();
        let b = vae.encode(&x).unwrap();
        assert!(a.equal(&b));
        let _g = tch::no_grad_guard();
        let (mu, _) = vae.posterior(&x, false);
        assert!(a.equal(&mu));
    }

    #[test]
    fn a_training_step_reduces_the_loss_on_one_batch() {
        let _g = dualspace_tensor::seed::seed_guard(2);
        let ae = ConvAe::new(tiny(Norm::Batch), Device::Cpu).unwrap();
        let x = Tensor::rand([16, 1, 8, 8], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let mut opt = dualspace_tensor::optim::Adam::new(&ae.vs, Default::default());
        let first = ae.train_loss(&x, 0).loss.double_value(&[]);
        for _ in 0..100 {
            let l = ae.train_loss(&x, 0).loss;
            opt.backward_step(&l);
        }
        let last = ae.train_loss(&x, 0).loss.double_value(&[]);
        assert!(last < 0.6 * first, "loss {first} -> {last}");
    }
}
