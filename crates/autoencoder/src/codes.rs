//! The codes file written by `dualspace encode` and read by the latent GAN
//! and the sampler: safetensors with `codes` (f32 `[N, D]`, standardised per
//! dimension), `labels` (i64 `[N]`), `mean` and `std` (f32 `[D]`) and
//! `image_shape` (i64 `[2]`: channels, side). Raw codes are
//! `codes * std + mean`, computed with exactly the stored `mean` and `std`.
use crate::config::ImageShape;
use crate::{Error, Result};
use dualspace_tensor::checkpoint::{read_tensors, write_tensors};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Dimensions whose spread is below this are not scaled (std stored as 1),
/// so a constant code dimension does not blow up.
const MIN_STD: f64 = 1e-6;

/// Standardised codes with their labels and the statistics to undo the
/// standardisation. All tensors are on the CPU.
#[derive(Debug)]
pub struct Codes {
    /// Standardised codes, f32 `[N, D]`.
    pub codes: Tensor,
    /// Class labels, i64 `[N]`.
    pub labels: Tensor,
    /// Per-dimension mean of the raw codes, f32 `[D]`.
    pub mean: Tensor,
    /// Per-dimension standard deviation of the raw codes (population), f32 `[D]`.
    pub std: Tensor,
    /// The images the codes decode to, when known.
    pub image: Option<ImageShape>,
}

impl Codes {
    /// Standardises raw codes `[N, D]` with their own mean and std.
    pub fn standardise(raw: &Tensor, labels: &Tensor, image: Option<ImageShape>) -> Result<Self> {
        let size = raw.size();
        if size.len() != 2 || size[0] < 1 {
            return Err(Error::mismatch("raw codes", "[N >= 1, D]", format!("{size:?}")));
        }
        if labels.size() != [size[0]] {
            return Err(Error::mismatch(
                "labels of the codes",
                format!("[{}]", size[0]),
                format!("{:?}", labels.size()),
            ));
        }
        let raw = raw.to_device(Device::Cpu).to_kind(Kind::Float);
        let mean = raw.to_kind(Kind::Double).mean_dim(0, false, Kind::Double).to_kind(Kind::Float);
        let std = raw.to_kind(Kind::Double).std_dim(0, false, false).to_kind(Kind::Float);
        let std = std.where_self(&std.ge(MIN_STD), &std.ones_like());
        let codes = (&raw - &mean) / &std;
        Ok(Self { codes, labels: labels.to_device(Device::Cpu).to_kind(Kind::Int64), mean, std, image })
    }

    /// Number of codes.
    pub fn len(&self) -> i64 {
        self.codes.size()[0]
    }

    /// Whether there are no codes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Code size D.
    pub fn latent_dim(&self) -> i64 {
        self.codes.size()[1]
    }

    /// Standardised codes `z` (`[M, D]`, any device) back to raw codes:
    /// `z * std + mean`.
    pub fn unstandardise(&self, z: &Tensor) -> Result<Tensor> {
        self.check_dim("standardised codes", z)?;
        let dev = z.device();
        Ok(z.to_kind(Kind::Float) * self.std.to_device(dev) + self.mean.to_device(dev))
    }

    /// Raw codes `[M, D]` to standardised ones with this file's statistics.
    pub fn standardise_with(&self, raw: &Tensor) -> Result<Tensor> {
        self.check_dim("raw codes", raw)?;
        let dev = raw.device();
        Ok((raw.to_kind(Kind::Float) - self.mean.to_device(dev)) / self.std.to_device(dev))
    }

    /// The stored codes, un-standardised.
    pub fn raw(&self) -> Tensor {
        &self.codes * &self.std + &self.mean
    }

    /// Checks that these codes have `latent_dim` dimensions; the error says
    /// both sizes.
    pub fn check_latent_dim(&self, latent_dim: i64) -> Result<()> {
        if self.latent_dim() != latent_dim {
            return Err(Error::Invalid(format!(
                "the codes have {} dimensions but the map's latent dimension is {latent_dim}",
                self.latent_dim()
            )));
        }
        Ok(())
    }

    fn check_dim(&self, what: &str, t: &Tensor) -> Result<()> {
        let s = t.size();
        if s.len() != 2 || s[1] != self.latent_dim() {
            return Err(Error::mismatch(what, format!("[M, {}]", self.latent_dim()), format!("{s:?}")));
        }
        Ok(())
    }
}

/// Writes a codes file atomically.
pub fn write_codes(path: impl AsRef<Path>, codes: &Codes) -> Result<()> {
    let mut t = vec![
        ("codes", codes.codes.shallow_clone()),
        ("labels", codes.labels.shallow_clone()),
        ("mean", codes.mean.shallow_clone()),
        ("std", codes.std.shallow_clone()),
    ];
    if let Some(s) = codes.image {
        t.push(("image_shape", Tensor::from_slice(&[s.channels, s.size])));
    }
    Ok(write_tensors(path, &t)?)
}

/// Reads and checks a codes file written by [`write_codes`].
pub fn read_codes(path: impl AsRef<Path>) -> Result<Codes> {
    let path = path.as_ref();
    let mut t = read_tensors(path)?;
    let bad = |msg: String| Error::Invalid(format!("{}: {msg}", path.display()));
    let mut take = |name: &str| {
        t.remove(name)
            .ok_or_else(|| bad(format!("no tensor '{name}'; is this a codes file written by `dualspace encode`?")))
    };
    let codes = take("codes")?;
    let labels = take("labels")?;
    let mean = take("mean")?;
    let std = take("std")?;
    let image = t.remove("image_shape");
    let cs = codes.size();
    if cs.len() != 2 {
        return Err(bad(format!("'codes' must be [N, D], got {cs:?}")));
    }
    if labels.size() != [cs[0]] {
        return Err(bad(format!("'labels' must be [{}] to match 'codes' {cs:?}, got {:?}", cs[0], labels.size())));
    }
    for (name, x) in [("mean", &mean), ("std", &std)] {
        if x.size() != [cs[1]] {
            return Err(bad(format!("'{name}' must be [{}] to match 'codes' {cs:?}, got {:?}", cs[1], x.size())));
        }
    }
    for (name, x) in [("codes", &codes), ("mean", &mean), ("std", &std)] {
        if !x.is_floating_point() {
            return Err(bad(format!("'{name}' holds {:?} values, not floating point", x.kind())));
        }
        if x.isfinite().logical_not().any().int64_value(&[]) != 0 {
            return Err(bad(format!(
                "'{name}' has NaN or infinite values; the map that wrote them has probably diverged: retrain it and encode again"
            )));
        }
    }
    if std.le(0.0).any().int64_value(&[]) != 0 {
        return Err(bad("'std' has entries <= 0".into()));
    }
    let image = match image {
        Some(s) if s.size() == [2] => Some(ImageShape::new(s.int64_value(&[0]), s.int64_value(&[1]))),
        Some(s) => return Err(bad(format!("'image_shape' must be [2], got {:?}", s.size()))),
        None => None,
    };
    Ok(Codes {
        codes: codes.to_kind(Kind::Float),
        labels: labels.to_kind(Kind::Int64),
        mean: mean.to_kind(Kind::Float),
        std: std.to_kind(Kind::Float),
        image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualspace_tensor::max_abs_diff;

    #[test]
    fn standardised_codes_have_zero_mean_unit_std_and_undo_exactly() {
        let _g = dualspace_tensor::seed::seed_guard(3);
        let raw = Tensor::randn([500, 4], (Kind::Float, Device::Cpu)) * Tensor::from_slice(&[1.0f32, 5.0, 0.1, 0.0])
            + Tensor::from_slice(&[3.0f32, -2.0, 0.5, 7.0]);
        let labels = Tensor::arange(500, (Kind::Int64, Device::Cpu)).remainder(10);
        let c = Codes::standardise(&raw, &labels, Some(ImageShape::new(1, 28))).unwrap();
        let m = c.codes.mean_dim(0, false, Kind::Double);
        let s = c.codes.to_kind(Kind::Double).std_dim(0, false, false);
        assert!(m.abs().max().double_value(&[]) < 1e-5, "{m:?}");
        // The constant dimension keeps std 1 (and all-zero codes).
        assert!(max_abs_diff(&s, &Tensor::from_slice(&[1.0f64, 1.0, 1.0, 0.0])) < 1e-4, "{s:?}");
        assert_eq!(c.std.double_value(&[3]), 1.0);
        assert!(max_abs_diff(&c.raw(), &raw) < 1e-5);
        assert!(max_abs_diff(&c.unstandardise(&c.codes).unwrap(), &raw) < 1e-5);
        assert!(max_abs_diff(&c.standardise_with(&raw).unwrap(), &c.codes) < 1e-6);
    }

    #[test]
    fn file_round_trip_is_exact_and_checks_dimensions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("codes.safetensors");
        let _g = dualspace_tensor::seed::seed_guard(4);
        let raw = Tensor::randn([20, 6], (Kind::Float, Device::Cpu));
        let c =
            Codes::standardise(&raw, &Tensor::zeros([20], (Kind::Int64, Device::Cpu)), Some(ImageShape::new(3, 64)))
                .unwrap();
        write_codes(&p, &c).unwrap();
        let back = read_codes(&p).unwrap();
        assert!(back.codes.equal(&c.codes) && back.mean.equal(&c.mean) && back.std.equal(&c.std));
        assert_eq!(back.image, Some(ImageShape::new(3, 64)));
        let e = back.check_latent_dim(32).unwrap_err().to_string();
        assert!(e.contains("6 dimensions") && e.contains("latent dimension is 32"), "{e}");
        let e = back.unstandardise(&Tensor::zeros([2, 5], (Kind::Float, Device::Cpu))).unwrap_err().to_string();
        assert!(e.contains("[M, 6]") && e.contains("[2, 5]"), "{e}");
        // A file without the statistics is refused with a pointer to `encode`.
        let q = dir.path().join("other.safetensors");
        write_tensors(&q, &[("codes", raw.shallow_clone())]).unwrap();
        let e = read_codes(&q).unwrap_err().to_string();
        assert!(e.contains("no tensor 'labels'") && e.contains("dualspace encode"), "{e}");
    }
}
