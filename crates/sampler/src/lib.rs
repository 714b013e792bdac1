//! The decoder-sampler of dualspace: noise -> latent generator (EMA, eval
//! mode) -> un-standardise -> a mapping's decoder -> images. The same
//! [`Sampler`] samples a pixel GAN directly (no mapping), so evaluation sees
//! both GANs through one door.
//!
//! Other crates: `dualspace-latent-gan` and `dualspace-pixel-gan` (the run
//! folders and networks it loads), `dualspace-autoencoder` (the
//! [`Mapping`] whose decoder it uses); the CLI's `sample` command and the
//! benchmark harness above. This crate knows no data set and trains nothing.
#![warn(missing_docs)]

use dualspace_autoencoder::{load_mapping, read_codes, Mapping};
use dualspace_latent_gan::model::{LatentRunConfig, CODE_STATS};
use dualspace_latent_gan::trainer::{find_checkpoint, noise, GanNets};
use dualspace_pixel_gan::PixelRunConfig;
use dualspace_tensor::checkpoint::{read_json, read_tensors};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// Errors of the sampler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the GAN crates.
    #[error(transparent)]
    Gan(#[from] dualspace_latent_gan::Error),
    /// From the mapping crate.
    #[error(transparent)]
    Map(#[from] dualspace_autoencoder::Error),
    /// From the tensor crate.
    #[error(transparent)]
    Tensor(#[from] dualspace_tensor::Error),
    /// From libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Anything else wrong with the inputs.
    #[error("{0}")]
    Invalid(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which kind of GAN a run folder holds.
#[derive(Debug, Clone, PartialEq)]
pub enum GanRun {
    /// A latent GAN (samples are standardised codes).
    Latent(LatentRunConfig),
    /// A pixel GAN (samples are images).
    Pixel(PixelRunConfig),
}

/// A trained generator (the EMA weights) rebuilt from a run folder.
pub struct LoadedGan {
    /// The run's configuration.
    pub run: GanRun,
    /// The run folder.
    pub dir: PathBuf,
    /// Steps it was trained for.
    pub step: u64,
    _vs: nn::VarStore,
    g: Box<dyn nn::ModuleT>,
    noise_dim: i64,
    device: Device,
}

/// Loads the EMA generator of a GAN run folder (or of its checkpoint
/// folder) onto `device`.
pub fn load_gan(dir: &Path, device: Device) -> Result<LoadedGan> {
    let ck = find_checkpoint(dir).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: no GAN checkpoint here (expected checkpoint/meta.json); is this a folder written by train-latent-gan or train-pixel-gan?",
            dir.display()
        ))
    })?;
    let value: serde_json::Value = read_json(ck.dir.join("config.json"))?;
    let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_string();
    let parse_err = |e: serde_json::Error| {
        Error::Invalid(format!("{}: config.json of a {kind} run is invalid: {e}", ck.dir.display()))
    };
    let run = match kind.as_str() {
        dualspace_latent_gan::model::KIND => GanRun::Latent(serde_json::from_value(value).map_err(parse_err)?),
        dualspace_pixel_gan::KIND => GanRun::Pixel(serde_json::from_value(value).map_err(parse_err)?),
        other => {
            return Err(Error::Invalid(format!(
                "{}: config.json has kind '{other}', not a GAN run ({} or {})",
                ck.dir.display(),
                dualspace_latent_gan::model::KIND,
                dualspace_pixel_gan::KIND
            )))
        }
    };
    let nets: &dyn GanNets = match &run {
        GanRun::Latent(c) => {
            c.model.validate()?;
            &c.model
        }
        GanRun::Pixel(c) => {
            c.model.validate()?;
            &c.model
        }
    };
    let vs = nn::VarStore::new(device);
    let g = nets.generator(vs.root());
    ck.load_net("generator_ema", &vs)?;
    let step = ck.meta()?.step;
    Ok(LoadedGan { noise_dim: nets.noise_dim(), run, dir: dir.to_path_buf(), step, _vs: vs, g, device })
}

impl LoadedGan {
    /// The generator's noise length.
    pub fn noise_dim(&self) -> i64 {
        self.noise_dim
    }

    /// Noise `[n, noise_dim]` of `seed` (the same on every device).
    pub fn noise(&self, n: i64, seed: u64) -> Tensor {
        noise(n, self.noise_dim, seed)
    }

    /// The generator's output for noise `z` (evaluation mode, no gradients),
    /// in batches of 256.
    pub fn generate(&self, z: &Tensor) -> Result<Tensor> {
        let size = z.size();
        if size.len() != 2 || size[1] != self.noise_dim {
            return Err(Error::Invalid(format!("noise must be [N, {}], got {size:?}", self.noise_dim)));
        }
        let _guard = tch::no_grad_guard();
        let parts: Vec<Tensor> =
            z.split(256, 0).iter().map(|c| self.g.forward_t(&c.to_device(self.device), false)).collect();
        if parts.is_empty() {
            return Err(Error::Invalid("asked for 0 samples".into()));
        }
        Ok(Tensor::cat(&parts, 0))
    }
}

/// Noise -> generator -> (un-standardise -> decoder) -> images.
pub struct Sampler {
    /// The generator.
    pub gan: LoadedGan,
    map: Option<Box<dyn Mapping>>,
    mean: Option<Tensor>,
    std: Option<Tensor>,
}

impl Sampler {
    /// A sampler for the GAN in `gan_dir`. A latent GAN needs a mapping:
    /// `map_dir`, or else the map recorded in its `config.json`. A pixel GAN
    /// takes none.
    pub fn open(gan_dir: &Path, map_dir: Option<&Path>, device: Device) -> Result<Self> {
        let gan = load_gan(gan_dir, device)?;
        match &gan.run {
            GanRun::Pixel(_) => {
                if let Some(m) = map_dir {
                    return Err(Error::Invalid(format!(
                        "{} is a pixel GAN; it samples images directly, drop the map {}",
                        gan_dir.display(),
                        m.display()
                    )));
                }
                Ok(Self { gan, map: None, mean: None, std: None })
            }
            GanRun::Latent(cfg) => {
                let map_path = match (map_dir, &cfg.map) {
                    (Some(m), _) => m.to_path_buf(),
                    (None, Some(m)) => PathBuf::from(m),
                    (None, None) => {
                        return Err(Error::Invalid(format!(
                        "{} is a latent GAN trained without a recorded map; give the map that wrote its codes (--map)",
                        gan_dir.display()
                    )))
                    }
                };
                let map = load_mapping(&map_path, device)?;
                let (mean, std) = code_stats(gan_dir, cfg)?;
                if map.latent_dim() != cfg.model.data_dim || mean.size() != [cfg.model.data_dim] {
                    return Err(Error::Invalid(format!(
                        "the map {} has codes of length {}, the latent GAN {} was trained on codes of length {}",
                        map_path.display(),
                        map.latent_dim(),
                        gan_dir.display(),
                        cfg.model.data_dim
                    )));
                }
                Ok(Self { gan, map: Some(map), mean: Some(mean.to_device(device)), std: Some(std.to_device(device)) })
            }
        }
    }

    /// A latent sampler from parts (for tests and the harness).
    pub fn from_parts(gan: LoadedGan, map: Option<Box<dyn Mapping>>, stats: Option<(Tensor, Tensor)>) -> Self {
        let (mean, std) = match stats {
            Some((m, s)) => (Some(m.to_device(gan.device)), Some(s.to_device(gan.device))),
            None => (None, None),
        };
        Self { gan, map, mean, std }
    }

    /// Images `[N, C, H, W]` (about [-1, 1], clamped) for noise `z`.
    pub fn images_from_noise(&self, z: &Tensor) -> Result<Tensor> {
        let out = self.gan.generate(z)?;
        let images = match (&self.map, &self.mean, &self.std) {
            (Some(map), Some(mean), Some(std)) => {
                let raw = out * std + mean;
                let parts: Result<Vec<Tensor>> =
                    raw.split(256, 0).iter().map(|c| map.decode(c).map_err(Error::from)).collect();
                Tensor::cat(&parts?, 0)
            }
            (None, _, _) => out,
            _ => return Err(Error::Invalid("a latent sampler needs the codes' mean and std".into())),
        };
        Ok(images.clamp(-1.0, 1.0))
    }

    /// `n` images from the noise of `seed`.
    pub fn sample(&self, n: i64, seed: u64) -> Result<Tensor> {
        if n < 1 {
            return Err(Error::Invalid(format!("the number of samples must be at least 1, got {n}")));
        }
        self.images_from_noise(&self.gan.noise(n, seed))
    }

    /// An interpolation grid: `rows` pairs of noise vectors (from `seed`),
    /// each walked in `cols` steps along the great circle between them
    /// (spherical interpolation keeps the noise's norm typical). Returns
    /// `rows * cols` images, row by row; the first and last column are the
    /// pair's own samples.
    pub fn interpolate(&self, rows: i64, cols: i64, seed: u64) -> Result<Tensor> {
        if rows < 1 || cols < 2 {
            return Err(Error::Invalid(format!(
                "an interpolation needs at least 1 row and 2 columns, got {rows}x{cols}"
            )));
        }
        let ends = self.gan.noise(2 * rows, seed);
        let (a, b) = (ends.narrow(0, 0, rows), ends.narrow(0, rows, rows));
        let z = slerp_grid(&a, &b, cols);
        self.images_from_noise(&z)
    }
}

/// Spherical interpolation between rows of `a` and `b` (`[R, D]`) at `cols`
/// evenly spaced points including both ends: `[R * cols, D]`, row-major.
pub fn slerp_grid(a: &Tensor, b: &Tensor, cols: i64) -> Tensor {
    let an = a / a.norm_scalaropt_dim(2.0, [1i64], true);
    let bn = b / b.norm_scalaropt_dim(2.0, [1i64], true);
    let omega = (&an * &bn).sum_dim_intlist(&[1i64][..], true, Kind::Float).clamp(-1.0, 1.0).acos();
    let so = omega.sin();
    let mut rows = Vec::new();
    for k in 0..cols {
        let t = k as f64 / (cols - 1) as f64;
        // Nearly parallel vectors: plain linear interpolation.
        let lin = a * (1.0 - t) + b * t;
        let sl = (a * (&omega * (1.0 - t)).sin() + b * (&omega * t).sin()) / &so;
        rows.push(sl.where_self(&so.abs().gt(1e-6), &lin));
    }
    Tensor::stack(&rows, 1).view([-1, a.size()[1]])
}

/// The codes' mean and std for a latent GAN run: its `code_stats.safetensors`,
/// or else the codes file named in its config.
fn code_stats(dir: &Path, cfg: &LatentRunConfig) -> Result<(Tensor, Tensor)> {
    let path = dir.join(CODE_STATS);
    if path.exists() {
        let mut t = read_tensors(&path)?;
        let mean = t.remove("mean");
        let std = t.remove("std");
        return match (mean, std) {
            (Some(m), Some(s)) => Ok((m.to_kind(Kind::Float), s.to_kind(Kind::Float))),
            _ => Err(Error::Invalid(format!("{}: needs tensors 'mean' and 'std'", path.display()))),
        };
    }
    let codes = read_codes(&cfg.codes).map_err(|e| {
        Error::Invalid(format!("{} has no {CODE_STATS}, and its codes file could not be read: {e}", dir.display()))
    })?;
    Ok((codes.mean, codes.std))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualspace_autoencoder::{save_mapping, ImageShape, Pca, PcaConfig};
    use dualspace_latent_gan::trainer::{RunPlan, TrainConfig};
    use dualspace_latent_gan::LatentGanConfig;
    use dualspace_pixel_gan::{pixel_trainer, DcganConfig};
    use dualspace_tensor::run::Silent;

    #[test]
    fn slerp_hits_both_ends_and_keeps_the_norm_of_orthogonal_unit_vectors() {
        let a = Tensor::from_slice(&[1.0f32, 0.0]).view([1, 2]);
        let b = Tensor::from_slice(&[0.0f32, 1.0]).view([1, 2]);
        let g = slerp_grid(&a, &b, 5);
        assert_eq!(g.size(), vec![5, 2]);
        assert!(dualspace_tensor::max_abs_diff(&g.get(0), &a.get(0)) < 1e-6);
        assert!(dualspace_tensor::max_abs_diff(&g.get(4), &b.get(0)) < 1e-6);
        let norms = g.norm_scalaropt_dim(2.0, [1i64], false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
        // The midpoint is at 45 degrees.
        let mid: Vec<f32> = Vec::try_from(&g.get(2)).unwrap();
        assert!((mid[0] - mid[1]).abs() < 1e-6 && (mid[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-5);
    }

    #[test]
    fn pixel_gan_run_samples_images_and_interpolates() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pgan");
        let images = Tensor::randint(255, [32, 1, 8, 8], (Kind::Uint8, Device::Cpu));
        let cfg =
            DcganConfig { channels: 1, size: 8, noise_dim: 8, g_width: 8, d_width: 8, ..DcganConfig::fashion_mnist() };
        let mut train = TrainConfig::dcgan(4);
        train.batch_size = 8;
        let mut t = pixel_trainer(&cfg, train.clone(), &images, Device::Cpu).unwrap();
        let run = PixelRunConfig::new(cfg, train, "test".into(), vec![]);
        t.run(&RunPlan::steps(3, Some(out.clone())), &run, &mut Silent, &mut |_, _| Ok(())).unwrap();
        let s = Sampler::open(&out, None, Device::Cpu).unwrap();
        assert_eq!(s.gan.step, 3);
        let x = s.sample(5, 11).unwrap();
        assert_eq!(x.size(), vec![5, 1, 8, 8]);
        // The sampler's images are exactly the trainer's EMA samples.
        assert!(dualspace_tensor::max_abs_diff(&x, &t.sample(5, 11)) < 1e-6);
        let grid = s.interpolate(2, 4, 3).unwrap();
        assert_eq!(grid.size(), vec![8, 1, 8, 8]);
        let ends = s.gan.noise(4, 3);
        let first = s.images_from_noise(&ends.narrow(0, 0, 1)).unwrap();
        assert!(dualspace_tensor::max_abs_diff(&grid.get(0), &first.get(0)) < 1e-5);
        let e = Sampler::open(&out, Some(Path::new("somewhere")), Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("pixel GAN"), "{e}");
        let e = Sampler::open(dir.path(), None, Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("no GAN checkpoint"), "{e}");
    }

    #[test]
    fn latent_gan_samples_decode_through_the_map_with_the_code_statistics() {
        let dir = tempfile::tempdir().unwrap();
        // A PCA map of 8x8 gray images with 3 components.
        let _g = dualspace_tensor::seed::seed_guard(2);
        let images = Tensor::rand([64, 1, 8, 8], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        let pca = Pca::fit(PcaConfig::new(ImageShape::new(1, 8), 3), &images, Device::Cpu).unwrap();
        let map_dir = dir.path().join("map");
        save_mapping(&pca, &map_dir).unwrap();
        // Codes with a known mean and std.
        let codes = Tensor::randn([64, 3], (Kind::Float, Device::Cpu));
        let mean = Tensor::from_slice(&[1.0f32, -2.0, 0.5]);
        let std = Tensor::from_slice(&[2.0f32, 0.5, 1.0]);
        let model = LatentGanConfig { g_hidden: vec![16], d_hidden: vec![16], noise_dim: 4, ..LatentGanConfig::new(3) };
        let mut train = TrainConfig::dcgan(5);
        train.batch_size = 16;
        let mut t = dualspace_latent_gan::latent_trainer(&model, train.clone(), &codes, Device::Cpu).unwrap();
        let out = dir.path().join("lgan");
        let run = LatentRunConfig::new(model, train, "codes.safetensors".into(), Some(map_dir.display().to_string()));
        t.run(&RunPlan::steps(2, Some(out.clone())), &run, &mut Silent, &mut |_, _| Ok(())).unwrap();
        dualspace_tensor::checkpoint::write_tensors(
            out.join(CODE_STATS),
            &[("mean", mean.copy()), ("std", std.copy())],
        )
        .unwrap();
        let s = Sampler::open(&out, None, Device::Cpu).unwrap();
        let x = s.sample(6, 1).unwrap();
        assert_eq!(x.size(), vec![6, 1, 8, 8]);
        let want = pca.decode(&(t.sample(6, 1) * &std + &mean)).unwrap().clamp(-1.0, 1.0);
        let d = dualspace_tensor::max_abs_diff(&x, &want);
        assert!(d < 1e-5, "largest difference {d}");
        assert_eq!(s.interpolate(1, 3, 0).unwrap().size(), vec![3, 1, 8, 8]);
    }
}
