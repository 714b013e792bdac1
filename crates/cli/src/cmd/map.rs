//! `dualspace train-map`, `encode`, `decode`: train a mapping (autoencoder,
//! VAE or PCA) on a data set, turn a data set into standardised codes, and
//! turn codes back into an image grid.
use crate::cmd::data::DatasetArgs;
use crate::common::{BarMonitor, DeviceArgs};
use anyhow::{bail, Context, Result};
use dualspace_autoencoder::{
    self as map, Codes, DataInfo, ImageShape, MapKind, MapSpec, NetConfig, PcaConfig, Recon, RunConfig, RunOptions,
    TrainConfig, VaeConfig,
};
use dualspace_tensor::checkpoint::write_json;
use dualspace_tensor::image::{save_grid, GridOptions};
use dualspace_tensor::optim::AdamConfig;
use std::path::{Path, PathBuf};

/// Kind of mapping.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindArg {
    /// Convolutional autoencoder (deterministic).
    Ae,
    /// Variational autoencoder; codes are the posterior means.
    Vae,
    /// PCA fitted on the training images; exactly invertible on its subspace.
    Pca,
}

impl KindArg {
    fn kind(self) -> MapKind {
        match self {
            KindArg::Ae => MapKind::Ae,
            KindArg::Vae => MapKind::Vae,
            KindArg::Pca => MapKind::Pca,
        }
    }
}

/// Normalisation of the hidden layers.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum NormArg {
    /// Batch norm.
    Batch,
    /// Group norm (see --groups).
    Group,
    /// None.
    None,
}

/// Reconstruction loss.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LossArg {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    L1,
}

/// `train-map` arguments.
#[derive(clap::Args, Debug)]
pub struct TrainMapArgs {
    /// Kind of mapping to train [default: ae; on --resume, the run's own kind].
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Size of the code (PCA: number of components) [default: 32 for images
    /// up to 32x32, 128 above; on --resume, the run's own].
    #[arg(long)]
    pub latent_dim: Option<i64>,
    /// Stop after this many optimisation steps in total (with --resume: the
    /// new total). Without --steps and --budget-s: 2000.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Stop after this many training seconds in total (evaluation excluded);
    /// with --steps too, whichever comes first.
    #[arg(long)]
    pub budget_s: Option<f64>,
    /// Images per optimisation step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate (betas 0.9, 0.999).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed of the initialisation, the batch order, the VAE's noise and the
    /// train/test split of image folders.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a checkpoint every this many steps (0: only at the end; a final
    /// checkpoint is always written, also on Ctrl-C).
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// Measure the reconstruction error on a fixed test batch, log it and
    /// redraw recon.png every this many steps (0: only at the end).
    #[arg(long, default_value_t = 100)]
    pub eval_every: u64,
    /// Images in the fixed test batch of the log.
    #[arg(long, default_value_t = 512)]
    pub eval_batch: usize,
    /// Normalisation of the hidden layers of the AE/VAE [default: batch].
    #[arg(long, value_enum)]
    pub norm: Option<NormArg>,
    /// Groups of group norm.
    #[arg(long, default_value_t = 8)]
    pub groups: i64,
    /// Channels of the stride-2 convolutions, comma-separated (e.g. 32,64);
    /// the image side must be divisible by 2^(number of widths) [default:
    /// 32,64 for 28x28, 32,64,128,256 for 64x64].
    #[arg(long)]
    pub widths: Option<String>,
    /// Reconstruction loss of the AE/VAE.
    #[arg(long, value_enum, default_value_t = LossArg::Mse)]
    pub loss: LossArg,
    /// Weight of the VAE's KL term (1 = the plain ELBO with summed pixel errors).
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// PCA: divide codes by the square root of their eigenvalues.
    #[arg(long)]
    pub whiten: bool,
    /// The run folder to write (config.json, meta.json, weights, log.jsonl,
    /// recon.png, summary.json), e.g. runs/fmnist-ae.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the stopped run in --out from its last checkpoint (weights,
    /// optimiser state, step and clock); give the same data set flags, and
    /// --steps or --budget-s for the new total.
    #[arg(long)]
    pub resume: bool,
    /// JSONL log [default: <out>/log.jsonl].
    #[arg(long)]
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Which split to encode.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SplitArg {
    /// The training split (held-out classes removed).
    Train,
    /// The test split (all classes).
    Test,
}

/// `encode` arguments.
#[derive(clap::Args, Debug)]
pub struct EncodeArgs {
    /// Run folder of a trained map (written by train-map).
    #[arg(long)]
    pub map: PathBuf,
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Which split to encode.
    #[arg(long, value_enum, default_value_t = SplitArg::Train)]
    pub split: SplitArg,
    /// Seed of the train/test split of image folders [default: the map's training seed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Images encoded at once.
    #[arg(long, default_value_t = 500)]
    pub batch_size: i64,
    /// Codes file to write (safetensors: codes, labels, mean, std, image_shape).
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite --out when it exists (otherwise an existing file is refused).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `decode` arguments.
#[derive(clap::Args, Debug)]
pub struct DecodeArgs {
    /// Run folder of a trained map (written by train-map).
    #[arg(long)]
    pub map: PathBuf,
    /// Codes file written by encode (or by the sampler): its standardised
    /// codes are un-standardised with its mean and std, then decoded.
    #[arg(long)]
    pub codes: PathBuf,
    /// How many codes to decode (the first ones).
    #[arg(long, default_value_t = 64)]
    pub count: i64,
    /// Images per row of the grid.
    #[arg(long, default_value_t = 8)]
    pub ncol: usize,
    /// PNG grid to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite --out when it exists (otherwise an existing file is refused).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `summary.json` of a run folder.
#[derive(serde::Serialize)]
struct RunSummary<'a> {
    map: String,
    #[serde(flatten)]
    train: &'a map::TrainSummary,
    test_seen: Option<Recon>,
    test_heldout: Option<Recon>,
}

/// The map the flags describe for images of `image`.
fn spec_from_flags(a: &TrainMapArgs, image: ImageShape) -> Result<MapSpec> {
    let kind = a.kind.unwrap_or(KindArg::Ae);
    let mut net = NetConfig::for_image(image)?;
    if let Some(d) = a.latent_dim {
        if d < 1 {
            bail!("--latent-dim {d} must be at least 1");
        }
        net.latent_dim = d;
    }
    if let Some(w) = &a.widths {
        net.widths = crate::common::parse_widths(w, "--widths")?;
    }
    if let Some(n) = a.norm {
        net.norm = match n {
            NormArg::Batch => map::Norm::Batch,
            NormArg::Group => map::Norm::Group,
            NormArg::None => map::Norm::None,
        };
    }
    net.groups = a.groups;
    net.loss = match a.loss {
        LossArg::Mse => map::ReconLoss::Mse,
        LossArg::L1 => map::ReconLoss::L1,
    };
    let spec = match kind {
        KindArg::Ae => MapSpec::Ae(net),
        KindArg::Vae => MapSpec::Vae(VaeConfig { net, beta: a.beta }),
        KindArg::Pca => MapSpec::Pca(PcaConfig { whiten: a.whiten, ..PcaConfig::new(image, net.latent_dim) }),
    };
    spec.validate()?;
    Ok(spec)
}

fn train_config(a: &TrainMapArgs) -> Result<TrainConfig> {
    if a.steps == Some(0) {
        bail!("--steps must be at least 1 (it is the total number of optimisation steps)");
    }
    if a.resume && a.steps.is_none() && a.budget_s.is_none() {
        bail!("--resume needs a new total: give --steps or --budget-s (counted from the run's start, not from where it stopped)");
    }
    if let Some(b) = a.budget_s {
        if !(b > 0.0 && b.is_finite()) {
            bail!("--budget-s {b} must be a positive number of seconds");
        }
    }
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if !(a.lr > 0.0 && a.lr.is_finite()) {
        bail!("--lr {} must be a positive number", a.lr);
    }
    let steps = if a.steps.is_none() && a.budget_s.is_none() { Some(2000) } else { a.steps };
    Ok(TrainConfig {
        steps,
        budget_s: a.budget_s,
        batch_size: a.batch_size,
        optim: AdamConfig { lr: a.lr, ..AdamConfig::default() },
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
        eval_every: a.eval_every,
        eval_batch: a.eval_batch.max(1),
    })
}

fn fmt_recon(r: &Recon) -> String {
    format!("MSE {:.5}, PSNR {:.2} dB ({} images)", r.mse, r.psnr, r.n)
}

/// Trains a mapping.
pub fn train(a: TrainMapArgs) -> Result<()> {
    let device = a.device.setup()?;
    let out = a.out.display().to_string();
    let what = match crate::common::folder_holds(&a.out) {
        Some(crate::common::Held::Gan(_)) => Some("a GAN run"),
        Some(crate::common::Held::Judge) => Some("a judge"),
        _ => None,
    };
    if let Some(what) = what {
        bail!("{out} already holds {what}; a map is never written over it: choose another --out");
    }
    // On --resume the run's own config is the base; flags given explicitly
    // must agree with it (the library names both sides when they do not).
    let old =
        if a.resume { Some(map::read_run_config(&a.out).with_context(|| format!("resuming {out}"))?) } else { None };
    let mut cfg = train_config(&a)?;
    let data_seed = old.as_ref().and_then(|o| o.train.as_ref()).map_or(a.seed, |t| t.seed);
    let mut data_args = a.data.clone();
    if let Some(info) = old.as_ref().and_then(|o| o.data.as_ref()) {
        if data_args.holdout.trim().is_empty() && !info.holdout.is_empty() {
            data_args.holdout = info.holdout.join(",");
        }
    }
    let ds = data_args.load(data_seed)?;
    let image = ImageShape::new(ds.channels as i64, ds.size as i64);
    let spec = match &old {
        Some(o) => {
            if let Some(info) = &o.data {
                if info.name != ds.name || info.holdout != data_args.holdout_names() {
                    bail!(
                        "resuming {out}: it was trained on '{}' (held out: [{}]) but this command loads '{}' (held out: [{}]); give the same --dataset and --holdout",
                        info.name,
                        info.holdout.join(", "),
                        ds.name,
                        data_args.holdout_names().join(", ")
                    );
                }
            }
            let mut spec = o.map.clone();
            if a.kind.is_some_and(|k| k.kind() != spec.kind()) {
                spec = spec_from_flags(&a, image)?;
            }
            if let Some(d) = a.latent_dim {
                match &mut spec {
                    MapSpec::Ae(n) => n.latent_dim = d,
                    MapSpec::Vae(v) => v.net.latent_dim = d,
                    MapSpec::Pca(p) => p.components = d,
                }
            }
            if let Some(t) = &o.train {
                // Continue with the run's own settings; only the stopping rule is new.
                let (steps, budget_s) = (cfg.steps, cfg.budget_s);
                cfg = TrainConfig { steps, budget_s, ..t.clone() };
            }
            spec
        }
        None => spec_from_flags(&a, image)?,
    };
    if spec.image() != image {
        bail!("data set '{}' has {image} images but the map in {out} takes {} images", ds.name, spec.image());
    }
    let info = DataInfo { name: ds.name.clone(), classes: ds.classes.clone(), holdout: data_args.holdout_names() };
    let run = RunOptions { dir: a.out.clone(), resume: a.resume, log: a.log.clone(), data: Some(info) };
    eprintln!(
        "{} {} on '{}' ({} training images, {} test images) on {}",
        if a.resume { "resuming" } else { "training" },
        spec.describe(),
        ds.name,
        ds.train.len(),
        ds.test.len(),
        dualspace_tensor::device::device_name(device)
    );
    let label = spec.kind().as_str();
    let mut bar = BarMonitor::new(label, if spec.kind() == MapKind::Pca { Some(1) } else { cfg.steps }, cfg.budget_s);
    let result = map::train_map(&spec, &ds.train.images, &ds.test.images, &cfg, &run, device, &mut bar);
    bar.finish();
    let (mapping, summary) = result.with_context(|| format!("training {out}"))?;
    // Held-out classes are measured apart: the map never saw them.
    let (seen, held) = map::split_by_classes(&ds.test.images, &ds.test.labels, &ds.holdout);
    let measure = |x: Option<tch::Tensor>| x.map(|x| map::reconstruction_error(mapping.as_ref(), &x, 500)).transpose();
    let (test_seen, test_heldout) = if ds.holdout.is_empty() { (None, None) } else { (measure(seen)?, measure(held)?) };
    let rs = RunSummary { map: spec.describe(), train: &summary, test_seen, test_heldout };
    write_json(a.out.join("summary.json"), &rs)?;
    match summary.kind {
        MapKind::Pca => println!("fitted {} in {:.1} s", spec.describe(), summary.train_seconds),
        _ => println!(
            "trained {} for {} steps in {:.1} s ({:.0} images/s){}",
            spec.describe(),
            summary.steps,
            summary.train_seconds,
            summary.images_per_second.unwrap_or(0.0),
            if summary.stopped { ", stopped early" } else { "" }
        ),
    }
    println!("test reconstruction, all classes: {}", fmt_recon(&summary.test));
    if let Some(r) = &rs.test_seen {
        println!("  seen classes: {}", fmt_recon(r));
    }
    if let Some(r) = &rs.test_heldout {
        println!("  held-out classes ({}): {}", data_args.holdout_names().join(", "), fmt_recon(r));
    }
    println!("wrote {out} (config.json, weights, log.jsonl, recon.png, summary.json)");
    Ok(())
}

fn load_map(dir: &Path, device: tch::Device) -> Result<Box<dyn map::Mapping>> {
    crate::common::refuse_gan_as_map(dir)?;
    map::load_mapping(dir, device).with_context(|| format!("loading the map in {}", dir.display()))
}

/// Encodes a data set.
pub fn encode(a: EncodeArgs) -> Result<()> {
    crate::common::check_out_file(&a.out, a.force)?;
    let device = a.device.setup()?;
    if a.batch_size < 1 {
        bail!("--batch-size must be at least 1");
    }
    crate::common::refuse_gan_as_map(&a.map)?;
    let run: RunConfig =
        map::read_run_config(&a.map).with_context(|| format!("loading the map in {}", a.map.display()))?;
    let mapping = load_map(&a.map, device)?;
    let mut data_args = a.data.clone();
    if let Some(info) = &run.data {
        if data_args.holdout.trim().is_empty() && !info.holdout.is_empty() {
            eprintln!("holding out [{}] as the map did", info.holdout.join(", "));
            data_args.holdout = info.holdout.join(",");
        } else if info.holdout.iter().any(|c| !data_args.holdout_names().contains(c)) {
            // Codes of a class the map never saw would hand it to the GAN
            // and defeat the held-out test.
            bail!(
                "the map in {} was trained holding out [{}] but this encodes with only [{}] held out; hold out at least the map's classes: --holdout {} (or leave --holdout out to follow the map)",
                a.map.display(),
                info.holdout.join(", "),
                data_args.holdout_names().join(", "),
                info.holdout.join(",")
            );
        }
    }
    let seed = a.seed.or(run.train.as_ref().map(|t| t.seed)).unwrap_or(0);
    let ds = data_args.load(seed)?;
    let image = ImageShape::new(ds.channels as i64, ds.size as i64);
    if image != mapping.image_shape() {
        bail!(
            "data set '{}' has {image} images but the map in {} takes {} images; resize with --size or use another map",
            ds.name,
            a.map.display(),
            mapping.image_shape()
        );
    }
    let split = match a.split {
        SplitArg::Train => &ds.train,
        SplitArg::Test => &ds.test,
    };
    if split.is_empty() {
        bail!("the {:?} split of '{}' has no images", a.split, ds.name);
    }
    let raw = map::encode_batched(mapping.as_ref(), &split.images, a.batch_size)
        .with_context(|| format!("encoding '{}' with {}", ds.name, a.map.display()))?;
    let codes = Codes::standardise(&raw, &split.labels, Some(image))?;
    map::write_codes(&a.out, &codes).with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "wrote {} codes of dimension {} ({} map) to {} (standardised; mean and std stored with them)",
        codes.len(),
        codes.latent_dim(),
        mapping.kind(),
        a.out.display()
    );
    Ok(())
}

/// Decodes codes into a grid.
pub fn decode(a: DecodeArgs) -> Result<()> {
    crate::common::check_out_file(&a.out, a.force)?;
    let device = a.device.setup()?;
    if a.count < 1 {
        bail!("--count must be at least 1");
    }
    let mapping = load_map(&a.map, device)?;
    let codes = map::read_codes(&a.codes).with_context(|| format!("reading {}", a.codes.display()))?;
    if codes.latent_dim() != mapping.latent_dim() {
        bail!(
            "{} holds {}-dimensional codes but the map in {} has latent dimension {}",
            a.codes.display(),
            codes.latent_dim(),
            a.map.display(),
            mapping.latent_dim()
        );
    }
    if let Some(s) = codes.image {
        if s != mapping.image_shape() {
            bail!(
                "{} was encoded for {s} images but the map in {} makes {} images",
                a.codes.display(),
                a.map.display(),
                mapping.image_shape()
            );
        }
    }
    if codes.is_empty() {
        bail!("{} holds no codes", a.codes.display());
    }
    let n = a.count.min(codes.len());
    let raw = codes.unstandardise(&codes.codes.narrow(0, 0, n))?;
    let images = map::decode_batched(mapping.as_ref(), &raw, 500)?;
    save_grid(&a.out, &images, &GridOptions { ncol: a.ncol.max(1), ..Default::default() })
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote a grid of {n} decoded images to {}", a.out.display());
    Ok(())
}
