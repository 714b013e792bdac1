//! The [`Mapping`] trait every mapping implements, loading any kind from a
//! run folder, batched encoding/decoding, and reconstruction error.
use crate::config::{ImageShape, MapKind, MapSpec, RunConfig};
use crate::{ConvAe, Error, Pca, Result, Vae};
use dualspace_tensor::checkpoint::{read_json, write_json};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// An invertible (or approximately invertible) map between images and codes.
/// The latent GAN and the sampler only see this trait and plain code tensors.
pub trait Mapping {
    /// What kind of map this is.
    fn kind(&self) -> MapKind;
    /// The full specification (written to `config.json`).
    fn spec(&self) -> MapSpec;
    /// Size of a code.
    fn latent_dim(&self) -> i64 {
        self.spec().latent_dim()
    }
    /// The images it takes and returns.
    fn image_shape(&self) -> ImageShape {
        self.spec().image()
    }
    /// Where its tensors live.
    fn device(&self) -> Device;
    /// Images (f32 in [-1, 1] or u8, `[N, C, H, W]`, any device) to codes
    /// `[N, latent_dim]` f32 on [`Mapping::device`]; evaluation mode, no
    /// gradients.
    fn encode(&self, images: &Tensor) -> Result<Tensor>;
    /// Codes `[N, latent_dim]` to images f32 `[N, C, H, W]` (about [-1, 1])
    /// on [`Mapping::device`]; evaluation mode, no gradients.
    fn decode(&self, codes: &Tensor) -> Result<Tensor>;
    /// Writes its parameters (`model.safetensors` or `pca.safetensors`) into
    /// `dir`; [`save_mapping`] adds the `config.json` that [`load_mapping`] reads.
    fn save_weights(&self, dir: &Path) -> Result<()>;
}

/// Saves a mapping as a run folder: `config.json` (with only the map spec
/// when none is there yet; an existing run config is kept if it describes
/// this map) and the weights.
pub fn save_mapping(map: &dyn Mapping, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| dualspace_tensor::Error::io(dir, e))?;
    let cfg_path = dir.join("config.json");
    let keep = read_json::<RunConfig>(&cfg_path).map(|c| c.map == map.spec()).unwrap_or(false);
    if !keep {
        write_json(&cfg_path, &RunConfig { map: map.spec(), train: None, data: None })?;
    }
    map.save_weights(dir)
}

/// Reads a run folder's `config.json`.
pub fn read_run_config(dir: &Path) -> Result<RunConfig> {
    let path = dir.join("config.json");
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "{}: no config.json; is this a folder written by `dualspace train-map`?",
            dir.display()
        )));
    }
    let value: serde_json::Value = read_json(&path)?;
    if let Some(kind) = value.get("kind").and_then(|k| k.as_str()) {
        return Err(Error::Invalid(format!(
            "{}: this is a {kind} run folder, not a map; give a folder written by `dualspace train-map`",
            dir.display()
        )));
    }
    if value.get("map").is_none() {
        return Err(Error::Invalid(format!(
            "{}: config.json has no 'map'; is this a folder written by `dualspace train-map`?",
            path.display()
        )));
    }
    serde_json::from_value(value).map_err(|e| dualspace_tensor::Error::Json { path: path.clone(), source: e }.into())
}

/// Rebuilds the mapping saved in `dir` (any kind) on `device`: reads
/// `config.json`, builds the map it describes, loads its weights. Weights
/// of another kind or size are an error naming the tensor and both shapes.
pub fn load_mapping(dir: &Path, device: Device) -> Result<Box<dyn Mapping>> {
    let cfg = read_run_config(dir)?;
    cfg.map.validate()?;
    let described =
        |e: Error| Error::Invalid(format!("{} (config.json describes {}): {e}", dir.display(), cfg.map.describe()));
    Ok(match &cfg.map {
        MapSpec::Ae(n) => Box::new(ConvAe::load(n.clone(), dir, device).map_err(described)?),
        MapSpec::Vae(v) => Box::new(Vae::load(v.clone(), dir, device).map_err(described)?),
        MapSpec::Pca(p) => Box::new(Pca::load(p.clone(), dir, device).map_err(described)?),
    })
}

/// Checks that `images` is `[N, C, H, W]` of the map's image shape.
pub fn check_images(images: &Tensor, shape: ImageShape) -> Result<()> {
    let size = images.size();
    if size.len() != 4 || size[1..] != shape.chw() {
        return Err(Error::mismatch(
            "image batch for the map",
            format!("[N, {}, {}, {}] ({shape} images)", shape.channels, shape.size, shape.size),
            format!("{size:?}"),
        ));
    }
    Ok(())
}

/// Checks that `images` is `[N, C, H, W]` of the map's image shape and
/// returns them as f32 in [-1, 1] on `device` (u8 is converted).
pub fn prepare_images(images: &Tensor, shape: ImageShape, device: Device) -> Result<Tensor> {
    check_images(images, shape)?;
    let x = images.to_device(device);
    Ok(if x.kind() == Kind::Uint8 { dualspace_tensor::image::u8_to_unit(&x) } else { x.to_kind(Kind::Float) })
}

/// Checks that `codes` is `[N, latent_dim]`.
pub fn check_codes(codes: &Tensor, latent_dim: i64) -> Result<()> {
    let size = codes.size();
    if size.len() != 2 || size[1] != latent_dim {
        return Err(Error::mismatch("codes for the map", format!("[N, {latent_dim}]"), format!("{size:?}")));
    }
    Ok(())
}

/// Checks that `codes` is `[N, latent_dim]` and returns them as f32 on `device`.
pub fn prepare_codes(codes: &Tensor, latent_dim: i64, device: Device) -> Result<Tensor> {
    check_codes(codes, latent_dim)?;
    Ok(codes.to_device(device).to_kind(Kind::Float))
}

/// Encodes many images in batches of `batch`, returning codes on the CPU.
pub fn encode_batched(map: &dyn Mapping, images: &Tensor, batch: i64) -> Result<Tensor> {
    let n = images.size().first().copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let len = batch.max(1).min(n - i);
        out.push(map.encode(&images.narrow(0, i, len))?.to_device(Device::Cpu));
        i += len;
    }
    if out.is_empty() {
        // Still validate the shape so an empty or wrong input is reported.
        check_images(images, map.image_shape())?;
        return Ok(Tensor::zeros([0, map.latent_dim()], (Kind::Float, Device::Cpu)));
    }
    Ok(Tensor::cat(&out, 0))
}

/// Decodes many codes in batches of `batch`, returning images on the CPU.
pub fn decode_batched(map: &dyn Mapping, codes: &Tensor, batch: i64) -> Result<Tensor> {
    check_codes(codes, map.latent_dim())?;
    let n = codes.size()[0];
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let len = batch.max(1).min(n - i);
        out.push(map.decode(&codes.narrow(0, i, len))?.to_device(Device::Cpu));
        i += len;
    }
    if out.is_empty() {
        let s = map.image_shape();
        return Ok(Tensor::zeros([0, s.channels, s.size, s.size], (Kind::Float, Device::Cpu)));
    }
    Ok(Tensor::cat(&out, 0))
}

/// Reconstruction error of a set of images.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recon {
    /// Images measured.
    pub n: usize,
    /// Mean squared error per pixel on the [0, 1] intensity scale (a quarter
    /// of the MSE on the [-1, 1] scale the networks see).
    pub mse: f64,
    /// Peak signal-to-noise ratio in dB, `10 log10(1 / mse)` (peak 1).
    pub psnr: f64,
}

impl Recon {
    /// From a mean squared error on the [0, 1] scale.
    pub fn from_mse(n: usize, mse: f64) -> Self {
        Self { n, mse, psnr: psnr(mse) }
    }
}

/// PSNR in dB of a [0, 1]-scale MSE (infinite for 0).
pub fn psnr(mse01: f64) -> f64 {
    if mse01 <= 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse01.log10()
    }
}

/// Sum of squared errors (on the [-1, 1] scale) between two image batches.
fn sse(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_device(a.device()).to_kind(Kind::Double))
        .square()
        .sum(Kind::Double)
        .double_value(&[])
}

/// decode(encode(x)) error over `images` (f32 [-1, 1] or u8), in batches.
/// The decoded images are clamped to [-1, 1], as they would be when saved.
pub fn reconstruction_error(map: &dyn Mapping, images: &Tensor, batch: i64) -> Result<Recon> {
    let shape = map.image_shape();
    check_images(images, shape)?;
    let n = images.size().first().copied().unwrap_or(0);
    if n == 0 {
        return Err(Error::Invalid("no images to measure the reconstruction error on".into()));
    }
    let mut total = 0.0;
    let mut i = 0;
    while i < n {
        let len = batch.max(1).min(n - i);
        let x = prepare_images(&images.narrow(0, i, len), shape, map.device())?;
        let y = map.decode(&map.encode(&x)?)?.clamp(-1.0, 1.0);
        total += sse(&x, &y);
        i += len;
    }
    // [-1, 1] -> [0, 1] halves errors, quartering squared errors.
    let mse01 = total / (n * shape.numel()) as f64 / 4.0;
    Ok(Recon::from_mse(n as usize, mse01))
}

/// `n` images above their reconstructions, as one batch for a grid of `n`
/// columns (real row, then decoded row).
pub fn recon_pairs(map: &dyn Mapping, images: &Tensor, n: i64) -> Result<Tensor> {
    let n = n.min(images.size().first().copied().unwrap_or(0));
    let x = prepare_images(&images.narrow(0, 0, n), map.image_shape(), map.device())?;
    let y = map.decode(&map.encode(&x)?)?.clamp(-1.0, 1.0);
    Ok(Tensor::cat(&[x.to_device(Device::Cpu), y.to_device(Device::Cpu)], 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_known_errors() {
        assert!((psnr(0.01) - 20.0).abs() < 1e-12);
        assert!((psnr(0.001) - 30.0).abs() < 1e-12);
        assert!(psnr(0.0).is_infinite());
    }

    #[test]
    fn prepare_images_names_both_shapes() {
        let x = Tensor::zeros([2, 3, 64, 64], (Kind::Uint8, Device::Cpu));
        let e = prepare_images(&x, ImageShape::new(1, 28), Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("[N, 1, 28, 28]") && e.contains("[2, 3, 64, 64]"), "{e}");
        let ok = prepare_images(&x, ImageShape::new(3, 64), Device::Cpu).unwrap();
        assert_eq!(ok.kind(), Kind::Float);
        assert_eq!(ok.double_value(&[0, 0, 0, 0]), -1.0);
        let e = prepare_codes(&Tensor::zeros([4, 16], (Kind::Float, Device::Cpu)), 32, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[N, 32]") && e.contains("[4, 16]"), "{e}");
    }
}
