//! The pixel-space DCGAN baseline of dualspace (Radford et al., 2016):
//! transposed convolutions with batch norm and ReLU in the generator,
//! strided convolutions with leaky ReLU (0.2) in the discriminator, tanh
//! output in [-1, 1], weights initialised N(0, 0.02).
//!
//! It is trained by exactly the trainer the latent GAN uses
//! (`dualspace_latent_gan::trainer`), with the same losses, optimiser,
//! EMA, logging and checkpoints; only the networks and the data differ.
//!
//! Other crates: `dualspace-latent-gan` (the trainer, spectral norm) and
//! `dualspace-tensor` below; `dualspace-sampler` and the CLI above. This
//! crate knows no data loader (it takes image tensors) and no mapping.
#![warn(missing_docs)]

use dualspace_latent_gan::layers::{sn_vector, spectral_normalize};
use dualspace_latent_gan::trainer::{tensor_batches, GanNets, TrainConfig, Trainer};
use dualspace_latent_gan::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// Normalisation between the discriminator's convolutions (never after the
/// first one, as in DCGAN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelDNorm {
    /// Batch norm (DCGAN's choice; avoid with gradient penalties).
    Batch,
    /// None.
    None,
    /// Spectral norm of every convolution's weight.
    Spectral,
}

/// Shape of the DCGAN. The image side must be 4 or 7 times a power of two
/// (28 = 7 * 4, 32 = 4 * 8, 64 = 4 * 16); the networks have one stride-2
/// level per doubling.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DcganConfig {
    /// Image channels (1 or 3).
    pub channels: i64,
    /// Image side.
    pub size: i64,
    /// Length of the noise vector.
    pub noise_dim: i64,
    /// Generator width: channels of the last hidden level (doubling towards
    /// the noise).
    pub g_width: i64,
    /// Discriminator width: channels of the first level (doubling towards
    /// the logit).
    pub d_width: i64,
    /// Normalisation in the discriminator.
    pub d_norm: PixelDNorm,
}

impl DcganConfig {
    /// The DCGAN for 28x28 gray images (Fashion-MNIST): noise 100,
    /// G 7x7x256 -> 14x14x128 -> 28x28x1, D 28x28x1 -> 14x14x64 -> 7x7x128 -> 1.
    pub fn fashion_mnist() -> Self {
        Self { channels: 1, size: 28, noise_dim: 100, g_width: 128, d_width: 64, d_norm: PixelDNorm::Batch }
    }

    /// The original DCGAN for 64x64 colour images: noise 100, G 4x4x512 ->
    /// ... -> 32x32x64 -> 64x64x3, D the mirror image.
    pub fn rgb64() -> Self {
        Self { channels: 3, size: 64, noise_dim: 100, g_width: 64, d_width: 64, d_norm: PixelDNorm::Batch }
    }

    /// The preset for images of `channels` x `size` x `size`: the
    /// Fashion-MNIST one for 28, the 64x64 one otherwise (with the given
    /// channels and size).
    pub fn for_images(channels: i64, size: i64) -> Self {
        let base = if size == 28 { Self::fashion_mnist() } else { Self::rgb64() };
        Self { channels, size, ..base }
    }

    /// The start side (4 or 7) and the number of doublings to `size`.
    pub fn levels(&self) -> Result<(i64, u32)> {
        for base in [4i64, 7] {
            let mut s = base;
            let mut k = 0u32;
            while s < self.size {
                s *= 2;
                k += 1;
            }
            if s == self.size && k >= 1 {
                return Ok((base, k));
            }
        }
        Err(Error::Config(format!(
            "a DCGAN needs an image side of 4 or 7 times a power of two (8, 14, 16, 28, 32, 56, 64, 128, ...), got {}; \
             pass --size to resize the data",
            self.size
        )))
    }

    /// Estimated FLOPs of one generator forward pass per image: 2 per
    /// multiply-add of its transposed convolutions (norms and activations
    /// ignored). 0 for an invalid config.
    pub fn g_flops(&self) -> f64 {
        let Ok((base, k)) = self.levels() else { return 0.0 };
        let widths: Vec<f64> = (0..k).map(|i| (self.g_width << (k - 1 - i)) as f64).collect();
        // noise (1x1) -> base x base, then each level doubles the side.
        let mut flops = 2.0 * self.noise_dim as f64 * widths[0] * (base * base) as f64;
        let mut side = base as f64;
        let outs: Vec<f64> = widths[1..].iter().copied().chain([self.channels as f64]).collect();
        for (cin, cout) in widths.iter().zip(outs) {
            flops += 2.0 * cin * cout * 16.0 * side * side;
            side *= 2.0;
        }
        flops
    }

    /// Estimated FLOPs of one discriminator forward pass per image (as
    /// [`DcganConfig::g_flops`]).
    pub fn d_flops(&self) -> f64 {
        let Ok((base, k)) = self.levels() else { return 0.0 };
        let mut flops = 0.0;
        let mut side = self.size as f64;
        let mut cin = self.channels as f64;
        for i in 0..k {
            let w = (self.d_width << i) as f64;
            side /= 2.0;
            flops += 2.0 * cin * w * 16.0 * side * side;
            cin = w;
        }
        flops + 2.0 * cin * (base * base) as f64
    }

    /// Checks ranges; the message names the field.
    pub fn validate(&self) -> Result<()> {
        if !(self.channels == 1 || self.channels == 3) {
            return Err(Error::Config(format!("images must have 1 or 3 channels, got {}", self.channels)));
        }
        if self.noise_dim < 1 || self.g_width < 1 || self.d_width < 1 {
            return Err(Error::Config("noise_dim, g_width and d_width must be at least 1".into()));
        }
        self.levels().map(|_| ())
    }
}

fn conv_init() -> nn::Init {
    nn::Init::Randn { mean: 0.0, stdev: 0.02 }
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        p,
        c,
        nn::BatchNormConfig { ws_init: nn::Init::Randn { mean: 1.0, stdev: 0.02 }, ..Default::default() },
    )
}

/// DCGAN generator (no biases, as in the original): noise `[N, noise_dim]` -> images `[N, C, S, S]` in [-1, 1].
#[derive(Debug)]
pub struct Generator {
    noise_dim: i64,
    convs: Vec<nn::ConvTranspose2D>,
    norms: Vec<nn::BatchNorm>,
}

impl Generator {
    /// Layers `up0`, `bn0`, `up1`, ... under `p`. `cfg` must be valid.
    pub fn new(p: nn::Path, cfg: &DcganConfig) -> Self {
        let (base, k) = cfg.levels().unwrap_or((4, 1));
        let widths: Vec<i64> = (0..k).map(|i| cfg.g_width << (k - 1 - i)).collect();
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut c_in = cfg.noise_dim;
        for (i, &w) in widths.iter().enumerate() {
            let (ks, stride, pad) = if i == 0 { (base, 1, 0) } else { (4, 2, 1) };
            let c = nn::ConvTransposeConfig {
                stride,
                padding: pad,
                bias: false,
                ws_init: conv_init(),
                ..Default::default()
            };
            convs.push(nn::conv_transpose2d(&p / format!("up{i}"), c_in, w, ks, c));
            norms.push(bn(&p / format!("bn{i}"), w));
            c_in = w;
        }
        let c =
            nn::ConvTransposeConfig { stride: 2, padding: 1, bias: false, ws_init: conv_init(), ..Default::default() };
        convs.push(nn::conv_transpose2d(&p / format!("up{k}"), c_in, cfg.channels, 4, c));
        Self { noise_dim: cfg.noise_dim, convs, norms }
    }
}

impl nn::ModuleT for Generator {
    fn forward_t(&self, z: &Tensor, train: bool) -> Tensor {
        let mut x = z.view([-1, self.noise_dim, 1, 1]);
        for (i, conv) in self.convs.iter().enumerate() {
            x = nn::Module::forward(conv, &x);
            match self.norms.get(i) {
                Some(n) => x = n.forward_t(&x, train).relu(),
                None => x = x.tanh(),
            }
        }
        x
    }
}

#[derive(Debug)]
struct DConv {
    ws: Tensor,
    bs: Option<Tensor>,
    u: Option<Tensor>,
    stride: i64,
    padding: i64,
}

impl DConv {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let w = match &self.u {
            Some(u) => spectral_normalize(&self.ws, u, train),
            None => self.ws.shallow_clone(),
        };
        x.conv2d(&w, self.bs.as_ref(), [self.stride, self.stride], [self.padding, self.padding], [1, 1], 1)
    }
}

/// DCGAN discriminator: images `[N, C, S, S]` -> one logit per image `[N]`.
#[derive(Debug)]
pub struct Discriminator {
    convs: Vec<DConv>,
    norms: Vec<Option<nn::BatchNorm>>,
}

impl Discriminator {
    /// Layers `down0`, `bn1`, `down1`, ... under `p`. `cfg` must be valid.
    pub fn new(p: nn::Path, cfg: &DcganConfig) -> Self {
        let (base, k) = cfg.levels().unwrap_or((4, 1));
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut c_in = cfg.channels;
        let sn = cfg.d_norm == PixelDNorm::Spectral;
        let make = |name: String, c_in: i64, c_out: i64, ks: i64, stride, padding, bias: bool| {
            let lp = &p / name;
            let ws = lp.var("weight", &[c_out, c_in, ks, ks], conv_init());
            let bs = bias.then(|| lp.var("bias", &[c_out], nn::Init::Const(0.0)));
            let u = sn.then(|| sn_vector(&lp, "weight_u", c_out));
            DConv { ws, bs, u, stride, padding }
        };
        for i in 0..k {
            let w = cfg.d_width << i;
            let batch = cfg.d_norm == PixelDNorm::Batch && i > 0;
            convs.push(make(format!("down{i}"), c_in, w, 4, 2, 1, false));
            norms.push(batch.then(|| bn(&p / format!("bn{i}"), w)));
            c_in = w;
        }
        convs.push(make(format!("down{k}"), c_in, 1, base, 1, 0, false));
        Self { convs, norms }
    }
}

impl nn::ModuleT for Discriminator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        let last = self.convs.len() - 1;
        for (i, conv) in self.convs.iter().enumerate() {
            h = conv.forward_t(&h, train);
            if i < last {
                if let Some(Some(n)) = self.norms.get(i) {
                    h = n.forward_t(&h, train);
                }
                h = dualspace_latent_gan::layers::leaky_relu(&h);
            }
        }
        h.view([-1])
    }
}

impl GanNets for DcganConfig {
    fn noise_dim(&self) -> i64 {
        self.noise_dim
    }
    fn generator(&self, p: nn::Path) -> Box<dyn nn::ModuleT> {
        Box::new(Generator::new(p, self))
    }
    fn discriminator(&self, p: nn::Path) -> Box<dyn nn::ModuleT> {
        Box::new(Discriminator::new(p, self))
    }
}

/// The `kind` written into a pixel GAN's `config.json`.
pub const KIND: &str = "pixel-gan";

/// Everything a pixel GAN run folder's `config.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PixelRunConfig {
    /// Always [`KIND`]; tells a pixel GAN run from a latent GAN run.
    pub kind: String,
    /// The networks.
    pub model: DcganConfig,
    /// The training.
    pub train: TrainConfig,
    /// The data set it was trained on (as given on the command line).
    pub dataset: String,
    /// Class names held out of training.
    pub holdout: Vec<String>,
}

impl PixelRunConfig {
    /// A run configuration of [`KIND`].
    pub fn new(model: DcganConfig, train: TrainConfig, dataset: String, holdout: Vec<String>) -> Self {
        Self { kind: KIND.into(), model, train, dataset, holdout }
    }
}

/// A trainer for the DCGAN on u8 images `[N, C, S, S]` (moved to `device`
/// once, turned into [-1, 1] floats a batch at a time).
pub fn pixel_trainer(model: &DcganConfig, train: TrainConfig, images: &Tensor, device: Device) -> Result<Trainer> {
    model.validate()?;
    let size = images.size();
    if size.len() != 4 || size[1] != model.channels || size[2] != model.size || size[3] != model.size {
        return Err(Error::Data(format!(
            "images: expected shape [N, {}, {}, {}], got {size:?}",
            model.channels, model.size, model.size
        )));
    }
    let unit = images.kind() != Kind::Uint8;
    let data = images.to_device(device);
    let source = tensor_batches(data, train.batch_size, train.seed, device, move |b| {
        if unit {
            b.to_kind(Kind::Float)
        } else {
            dualspace_tensor::image::u8_to_unit(&b)
        }
    })?;
    Trainer::new(model, train, source, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::ModuleT;

    fn nets(cfg: &DcganConfig) -> (nn::VarStore, Box<dyn ModuleT>, Box<dyn ModuleT>) {
        let vs = nn::VarStore::new(Device::Cpu);
        let g = cfg.generator(vs.root() / "g");
        let d = cfg.discriminator(vs.root() / "d");
        (vs, g, d)
    }

    #[test]
    fn shapes_for_28_gray_and_64_rgb() {
        let _g = dualspace_tensor::seed::seed_guard(1);
        for (cfg, n_params) in
            [(DcganConfig::fashion_mnist(), None), (DcganConfig::rgb64(), Some(3_576_704 + 2_765_568))]
        {
            let (vs, g, d) = nets(&cfg);
            let z = Tensor::randn([3, cfg.noise_dim], (Kind::Float, Device::Cpu));
            let x = g.forward_t(&z, false);
            assert_eq!(x.size(), vec![3, cfg.channels, cfg.size, cfg.size]);
            assert!(x.abs().max().double_value(&[]) <= 1.0);
            assert_eq!(d.forward_t(&x, false).size(), vec![3]);
            if let Some(n) = n_params {
                // The original DCGAN (PyTorch's dcgan example, nz = 100, ngf = ndf = 64):
                // G 3,576,704 and D 2,765,568 trainable parameters.
                let got: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
                assert_eq!(got, n);
            }
        }
    }

    #[test]
    fn flop_estimates_by_hand() {
        // G: 100 -> 256 at 7x7 (2*100*256*49), 256 -> 128 at 7x7 in (2*256*128*16*49),
        //    128 -> 1 at 14x14 in (2*128*1*16*196).
        let c = DcganConfig::fashion_mnist();
        let g = 2.0 * 100.0 * 256.0 * 49.0 + 2.0 * 256.0 * 128.0 * 16.0 * 49.0 + 2.0 * 128.0 * 16.0 * 196.0;
        assert_eq!(c.g_flops(), g);
        // D: 1 -> 64 out 14x14, 64 -> 128 out 7x7, 128 -> 1 by a 7x7 kernel.
        let d = 2.0 * 64.0 * 16.0 * 196.0 + 2.0 * 64.0 * 128.0 * 16.0 * 49.0 + 2.0 * 128.0 * 49.0;
        assert_eq!(c.d_flops(), d);
    }

    #[test]
    fn odd_sizes_are_refused_with_a_hint() {
        let e = DcganConfig { size: 30, ..DcganConfig::fashion_mnist() }.validate().unwrap_err().to_string();
        assert!(e.contains("got 30") && e.contains("--size"), "{e}");
        assert_eq!(DcganConfig { size: 32, ..DcganConfig::rgb64() }.levels().unwrap(), (4, 3));
        let bad = pixel_trainer(
            &DcganConfig::fashion_mnist(),
            TrainConfig::dcgan(1),
            &Tensor::zeros([4, 3, 28, 28], (Kind::Uint8, Device::Cpu)),
            Device::Cpu,
        );
        assert!(bad.err().unwrap().to_string().contains("expected shape [N, 1, 28, 28]"));
    }

    #[test]
    fn spectral_discriminator_keeps_its_vectors_in_the_varstore() {
        let cfg = DcganConfig { d_norm: PixelDNorm::Spectral, ..DcganConfig::fashion_mnist() };
        let (vs, _, _) = nets(&cfg);
        let names: Vec<String> = vs.variables().into_keys().filter(|k| k.ends_with("weight_u")).collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn dcgan_smoke_run_lowers_the_discriminator_loss() {
        // Smoke test on 16x16 gray images of two kinds (left or right half
        // bright): the discriminator's loss falls well below its start
        // (2 ln 2 = 1.386) while it learns to tell them from samples.
        let _g = dualspace_tensor::seed::seed_guard(3);
        tch::set_num_threads(1);
        let left = Tensor::cat(
            &[
                Tensor::ones([1, 1, 16, 8], (Kind::Float, Device::Cpu)),
                -Tensor::ones([1, 1, 16, 8], (Kind::Float, Device::Cpu)),
            ],
            3,
        );
        let right = left.flip([3]);
        let images = Tensor::cat(&[left.repeat([32, 1, 1, 1]), right.repeat([32, 1, 1, 1])], 0);
        let cfg =
            DcganConfig { channels: 1, size: 16, noise_dim: 16, g_width: 16, d_width: 16, d_norm: PixelDNorm::Batch };
        let mut train = TrainConfig::dcgan(3);
        train.batch_size = 32;
        let mut t = pixel_trainer(&cfg, train, &images, Device::Cpu).unwrap();
        let first = t.step().unwrap();
        let mut losses = Vec::new();
        for _ in 0..60 {
            losses.push(t.step().unwrap().loss_d);
        }
        let late: f64 = losses[50..].iter().sum::<f64>() / 10.0;
        assert!((first.loss_d - 1.386).abs() < 0.3, "first D loss {}", first.loss_d);
        assert!(late < 1.0, "D loss did not fall: first {} late mean {late}", first.loss_d);
        let s = t.sample(8, 1);
        assert_eq!(s.size(), vec![8, 1, 16, 16]);
    }
}
