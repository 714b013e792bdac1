//! One call for the CLI and the benchmark harness: embed real and generated
//! images with the judge and compute every metric, with the sample sizes and
//! the time it took, into a serialisable [`Report`].
//!
//! The floor of each metric (what real data scores against real data) is the
//! same call with real training images in place of generated ones; the
//! caller writes it beside the samples' report.
use crate::judge::Judge;
use crate::metrics::{self, ClassHistogram, Embedded, HeldoutRate};
use crate::{Error, Result};
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::Tensor;

/// What [`evaluate`] computes, and on how many samples.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalOptions {
    /// At most this many images of each set are used (a seeded random
    /// subset when there are more; all of them when there are fewer).
    pub max_samples: usize,
    /// KID subsets.
    pub kid_subsets: usize,
    /// KID subset size (capped at the smaller set).
    pub kid_subset_size: usize,
    /// k of precision/recall.
    pub pr_k: i64,
    /// k of density/coverage.
    pub dc_k: i64,
    /// Images per judge forward pass.
    pub batch_size: usize,
    /// Seed of the subsets.
    pub seed: u64,
    /// Held-out class indices, for the held-out-class rate.
    pub heldout: Vec<i64>,
}

impl Default for EvalOptions {
    /// 5,000 vs 5,000, KID 100 subsets of 1,000, k = 3 (PR) and 5 (DC),
    /// batches of 500, seed 0, no held-out classes.
    fn default() -> Self {
        Self {
            max_samples: 5000,
            kid_subsets: 100,
            kid_subset_size: 1000,
            pr_k: 3,
            dc_k: 5,
            batch_size: 500,
            seed: 0,
            heldout: Vec::new(),
        }
    }
}

/// Every metric of one comparison, named after the judge embedding so that
/// nobody mistakes them for Inception-based numbers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// What the features are: `judge penultimate layer (D = 128), not Inception`.
    pub embedding: String,
    /// Real (reference) images used.
    pub n_real: i64,
    /// Generated (compared) images used.
    pub n_fake: i64,
    /// Feature dimension.
    pub feature_dim: i64,
    /// Fréchet distance of Gaussian fits to judge features.
    pub fid_judge: f64,
    /// KID on judge features: mean of the unbiased MMD^2 over subsets.
    pub kid_judge: f64,
    /// Standard deviation of the KID subset estimates.
    pub kid_judge_std: f64,
    /// KID subsets.
    pub kid_subsets: usize,
    /// KID subset size.
    pub kid_subset_size: usize,
    /// Precision (Kynkäänniemi et al. 2019) on judge features.
    pub precision_judge: f64,
    /// Recall (Kynkäänniemi et al. 2019) on judge features.
    pub recall_judge: f64,
    /// k of precision/recall.
    pub pr_k: i64,
    /// Density (Naeem et al. 2020) on judge features.
    pub density_judge: f64,
    /// Coverage (Naeem et al. 2020) on judge features.
    pub coverage_judge: f64,
    /// k of density/coverage.
    pub dc_k: i64,
    /// The judge's class histogram of the generated images.
    pub class_histogram: ClassHistogram,
    /// How often the judge assigns generated images to held-out classes.
    pub heldout_rate: HeldoutRate,
    /// Seconds spent computing judge features (both sets).
    pub seconds_features: f64,
    /// Seconds spent on the metrics.
    pub seconds_metrics: f64,
    /// Seconds in all.
    pub seconds_total: f64,
}

impl Report {
    /// The main numbers on a few lines, for printing.
    pub fn summary(&self) -> String {
        let h = &self.class_histogram;
        let mut s = format!(
            "{} real vs {} generated, {}\n\
             fid_judge {:.3}   kid_judge {:.5} ± {:.5} ({} subsets of {})\n\
             precision_judge {:.4}   recall_judge {:.4} (k={})   density_judge {:.4}   coverage_judge {:.4} (k={})\n\
             modes covered (>= {:.0}% of samples) {} of {}",
            self.n_real,
            self.n_fake,
            self.embedding,
            self.fid_judge,
            self.kid_judge,
            self.kid_judge_std,
            self.kid_subsets,
            self.kid_subset_size,
            self.precision_judge,
            self.recall_judge,
            self.pr_k,
            self.density_judge,
            self.coverage_judge,
            self.dc_k,
            h.threshold * 100.0,
            h.modes_covered,
            h.fractions.len()
        );
        let r = &self.heldout_rate;
        if !r.classes.is_empty() {
            s.push_str(&format!(
                "\nheld-out classes {:?}: argmax {:.4}   p > 0.5 {:.4}   p > 0.9 {:.4}",
                r.classes, r.argmax, r.conf_0_5, r.conf_0_9
            ));
        }
        s
    }
}

/// `min(n, max)` distinct indices out of `0..n`, seeded by `(seed, stream)`,
/// sorted (all of `0..n` when `n <= max`).
pub fn subsample_indices(n: usize, max: usize, seed: u64, stream: u64) -> Vec<i64> {
    if n <= max {
        return (0..n as i64).collect();
    }
    let mut rng = dualspace_tensor::seed::rng(seed, stream);
    let mut idx: Vec<i64> = sample(&mut rng, n, max).into_iter().map(|i| i as i64).collect();
    idx.sort_unstable();
    idx
}

fn cap(images: &Tensor, max: usize, seed: u64, stream: u64) -> Result<Tensor> {
    let n = images.size().first().copied().unwrap_or(0).max(0) as usize;
    if n <= max {
        return Ok(images.shallow_clone());
    }
    let idx = Tensor::from_slice(&subsample_indices(n, max, seed, stream)).to_device(images.device());
    Ok(images.f_index_select(0, &idx)?)
}

/// Embeds `real` and `fake` images (u8 pixels or float in [-1, 1], `[N, C,
/// H, W]`) with the judge, each capped at `opts.max_samples` by a seeded
/// subset, and computes every metric.
pub fn evaluate(judge: &Judge, real: &Tensor, fake: &Tensor, opts: &EvalOptions) -> Result<Report> {
    let t0 = Instant::now();
    let real = judge.embed(&cap(real, opts.max_samples, opts.seed, 0xEA1)?, opts.batch_size)?;
    let fake = judge.embed(&cap(fake, opts.max_samples, opts.seed, 0xFA4E)?, opts.batch_size)?;
    let seconds_features = t0.elapsed().as_secs_f64();
    let mut r = evaluate_embedded(&real, &fake, opts)?;
    r.seconds_features = seconds_features;
    r.seconds_total = t0.elapsed().as_secs_f64();
    Ok(r)
}

/// Computes every metric from embeddings (for callers that embed a real set
/// once and compare many generated sets with it). Sets larger than
/// `opts.max_samples` are subsampled the same seeded way as in [`evaluate`].
pub fn evaluate_embedded(real: &Embedded, fake: &Embedded, opts: &EvalOptions) -> Result<Report> {
    let t0 = Instant::now();
    let pick = |e: &Embedded, stream| -> Result<Embedded> {
        let n = e.len().max(0) as usize;
        if n <= opts.max_samples {
            return Ok(Embedded { features: e.features.shallow_clone(), probs: e.probs.shallow_clone() });
        }
        e.select(&Tensor::from_slice(&subsample_indices(n, opts.max_samples, opts.seed, stream)))
    };
    let (real, fake) = (pick(real, 0xEA1)?, pick(fake, 0xFA4E)?);
    let need = opts.pr_k.max(opts.dc_k) + 1;
    if real.len() < need || fake.len() < need {
        return Err(Error::Invalid(format!(
            "evaluation needs at least {need} real and {need} generated images, got {} and {}",
            real.len(),
            fake.len()
        )));
    }
    let fid_judge = metrics::fid(&real.features, &fake.features)?;
    let kid = metrics::kid(&real.features, &fake.features, opts.kid_subsets, opts.kid_subset_size, opts.seed)?;
    let pr = metrics::precision_recall(&real.features, &fake.features, opts.pr_k)?;
    let dc = metrics::density_coverage(&real.features, &fake.features, opts.dc_k)?;
    let class_histogram = metrics::class_histogram(&fake.probs)?;
    let heldout_rate = metrics::heldout_rate(&fake.probs, &opts.heldout)?;
    let d = real.features.size()[1];
    let seconds_metrics = t0.elapsed().as_secs_f64();
    Ok(Report {
        embedding: format!("judge penultimate layer (D = {d}), not Inception"),
        n_real: real.len(),
        n_fake: fake.len(),
        feature_dim: d,
        fid_judge,
        kid_judge: kid.mean,
        kid_judge_std: kid.std,
        kid_subsets: kid.subsets,
        kid_subset_size: kid.subset_size,
        precision_judge: pr.precision,
        recall_judge: pr.recall,
        pr_k: pr.k,
        density_judge: dc.density,
        coverage_judge: dc.coverage,
        dc_k: dc.k,
        class_histogram,
        heldout_rate,
        seconds_features: 0.0,
        seconds_metrics,
        seconds_total: seconds_metrics,
    })
}

/// Rows of a "nearest generated" grid: each row is one real image followed
/// by the `k` generated images closest to it in judge features, nearest
/// first. Returns float images in [-1, 1], `[Q * (k + 1), C, H, W]` on the
/// CPU (lay them out with `ncol = k + 1`). `real` and `generated` are u8
/// pixels or float in [-1, 1].
pub fn nearest_generated_rows(
    judge: &Judge,
    real: &Tensor,
    generated: &Tensor,
    k: i64,
    batch: usize,
) -> Result<Tensor> {
    let q = judge.features(real, batch)?;
    let g = judge.features(generated, batch)?;
    let (idx, _) = metrics::nearest_generated(&q, &g, k)?;
    let real = crate::to_unit_f32(&real.to_device(tch::Device::Cpu));
    let generated = crate::to_unit_f32(&generated.to_device(tch::Device::Cpu));
    let picked = generated.f_index_select(0, &idx.view([-1]))?;
    let s = real.size();
    let picked = picked.view([s[0], k, s[1], s[2], s[3]]);
    Ok(Tensor::cat(&[real.unsqueeze(1), picked], 1).view([-1, s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::tests::{bands, small_card};
    use dualspace_tensor::run::Silent;
    use tch::{Device, Kind};

    #[test]
    fn subsample_is_seeded_distinct_and_capped() {
        let a = subsample_indices(1000, 10, 1, 2);
        assert_eq!(a, subsample_indices(1000, 10, 1, 2));
        assert_ne!(a, subsample_indices(1000, 10, 1, 3));
        let mut d = a.clone();
        d.dedup();
        assert_eq!(d.len(), 10);
        assert_eq!(subsample_indices(5, 10, 1, 2), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn heldout_rate_is_zero_for_seen_and_one_for_heldout_real_images() {
        // Real images stand in for generated ones: the judge knows all four
        // classes; classes 2 and 3 play the held-out part.
        let (x, y) = bands(100, 4, 11);
        let t = Judge::train(small_card(4, 8), &x, &y, None, Device::Cpu, &mut Silent).unwrap();
        let (tx, ty) = bands(30, 4, 12);
        let seen = tx.index_select(0, &ty.lt(2).nonzero().squeeze_dim(1));
        let held = tx.index_select(0, &ty.ge(2).nonzero().squeeze_dim(1));
        let opts = EvalOptions { heldout: vec![2, 3], kid_subsets: 5, kid_subset_size: 50, ..Default::default() };
        let r_seen = evaluate(&t.judge, &tx, &seen, &opts).unwrap();
        let r_held = evaluate(&t.judge, &tx, &held, &opts).unwrap();
        assert_eq!((r_seen.heldout_rate.argmax, r_seen.heldout_rate.conf_0_5), (0.0, 0.0), "{r_seen:?}");
        assert_eq!((r_held.heldout_rate.argmax, r_held.heldout_rate.conf_0_5), (1.0, 1.0), "{r_held:?}");
        assert!(r_held.heldout_rate.conf_0_9 >= 0.9, "{:?}", r_held.heldout_rate);
        assert_eq!(r_seen.class_histogram.modes_covered, 2);
        assert_eq!((r_seen.n_real, r_seen.n_fake), (120, 60));
        // Half of the classes missing: low recall and coverage, high
        // precision; the full test set against itself is near perfect.
        assert!(r_seen.recall_judge < 0.75 && r_seen.precision_judge > 0.9, "{}", r_seen.summary());
        let same = evaluate(&t.judge, &tx, &tx, &opts).unwrap();
        assert!(
            same.fid_judge < 1e-6 && same.precision_judge == 1.0 && same.coverage_judge == 1.0,
            "{}",
            same.summary()
        );
        assert!(r_seen.fid_judge > 10.0 * same.fid_judge.max(1e-3), "{}", r_seen.summary());
        let json = serde_json::to_value(&r_seen).unwrap();
        for key in ["fid_judge", "kid_judge", "precision_judge", "coverage_judge", "n_real", "seconds_total"] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
    }

    #[test]
    fn nearest_rows_put_each_real_image_before_its_closest_samples() {
        let (x, y) = bands(60, 3, 21);
        let t = Judge::train(small_card(3, 8), &x, &y, None, Device::Cpu, &mut Silent).unwrap();
        let (tx, ty) = bands(10, 3, 22);
        let queries = tx.index_select(0, &ty.eq(2).nonzero().squeeze_dim(1)).narrow(0, 0, 2);
        let rows = nearest_generated_rows(&t.judge, &queries, &tx, 4, 16).unwrap();
        assert_eq!(rows.size(), vec![10, 1, 12, 12]);
        // Row starts are the queries; every neighbour is of the query's class
        // (the bands are trivially separable in judge features).
        let unit = dualspace_tensor::image::u8_to_unit(&queries);
        assert_eq!(dualspace_tensor::max_abs_diff(&rows.get(0), &unit.get(0)), 0.0);
        assert_eq!(dualspace_tensor::max_abs_diff(&rows.get(5), &unit.get(1)), 0.0);
        let pred = t.judge.probs(&rows, 16).unwrap().argmax(1, false);
        assert_eq!(Vec::<i64>::try_from(&pred).unwrap(), vec![2; 10]);
        // The nearest sample of a query that is itself among the samples is itself.
        assert_eq!(dualspace_tensor::max_abs_diff(&rows.get(1), &unit.get(0)), 0.0);
    }

    #[test]
    fn too_few_samples_is_an_error() {
        let f = Tensor::zeros([4, 8], (Kind::Float, Device::Cpu));
        let p = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
        let e = Embedded { features: f, probs: p };
        let err = evaluate_embedded(&e, &e, &EvalOptions::default()).unwrap_err().to_string();
        assert!(err.contains("at least 6 real and 6 generated"), "{err}");
    }

    /// Reads a gzipped IDX file: (dims, bytes).
    fn read_idx_gz(path: &std::path::Path) -> (Vec<i64>, Vec<u8>) {
        use std::io::Read;
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_end(&mut raw).unwrap();
        let nd = raw[3] as usize;
        let dims: Vec<i64> =
            (0..nd).map(|i| u32::from_be_bytes(raw[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as i64).collect();
        (dims, raw[4 + 4 * nd..].to_vec())
    }

    fn fashion_split(dir: &std::path::Path, prefix: &str) -> (Tensor, Tensor) {
        let (d, px) = read_idx_gz(&dir.join(format!("{prefix}-images-idx3-ubyte.gz")));
        let (_, lb) = read_idx_gz(&dir.join(format!("{prefix}-labels-idx1-ubyte.gz")));
        let images = Tensor::from_slice(&px).view([d[0], 1, d[1], d[2]]);
        let labels = Tensor::from_slice(&lb).to_kind(Kind::Int64);
        (images, labels)
    }

    /// The real-data instrument: trains the Fashion-MNIST judge with the
    /// default settings and measures the floor (real train vs real test,
    /// 5,000 vs 5,000). About 2-4 minutes on 2 cores, so behind
    /// `DUALSPACE_SLOW_TESTS=1`.
    #[test]
    fn fashion_mnist_judge_reaches_90_percent_and_the_floor_is_low() {
        if std::env::var("DUALSPACE_SLOW_TESTS").as_deref() != Ok("1") {
            eprintln!("skipping: set DUALSPACE_SLOW_TESTS=1 to train the Fashion-MNIST judge");
            return;
        }
        let dir = std::path::Path::new("/usr/share/datasets/fashion-mnist");
        if !dir.join("train-images-idx3-ubyte.gz").exists() {
            eprintln!("skipping: Fashion-MNIST is not installed at {}", dir.display());
            return;
        }
        let (x, y) = fashion_split(dir, "train");
        let (tx, ty) = fashion_split(dir, "t10k");
        let card = crate::JudgeCard {
            model: crate::JudgeConfig::small28(1, 10),
            train: crate::JudgeTrainConfig::default(),
            class_names: Vec::new(),
            data_key: "fashion-mnist-28".into(),
        };
        let t0 = Instant::now();
        let t = Judge::train(card, &x, &y, Some((&tx, &ty)), Device::Cpu, &mut Silent).unwrap();
        let acc = t.accuracy.clone().unwrap();
        eprintln!(
            "judge: {} steps in {:.1} s (train clock {:.1} s), final loss {:.4}, test accuracy {:.4}, per class {:?}",
            t.steps,
            t0.elapsed().as_secs_f64(),
            t.train_seconds,
            t.final_loss,
            acc.accuracy,
            acc.per_class.iter().map(|a| (a * 1000.0).round() / 1000.0).collect::<Vec<_>>()
        );
        assert!(acc.accuracy >= 0.90, "{acc:?}");
        if let Ok(out) = std::env::var("DUALSPACE_JUDGE_OUT") {
            let meta = dualspace_tensor::checkpoint::CheckpointMeta::new(t.steps, t.train_seconds, 0);
            t.judge.save(&out, Some(&acc), &meta).unwrap();
            eprintln!("judge saved to {out}");
        }
        // The floor: 5,000 real training images vs 5,000 real test images.
        let opts = EvalOptions { heldout: vec![9], ..Default::default() };
        let floor = evaluate(&t.judge, &tx, &x, &opts).unwrap();
        eprintln!("floor (train vs test):\n{}", floor.summary());
        eprintln!(
            "time: features {:.2} s, metrics {:.2} s, total {:.2} s",
            floor.seconds_features, floor.seconds_metrics, floor.seconds_total
        );
        assert_eq!((floor.n_real, floor.n_fake), (5000, 5000));
        assert!(floor.fid_judge < 10.0, "{}", floor.summary());
        assert!(floor.kid_judge.abs() < 0.01, "{}", floor.summary());
        assert!(floor.precision_judge > 0.6 && floor.recall_judge > 0.6, "{}", floor.summary());
        assert!(floor.coverage_judge > 0.8 && (floor.density_judge - 1.0).abs() < 0.3, "{}", floor.summary());
        assert_eq!(floor.class_histogram.modes_covered, 10);
        // Per-metric timing on the same embeddings.
        let real = t.judge.embed(&tx.narrow(0, 0, 5000), 500).unwrap();
        let fake = t.judge.embed(&x.narrow(0, 0, 5000), 500).unwrap();
        let time = |name: &str, f: &dyn Fn()| {
            let s = Instant::now();
            f();
            eprintln!("  {name}: {:.2} s", s.elapsed().as_secs_f64());
        };
        time("fid", &|| {
            let _ = metrics::fid(&real.features, &fake.features).unwrap();
        });
        time("kid 100x1000", &|| {
            let _ = metrics::kid(&real.features, &fake.features, 100, 1000, 0).unwrap();
        });
        time("precision/recall k=3", &|| {
            let _ = metrics::precision_recall(&real.features, &fake.features, 3).unwrap();
        });
        time("density/coverage k=5", &|| {
            let _ = metrics::density_coverage(&real.features, &fake.features, 5).unwrap();
        });
        // Held-out rate with real test images standing in for samples:
        // ankle boots (class 9) vs the other classes.
        let boots = tx.index_select(0, &ty.eq(9).nonzero().squeeze_dim(1));
        let others = tx.index_select(0, &ty.ne(9).nonzero().squeeze_dim(1));
        let pb = t.judge.probs(&boots, 500).unwrap();
        let po = t.judge.probs(&others, 500).unwrap();
        let (rb, ro) = (metrics::heldout_rate(&pb, &[9]).unwrap(), metrics::heldout_rate(&po, &[9]).unwrap());
        eprintln!("held-out rate, real ankle boots: {rb:?}; real other classes: {ro:?}");
        assert!(rb.argmax > 0.9 && ro.argmax < 0.02, "{rb:?} {ro:?}");
    }
}
