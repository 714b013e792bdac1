//! Distribution metrics on feature vectors (judge features in practice, but
//! any `[N, D]` float tensor works), and class-based rates on probabilities.
//!
//! Conventions, shared with the reference implementations:
//! - FID and KID accumulate in f64; the matrix square root of FID comes from
//!   eigendecompositions of symmetric matrices, with tiny negative eigenvalues
//!   (rounding) clamped to 0, so it is never NaN.
//! - Precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem
//!   et al. 2020) use the radius of a point's ball = distance to its k-th
//!   nearest neighbour in its own set, the point itself not counted, and the
//!   strict test `distance < radius`, as the `prdc` package does. Distances
//!   are computed in row chunks, so 10,000 x 10,000 needs only
//!   `CHUNK x 10,000` floats at a time.
use crate::{Error, Result};
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Rows per block of the chunked distance computations.
pub const CHUNK: i64 = 1024;

/// Features and class probabilities of one set of images, as the judge
/// produces them ([`crate::Judge::embed`]); both on the CPU, f32.
#[derive(Debug)]
pub struct Embedded {
    /// Penultimate-layer features, `[N, D]`.
    pub features: Tensor,
    /// Class probabilities (softmax), `[N, K]`.
    pub probs: Tensor,
}

impl Embedded {
    /// Number of images.
    pub fn len(&self) -> i64 {
        self.features.size()[0]
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `idx` (i64 indices) of both tensors.
    pub fn select(&self, idx: &Tensor) -> Result<Embedded> {
        Ok(Embedded { features: self.features.f_index_select(0, idx)?, probs: self.probs.f_index_select(0, idx)? })
    }
}

fn check_features(what: &str, t: &Tensor) -> Result<(i64, i64)> {
    let s = t.size();
    if s.len() != 2 || !matches!(t.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16) {
        return Err(Error::Shape {
            what: what.into(),
            expected: "float features [N, D]".into(),
            got: format!("{:?} {s:?}", t.kind()),
        });
    }
    Ok((s[0], s[1]))
}

fn check_pair(a: &Tensor, b: &Tensor, min_n: i64) -> Result<(i64, i64, i64)> {
    let (na, da) = check_features("first feature set", a)?;
    let (nb, db) = check_features("second feature set", b)?;
    if da != db {
        return Err(Error::Shape {
            what: "second feature set".into(),
            expected: format!("{da} features per row, like the first"),
            got: format!("{db}"),
        });
    }
    if na < min_n || nb < min_n {
        return Err(Error::Invalid(format!("this metric needs at least {min_n} rows in each set, got {na} and {nb}")));
    }
    Ok((na, nb, da))
}

fn finite(what: &str, t: &Tensor) -> Result<()> {
    if t.isfinite().all().int64_value(&[]) == 0 {
        return Err(Error::Invalid(format!(
            "{what} contain NaN or infinite values; the model that produced them diverged"
        )));
    }
    Ok(())
}

/// Mean and covariance of a feature set, in f64.
#[derive(Debug)]
pub struct GaussianStats {
    /// Mean, `[D]`.
    pub mean: Tensor,
    /// Unbiased covariance (divided by N - 1), `[D, D]`.
    pub cov: Tensor,
    /// Rows it was computed from.
    pub n: i64,
}

impl GaussianStats {
    /// Fits a Gaussian to `[N, D]` features (N >= 2), in f64 on the CPU.
    pub fn from_features(f: &Tensor) -> Result<Self> {
        let (n, _) = check_features("features", f)?;
        if n < 2 {
            return Err(Error::Invalid(format!("a covariance needs at least 2 rows, got {n}")));
        }
        let x = f.to_device(tch::Device::Cpu).to_kind(Kind::Double);
        finite("features", &x)?;
        let mean = x.mean_dim(0, false, Kind::Double);
        let c = &x - &mean;
        let cov = c.tr().mm(&c) / (n - 1) as f64;
        Ok(Self { mean, cov, n })
    }

    /// From a known mean `[D]` and covariance `[D, D]` (for closed forms).
    pub fn new(mean: &Tensor, cov: &Tensor) -> Result<Self> {
        let d = mean.size();
        if d.len() != 1 || cov.size() != [d[0], d[0]] {
            return Err(Error::Shape {
                what: "Gaussian".into(),
                expected: "mean [D] and covariance [D, D]".into(),
                got: format!("{d:?} and {:?}", cov.size()),
            });
        }
        Ok(Self { mean: mean.to_kind(Kind::Double), cov: cov.to_kind(Kind::Double), n: 0 })
    }
}

/// Symmetric part of a square matrix (removes rounding asymmetry before an
/// eigendecomposition that assumes symmetry).
fn sym(m: &Tensor) -> Tensor {
    (m + m.tr()) * 0.5
}

/// Square root of a symmetric positive semi-definite matrix through its
/// eigendecomposition; negative eigenvalues (rounding) are clamped to 0.
pub fn sqrt_psd(m: &Tensor) -> Result<Tensor> {
    let (vals, vecs) = sym(m).f_linalg_eigh("L")?;
    let root = vals.clamp_min(0.0).sqrt();
    Ok((&vecs * root.unsqueeze(0)).mm(&vecs.tr()))
}

/// Fréchet distance between two Gaussians:
/// `|m1 - m2|^2 + tr S1 + tr S2 - 2 tr (S1^1/2 S2 S1^1/2)^1/2`.
///
/// The last trace equals `tr (S1 S2)^1/2` but only involves symmetric
/// positive semi-definite matrices, whose eigenvalues are real and clamped at
/// 0; a result below 0 (rounding, identical inputs) is clamped to 0.
pub fn frechet_distance(a: &GaussianStats, b: &GaussianStats) -> Result<f64> {
    if a.mean.size() != b.mean.size() {
        return Err(Error::Shape {
            what: "second Gaussian".into(),
            expected: format!("dimension {:?}", a.mean.size()),
            got: format!("{:?}", b.mean.size()),
        });
    }
    let diff = (&a.mean - &b.mean).square().sum(Kind::Double).double_value(&[]);
    let s1 = sqrt_psd(&a.cov)?;
    let inner = sym(&s1.mm(&b.cov).mm(&s1));
    let eig = inner.f_linalg_eigvalsh("L")?.clamp_min(0.0);
    let tr_sqrt = eig.sqrt().sum(Kind::Double).double_value(&[]);
    let tr = a.cov.trace().double_value(&[]) + b.cov.trace().double_value(&[]);
    let d = diff + tr - 2.0 * tr_sqrt;
    if !d.is_finite() {
        return Err(Error::Invalid("the Fréchet distance is not finite; the features contain huge values".into()));
    }
    Ok(d.max(0.0))
}

/// FID on features: the Fréchet distance between Gaussian fits of `[N, D]`
/// and `[M, D]` (N, M >= 2).
pub fn fid(a: &Tensor, b: &Tensor) -> Result<f64> {
    check_pair(a, b, 2)?;
    frechet_distance(&GaussianStats::from_features(a)?, &GaussianStats::from_features(b)?)
}

/// KID: its mean over subsets and the standard deviation of the subset
/// estimates.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Kid {
    /// Mean of the unbiased MMD^2 estimates.
    pub mean: f64,
    /// Standard deviation of the estimates over subsets.
    pub std: f64,
    /// Subsets averaged.
    pub subsets: usize,
    /// Rows per subset (from each set).
    pub subset_size: usize,
}

/// The cubic polynomial kernel of KID, `(x . y / D + 1)^3`, summed in f64.
fn poly_kernel(x: &Tensor, y: &Tensor, d: f64) -> Tensor {
    (x.mm(&y.tr()).to_kind(Kind::Double) / d + 1.0).pow_tensor_scalar(3)
}

/// KID (Bińkowski et al. 2018): the unbiased estimate of MMD^2 with the
/// kernel `(x . y / D + 1)^3`, on `subsets` random subsets of `subset_size`
/// rows drawn without replacement from each set (seeded; the size is capped
/// at the smaller set).
pub fn kid(a: &Tensor, b: &Tensor, subsets: usize, subset_size: usize, seed: u64) -> Result<Kid> {
    let (na, nb, d) = check_pair(a, b, 2)?;
    if subsets == 0 {
        return Err(Error::Invalid("KID needs at least 1 subset".into()));
    }
    let m = (subset_size as i64).min(na).min(nb);
    if m < 2 {
        return Err(Error::Invalid(format!("KID needs subsets of at least 2 rows, got {m}")));
    }
    let (a, b) = (a.to_kind(Kind::Float), b.to_kind(Kind::Float));
    let mut rng = dualspace_tensor::seed::rng(seed, 0x41D);
    let mut est = Vec::with_capacity(subsets);
    let mf = m as f64;
    for _ in 0..subsets {
        let ia: Vec<i64> = sample(&mut rng, na as usize, m as usize).into_iter().map(|i| i as i64).collect();
        let ib: Vec<i64> = sample(&mut rng, nb as usize, m as usize).into_iter().map(|i| i as i64).collect();
        let x = a.index_select(0, &Tensor::from_slice(&ia).to_device(a.device()));
        let y = b.index_select(0, &Tensor::from_slice(&ib).to_device(b.device()));
        let kxx = poly_kernel(&x, &x, d as f64);
        let kyy = poly_kernel(&y, &y, d as f64);
        let kxy = poly_kernel(&x, &y, d as f64);
        let sxx = kxx.sum(Kind::Double).double_value(&[]) - kxx.trace().double_value(&[]);
        let syy = kyy.sum(Kind::Double).double_value(&[]) - kyy.trace().double_value(&[]);
        let sxy = kxy.sum(Kind::Double).double_value(&[]);
        est.push((sxx + syy) / (mf * (mf - 1.0)) - 2.0 * sxy / (mf * mf));
    }
    let mean = est.iter().sum::<f64>() / est.len() as f64;
    let var =
        if est.len() > 1 { est.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (est.len() - 1) as f64 } else { 0.0 };
    if !mean.is_finite() {
        return Err(Error::Invalid("KID is not finite; the features contain huge values".into()));
    }
    Ok(Kid { mean, std: var.sqrt(), subsets, subset_size: m as usize })
}

/// Squared Euclidean distances between the rows of `x` `[n, D]` and `y`
/// `[m, D]`, `[n, m]`, through one matrix product (clamped at 0).
fn sq_dist(x: &Tensor, y: &Tensor) -> Tensor {
    let xx = x.square().sum_dim_intlist(1, true, Kind::Float);
    let yy = y.square().sum_dim_intlist(1, false, Kind::Float).unsqueeze(0);
    (xx + yy - x.mm(&y.tr()) * 2.0).clamp_min(0.0)
}

fn as_f32(t: &Tensor) -> Tensor {
    t.to_kind(Kind::Float)
}

/// Squared k-nearest-neighbour radii of the rows of `x` within `x` (the row
/// itself not counted), computed `chunk` rows at a time.
pub fn knn_sq_radii(x: &Tensor, k: i64, chunk: i64) -> Result<Tensor> {
    let (n, _) = check_features("features", x)?;
    if k < 1 || k >= n {
        return Err(Error::Invalid(format!("k-nearest-neighbour radii need 1 <= k < N, got k = {k} with N = {n}")));
    }
    let x = as_f32(x);
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let d = sq_dist(&x.narrow(0, start, len), &x);
        // The smallest entry of each row is the row itself (0 up to
        // rounding), so the (k+1)-th smallest is the k-th neighbour.
        let (kth, _) = d.kthvalue(k + 1, 1, false);
        parts.push(kth);
        start += len;
    }
    Ok(Tensor::cat(&parts, 0))
}

/// For each row of `queries`: how many balls (centres `centres`, squared
/// radii `sq_radii`) contain it strictly, computed in chunks. i64 `[Q]`.
fn balls_containing(queries: &Tensor, centres: &Tensor, sq_radii: &Tensor, chunk: i64) -> Tensor {
    let n = queries.size()[0];
    let r = sq_radii.unsqueeze(0);
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let d = sq_dist(&queries.narrow(0, start, len), centres);
        parts.push(d.lt_tensor(&r).sum_dim_intlist(1, false, Kind::Int64));
        start += len;
    }
    Tensor::cat(&parts, 0)
}

/// For each row of `queries`, the squared distance to its nearest row of
/// `points`, in chunks. `[Q]`.
fn nearest_sq_dist(queries: &Tensor, points: &Tensor, chunk: i64) -> Tensor {
    let n = queries.size()[0];
    let mut parts = Vec::new();
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let (min, _) = sq_dist(&queries.narrow(0, start, len), points).min_dim(1, false);
        parts.push(min);
        start += len;
    }
    Tensor::cat(&parts, 0)
}

/// Precision and recall of generated features against real ones.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct PrecisionRecall {
    /// Fraction of generated samples inside some real sample's k-NN ball.
    pub precision: f64,
    /// Fraction of real samples inside some generated sample's k-NN ball.
    pub recall: f64,
    /// The k of the k-NN radii.
    pub k: i64,
}

/// Improved precision and recall (Kynkäänniemi et al. 2019).
pub fn precision_recall(real: &Tensor, fake: &Tensor, k: i64) -> Result<PrecisionRecall> {
    precision_recall_chunked(real, fake, k, CHUNK)
}

fn precision_recall_chunked(real: &Tensor, fake: &Tensor, k: i64, chunk: i64) -> Result<PrecisionRecall> {
    let (nr, nf, _) = check_pair(real, fake, k + 1)?;
    let (real, fake) = (as_f32(real), as_f32(fake));
    let r_real = knn_sq_radii(&real, k, chunk)?;
    let r_fake = knn_sq_radii(&fake, k, chunk)?;
    let p = balls_containing(&fake, &real, &r_real, chunk).gt(0).sum(Kind::Int64).int64_value(&[]);
    let r = balls_containing(&real, &fake, &r_fake, chunk).gt(0).sum(Kind::Int64).int64_value(&[]);
    Ok(PrecisionRecall { precision: p as f64 / nf as f64, recall: r as f64 / nr as f64, k })
}

/// Density and coverage of generated features against real ones.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct DensityCoverage {
    /// Mean number of real k-NN balls containing a generated sample, over k
    /// (1 on average for samples distributed like the real ones; can exceed 1).
    pub density: f64,
    /// Fraction of real samples whose k-NN ball contains a generated sample.
    pub coverage: f64,
    /// The k of the k-NN radii.
    pub k: i64,
}

/// Density and coverage (Naeem et al. 2020).
pub fn density_coverage(real: &Tensor, fake: &Tensor, k: i64) -> Result<DensityCoverage> {
    density_coverage_chunked(real, fake, k, CHUNK)
}

fn density_coverage_chunked(real: &Tensor, fake: &Tensor, k: i64, chunk: i64) -> Result<DensityCoverage> {
    let (nr, nf, _) = check_pair(real, fake, k + 1)?;
    let (real, fake) = (as_f32(real), as_f32(fake));
    let r_real = knn_sq_radii(&real, k, chunk)?;
    let inside = balls_containing(&fake, &real, &r_real, chunk).sum(Kind::Int64).int64_value(&[]);
    let covered = nearest_sq_dist(&real, &fake, chunk).lt_tensor(&r_real).sum(Kind::Int64).int64_value(&[]);
    Ok(DensityCoverage { density: inside as f64 / (k as f64 * nf as f64), coverage: covered as f64 / nr as f64, k })
}

/// The judge's class histogram of a sample set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassHistogram {
    /// Fraction of samples whose most probable class is each class.
    pub fractions: Vec<f64>,
    /// The same as counts.
    pub counts: Vec<i64>,
    /// Classes that get at least `threshold` of the samples (mode coverage).
    pub modes_covered: usize,
    /// The threshold of `modes_covered` (0.01).
    pub threshold: f64,
}

/// Counts argmax classes of `[N, K]` probabilities; a class is covered when
/// it gets at least 1% of the samples.
pub fn class_histogram(probs: &Tensor) -> Result<ClassHistogram> {
    let (n, k) = check_features("class probabilities", probs)?;
    if n == 0 {
        return Err(Error::Invalid("no samples to count".into()));
    }
    let arg = probs.argmax(1, false).to_device(tch::Device::Cpu);
    let counts: Vec<i64> = Vec::<i64>::try_from(&arg.bincount::<Tensor>(None, k))?;
    let threshold = 0.01;
    let fractions: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
    let modes_covered = fractions.iter().filter(|&&f| f >= threshold).count();
    Ok(ClassHistogram { fractions, counts, modes_covered, threshold })
}

/// How often the judge puts samples into held-out classes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldoutRate {
    /// The held-out class indices.
    pub classes: Vec<i64>,
    /// Fraction of samples whose most probable class is held out.
    pub argmax: f64,
    /// Fraction of samples given to one held-out class with probability > 0.5.
    pub conf_0_5: f64,
    /// Fraction of samples given to one held-out class with probability > 0.9.
    pub conf_0_9: f64,
}

/// The held-out-class rate of `[N, K]` probabilities (all 0 when no class
/// is held out).
pub fn heldout_rate(probs: &Tensor, heldout: &[i64]) -> Result<HeldoutRate> {
    let (n, k) = check_features("class probabilities", probs)?;
    if let Some(c) = heldout.iter().find(|&&c| c < 0 || c >= k) {
        return Err(Error::Invalid(format!("held-out class {c} does not exist: the judge knows {k} classes")));
    }
    let mut out = HeldoutRate { classes: heldout.to_vec(), argmax: 0.0, conf_0_5: 0.0, conf_0_9: 0.0 };
    if heldout.is_empty() || n == 0 {
        return Ok(out);
    }
    let probs = probs.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    let idx = Tensor::from_slice(heldout);
    let arg = probs.argmax(1, false);
    let is_held = Tensor::isin(&arg, &idx, false, false);
    // Probabilities above 0.5 can only belong to the argmax class.
    let (best_held, _) = probs.index_select(1, &idx).max_dim(1, false);
    let frac = |t: Tensor| t.sum(Kind::Int64).int64_value(&[]) as f64 / n as f64;
    out.argmax = frac(is_held);
    out.conf_0_5 = frac(best_held.gt(0.5));
    out.conf_0_9 = frac(best_held.gt(0.9));
    Ok(out)
}

/// For each row of `queries` `[Q, D]`, the `k` nearest rows of `generated`
/// `[G, D]`: indices i64 `[Q, k]` and Euclidean distances `[Q, k]`, nearest
/// first (for the grid of generated samples closest to real held-out images).
pub fn nearest_generated(queries: &Tensor, generated: &Tensor, k: i64) -> Result<(Tensor, Tensor)> {
    let (_, ng, _) = check_pair(queries, generated, 1)?;
    if k < 1 || k > ng {
        return Err(Error::Invalid(format!("asked for {k} nearest of {ng} generated samples")));
    }
    let (q, g) = (as_f32(queries), as_f32(generated));
    let n = q.size()[0];
    let (mut idx, mut dist) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let (d, i) = sq_dist(&q.narrow(0, start, len), &g).topk(k, 1, false, true);
        dist.push(d.sqrt());
        idx.push(i);
        start += len;
    }
    Ok((Tensor::cat(&idx, 0), Tensor::cat(&dist, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const CPU: (Kind, Device) = (Kind::Double, Device::Cpu);

    fn mat(rows: &[&[f64]]) -> Tensor {
        let d = rows[0].len() as i64;
        let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_slice(&flat).view([rows.len() as i64, d])
    }

    /// `n` draws of N(mean, cov) through a Cholesky factor.
    fn gaussian(n: i64, mean: &Tensor, cov: &Tensor) -> Tensor {
        let l = cov.linalg_cholesky(false);
        Tensor::randn([n, mean.size()[0]], CPU).mm(&l.tr()) + mean
    }

    fn close(got: f64, want: f64, tol: f64, what: &str) {
        assert!(
            (got - want).abs() <= tol,
            "{what}: got {got}, want {want} (diff {:e}, tol {tol:e})",
            (got - want).abs()
        );
    }

    #[test]
    fn fid_of_a_set_with_itself_is_zero() {
        tch::manual_seed(1);
        let a = Tensor::randn([500, 32], (Kind::Float, Device::Cpu)) * 3.0 + 1.0;
        close(fid(&a, &a).unwrap(), 0.0, 1e-8, "fid(a, a)");
    }

    #[test]
    fn frechet_distance_matches_closed_form_for_non_commuting_covariances() {
        // In 2-D, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for PSD M, and with
        // M = S1^1/2 S2 S1^1/2: tr M = tr(S1 S2), det M = det S1 det S2.
        // S1 = [[2,1],[1,2]], S2 = diag(1,3): tr(S1 S2) = 8, det = 3 * 3.
        // FID = |(0,0)-(1,2)|^2 + 4 + 4 - 2 sqrt(8 + 2*3) = 13 - 2 sqrt(14).
        let a = GaussianStats::new(&Tensor::zeros([2], CPU), &mat(&[&[2.0, 1.0], &[1.0, 2.0]])).unwrap();
        let b = GaussianStats::new(&Tensor::from_slice(&[1.0f64, 2.0]), &mat(&[&[1.0, 0.0], &[0.0, 3.0]])).unwrap();
        let want = 13.0 - 2.0 * 14f64.sqrt();
        close(frechet_distance(&a, &b).unwrap(), want, 1e-10, "fid(a, b)");
        close(frechet_distance(&b, &a).unwrap(), want, 1e-10, "fid(b, a)");
    }

    #[test]
    fn frechet_distance_matches_closed_form_for_diagonal_covariances() {
        // Commuting case: |dm|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
        let va = [1.0f64, 4.0, 9.0, 0.25];
        let vb = [4.0f64, 1.0, 9.0, 1.0];
        let a = GaussianStats::new(&Tensor::from_slice(&[0.0f64, 0.0, 1.0, 0.0]), &Tensor::from_slice(&va).diag(0))
            .unwrap();
        let b = GaussianStats::new(&Tensor::from_slice(&[0.5f64, 0.0, 0.0, 0.0]), &Tensor::from_slice(&vb).diag(0))
            .unwrap();
        let want = 0.25 + 1.0 + va.iter().zip(&vb).map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2)).sum::<f64>();
        close(frechet_distance(&a, &b).unwrap(), want, 1e-10, "fid");
    }

    #[test]
    fn fid_of_gaussian_samples_approaches_the_closed_form() {
        tch::manual_seed(2);
        let c1 = mat(&[&[2.0, 1.0], &[1.0, 2.0]]);
        let c2 = mat(&[&[1.0, 0.0], &[0.0, 3.0]]);
        let a = gaussian(40_000, &Tensor::zeros([2], CPU), &c1);
        let b = gaussian(40_000, &Tensor::from_slice(&[1.0f64, 2.0]), &c2);
        let want = 13.0 - 2.0 * 14f64.sqrt();
        close(fid(&a, &b).unwrap(), want, 0.1, "sample fid");
    }

    #[test]
    fn fid_is_symmetric() {
        tch::manual_seed(3);
        let a = Tensor::randn([300, 16], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([400, 16], (Kind::Float, Device::Cpu))
            .mm(&Tensor::randn([16, 16], (Kind::Float, Device::Cpu)))
            + 0.5;
        let (ab, ba) = (fid(&a, &b).unwrap(), fid(&b, &a).unwrap());
        assert!(ab > 1.0, "{ab}");
        close(ab, ba, 1e-8 * ab, "fid(a,b) vs fid(b,a)");
    }

    #[test]
    fn fid_is_finite_on_singular_covariances() {
        tch::manual_seed(4);
        // 10 rows in 64 dimensions (rank <= 9), a constant column, and
        // features that are exact copies of each other (rank 1).
        let a = Tensor::randn([10, 64], (Kind::Float, Device::Cpu));
        let _ = a.narrow(1, 0, 1).fill_(3.0);
        let b = Tensor::randn([10, 64], (Kind::Float, Device::Cpu));
        let c = Tensor::randn([1, 64], (Kind::Float, Device::Cpu)).repeat([12, 1])
            * Tensor::arange(12, (Kind::Float, Device::Cpu)).unsqueeze(1);
        for (x, y) in [(&a, &b), (&a, &c), (&c, &c), (&a, &a)] {
            let f = fid(x, y).unwrap();
            assert!(f.is_finite() && f >= 0.0, "{f}");
        }
        close(fid(&c, &c).unwrap(), 0.0, 1e-6, "fid of a rank-1 set with itself");
        let nan = Tensor::full([4, 3], f64::NAN, CPU);
        assert!(fid(&nan, &nan).unwrap_err().to_string().contains("NaN"));
    }

    #[test]
    fn kid_of_one_distribution_is_near_zero() {
        tch::manual_seed(5);
        let a = Tensor::randn([2000, 16], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([2000, 16], (Kind::Float, Device::Cpu));
        let k = kid(&a, &b, 20, 500, 1).unwrap();
        assert!(k.mean.abs() < 3.0 * k.std / (20f64).sqrt() + 1e-3, "{k:?}");
        let shifted = &b + 1.0;
        let far = kid(&a, &shifted, 20, 500, 1).unwrap();
        assert!(far.mean > 0.5, "{far:?}");
        assert_eq!((far.subsets, far.subset_size), (20, 500));
    }

    #[test]
    fn kid_is_unbiased_on_one_dimensional_gaussians() {
        // D = 1: k(x, y) = (xy + 1)^3 = x^3y^3 + 3x^2y^2 + 3xy + 1, so
        // MMD^2 = (Ex^3 - Ey^3)^2 + 3 (Ex^2 - Ey^2)^2 + 3 (Ex - Ey)^2.
        // x ~ N(0,1), y ~ N(0.5,1): Ey = .5, Ey^2 = 1.25, Ey^3 = .125 + 1.5
        // => 1.625^2 + 3 * .25^2 + 3 * .5^2 = 3.578125.
        // Subsets of 8 make the bias of the biased (V-statistic) estimate
        // large (about +7.6 here), so only an unbiased estimator lands near it.
        tch::manual_seed(6);
        let a = Tensor::randn([100_000, 1], CPU);
        let b = Tensor::randn([100_000, 1], CPU) + 0.5;
        let k = kid(&a, &b, 8000, 8, 7).unwrap();
        let se = k.std / (8000f64).sqrt();
        assert!((k.mean - 3.578125).abs() < 4.0 * se, "mean {} vs 3.578125 (se {se})", k.mean);
        assert!(se < 0.15, "{se}");
    }

    #[test]
    fn identical_sets_have_full_precision_recall_density_coverage() {
        tch::manual_seed(7);
        let a = Tensor::randn([300, 8], (Kind::Float, Device::Cpu));
        let pr = precision_recall(&a, &a, 3).unwrap();
        let dc = density_coverage(&a, &a, 5).unwrap();
        assert_eq!((pr.precision, pr.recall, dc.coverage), (1.0, 1.0, 1.0));
        // Each point lies strictly inside its own ball and those of the
        // points that count it among their first k-1 neighbours: for
        // identical sets the total is exactly N * k.
        close(dc.density, 1.0, 1e-12, "density");
    }

    #[test]
    fn far_apart_sets_have_zero_precision_recall_density_coverage() {
        tch::manual_seed(8);
        let a = Tensor::randn([200, 4], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([200, 4], (Kind::Float, Device::Cpu)) + 100.0;
        let pr = precision_recall(&a, &b, 3).unwrap();
        let dc = density_coverage(&a, &b, 5).unwrap();
        assert_eq!((pr.precision, pr.recall, dc.density, dc.coverage), (0.0, 0.0, 0.0, 0.0));
    }

    #[test]
    fn precision_recall_density_coverage_match_hand_computation() {
        // 1-D, k = 1. Real {0, 1, 3}: radii 1, 1, 2. Fake {0.5, 2.5, 6}: radii 2, 2, 3.5.
        // precision: 0.5 in ball(0), 2.5 in ball(3) (0.5 < 2), 6 in none -> 2/3.
        // recall: 0 in ball(0.5), 1 in ball(0.5), 3 in ball(2.5) -> 1.
        // density: 0.5 lies in ball(0) and ball(1); 2.5 in ball(3); 6 in none
        //          -> (2 + 1 + 0) / (1 * 3) = 1.
        // coverage: nearest fakes 0.5 (0.5 < 1), 0.5 (0.5 < 1), 2.5 (0.5 < 2) -> 1.
        let real = mat(&[&[0.0], &[1.0], &[3.0]]).to_kind(Kind::Float);
        let fake = mat(&[&[0.5], &[2.5], &[6.0]]).to_kind(Kind::Float);
        let pr = precision_recall(&real, &fake, 1).unwrap();
        let dc = density_coverage(&real, &fake, 1).unwrap();
        close(pr.precision, 2.0 / 3.0, 1e-12, "precision");
        close(pr.recall, 1.0, 1e-12, "recall");
        close(dc.density, 1.0, 1e-12, "density");
        close(dc.coverage, 1.0, 1e-12, "coverage");
        // Swapping roles, k = 1: real {0.5, 2.5, 6} radii 2, 2, 3.5; fake {0, 1, 3}.
        // precision: 0 in ball(0.5), 1 in ball(0.5), 3 in ball(2.5) -> 1.
        // recall: fake radii 1, 1, 2: 0.5 in ball(0); 2.5 in ball(3); 6 no -> 2/3.
        // density: 0 in ball(0.5) only (2.5 from 2.5, not < 2) -> 1;
        //          1 in ball(0.5) and ball(2.5) (1.5 < 2) -> 2;
        //          3 in ball(2.5) (0.5 < 2) and ball(6) (3 < 3.5) -> 2; (1+2+2)/3.
        // coverage: 0.5 -> 0 at 0.5 < 2; 2.5 -> 3 at 0.5 < 2; 6 -> 3 at 3 < 3.5 -> 1.
        let pr = precision_recall(&fake, &real, 1).unwrap();
        let dc = density_coverage(&fake, &real, 1).unwrap();
        close(pr.precision, 1.0, 1e-12, "precision");
        close(pr.recall, 2.0 / 3.0, 1e-12, "recall");
        close(dc.density, 5.0 / 3.0, 1e-12, "density");
        close(dc.coverage, 1.0, 1e-12, "coverage");
    }

    #[test]
    fn chunked_distances_equal_one_block() {
        tch::manual_seed(9);
        let a = Tensor::randn([257, 6], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([300, 6], (Kind::Float, Device::Cpu)) * 1.3;
        assert!(knn_sq_radii(&a, 3, 10).unwrap().allclose(&knn_sq_radii(&a, 3, 1000).unwrap(), 1e-6, 1e-6, false));
        let (p1, p2) =
            (precision_recall_chunked(&a, &b, 3, 7).unwrap(), precision_recall_chunked(&a, &b, 3, 4096).unwrap());
        assert_eq!(p1, p2);
        let (d1, d2) =
            (density_coverage_chunked(&a, &b, 5, 13).unwrap(), density_coverage_chunked(&a, &b, 5, 4096).unwrap());
        assert_eq!(d1, d2);
        assert!(p1.precision > 0.3 && p1.precision < 1.0, "{p1:?}");
    }

    #[test]
    fn class_histogram_counts_argmax_and_modes() {
        // 200 samples: 150 of class 0, 48 of class 1, 2 of class 2 (1%), 0 of class 3.
        let mut rows = Vec::new();
        for (c, n) in [(0usize, 150), (1, 48), (2, 2)] {
            for _ in 0..n {
                let mut p = [0.1f32; 4];
                p[c] = 0.7;
                rows.extend_from_slice(&p);
            }
        }
        let probs = Tensor::from_slice(&rows).view([200, 4]);
        let h = class_histogram(&probs).unwrap();
        assert_eq!(h.counts, vec![150, 48, 2, 0]);
        assert_eq!(h.fractions, vec![0.75, 0.24, 0.01, 0.0]);
        assert_eq!(h.modes_covered, 3);
    }

    #[test]
    fn heldout_rate_counts_argmax_and_confidence() {
        // Classes 0..4, held out {2, 3}.
        let probs = Tensor::from_slice(&[
            0.05f32, 0.05, 0.85, 0.05, // held out, 0.85
            0.02, 0.02, 0.01, 0.95, // held out, 0.95
            0.40, 0.30, 0.30, 0.00, // seen
            0.20, 0.20, 0.35, 0.25, // held out, 0.35 (argmax only)
        ])
        .view([4, 4]);
        let r = heldout_rate(&probs, &[2, 3]).unwrap();
        assert_eq!((r.argmax, r.conf_0_5, r.conf_0_9), (0.75, 0.5, 0.25));
        let none = heldout_rate(&probs, &[]).unwrap();
        assert_eq!((none.argmax, none.conf_0_5, none.conf_0_9), (0.0, 0.0, 0.0));
        assert!(heldout_rate(&probs, &[4]).unwrap_err().to_string().contains("class 4 does not exist"));
    }

    #[test]
    fn nearest_generated_returns_closest_rows_in_order() {
        let q = mat(&[&[0.0, 0.0], &[10.0, 0.0]]).to_kind(Kind::Float);
        let g = mat(&[&[9.0, 0.0], &[1.0, 0.0], &[0.0, 2.0], &[10.0, 0.5]]).to_kind(Kind::Float);
        let (idx, dist) = nearest_generated(&q, &g, 2).unwrap();
        assert_eq!(Vec::<i64>::try_from(&idx.view([-1])).unwrap(), vec![1, 2, 3, 0]);
        let d = Vec::<f32>::try_from(&dist.view([-1])).unwrap();
        for (got, want) in d.iter().zip([1.0f32, 2.0, 0.5, 1.0]) {
            assert!((got - want).abs() < 1e-5, "{d:?}");
        }
        assert!(nearest_generated(&q, &g, 5).is_err());
    }

    #[test]
    fn mismatched_feature_sets_are_errors() {
        let a = Tensor::zeros([10, 3], (Kind::Float, Device::Cpu));
        let b = Tensor::zeros([10, 4], (Kind::Float, Device::Cpu));
        assert!(fid(&a, &b).unwrap_err().to_string().contains("3 features per row"));
        assert!(precision_recall(&a, &a.narrow(0, 0, 2), 3).is_err());
        assert!(kid(&a, &a, 0, 5, 0).is_err());
    }
}
