//! `dualspace judge train` and `dualspace eval`.
//!
//! The judge is trained on all classes of a data set's training split (the
//! `--holdout` flag only matters to `eval`, for the held-out-class rate), and
//! cached under `--judge-cache` by data set, seed and settings, so later runs
//! reuse it. `eval` compares a samples file with real images on the judge's
//! features and writes the floor (real training images against the same
//! reference) beside the samples' numbers.
use crate::cmd::data::DatasetArgs;
use crate::common::Held;
use crate::common::{BarMonitor, DeviceArgs};
use anyhow::{bail, Context, Result};
use dualspace_eval::{evaluate_embedded, subsample_indices, EvalOptions, Judge, JudgeAccuracy, JudgeCard, Report};
use dualspace_tensor::checkpoint::{read_tensors, write_json, CheckpointMeta};
use dualspace_tensor::optim::AdamConfig;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Kind, Tensor};

/// Judge commands.
#[derive(clap::Subcommand, Debug)]
pub enum JudgeCmd {
    /// Train (or reuse the cached) judge classifier on all classes of a data set.
    Train(JudgeTrainArgs),
}

/// Where judges are cached and how a missing one is trained; shared by
/// `judge train` and `eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct JudgeTrainOpts {
    /// Folder of cached judges, one sub-folder per data set, seed and settings.
    #[arg(long, default_value = ".cache/judge")]
    pub judge_cache: PathBuf,
    /// Passes over the training images when a judge has to be trained.
    #[arg(long, default_value_t = 4)]
    pub judge_epochs: usize,
    /// Images per judge training step.
    #[arg(long, default_value_t = 128)]
    pub judge_batch_size: usize,
    /// Starting Adam rate of judge training (decays along a cosine to 5%).
    #[arg(long, default_value_t = 1e-3)]
    pub judge_lr: f64,
}

/// `judge train` arguments.
#[derive(clap::Args, Debug)]
pub struct JudgeTrainArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub judge: JudgeTrainOpts,
    /// Also write the judge to this folder (it is always kept in the cache).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Train again even when the cache holds a judge for these settings.
    #[arg(long)]
    pub retrain: bool,
    /// Seed of the judge's training and of the data set's split (for
    /// sources without their own test split); use the same seed in `eval`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Which real images the samples are compared with.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RealSplit {
    /// The test split, all classes (held-out ones included).
    Test,
    /// The test split without the held-out classes.
    TestSeen,
    /// The training split without the held-out classes (what a generator saw).
    Train,
}

/// `eval` arguments.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Samples to evaluate: a safetensors file with a tensor named `images`,
    /// float NCHW in [-1, 1] (as `dualspace sample` writes) or u8 pixels.
    #[arg(long)]
    pub samples: PathBuf,
    /// A judge folder written by `judge train --out`; by default the cached
    /// judge of --dataset and --seed is used (and trained first if missing).
    #[arg(long)]
    pub judge: Option<PathBuf>,
    #[command(flatten)]
    pub judge_opts: JudgeTrainOpts,
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Real images to compare with: test, test-seen (test without the
    /// held-out classes) or train (training split without held-out classes).
    #[arg(long, value_enum, default_value_t = RealSplit::Test)]
    pub real: RealSplit,
    /// At most this many images of each set (a seeded random subset when
    /// there are more, all of them when there are fewer).
    #[arg(long, default_value_t = 5000)]
    pub n: usize,
    /// KID: number of random subsets averaged.
    #[arg(long, default_value_t = 100)]
    pub kid_subsets: usize,
    /// KID: images per subset (capped at the smaller set).
    #[arg(long, default_value_t = 1000)]
    pub kid_subset_size: usize,
    /// Skip the floor (real training images against the same reference),
    /// which is otherwise computed and written beside the samples' numbers.
    #[arg(long)]
    pub no_floor: bool,
    /// Write every metric as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write a PNG grid here: per held-out class, real test images of that
    /// class (first column), each followed by its nearest samples in judge
    /// features. Needs --holdout.
    #[arg(long)]
    pub nearest_grid: Option<PathBuf>,
    /// Nearest samples shown per real image in --nearest-grid.
    #[arg(long, default_value_t = 7)]
    pub nearest_k: i64,
    /// Real images per held-out class in --nearest-grid.
    #[arg(long, default_value_t = 4)]
    pub nearest_rows: usize,
    /// Seed of the subsets, of the judge (when one is trained) and of the
    /// data set's split; use the seed the judge was trained with.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Runs a judge command.
pub fn run(cmd: JudgeCmd) -> Result<()> {
    match cmd {
        JudgeCmd::Train(a) => train(a),
    }
}

/// The data set with every class in its training split, and the held-out
/// class indices named by `--holdout` (validated against the class names).
pub(crate) fn load_all_classes(data: &DatasetArgs, seed: u64) -> Result<(dualspace_data::Dataset, Vec<i64>)> {
    let mut all = data.clone();
    all.holdout = String::new();
    let ds = all.load(seed)?;
    let holdout = data
        .holdout_names()
        .iter()
        .map(|n| dualspace_data::class_index(&ds.classes, n).with_context(|| format!("--holdout '{n}'")))
        .collect::<Result<Vec<i64>>>()?;
    Ok((ds, holdout))
}

pub(crate) fn judge_card(ds: &dualspace_data::Dataset, o: &JudgeTrainOpts, seed: u64) -> Result<JudgeCard> {
    if o.judge_epochs == 0 || o.judge_batch_size == 0 {
        bail!("--judge-epochs and --judge-batch-size must be at least 1");
    }
    if !(o.judge_lr.is_finite() && o.judge_lr > 0.0) {
        bail!("--judge-lr must be a positive number, got {}", o.judge_lr);
    }
    let (c, s, k) = (ds.channels as i64, ds.size as i64, ds.classes.len() as i64);
    if k < 2 {
        bail!("data set '{}' has {k} class(es); the judge needs at least 2", ds.name);
    }
    Ok(JudgeCard {
        model: dualspace_eval::JudgeConfig::for_images(c, s, k),
        train: dualspace_eval::JudgeTrainConfig {
            optim: AdamConfig { lr: o.judge_lr, ..AdamConfig::default() },
            epochs: o.judge_epochs,
            batch_size: o.judge_batch_size,
            seed,
            ..Default::default()
        },
        class_names: ds.classes.clone(),
        data_key: format!("{}-{c}x{s}x{s}", ds.name),
    })
}

/// Loads the cached judge for the data set, or trains and caches it
/// (`retrain` trains anew and overwrites the cache).
pub(crate) fn cached_judge(
    ds: &dualspace_data::Dataset,
    o: &JudgeTrainOpts,
    seed: u64,
    retrain: bool,
    device: tch::Device,
) -> Result<dualspace_eval::Trained> {
    let card = judge_card(ds, o, seed)?;
    let dir = Judge::cache_dir(&o.judge_cache, &card);
    let n = ds.train.len();
    if n == 0 {
        bail!("data set '{}' has no training images", ds.name);
    }
    let steps = (n / o.judge_batch_size.min(n) * o.judge_epochs) as u64;
    let test = (!ds.test.is_empty()).then_some((&ds.test.images, &ds.test.labels));
    let mut bar = BarMonitor::new("judge", Some(steps), None);
    let result = if retrain {
        Judge::train(card, &ds.train.images, &ds.train.labels, test, device, &mut bar).and_then(|mut t| {
            let meta = CheckpointMeta::new(t.steps, t.train_seconds, seed);
            t.judge.save(&dir, t.accuracy.as_ref(), &meta)?;
            t.dir = Some(dir.clone());
            Ok(t)
        })
    } else {
        Judge::load_or_train(&o.judge_cache, card, &ds.train.images, &ds.train.labels, test, device, &mut bar)
    };
    bar.finish();
    result.with_context(|| format!("training the judge into {}", dir.display()))
}

fn print_accuracy(acc: &JudgeAccuracy, names: &[String]) {
    println!("test accuracy {:.4} on {} images", acc.accuracy, acc.n);
    for (i, (a, n)) in acc.per_class.iter().zip(&acc.per_class_count).enumerate() {
        let name = names.get(i).map(String::as_str).unwrap_or("?");
        println!("  {i:>3} {name:<16} {a:.4} ({n} images)");
    }
}

fn train(a: JudgeTrainArgs) -> Result<()> {
    let device = a.device.setup()?;
    if !a.data.holdout_names().is_empty() {
        eprintln!("note: the judge is trained on all classes; --holdout is ignored here (it matters to `eval`)");
    }
    if let Some(out) = &a.out {
        if matches!(crate::common::folder_holds(out), Some(Held::Gan(_) | Held::Map)) {
            bail!(
                "--out {} already holds a run that is not a judge; a judge is only written over another judge: choose another --out",
                out.display()
            );
        }
    }
    let (ds, _) = load_all_classes(&a.data, a.seed)?;
    let t = cached_judge(&ds, &a.judge, a.seed, a.retrain, device)?;
    let dir = t.dir.clone().unwrap_or_default();
    let m = &t.judge.card.model;
    println!(
        "judge for {} ({} classes, {}x{}x{}, {} features), seed {}",
        ds.name, m.num_classes, m.channels, m.size, m.size, m.feature_dim, a.seed
    );
    if t.reused {
        println!(
            "reused the cached judge in {} (trained {} steps in {:.1} s)",
            dir.display(),
            t.steps,
            t.train_seconds
        );
    } else {
        println!(
            "trained {} steps in {:.1} s on {} images, final loss {:.4}; saved to {}",
            t.steps,
            t.train_seconds,
            ds.train.len(),
            t.final_loss,
            dir.display()
        );
    }
    match &t.accuracy {
        Some(acc) => print_accuracy(acc, &ds.classes),
        None => println!("no test images: accuracy not measured"),
    }
    if let Some(out) = &a.out {
        let meta = CheckpointMeta::new(t.steps, t.train_seconds, a.seed);
        t.judge
            .save(out, t.accuracy.as_ref(), &meta)
            .with_context(|| format!("writing the judge to {}", out.display()))?;
        println!("written to {}", out.display());
    }
    Ok(())
}

/// Reads the `images` tensor of a samples file and checks it against the judge.
fn read_samples(path: &Path, judge: &Judge) -> Result<Tensor> {
    let mut tensors = read_tensors(path).with_context(|| format!("reading samples {}", path.display()))?;
    let Some(images) = tensors.remove("images") else {
        let names: Vec<&String> = tensors.keys().collect();
        bail!("{}: no tensor named 'images' (found {names:?}); write samples with `dualspace sample`", path.display());
    };
    let m = &judge.card.model;
    let s = images.size();
    if s.len() != 4 || s[1] != m.channels || s[2] != m.size || s[3] != m.size {
        bail!(
            "{}: 'images' has shape {s:?} but the judge expects [N, {}, {}, {}]; evaluate with a judge of this data set",
            path.display(),
            m.channels,
            m.size,
            m.size
        );
    }
    match images.kind() {
        Kind::Uint8 => Ok(images),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16 => {
            let f = images.to_kind(Kind::Float);
            if f.numel() > 0 && f.isfinite().all().int64_value(&[]) == 0 {
                bail!("{}: 'images' contains NaN or infinite values; the generator diverged", path.display());
            }
            if f.numel() > 0 {
                let (lo, hi) = (f.min().double_value(&[]), f.max().double_value(&[]));
                if lo < -1.01 || hi > 1.01 {
                    eprintln!(
                        "warning: {}: values range over [{lo:.3}, {hi:.3}], not [-1, 1]; they are clamped",
                        path.display()
                    );
                }
            }
            Ok(f.clamp(-1.0, 1.0))
        }
        k => bail!("{}: 'images' is {k:?}; expected float in [-1, 1] or u8 pixels", path.display()),
    }
}

/// What `eval --out` writes.
#[derive(Serialize)]
struct EvalOutput<'a> {
    samples: String,
    judge: String,
    judge_test_accuracy: Option<f64>,
    dataset: &'a str,
    class_names: &'a [String],
    holdout: Vec<String>,
    real: RealSplit,
    seed: u64,
    metrics: &'a Report,
    /// Real training images (held-out classes removed) against the same
    /// reference: the best a generator of the training data can do.
    floor_real_train: Option<&'a Report>,
}

/// Evaluates samples.
pub fn eval(a: EvalArgs) -> Result<()> {
    let device = a.device.setup()?;
    if a.n < 6 {
        bail!("--n must be at least 6 (precision/recall and density/coverage need k + 1 images)");
    }
    if a.kid_subsets == 0 || a.kid_subset_size < 2 {
        bail!("--kid-subsets must be at least 1 and --kid-subset-size at least 2");
    }
    if a.nearest_grid.is_some() && (a.data.holdout_names().is_empty() || a.nearest_k < 1 || a.nearest_rows == 0) {
        bail!("--nearest-grid needs --holdout CLASSES, --nearest-k >= 1 and --nearest-rows >= 1");
    }
    if !a.samples.exists() {
        bail!("samples file {} does not exist", a.samples.display());
    }
    let (ds, holdout) = load_all_classes(&a.data, a.seed)?;
    let (judge, judge_dir, accuracy) = match &a.judge {
        Some(dir) => {
            let j = Judge::load(dir, device).with_context(|| format!("loading the judge {}", dir.display()))?;
            (j, dir.clone(), Judge::saved_accuracy(dir))
        }
        None => {
            let t = cached_judge(&ds, &a.judge_opts, a.seed, false, device)?;
            let dir = t.dir.clone().unwrap_or_default();
            (t.judge, dir, t.accuracy)
        }
    };
    let card = &judge.card;
    let (c, s) = (card.model.channels, card.model.size);
    if c != ds.channels as i64 || s != ds.size as i64 || card.model.num_classes != ds.classes.len() as i64 {
        bail!(
            "the judge in {} is for {}x{s}x{s} images of {} classes, but data set '{}' has {}x{}x{} images of {} classes",
            judge_dir.display(),
            c,
            card.model.num_classes,
            ds.name,
            ds.channels,
            ds.size,
            ds.size,
            ds.classes.len()
        );
    }
    if !card.class_names.is_empty() && card.class_names != ds.classes {
        bail!(
            "the judge in {} knows the classes {:?}, but data set '{}' has {:?}",
            judge_dir.display(),
            card.class_names,
            ds.name,
            ds.classes
        );
    }
    let samples = read_samples(&a.samples, &judge)?;
    let n_samples = samples.size()[0];

    // The reference and the floor's images: disjoint subsets when both come
    // from the training split.
    let train_seen = ds.train.without_classes(&holdout);
    let (reference, floor_images) = match a.real {
        RealSplit::Train => {
            let idx = subsample_indices(train_seen.len(), 2 * a.n, a.seed, 0x7EF);
            let even: Vec<i64> = idx.iter().step_by(2).copied().collect();
            let odd: Vec<i64> = idx.iter().skip(1).step_by(2).copied().collect();
            (train_seen.select(&even).images, train_seen.select(&odd).images)
        }
        RealSplit::Test => (ds.test.images.shallow_clone(), train_seen.images.shallow_clone()),
        RealSplit::TestSeen => (ds.test.without_classes(&holdout).images, train_seen.images.shallow_clone()),
    };
    let opts = EvalOptions {
        max_samples: a.n,
        kid_subsets: a.kid_subsets,
        kid_subset_size: a.kid_subset_size,
        heldout: holdout.clone(),
        seed: a.seed,
        ..Default::default()
    };
    let cap = |images: &Tensor, stream: u64| -> Tensor {
        let n = images.size()[0] as usize;
        images.index_select(0, &Tensor::from_slice(&subsample_indices(n, a.n, a.seed, stream)))
    };
    let t0 = Instant::now();
    let real_e = judge.embed(&cap(&reference, 1), opts.batch_size)?;
    let real_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let fake_e = judge.embed(&cap(&samples, 2), opts.batch_size)?;
    let fake_seconds = t1.elapsed().as_secs_f64();
    let mut metrics = evaluate_embedded(&real_e, &fake_e, &opts).context("evaluating the samples")?;
    metrics.seconds_features = real_seconds + fake_seconds;
    metrics.seconds_total = metrics.seconds_features + metrics.seconds_metrics;
    let floor = if a.no_floor {
        None
    } else {
        let t2 = Instant::now();
        let floor_e = judge.embed(&cap(&floor_images, 3), opts.batch_size)?;
        let floor_seconds = t2.elapsed().as_secs_f64();
        let mut f = evaluate_embedded(&real_e, &floor_e, &opts).context("evaluating the floor")?;
        f.seconds_features = real_seconds + floor_seconds;
        f.seconds_total = f.seconds_features + f.seconds_metrics;
        Some(f)
    };

    let real_name = match a.real {
        RealSplit::Test => "test",
        RealSplit::TestSeen => "test-seen",
        RealSplit::Train => "train",
    };
    println!(
        "judge {} ({}test accuracy {})",
        judge_dir.display(),
        if card.data_key.is_empty() { String::new() } else { format!("{}, ", card.data_key) },
        accuracy.as_ref().map_or("unknown".to_string(), |a| format!("{:.4}", a.accuracy))
    );
    println!("samples {} ({n_samples} images) vs real {real_name} of {}:", a.samples.display(), ds.name);
    println!("{}", metrics.summary());
    let hist: Vec<String> = metrics
        .class_histogram
        .fractions
        .iter()
        .zip(&ds.classes)
        .map(|(f, name)| format!("{name} {:.1}%", f * 100.0))
        .collect();
    println!("class histogram: {}", hist.join(", "));
    println!("time: features {:.2} s, metrics {:.2} s", metrics.seconds_features, metrics.seconds_metrics);
    if let Some(f) = &floor {
        println!("floor, real train vs real {real_name}:");
        println!("{}", f.summary());
    }
    if let Some(grid) = &a.nearest_grid {
        let k = a.nearest_k.min(n_samples);
        let mut rows = Vec::new();
        for &c in &holdout {
            let real_c = ds.test.only_classes(&[c]).take(a.nearest_rows);
            if real_c.is_empty() {
                eprintln!(
                    "warning: no test images of held-out class '{}' for the nearest grid",
                    ds.classes[c as usize]
                );
                continue;
            }
            rows.push(dualspace_eval::nearest_generated_rows(&judge, &real_c.images, &samples, k, opts.batch_size)?);
        }
        if rows.is_empty() {
            bail!("no test images of the held-out classes: cannot write {}", grid.display());
        }
        let grid_opts = dualspace_tensor::image::GridOptions { ncol: (k + 1) as usize, ..Default::default() };
        dualspace_tensor::image::save_grid(grid, &Tensor::cat(&rows, 0), &grid_opts)
            .with_context(|| format!("writing {}", grid.display()))?;
        println!(
            "nearest grid written to {} (rows: real held-out test image, then its {k} nearest samples)",
            grid.display()
        );
    }
    if let Some(out) = &a.out {
        let record = EvalOutput {
            samples: a.samples.display().to_string(),
            judge: judge_dir.display().to_string(),
            judge_test_accuracy: accuracy.map(|a| a.accuracy),
            dataset: &ds.name,
            class_names: &ds.classes,
            holdout: holdout.iter().map(|&i| ds.classes[i as usize].clone()).collect(),
            real: a.real,
            seed: a.seed,
            metrics: &metrics,
            floor_real_train: floor.as_ref(),
        };
        write_json(out, &record).with_context(|| format!("writing {}", out.display()))?;
        println!("metrics written to {}", out.display());
    }
    Ok(())
}
