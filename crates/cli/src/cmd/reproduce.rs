//! `dualspace reproduce`: the benchmark harness. On one data set it trains
//! the judge (or reuses it), then for every seed the pixel DCGAN and each
//! dual pipeline (mapping -> codes -> latent GAN), evaluating both at
//! points of their own training clocks with the same metrics and sample
//! sizes, and writes a run folder with the raw evaluations, a summary and
//! a report (Markdown and HTML) with plots and sample grids.
use crate::cmd::data::DatasetArgs;
use crate::cmd::judge::{cached_judge, load_all_classes, JudgeTrainOpts};
use crate::common::{interrupted, DeviceArgs};
use crate::harness::document::{self, RunRecord};
use crate::harness::env;
use crate::harness::runner::{self, EvalCtx, GanJob, MapData};
use crate::harness::summary::{across, eval_schedule, summarise_seed, EvalPoint};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use dualspace_autoencoder::{
    ImageShape, MapKind, MapSpec, NetConfig, PcaConfig, TrainConfig as MapTrainConfig, VaeConfig,
};
use dualspace_eval::{subsample_indices, EvalOptions};
use dualspace_latent_gan::trainer::step_flops;
use dualspace_latent_gan::{latent_trainer, LatentGanConfig, Loss, TrainConfig};
use dualspace_pixel_gan::{pixel_trainer, DcganConfig, PixelDNorm};
use dualspace_tensor::checkpoint::write_json;
use dualspace_tensor::image::{save_grid, GridOptions};
use dualspace_tensor::optim::AdamConfig;
use dualspace_tensor::run::JsonlLog;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Tensor};

/// The data split seed: fixed, so every run (and the cached judge) sees the
/// same train/test split of a folder data set, whatever the run's seeds.
const DATA_SEED: u64 = 0;
/// The judge's seed: one instrument for every run.
const JUDGE_SEED: u64 = 0;

/// An adversarial loss.
#[derive(Debug, Clone, Copy, ValueEnum, Serialize, Deserialize, PartialEq)]
pub enum LossArg {
    /// Non-saturating (DCGAN's).
    Ns,
    /// Hinge.
    Hinge,
    /// Wasserstein with gradient penalty (5 critic steps, Adam 1e-4, betas 0 / 0.9).
    WganGp,
}

impl LossArg {
    fn config(self, seed: u64) -> TrainConfig {
        match self {
            LossArg::Ns => TrainConfig::dcgan(seed),
            LossArg::Hinge => TrainConfig { loss: Loss::Hinge, ..TrainConfig::dcgan(seed) },
            LossArg::WganGp => TrainConfig::wgan_gp(seed),
        }
    }
}

/// `reproduce` arguments.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "Examples:\n  \
    dualspace reproduce                      # Fashion-MNIST, ankle boots held out, about 20 minutes on 2 cores\n  \
    dualspace reproduce --quick              # a 3-minute smoke run\n  \
    dualspace reproduce --map ae,vae,pca --seeds 3\n  \
    dualspace reproduce --dataset ../shared/datasets/dogs64 --seeds 3")]
pub struct ReproduceArgs {
    /// Data set: fashion-mnist, mnist, cifar10, NAME:PATH, or a folder of <class>/*.png|jpg.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Resize (center-crop) images to this square side.
    #[arg(long)]
    pub size: Option<usize>,
    /// Classes held out of the mapping and both GANs, comma-separated; `auto` holds out
    /// ankle-boot on Fashion-MNIST and beagle,golden_retriever on the dog breeds, none
    /// elsewhere; `none` holds out nothing.
    #[arg(long, default_value = "auto")]
    pub holdout: String,
    /// Mappings of the dual pipeline, comma-separated: ae, vae, pca (each is a pipeline).
    #[arg(long, default_value = "ae")]
    pub map: String,
    /// Repeat everything with this many seeds (seed, seed+1, ...) and report mean and spread.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A 3-minute smoke run: short budgets, a 1-epoch judge, 1,000 images per evaluation.
    #[arg(long)]
    pub quick: bool,
    /// Pixel GAN training budget in seconds [default: 480 for 28x28 images, 420 above; 40 with --quick].
    #[arg(long)]
    pub pixel_budget_s: Option<f64>,
    /// Mapping training budget in seconds (PCA is fitted in one pass) [default: 90 for 28x28, 150 above; 20 with --quick].
    #[arg(long)]
    pub map_budget_s: Option<f64>,
    /// Latent GAN training budget in seconds [default: 120; 20 with --quick].
    #[arg(long)]
    pub latent_budget_s: Option<f64>,
    /// A fixed judge-FID target, reported beside the pixel GAN's best.
    #[arg(long)]
    pub target_fid: Option<f64>,
    /// Generated (and real) images per evaluation [default: 5000; 1000 with --quick]; smaller
    /// real sets are used whole.
    #[arg(long)]
    pub eval_n: Option<usize>,
    /// Loss of the pixel GAN (its DCGAN settings: Adam 2e-4, betas 0.5/0.999, batch 64).
    #[arg(long, value_enum, default_value_t = LossArg::Ns)]
    pub pixel_loss: LossArg,
    /// Loss of the latent GAN.
    #[arg(long, value_enum, default_value_t = LossArg::WganGp)]
    pub latent_loss: LossArg,
    /// Learning rate of both latent GAN networks (Adam; betas 0 / 0.9 with wgan-gp, 0.5 / 0.999 otherwise).
    #[arg(long, default_value_t = 3e-4)]
    pub latent_lr: f64,
    /// Discriminator steps per latent generator step.
    #[arg(long, default_value_t = 2)]
    pub latent_n_critic: u32,
    /// Hidden widths of both latent GAN networks, comma-separated.
    #[arg(long, default_value = "256,256")]
    pub latent_hidden: String,
    /// Code length of every mapping [default: 128].
    #[arg(long)]
    pub latent_dim: Option<i64>,
    /// Channels of the AE/VAE's stride-2 convolutions, comma-separated [default: 16,32 for
    /// images up to 32x32, the 64x64 preset 32,64,128,256 above].
    #[arg(long)]
    pub map_widths: Option<String>,
    /// Judge training epochs [default: 4 for 28x28 images, 8 above; 1 with --quick].
    #[arg(long)]
    pub judge_epochs: Option<usize>,
    /// Where judges are cached (reused by later runs of the same data set and settings).
    #[arg(long, default_value = ".cache/judge")]
    pub judge_cache: PathBuf,
    /// Where decoded data sets are cached (`none` to turn off).
    #[arg(long, default_value = ".cache/data")]
    pub data_cache: String,
    /// Run folder [default: runs/reproduce-<data set>-<UTC time>]; must not exist yet.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Train nothing: recompute the summary, plots and report of an existing run folder
    /// from its evals.jsonl and summary.json (after a change to how they are derived).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    pub rebuild_report: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Budgets and sample sizes of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Budgets {
    /// Judge training epochs.
    pub judge_epochs: usize,
    /// Pixel GAN seconds.
    pub pixel_s: f64,
    /// Mapping seconds.
    pub map_s: f64,
    /// Latent GAN seconds.
    pub latent_s: f64,
    /// Images per evaluation (before capping at what the real set holds).
    pub eval_n: usize,
    /// KID subsets.
    pub kid_subsets: usize,
    /// KID subset size.
    pub kid_subset_size: usize,
}

impl Budgets {
    /// The preset for images of side `size`.
    pub fn preset(quick: bool, size: usize) -> Self {
        let small = size <= 32;
        if quick {
            return Self {
                judge_epochs: 1,
                pixel_s: 40.0,
                map_s: 20.0,
                latent_s: 20.0,
                eval_n: 1000,
                kid_subsets: 10,
                kid_subset_size: 500,
            };
        }
        Self {
            judge_epochs: if small { 4 } else { 8 },
            pixel_s: if small { 480.0 } else { 420.0 },
            map_s: if small { 90.0 } else { 150.0 },
            latent_s: 120.0,
            eval_n: 5000,
            kid_subsets: 100,
            kid_subset_size: 1000,
        }
    }
}

/// What `config.json` of a run folder holds.
#[derive(Debug, Serialize)]
struct RunConfigFile<'a> {
    command: String,
    dataset: &'a str,
    data_name: &'a str,
    image: String,
    classes: &'a [String],
    holdout: &'a [String],
    maps: &'a [String],
    seeds: &'a [u64],
    budgets: &'a Budgets,
    eval_n: i64,
    eval: &'a EvalOptions,
    target_fid: Option<f64>,
    pixel_model: &'a DcganConfig,
    pixel_train: TrainConfig,
    latent_train: TrainConfig,
    latent_model: LatentGanConfig,
    map_specs: &'a [MapSpec],
    map_train: &'a MapTrainConfig,
    device: String,
    threads: usize,
}

/// Holdout names for `auto`, by data set.
fn auto_holdout(name: &str, classes: &[String]) -> Vec<String> {
    let has = |c: &str| classes.iter().any(|k| k == c);
    if name == "fashion-mnist" {
        vec!["ankle-boot".into()]
    } else if has("beagle") && has("golden_retriever") {
        vec!["beagle".into(), "golden_retriever".into()]
    } else {
        Vec::new()
    }
}

impl ReproduceArgs {
    /// The latent GAN's training settings for `seed`.
    fn latent_train(&self, seed: u64) -> Result<TrainConfig> {
        let mut c = self.latent_loss.config(seed);
        c.opt_g.lr = self.latent_lr;
        c.opt_d.lr = self.latent_lr;
        c.n_critic = self.latent_n_critic;
        c.validate().context("latent GAN settings")?;
        Ok(c)
    }

    /// The latent GAN's networks for codes of length `dim`.
    fn latent_model(&self, dim: i64) -> Result<LatentGanConfig> {
        let hidden = crate::common::parse_widths(&self.latent_hidden, "--latent-hidden")?;
        let m = LatentGanConfig { g_hidden: hidden.clone(), d_hidden: hidden, ..LatentGanConfig::new(dim) };
        m.validate()?;
        Ok(m)
    }
}

/// `YYYYmmdd-HHMMSS` in UTC of a Unix time.
pub fn utc_stamp(unix: u64) -> String {
    let (days, rem) = ((unix / 86_400) as i64, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The harness's mapping defaults, where they differ from the crate's
/// presets: codes of 128 and, up to 32x32, narrow 16/32-channel layers. On
/// Fashion-MNIST with a 90 s budget these reconstruct far better than the
/// 32-dimensional preset (judge-FID of reconstructions 4.6 against 12.3,
/// recall 0.57 against 0.28; docs/RESULTS.md).
fn harness_net(image: ImageShape) -> Result<NetConfig> {
    let mut net = NetConfig::for_image(image)?;
    net.latent_dim = 128;
    if image.size <= 32 && net.widths.len() == 2 {
        net.widths = vec![16, 32];
    }
    Ok(net)
}

fn map_spec(kind: MapKind, image: ImageShape, latent: Option<i64>, widths: Option<&str>) -> Result<MapSpec> {
    let mut net = harness_net(image)?;
    if let Some(w) = widths {
        net.widths = crate::common::parse_widths(w, "--map-widths")?;
    }
    if let Some(d) = latent {
        if d < 1 {
            bail!("--latent-dim {d} must be at least 1");
        }
        net.latent_dim = d;
    }
    let spec = match kind {
        MapKind::Ae => MapSpec::Ae(net),
        MapKind::Vae => MapSpec::Vae(VaeConfig { net, beta: 1.0 }),
        MapKind::Pca => MapSpec::Pca(PcaConfig::new(image, net.latent_dim)),
    };
    spec.validate()?;
    Ok(spec)
}

fn parse_maps(s: &str) -> Result<Vec<MapKind>> {
    let mut out = Vec::new();
    for m in crate::common::split_list(s) {
        let k = match m.to_ascii_lowercase().as_str() {
            "ae" => MapKind::Ae,
            "vae" => MapKind::Vae,
            "pca" => MapKind::Pca,
            other => bail!("--map '{other}': the mappings are ae, vae and pca (comma-separated)"),
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    if out.is_empty() {
        bail!("--map: give at least one of ae, vae, pca");
    }
    Ok(out)
}

fn check_budget(name: &str, v: f64) -> Result<f64> {
    if !(v > 0.0 && v.is_finite()) {
        bail!("{name} must be a positive number of seconds, got {v}");
    }
    Ok(v)
}

/// Rough expected wall time of a run, in seconds, and its parts for the message.
fn expected_seconds(b: &Budgets, seeds: u64, maps: usize, eval_n: i64, image: ImageShape, judge_s: f64) -> (f64, f64) {
    // One evaluation of 5,000 28x28 images took about 6 s on 2 cores; sampling
    // grows with the image, metrics with the count.
    let px = (image.numel() as f64 / 784.0).sqrt();
    let per_eval = 0.5 + 5.5 * eval_n as f64 / 5000.0 * px.max(1.0).powf(0.5);
    let points = eval_schedule(b.pixel_s).len() + maps * (eval_schedule(b.latent_s).len() + 2);
    let evals = points as f64 * per_eval;
    let per_seed = b.pixel_s + maps as f64 * (b.map_s + b.latent_s + 10.0) + evals;
    (judge_s + 10.0 + seeds as f64 * per_seed, evals)
}

/// Recomputes the summary and report of run folder `dir` from its measured
/// evaluation points and figures; nothing is trained or evaluated again.
fn rebuild_report(dir: &Path) -> Result<()> {
    let path = dir.join("summary.json");
    let mut rec: RunRecord = dualspace_tensor::checkpoint::read_json(&path)
        .with_context(|| format!("{} is not a reproduce run folder", dir.display()))?;
    let evals = dir.join("evals.jsonl");
    let text = std::fs::read_to_string(&evals).with_context(|| format!("reading {}", evals.display()))?;
    let points: Vec<EvalPoint> = text
        .lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{} line {}", evals.display(), i + 1)))
        .collect::<Result<_>>()?;
    rec.per_seed =
        rec.per_seed.iter().map(|s| summarise_seed(s.seed, &points, rec.target_fid, s.figures.clone())).collect();
    rec.across = across(&rec.per_seed);
    document::write_all(dir, &rec, &points)?;
    println!("{}", document::verdict_text(&rec).join("\n"));
    println!(
        "rebuilt {} and {} from {} evaluation points",
        dir.join("report.md").display(),
        path.display(),
        points.len()
    );
    Ok(())
}

/// Runs the reproduction.
pub fn run(a: ReproduceArgs) -> Result<()> {
    if let Some(dir) = &a.rebuild_report {
        return rebuild_report(dir);
    }
    let started = Instant::now();
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let device = a.device.setup()?;
    crate::common::install_ctrlc();
    let kinds = parse_maps(&a.map)?;
    if !(1..=100).contains(&a.seeds) {
        bail!("--seeds {} must be between 1 and 100", a.seeds);
    }
    if a.eval_n.is_some_and(|n| n < 10) {
        bail!("--eval-n must be at least 10");
    }
    if a.target_fid.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
        bail!("--target-fid must be a positive number");
    }
    a.latent_train(a.seed)?;
    a.latent_model(1)?;
    if a.judge_epochs == Some(0) {
        bail!("--judge-epochs must be at least 1");
    }

    // Data: the whole data set for the judge, the hold-out applied for everything else.
    let base = DatasetArgs {
        dataset: a.dataset.clone(),
        size: a.size,
        channels: None,
        holdout: String::new(),
        data_cache: a.data_cache.clone(),
    };
    let (all, _) = load_all_classes(&base, DATA_SEED)?;
    let holdout: Vec<String> = match a.holdout.trim() {
        "auto" => auto_holdout(&all.name, &all.classes),
        "none" | "" => Vec::new(),
        list => crate::common::split_list(list),
    };
    let data_args = DatasetArgs { holdout: holdout.join(","), ..base.clone() };
    let ds = data_args.load(DATA_SEED)?;
    let image = ImageShape::new(ds.channels as i64, ds.size as i64);
    let mut budgets = Budgets::preset(a.quick, ds.size);
    if let Some(e) = a.judge_epochs {
        budgets.judge_epochs = e;
    }
    if let Some(v) = a.pixel_budget_s {
        budgets.pixel_s = check_budget("--pixel-budget-s", v)?;
    }
    if let Some(v) = a.map_budget_s {
        budgets.map_s = check_budget("--map-budget-s", v)?;
    }
    if let Some(v) = a.latent_budget_s {
        budgets.latent_s = check_budget("--latent-budget-s", v)?;
    }
    if let Some(n) = a.eval_n {
        budgets.eval_n = n;
    }
    let specs: Vec<MapSpec> =
        kinds.iter().map(|&k| map_spec(k, image, a.latent_dim, a.map_widths.as_deref())).collect::<Result<_>>()?;
    let mut pixel_model = DcganConfig::for_images(image.channels, image.size);
    let pixel_train0 = a.pixel_loss.config(a.seed);
    if pixel_train0.loss == Loss::WganGp {
        pixel_model.d_norm = PixelDNorm::None;
    }
    pixel_model.validate().with_context(|| format!("the pixel DCGAN cannot take '{}'", ds.name))?;
    let test_seen = ds.test_seen();
    let test_heldout = ds.test_heldout();
    if test_seen.len() < 10 || ds.train.len() < 10 {
        bail!(
            "data set '{}' has {} training and {} seen test images; the harness needs at least 10 of each",
            ds.name,
            ds.train.len(),
            test_seen.len()
        );
    }

    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/reproduce-{}-{}", ds.name, utc_stamp(unix))));
    if out.exists() && std::fs::read_dir(&out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} already exists; choose another --out (a run folder is never overwritten)", out.display());
    }
    for sub in ["plots", "grids"] {
        std::fs::create_dir_all(out.join(sub)).with_context(|| format!("creating {}", out.join(sub).display()))?;
    }

    // The judge: every class, cached by data set, seed and settings.
    let jopts = JudgeTrainOpts {
        judge_cache: a.judge_cache.clone(),
        judge_epochs: budgets.judge_epochs,
        judge_batch_size: 128,
        judge_lr: 1e-3,
    };
    let judge_cached = {
        let card = crate::cmd::judge::judge_card(&all, &jopts, JUDGE_SEED)?;
        dualspace_tensor::checkpoint::CheckpointDir::new(dualspace_eval::Judge::cache_dir(&jopts.judge_cache, &card))
            .exists()
    };
    let seeds: Vec<u64> = (a.seed..a.seed + a.seeds).collect();
    let n_ref = (budgets.eval_n.min(test_seen.len())) as i64;
    let judge_est = if judge_cached {
        0.0
    } else {
        budgets.judge_epochs as f64 * all.train.len() as f64 * 0.55e-3 * (image.numel() as f64 / 784.0).sqrt()
    };
    let (expect, eval_est) = expected_seconds(&budgets, a.seeds, specs.len(), n_ref, image, judge_est);
    eprintln!(
        "reproduce: '{}' ({} images of {image}, {} classes; held out: [{}]), pipelines: pixel, {}; seeds {:?}",
        ds.name,
        ds.train.len(),
        ds.n_classes(),
        holdout.join(", "),
        specs.iter().map(|s| format!("dual-{}", s.kind())).collect::<Vec<_>>().join(", "),
        seeds
    );
    eprintln!(
        "expected duration: about {:.0} min (judge {}; per seed: pixel GAN {:.0} s, {} x (mapping {:.0} s + latent GAN {:.0} s), evaluation ~{:.0} s)",
        (expect / 60.0).ceil(),
        if judge_cached { "cached".to_string() } else { format!("~{judge_est:.0} s to train") },
        budgets.pixel_s,
        specs.len(),
        budgets.map_s,
        budgets.latent_s,
        eval_est
    );
    eprintln!(
        "writing {} (Ctrl-C stops after the current step and writes the report of what was measured)",
        out.display()
    );

    let environment = env::collect(device);
    write_json(out.join("environment.json"), &environment)?;
    let judge_t0 = Instant::now();
    let trained = cached_judge(&all, &jopts, JUDGE_SEED, false, device)?;
    let judge_wall_seconds = if trained.reused { 0.0 } else { judge_t0.elapsed().as_secs_f64() };
    let judge = &trained.judge;
    let holdout_idx: Vec<i64> = holdout.iter().map(|h| ds.class_index(h)).collect::<Result<_, _>>()?;

    // The reference (real seen test images) and the floor (as many real
    // training images), embedded once.
    let pick = |n: usize, stream: u64| subsample_indices(n, budgets.eval_n, DATA_SEED, stream);
    let reference = test_seen.select(&pick(test_seen.len(), 0x7E57));
    let floor_split = ds.train.select(&pick(ds.train.len(), 0xF100));
    let opts = EvalOptions {
        max_samples: budgets.eval_n,
        kid_subsets: budgets.kid_subsets,
        kid_subset_size: budgets.kid_subset_size,
        heldout: holdout_idx.clone(),
        seed: DATA_SEED,
        ..Default::default()
    };
    let mut ctx = EvalCtx {
        judge,
        reference: judge.embed(&reference.images, opts.batch_size)?,
        opts: opts.clone(),
        n: n_ref,
        log: JsonlLog::open(out.join("evals.jsonl"), true)?,
    };
    let floor = ctx.report(&floor_split.images)?;
    let heldout_real = if test_heldout.is_empty() {
        None
    } else {
        let p = judge.probs(&test_heldout.images, 500)?;
        Some(dualspace_eval::metrics::heldout_rate(&p, &holdout_idx)?)
    };
    save_grid(out.join("grids/real.png"), &reference.take(64).float_images(), &GridOptions::default())?;
    if !test_heldout.is_empty() {
        save_grid(out.join("grids/real-heldout.png"), &test_heldout.take(32).float_images(), &GridOptions::default())?;
    }

    let map_train = MapTrainConfig {
        steps: None,
        budget_s: Some(budgets.map_s),
        batch_size: 64,
        optim: AdamConfig::default(),
        seed: a.seed,
        checkpoint_every: 0,
        eval_every: 1000,
        eval_batch: 512,
    };
    let maps: Vec<String> = specs.iter().map(|s| s.kind().to_string()).collect();
    let command =
        std::env::args().map(|s| if s.contains(' ') { format!("'{s}'") } else { s }).collect::<Vec<_>>().join(" ");
    write_json(
        out.join("config.json"),
        &RunConfigFile {
            command: command.clone(),
            dataset: &a.dataset,
            data_name: &ds.name,
            image: image.to_string(),
            classes: &ds.classes,
            holdout: &holdout,
            maps: &maps,
            seeds: &seeds,
            budgets: &budgets,
            eval_n: n_ref,
            eval: &opts,
            target_fid: a.target_fid,
            pixel_model: &pixel_model,
            pixel_train: pixel_train0.clone(),
            latent_train: a.latent_train(a.seed)?,
            latent_model: a.latent_model(specs[0].latent_dim())?,
            map_specs: &specs,
            map_train: &map_train,
            device: dualspace_tensor::device::device_name(device),
            threads: dualspace_tensor::device::threads(),
        },
    )?;

    let mut rec = RunRecord {
        status: "running".into(),
        command,
        started_utc: utc_stamp(unix),
        wall_seconds: 0.0,
        expected_seconds: expect,
        judge_wall_seconds,
        seed_wall_seconds: Vec::new(),
        dataset: ds.name.clone(),
        image: image.to_string(),
        classes: ds.classes.clone(),
        holdout: holdout.clone(),
        maps: maps.clone(),
        seeds: seeds.clone(),
        budgets: budgets.clone(),
        eval_n: n_ref,
        n_train: ds.train.len(),
        pixel_loss: pixel_train0.loss.name().into(),
        latent_loss: a.latent_loss.config(0).loss.name().into(),
        judge: document::JudgeInfo {
            accuracy: trained.accuracy.as_ref().map(|x| x.accuracy),
            per_class: trained.accuracy.as_ref().map(|x| x.per_class.clone()).unwrap_or_default(),
            train_seconds: trained.train_seconds,
            reused: trained.reused,
            dir: trained.dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
            heldout_real_argmax: heldout_real.as_ref().map(|r| r.argmax),
            heldout_real_p90: heldout_real.as_ref().map(|r| r.conf_0_9),
        },
        floor: runner::metrics_of(&floor),
        target_fid: a.target_fid,
        per_seed: Vec::new(),
        across: Default::default(),
        notes: Vec::new(),
        environment,
    };
    let mut points: Vec<EvalPoint> = Vec::new();
    let mut stopped = false;
    let finish = |rec: &mut RunRecord, points: &[EvalPoint], status: &str| -> Result<()> {
        rec.status = status.into();
        rec.wall_seconds = started.elapsed().as_secs_f64();
        rec.across = across(&rec.per_seed);
        document::write_all(&out, rec, points)
    };

    'seeds: for &seed in &seeds {
        let seed_t0 = Instant::now();
        let sdir = out.join(format!("seed{seed}"));
        let mut figures: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
        // The pixel pipeline.
        let train = a.pixel_loss.config(seed);
        let trainer = pixel_trainer(&pixel_model, train.clone(), &ds.train.images, device)
            .with_context(|| format!("the pixel DCGAN on '{}'", ds.name))?;
        let to_images = |x: &Tensor| -> Result<Tensor> { Ok(x.clamp(-1.0, 1.0).to_device(Device::Cpu)) };
        let job = GanJob {
            pipeline: "pixel".into(),
            seed,
            budget_s: budgets.pixel_s,
            map_seconds: 0.0,
            trainer,
            to_images: &to_images,
            step_flops: step_flops(&train, pixel_model.g_flops(), pixel_model.d_flops()),
            loss_log: sdir.join("losses-pixel.jsonl"),
        };
        let o = runner::run_gan(&mut ctx, job, rec.environment.matmul_gflops)?;
        stopped |= o.interrupted;
        if let Some(d) = &o.diverged {
            rec.notes.push(format!("seed {seed}, pixel: {d}"));
        }
        save_samples(&out, seed, "pixel", &o.last_images, judge, &test_heldout.images)?;
        points.extend(o.points);
        figures.insert("pixel".into(), o.figures);

        // The dual pipelines.
        for spec in &specs {
            if stopped {
                break;
            }
            let name = format!("dual-{}", spec.kind());
            let data = MapData {
                train: &ds.train.images,
                train_labels: &ds.train.labels,
                test_seen: &test_seen.images,
                test_heldout: (!test_heldout.is_empty()).then_some(&test_heldout.images),
                floor_images: &floor_split.images,
            };
            let cfg = MapTrainConfig { seed, ..map_train.clone() };
            let mo = runner::run_map(
                &ctx,
                spec,
                &cfg,
                &data,
                &sdir.join(format!("map-{}", spec.kind())),
                device,
                rec.environment.matmul_gflops,
                &out.join(format!("grids/seed{seed}-recon-{}.png", spec.kind())),
            )?;
            if mo.interrupted || interrupted() {
                stopped = true;
                figures.insert(name, mo.figures);
                break;
            }
            let map_seconds = mo.figures["map_train_seconds"] + mo.figures["map_encode_seconds"];
            let model = a.latent_model(mo.codes.latent_dim())?;
            let train = a.latent_train(seed)?;
            let trainer = latent_trainer(&model, train.clone(), &mo.codes.codes, device)?;
            let (map, codes) = (&mo.map, &mo.codes);
            let to_images = |z: &Tensor| -> Result<Tensor> {
                let raw = codes.unstandardise(z)?;
                Ok(map.decode(&raw)?.clamp(-1.0, 1.0).to_device(Device::Cpu))
            };
            let job = GanJob {
                pipeline: name.clone(),
                seed,
                budget_s: budgets.latent_s,
                map_seconds,
                trainer,
                to_images: &to_images,
                step_flops: step_flops(&train, model.g_flops(), model.d_flops()),
                loss_log: sdir.join(format!("losses-{name}.jsonl")),
            };
            let o = runner::run_gan(&mut ctx, job, rec.environment.matmul_gflops)?;
            stopped |= o.interrupted;
            if let Some(d) = &o.diverged {
                rec.notes.push(format!("seed {seed}, {name}: {d}"));
            }
            save_samples(&out, seed, &name, &o.last_images, judge, &test_heldout.images)?;
            points.extend(o.points);
            let mut f = mo.figures.clone();
            f.extend(o.figures);
            figures.insert(name, f);
        }
        rec.per_seed.push(summarise_seed(seed, &points, a.target_fid, figures));
        rec.seed_wall_seconds.push(seed_t0.elapsed().as_secs_f64());
        if stopped {
            break 'seeds;
        }
        finish(&mut rec, &points, "running")?;
    }
    if stopped {
        rec.notes.push("interrupted (Ctrl-C or SIGTERM): the figures cover what was measured before".into());
        finish(&mut rec, &points, "interrupted")?;
        bail!("interrupted; the report of what was measured is in {}", out.join("report.md").display());
    }
    finish(&mut rec, &points, "complete")?;
    println!("{}", document::verdict_text(&rec).join("\n"));
    println!(
        "done in {:.1} min (expected about {:.0}); report: {} and {}",
        rec.wall_seconds / 60.0,
        (expect / 60.0).ceil(),
        out.join("report.md").display(),
        out.join("report.html").display()
    );
    Ok(())
}

/// The last evaluation's images of a pipeline as a grid, and the held-out
/// grid (real held-out images beside their nearest generated ones).
fn save_samples(
    out: &Path,
    seed: u64,
    name: &str,
    images: &Option<Tensor>,
    judge: &dualspace_eval::Judge,
    heldout: &Tensor,
) -> Result<()> {
    let Some(x) = images else { return Ok(()) };
    let n = x.size()[0].min(64);
    save_grid(out.join(format!("grids/seed{seed}-{name}.png")), &x.narrow(0, 0, n), &GridOptions::default())?;
    if heldout.size()[0] > 0 {
        runner::heldout_grid(judge, heldout, x, &out.join(format!("grids/seed{seed}-heldout-{name}.png")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_by_hand() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        // 2026-12-04 03:11:10 UTC
        assert_eq!(utc_stamp(1_796_353_870), "20261204-031110");
        // A leap day: 2024-02-29 12:00:00 UTC.
        assert_eq!(utc_stamp(1_709_208_000), "20240229-120000");
    }

    #[test]
    fn holdout_defaults_by_data_set() {
        let dogs: Vec<String> = ["beagle", "dingo", "golden_retriever"].iter().map(|s| s.to_string()).collect();
        assert_eq!(auto_holdout("fashion-mnist", &[]), vec!["ankle-boot"]);
        assert_eq!(auto_holdout("dogs64", &dogs), vec!["beagle", "golden_retriever"]);
        assert!(auto_holdout("mnist", &[]).is_empty());
        assert!(parse_maps("ae,PCA,ae").unwrap() == vec![MapKind::Ae, MapKind::Pca]);
        assert!(parse_maps("gan").unwrap_err().to_string().contains("ae, vae and pca"));
    }
}
