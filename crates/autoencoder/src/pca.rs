//! PCA as a mapping: the top-k principal directions of the training images,
//! fitted in f64 (covariance eigendecomposition, or a randomized SVD for
//! large images), optionally whitened. Exactly invertible on its subspace.
use crate::config::{MapKind, MapSpec, PcaConfig};
use crate::mapping::{check_images, prepare_codes, prepare_images, Mapping};
use crate::{Error, Result};
use dualspace_tensor::checkpoint::{read_tensors, write_tensors};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// File name of a PCA map's tensors in its run folder.
pub const PCA_FILE: &str = "pca.safetensors";

/// Rows per chunk while fitting (keeps f64 copies of big data sets small).
const CHUNK: i64 = 2048;
/// Extra directions and power iterations of the randomized SVD.
const OVERSAMPLE: i64 = 10;
const POWER_ITERS: usize = 3;

/// A fitted PCA.
pub struct Pca {
    cfg: PcaConfig,
    mean: Tensor,
    components: Tensor,
    eigenvalues: Tensor,
    scale: Tensor,
    total_variance: f64,
}

/// Calls `f(centered_chunk_f64 [n, D])` over `images` in chunks.
fn for_chunks(
    images: &Tensor,
    cfg: &PcaConfig,
    device: Device,
    mean: Option<&Tensor>,
    mut f: impl FnMut(Tensor, i64),
) -> Result<()> {
    let n = images.size()[0];
    let d = cfg.image.numel();
    let mut i = 0;
    while i < n {
        let len = CHUNK.min(n - i);
        let x = prepare_images(&images.narrow(0, i, len), cfg.image, device)?.to_kind(Kind::Double).view([len, d]);
        f(
            match mean {
                Some(m) => x - m,
                None => x,
            },
            i,
        );
        i += len;
    }
    Ok(())
}

/// Makes each row's largest-magnitude entry positive, so the components do
/// not depend on the eigensolver's sign choices.
fn fix_signs(rows: &Tensor) -> Tensor {
    let idx = rows.abs().argmax(1, true);
    let signs = rows.gather(1, &idx, false).sign();
    let signs = signs.where_self(&signs.ne(0.0), &signs.ones_like());
    rows * signs
}

fn qr(a: &Tensor) -> Result<Tensor> {
    Ok(Tensor::f_linalg_qr(a, "reduced")?.0)
}

impl Pca {
    /// Fits on `images` (f32 in [-1, 1] or u8, `[N, C, H, W]`) on `device`
    /// (the randomized path's test matrix drawn from seed 0).
    pub fn fit(cfg: PcaConfig, images: &Tensor, device: Device) -> Result<Self> {
        Self::fit_seeded(cfg, images, 0, device)
    }

    /// [`Pca::fit`] with the randomized path's test matrix drawn from `seed`.
    pub fn fit_seeded(cfg: PcaConfig, images: &Tensor, seed: u64, device: Device) -> Result<Self> {
        MapSpec::Pca(cfg.clone()).validate()?;
        check_images(images, cfg.image)?;
        let n = images.size()[0];
        let d = cfg.image.numel();
        let k = cfg.components;
        if n < 2 {
            return Err(Error::Invalid(format!("PCA needs at least 2 images, got {n}")));
        }
        if k > n {
            return Err(Error::Invalid(format!(
                "PCA with {k} components needs at least {k} training images, got {n}; lower --latent-dim"
            )));
        }
        let opts = (Kind::Double, device);
        let mut sum = Tensor::zeros([d], opts);
        for_chunks(images, &cfg, device, None, |x, _| {
            let _ = sum.g_add_(&x.sum_dim_intlist(0, false, Kind::Double));
        })?;
        let mean = sum / n as f64;
        let (components, eigenvalues, total) = if d <= cfg.exact_max_dim {
            let mut cov = Tensor::zeros([d, d], opts);
            for_chunks(images, &cfg, device, Some(&mean), |x, _| {
                let _ = cov.g_add_(&x.tr().matmul(&x));
            })?;
            let cov = cov / n as f64;
            let total = cov.trace().double_value(&[]);
            let (vals, vecs) = cov.f_linalg_eigh("L")?;
            // Ascending order: the top k are the last k, reversed.
            let idx = Tensor::arange_start_step(d - 1, d - 1 - k, -1, (Kind::Int64, device));
            (vecs.index_select(1, &idx).tr().contiguous(), vals.index_select(0, &idx).clamp_min(0.0), total)
        } else {
            Self::randomized(&cfg, images, seed, device, &mean, n)?
        };
        let components = fix_signs(&components);
        Ok(Self::from_parts(cfg, mean.to_kind(Kind::Float), components.to_kind(Kind::Float), eigenvalues, total))
    }

    /// Halko, Martinsson & Tropp: a range finder with power iterations, then
    /// the SVD of the small projected matrix; all products chunked over rows.
    fn randomized(
        cfg: &PcaConfig,
        images: &Tensor,
        seed: u64,
        device: Device,
        mean: &Tensor,
        n: i64,
    ) -> Result<(Tensor, Tensor, f64)> {
        let d = cfg.image.numel();
        let l = (cfg.components + OVERSAMPLE).min(d).min(n);
        let opts = (Kind::Double, device);
        // Y = Xc @ M, for M [D, l].
        let times = |m: &Tensor| -> Result<Tensor> {
            let mut parts = Vec::new();
            for_chunks(images, cfg, device, Some(mean), |x, _| parts.push(x.matmul(m)))?;
            Ok(Tensor::cat(&parts, 0))
        };
        // Xc^T @ Q, for Q [N, l].
        let times_t = |q: &Tensor| -> Result<Tensor> {
            let mut acc = Tensor::zeros([d, q.size()[1]], opts);
            for_chunks(images, cfg, device, Some(mean), |x, off| {
                let _ = acc.g_add_(&x.tr().matmul(&q.narrow(0, off, x.size()[0])));
            })?;
            Ok(acc)
        };
        let mut y = times(&crate::normal_noise(seed, 0x9CA, &[d, l], device).to_kind(Kind::Double))?;
        for _ in 0..POWER_ITERS {
            let z = qr(&times_t(&qr(&y)?)?)?;
            y = times(&z)?;
        }
        let q = qr(&y)?;
        let bt = times_t(&q)?; // [D, l] = (Q^T Xc)^T
                               // Bt = U S V^T, so the right singular vectors of B are U's columns.
        let (u, s, _) = bt.f_svd(true, true)?;
        let k = cfg.components;
        let mut total = 0.0;
        for_chunks(images, cfg, device, Some(mean), |x, _| total += x.square().sum(Kind::Double).double_value(&[]))?;
        Ok((u.narrow(1, 0, k).tr().contiguous(), s.narrow(0, 0, k).square() / n as f64, total / n as f64))
    }

    fn from_parts(cfg: PcaConfig, mean: Tensor, components: Tensor, eigenvalues: Tensor, total_variance: f64) -> Self {
        let scale = if cfg.whiten {
            eigenvalues.clamp_min(1e-12).sqrt().to_kind(Kind::Float)
        } else {
            Tensor::ones([cfg.components], (Kind::Float, mean.device()))
        };
        Self { cfg, mean, components, eigenvalues, scale, total_variance }
    }

    /// Loads `dir/pca.safetensors` for the PCA `cfg` describes.
    pub fn load(cfg: PcaConfig, dir: &Path, device: Device) -> Result<Self> {
        let path = dir.join(PCA_FILE);
        let t = read_tensors(&path)?;
        let (k, d) = (cfg.components, cfg.image.numel());
        let get = |name: &str, shape: &[i64]| -> Result<Tensor> {
            let x = t.get(name).ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: no tensor '{name}'; the file was not written for a PCA map",
                    path.display()
                ))
            })?;
            if x.size() != shape {
                return Err(Error::mismatch(
                    format!("{}: tensor '{name}'", path.display()),
                    format!("{shape:?}"),
                    format!("{:?}", x.size()),
                ));
            }
            Ok(x.to_device(device))
        };
        let mean = get("mean", &[d])?.to_kind(Kind::Float);
        let components = get("components", &[k, d])?.to_kind(Kind::Float);
        let eigenvalues = get("eigenvalues", &[k])?.to_kind(Kind::Double);
        let total = get("total_variance", &[1])?.double_value(&[0]);
        Ok(Self::from_parts(cfg, mean, components, eigenvalues, total))
    }

    /// The configuration.
    pub fn config(&self) -> &PcaConfig {
        &self.cfg
    }

    /// Mean image, flattened, f32 `[D]`.
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    /// Principal directions as rows, f32 `[k, D]`, orthonormal.
    pub fn components(&self) -> &Tensor {
        &self.components
    }

    /// Variances along the components (largest first), f64 `[k]`, on the
    /// [-1, 1] pixel scale.
    pub fn eigenvalues(&self) -> &Tensor {
        &self.eigenvalues
    }

    /// Total variance of the training images (trace of the covariance).
    pub fn total_variance(&self) -> f64 {
        self.total_variance
    }

    /// Variance left out: the sum of the discarded eigenvalues, which is the
    /// mean squared reconstruction error per training image (summed over
    /// pixels, [-1, 1] scale).
    pub fn discarded_variance(&self) -> f64 {
        (self.total_variance - self.eigenvalues.sum(Kind::Double).double_value(&[])).max(0.0)
    }
}

impl Mapping for Pca {
    fn kind(&self) -> MapKind {
        MapKind::Pca
    }
    fn spec(&self) -> MapSpec {
        MapSpec::Pca(self.cfg.clone())
    }
    fn device(&self) -> Device {
        self.mean.device()
    }
    fn encode(&self, images: &Tensor) -> Result<Tensor> {
        let x = prepare_images(images, self.cfg.image, self.device())?;
        let n = x.size()[0];
        let _guard = tch::no_grad_guard();
        Ok((x.view([n, self.cfg.image.numel()]) - &self.mean).matmul(&self.components.tr()) / &self.scale)
    }
    fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let c = prepare_codes(codes, self.cfg.components, self.device())?;
        let n = c.size()[0];
        let [ch, h, w] = self.cfg.image.chw();
        let _guard = tch::no_grad_guard();
        Ok(((c * &self.scale).matmul(&self.components) + &self.mean).view([n, ch, h, w]))
    }
    fn save_weights(&self, dir: &Path) -> Result<()> {
        write_tensors(
            dir.join(PCA_FILE),
            &[
                ("mean", self.mean.shallow_clone()),
                ("components", self.components.shallow_clone()),
                ("eigenvalues", self.eigenvalues.shallow_clone()),
                ("total_variance", Tensor::from_slice(&[self.total_variance])),
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ImageShape;
    use dualspace_tensor::max_abs_diff;

    /// 200 correlated 1x4x4 "images" in [-1, 1]: a few strong directions plus noise.
    fn data() -> Tensor {
        let _g = dualspace_tensor::seed::seed_guard(11);
        let basis = Tensor::randn([3, 16], (Kind::Float, Device::Cpu));
        let coef = Tensor::randn([200, 3], (Kind::Float, Device::Cpu)) * Tensor::from_slice(&[0.5f32, 0.3, 0.1]);
        let noise = Tensor::randn([200, 16], (Kind::Float, Device::Cpu)) * 0.02;
        ((coef.matmul(&basis) + noise) * 0.3 + 0.1).clamp(-1.0, 1.0).view([200, 1, 4, 4])
    }

    fn cfg(k: i64) -> PcaConfig {
        PcaConfig::new(ImageShape::new(1, 4), k)
    }

    #[test]
    fn decode_encode_is_the_projection_onto_the_top_components() {
        let x = data();
        let pca = Pca::fit(cfg(3), &x, Device::Cpu).unwrap();
        // Independent reference: the SVD of the centered data in f64.
        let xf = x.view([200, 16]).to_kind(Kind::Double);
        let xc = &xf - xf.mean_dim(0, true, Kind::Double);
        let (_, _, v) = xc.svd(true, true);
        let v = v.narrow(1, 0, 3).tr();
        let proj = xc.matmul(&v.tr()).matmul(&v) + xf.mean_dim(0, true, Kind::Double);
        let rec = pca.decode(&pca.encode(&x).unwrap()).unwrap().view([200, 16]);
        let diff = max_abs_diff(&rec, &proj);
        assert!(diff < 1e-5, "largest difference from the projection: {diff}");
    }

    #[test]
    fn encode_of_decode_returns_the_codes() {
        let x = data();
        for whiten in [false, true] {
            let pca = Pca::fit(PcaConfig { whiten, ..cfg(3) }, &x, Device::Cpu).unwrap();
            let _g = dualspace_tensor::seed::seed_guard(4);
            let c = Tensor::randn([7, 3], (Kind::Float, Device::Cpu));
            let back = pca.encode(&pca.decode(&c).unwrap()).unwrap();
            let diff = max_abs_diff(&back, &c);
            assert!(diff < 1e-5, "whiten {whiten}: largest difference {diff}");
        }
    }

    #[test]
    fn reconstruction_error_is_the_sum_of_discarded_eigenvalues() {
        let x = data();
        let pca = Pca::fit(cfg(2), &x, Device::Cpu).unwrap();
        // Discarded eigenvalues computed independently with eigvalsh.
        let xf = x.view([200, 16]).to_kind(Kind::Double);
        let xc = &xf - xf.mean_dim(0, true, Kind::Double);
        let vals = (xc.tr().matmul(&xc) / 200.0).linalg_eigvalsh("L");
        let discarded = vals.narrow(0, 0, 14).sum(Kind::Double).double_value(&[]);
        let rec = pca.decode(&pca.encode(&x).unwrap()).unwrap();
        let err =
            (rec.to_kind(Kind::Double) - x.to_kind(Kind::Double)).square().sum(Kind::Double).double_value(&[]) / 200.0;
        assert!((err - discarded).abs() < 1e-4 * discarded.max(1e-6) + 1e-7, "error {err} vs discarded {discarded}");
        assert!(
            (pca.discarded_variance() - discarded).abs() < 1e-9 + 1e-6 * discarded,
            "{} vs {discarded}",
            pca.discarded_variance()
        );
        // Whitened codes have unit variance on the training data.
        let w = Pca::fit(PcaConfig { whiten: true, ..cfg(2) }, &x, Device::Cpu).unwrap();
        let var = w.encode(&x).unwrap().to_kind(Kind::Double).square().mean_dim(0, false, Kind::Double);
        assert!(max_abs_diff(&var, &Tensor::ones([2], (Kind::Double, Device::Cpu))) < 1e-4, "{var:?}");
    }

    #[test]
    fn more_components_than_images_is_an_error() {
        let x = data();
        let n = x.size()[0];
        let few = x.narrow(0, 0, 2);
        let Err(e) = Pca::fit_seeded(PcaConfig { exact_max_dim: 1, ..cfg(3) }, &few, 5, Device::Cpu) else {
            panic!("3 components fitted on 2 of {n} images");
        };
        assert!(e.to_string().contains("needs at least 3 training images, got 2"), "{e}");
    }

    #[test]
    fn randomized_fit_finds_the_same_subspace() {
        let x = data();
        let exact = Pca::fit(cfg(3), &x, Device::Cpu).unwrap();
        let rand = Pca::fit_seeded(PcaConfig { exact_max_dim: 1, ..cfg(3) }, &x, 5, Device::Cpu).unwrap();
        // Same projector, same eigenvalues, same total.
        let p = |c: &Tensor| c.tr().matmul(c).to_kind(Kind::Double);
        let diff = max_abs_diff(&p(exact.components()), &p(rand.components()));
        assert!(diff < 1e-4, "projectors differ by {diff}");
        assert!(max_abs_diff(exact.eigenvalues(), rand.eigenvalues()) < 1e-6);
        assert!((exact.total_variance() - rand.total_variance()).abs() < 1e-9);
    }

    #[test]
    fn load_refuses_another_size() {
        let dir = tempfile::tempdir().unwrap();
        let pca = Pca::fit(cfg(3), &data(), Device::Cpu).unwrap();
        pca.save_weights(dir.path()).unwrap();
        let back = Pca::load(cfg(3), dir.path(), Device::Cpu).unwrap();
        assert!(back.components().equal(pca.components()));
        let e = Pca::load(cfg(4), dir.path(), Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("'components'") && e.contains("[4, 16]") && e.contains("[3, 16]"), "{e}");
    }
}
