//! `dualspace train-latent-gan`, `train-pixel-gan`, `sample`.
//!
//! Both training commands share [`GanTrainArgs`] and the trainer of
//! `dualspace-latent-gan`; they differ only in the networks and the data.
use crate::cmd::data::DatasetArgs;
use crate::common::{parse_widths, BarMonitor, DeviceArgs};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use dualspace_autoencoder::{load_mapping, read_codes, Mapping};
use dualspace_latent_gan::model::{LatentRunConfig, CODE_STATS};
use dualspace_latent_gan::trainer::{find_checkpoint, RunPlan, RunSummary, StopReason, Trainer, CHECKPOINT, LOG};
use dualspace_latent_gan::{latent_trainer, DNorm, LatentGanConfig, Loss, TrainConfig};
use dualspace_pixel_gan::{pixel_trainer, DcganConfig, PixelDNorm, PixelRunConfig};
use dualspace_sampler::Sampler;
use dualspace_tensor::checkpoint::{read_tensors, write_atomic, write_tensors};
use dualspace_tensor::image::{save_grid, GridOptions};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The adversarial objective.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LossArg {
    /// Non-saturating GAN loss (DCGAN's).
    Ns,
    /// Hinge loss.
    Hinge,
    /// Wasserstein loss with gradient penalty.
    WganGp,
}

/// Training flags both GANs share.
#[derive(clap::Args, Debug, Clone)]
pub struct GanTrainArgs {
    /// Adversarial loss: ns (non-saturating), hinge, or wgan-gp (which also sets
    /// the WGAN-GP defaults: 5 critic steps, Adam 1e-4 with betas 0 / 0.9).
    #[arg(long, value_enum, default_value_t = LossArg::Ns)]
    pub loss: LossArg,
    /// Stop after this many generator steps in total (with --resume, counting the steps already done).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Stop after this many seconds of training wall-clock in total (sampling and checkpoints not counted).
    #[arg(long)]
    pub budget_s: Option<f64>,
    /// Real items per batch (fakes per batch are the same).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Generator learning rate [default: 2e-4; 1e-4 with wgan-gp].
    #[arg(long)]
    pub lr_g: Option<f64>,
    /// Discriminator learning rate [default: 2e-4; 1e-4 with wgan-gp].
    #[arg(long)]
    pub lr_d: Option<f64>,
    /// Adam's first-moment decay: one value for both networks, or G,D for each
    /// [default: 0.5; 0 with wgan-gp].
    #[arg(long, value_name = "B1|G,D")]
    pub beta1: Option<String>,
    /// Adam's second-moment decay: one value for both networks, or G,D for each
    /// [default: 0.999; 0.9 with wgan-gp].
    #[arg(long, value_name = "B2|G,D")]
    pub beta2: Option<String>,
    /// Discriminator steps per generator step [default: 1; 5 with wgan-gp].
    #[arg(long)]
    pub n_critic: Option<u32>,
    /// Weight of WGAN-GP's gradient penalty.
    #[arg(long, default_value_t = 10.0)]
    pub gp_lambda: f64,
    /// Weight gamma of the R1 penalty on real data (gamma/2 * E|grad D(x)|^2); 0 turns it off.
    #[arg(long, default_value_t = 0.0)]
    pub r1_gamma: f64,
    /// Decay of the generator's moving average used for sampling (warmed up over the first steps).
    #[arg(long, default_value_t = 0.999)]
    pub ema_decay: f64,
    /// Seed of the initialisation, the noise of every step and the batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a log record every N steps (plus the first and the last).
    #[arg(long, default_value_t = 10)]
    pub log_every: u64,
    /// Write a grid of fixed-noise samples every N steps (and at the end); 0 = only at the end.
    #[arg(long, default_value_t = 500)]
    pub sample_every: u64,
    /// Write a checkpoint every N steps (and at the end); 0 = only at the end.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every: u64,
    /// Run folder: config, checkpoint/, log.jsonl, samples/.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint (with its own settings; only
    /// --steps / --budget-s are taken from this command).
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `V` (both networks) or `G,D` (generator, discriminator) as numbers.
fn per_network(s: &str, flag: &str) -> Result<(f64, f64)> {
    let v: Vec<f64> = crate::common::split_list(s)
        .iter()
        .map(|x| x.parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("{flag} '{s}': give a number, or two (generator,discriminator)"))?;
    match v[..] {
        [x] => Ok((x, x)),
        [g, d] => Ok((g, d)),
        _ => bail!("{flag} '{s}': give a number, or two (generator,discriminator)"),
    }
}

impl GanTrainArgs {
    fn validate(&self) -> Result<()> {
        if self.steps.is_none() && self.budget_s.is_none() {
            bail!("give --steps or --budget-s (or both) to say when training stops");
        }
        if self.steps == Some(0) {
            bail!("--steps must be at least 1 (it is the total number of generator steps)");
        }
        if let Some(b) = self.budget_s {
            if !(b > 0.0 && b.is_finite()) {
                bail!("--budget-s must be a positive number of seconds, got {b}");
            }
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        Ok(())
    }

    /// The training config these flags describe.
    fn train_config(&self) -> Result<TrainConfig> {
        let mut c = match self.loss {
            LossArg::Ns => TrainConfig::dcgan(self.seed),
            LossArg::Hinge => TrainConfig { loss: Loss::Hinge, ..TrainConfig::dcgan(self.seed) },
            LossArg::WganGp => TrainConfig::wgan_gp(self.seed),
        };
        if let Some(b) = &self.beta1 {
            (c.opt_g.beta1, c.opt_d.beta1) = per_network(b, "--beta1")?;
        }
        if let Some(b) = &self.beta2 {
            (c.opt_g.beta2, c.opt_d.beta2) = per_network(b, "--beta2")?;
        }
        c.opt_g.lr = self.lr_g.unwrap_or(c.opt_g.lr);
        c.opt_d.lr = self.lr_d.unwrap_or(c.opt_d.lr);
        c.n_critic = self.n_critic.unwrap_or(c.n_critic);
        c.gp_lambda = self.gp_lambda;
        c.r1_gamma = self.r1_gamma;
        c.ema_decay = self.ema_decay;
        c.batch_size = self.batch_size;
        c.validate()?;
        Ok(c)
    }

    fn plan(&self) -> RunPlan {
        let nz = |n: u64| (n > 0).then_some(n);
        RunPlan {
            steps: self.steps,
            budget_s: self.budget_s,
            out: Some(self.out.clone()),
            log_every: self.log_every.max(1),
            sample_every: nz(self.sample_every),
            sample_n: 64,
            checkpoint_every: nz(self.checkpoint_every),
        }
    }

    /// The run config of `--out` when resuming (it must be a run of `kind`);
    /// refuses to overwrite a run otherwise.
    fn previous<C: DeserializeOwned>(&self, kind: &str) -> Result<Option<C>> {
        let out = self.out.display();
        match (self.resume, find_checkpoint(&self.out)) {
            (true, Some(ck)) => {
                let value: serde_json::Value = ck.config().with_context(|| format!("resuming {out}"))?;
                match value.get("kind").and_then(|k| k.as_str()) {
                    Some(k) if k == kind => {}
                    Some(k) => {
                        bail!("--resume: {out} holds a {k} run, not a {kind} run; resume it with its own command")
                    }
                    None => bail!(
                        "--resume: {out} holds no GAN run (its config.json has no 'kind'; a map or judge folder?)"
                    ),
                }
                Ok(Some(serde_json::from_value(value).with_context(|| format!("resuming {out}: config.json"))?))
            }
            (true, None) => bail!("--resume: {out} holds no checkpoint to resume from"),
            (false, Some(ck)) => {
                let value: Option<serde_json::Value> = ck.config().ok();
                match value.as_ref().and_then(|v| v.get("kind")).and_then(|k| k.as_str()) {
                    Some(k) => {
                        bail!("{out} already holds a {k} run; pass --resume to continue it, or choose another --out")
                    }
                    None => bail!("{out} already holds another run (a map or a judge?); choose another --out"),
                }
            }
            (false, None) => Ok(None),
        }
    }
}

/// `train-latent-gan` arguments.
#[derive(clap::Args, Debug)]
pub struct TrainLatentArgs {
    /// Codes file written by `dualspace encode` (standardised codes, labels, mean, std).
    #[arg(long)]
    pub codes: PathBuf,
    /// The map that wrote the codes: used to decode sample grids during training and
    /// recorded so `dualspace sample` finds it.
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// Length of the generator's noise vector.
    #[arg(long, default_value_t = 64)]
    pub noise_dim: i64,
    /// Widths of the generator's hidden layers, comma-separated.
    #[arg(long, default_value = "512,512")]
    pub g_hidden: String,
    /// Widths of the discriminator's hidden layers, comma-separated.
    #[arg(long, default_value = "512,512")]
    pub d_hidden: String,
    /// Normalisation in the discriminator: none, layer or spectral.
    #[arg(long, value_enum, default_value_t = DNormArg::None)]
    pub d_norm: DNormArg,
    #[command(flatten)]
    pub train: GanTrainArgs,
}

/// Normalisation in the latent discriminator.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DNormArg {
    /// None.
    None,
    /// Layer norm after each hidden layer.
    Layer,
    /// Spectral norm of every weight.
    Spectral,
}

/// `train-pixel-gan` arguments.
#[derive(clap::Args, Debug)]
pub struct TrainPixelArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Length of the generator's noise vector.
    #[arg(long, default_value_t = 100)]
    pub noise_dim: i64,
    /// Generator width (channels of its last hidden level) [default: 128 for 28x28, else 64].
    #[arg(long)]
    pub g_width: Option<i64>,
    /// Discriminator width (channels of its first level).
    #[arg(long, default_value_t = 64)]
    pub d_width: i64,
    /// Normalisation in the discriminator: batch, none or spectral [default: batch; none with wgan-gp].
    #[arg(long, value_enum)]
    pub d_norm: Option<PixelDNormArg>,
    #[command(flatten)]
    pub train: GanTrainArgs,
}

/// Normalisation in the pixel discriminator.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PixelDNormArg {
    /// Batch norm (DCGAN's).
    Batch,
    /// None.
    None,
    /// Spectral norm.
    Spectral,
}

/// `sample` arguments.
#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// GAN run folder (from train-latent-gan or train-pixel-gan).
    #[arg(long)]
    pub gan: PathBuf,
    /// Map run folder that decodes a latent GAN's codes [default: the map recorded in the GAN's run].
    /// Not used with a pixel GAN.
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// Number of images.
    #[arg(long, default_value_t = 64)]
    pub n: i64,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder: grid.png, samples.safetensors (tensor `images`, f32 [N, C, H, W] in [-1, 1]).
    #[arg(long)]
    pub out: PathBuf,
    /// Images per row of the grid.
    #[arg(long, default_value_t = 8)]
    pub ncol: usize,
    /// Also write every image as images/<i>.png.
    #[arg(long)]
    pub each: bool,
    /// Also write interp.png: ROWSxCOLS, each row walking between two noise vectors (e.g. 8x10).
    #[arg(long)]
    pub interpolate: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

fn grid_saver(out: &Path) -> impl FnMut(u64, &Tensor) -> Result<()> {
    let dir = out.join("samples");
    move |step, images| {
        save_grid(dir.join(format!("step_{step:07}.png")), images, &GridOptions::default())?;
        Ok(())
    }
}

fn train_run<C: serde::Serialize>(
    t: &mut Trainer,
    args: &GanTrainArgs,
    run: &C,
    label: &str,
    mut on_sample: impl FnMut(u64, &Tensor) -> Result<()>,
) -> Result<RunSummary> {
    let out = args.out.display().to_string();
    if args.resume {
        t.resume(&args.out).with_context(|| format!("resuming {out}"))?;
        eprintln!("resuming {out} at step {} ({:.1} s trained)", t.steps_done(), t.train_seconds());
    }
    let mut bar = BarMonitor::new(label, args.steps, args.budget_s);
    let mut err = None;
    let r = t.run(&args.plan(), run, &mut bar, &mut |step, x| {
        on_sample(step, x).map_err(|e| {
            let msg = format!("{e:#}");
            err = Some(e);
            dualspace_latent_gan::Error::Run(msg)
        })
    });
    bar.finish();
    if let Some(e) = err {
        return Err(e.context(format!("writing samples of {out}")));
    }
    let s = r.with_context(|| format!("training {out}"))?;
    let per_step = if s.steps > 0 { 1e3 * s.train_seconds / s.steps as f64 } else { 0.0 };
    let why = match s.stop {
        StopReason::Steps => "step count reached",
        StopReason::Budget => "time budget used",
        StopReason::Interrupted => "interrupted",
    };
    println!("{label}: {} steps in {:.1} s of training ({per_step:.2} ms/step; {why})", s.steps, s.train_seconds);
    if let Some(l) = &s.last {
        println!(
            "last step: loss D {:.4}, loss G {:.4}, D(real) {:+.3}, D(fake) {:+.3}",
            l.loss_d, l.loss_g, l.d_real, l.d_fake
        );
    }
    println!("wrote {out} ({CHECKPOINT}/, {LOG}, samples/)");
    Ok(s)
}

/// Trains the latent GAN.
pub fn train_latent(a: TrainLatentArgs) -> Result<()> {
    a.train.validate()?;
    let device = a.train.device.setup()?;
    let codes_path = a.codes.display().to_string();
    let codes = read_codes(&a.codes).with_context(|| format!("reading {codes_path}"))?;
    let prev: Option<LatentRunConfig> = a.train.previous(dualspace_latent_gan::model::KIND)?;
    let map_dir = a.map.clone().or_else(|| prev.as_ref().and_then(|p| p.map.as_ref().map(PathBuf::from)));
    let run = match prev {
        Some(p) => p,
        None => {
            let model = LatentGanConfig {
                data_dim: codes.latent_dim(),
                noise_dim: a.noise_dim,
                g_hidden: parse_widths(&a.g_hidden, "--g-hidden")?,
                d_hidden: parse_widths(&a.d_hidden, "--d-hidden")?,
                d_norm: match a.d_norm {
                    DNormArg::None => DNorm::None,
                    DNormArg::Layer => DNorm::Layer,
                    DNormArg::Spectral => DNorm::Spectral,
                },
            };
            model.validate()?;
            let map = map_dir.as_ref().map(|m| std::path::absolute(m).unwrap_or(m.clone()).display().to_string());
            let codes_abs = std::path::absolute(&a.codes).unwrap_or(a.codes.clone()).display().to_string();
            LatentRunConfig::new(model, a.train.train_config()?, codes_abs, map)
        }
    };
    if run.model.data_dim != codes.latent_dim() {
        bail!(
            "{codes_path} has codes of length {}, the run in {} was trained on length {}",
            codes.latent_dim(),
            a.train.out.display(),
            run.model.data_dim
        );
    }
    let map: Option<Box<dyn Mapping>> = match &map_dir {
        Some(m) => {
            let map = load_mapping(m, device).with_context(|| format!("loading the map in {}", m.display()))?;
            if map.latent_dim() != codes.latent_dim() {
                bail!(
                    "the map in {} has codes of length {}, {codes_path} has length {}; give the map that wrote the codes",
                    m.display(),
                    map.latent_dim(),
                    codes.latent_dim()
                );
            }
            Some(map)
        }
        None => None,
    };
    // A resumed run continues on the codes it was trained on: the statistics
    // it kept must be those of the codes given now.
    let stats_path = a.train.out.join(CODE_STATS);
    if a.train.resume && stats_path.exists() {
        let kept = read_tensors(&stats_path)?;
        let same = |k: &str, t: &Tensor| kept.get(k).is_some_and(|v| v.size() == t.size() && v.equal(t));
        if !(same("mean", &codes.mean) && same("std", &codes.std)) {
            bail!(
                "{codes_path} is not the codes file the run in {} was trained on ({}; its mean/std differ from {}); resume with that file",
                a.train.out.display(),
                run.codes,
                stats_path.display()
            );
        }
    }
    let mut stats = vec![("mean", codes.mean.shallow_clone()), ("std", codes.std.shallow_clone())];
    if let Some(s) = codes.image {
        stats.push(("image_shape", Tensor::from_slice(&[s.channels, s.size])));
    }
    write_tensors(a.train.out.join(CODE_STATS), &stats)?;
    eprintln!(
        "training the latent GAN ({} loss) on {} codes of length {} on {}",
        run.train.loss.name(),
        codes.len(),
        codes.latent_dim(),
        dualspace_tensor::device::device_name(device)
    );
    let mut t = latent_trainer(&run.model, run.train.clone(), &codes.codes, device)?;
    let (mean, std) = (codes.mean.to_device(device), codes.std.to_device(device));
    let mut save = grid_saver(&a.train.out);
    train_run(&mut t, &a.train, &run, "latent-gan", |step, z| match &map {
        Some(m) => {
            let images = m.decode(&(z * &std + &mean))?;
            save(step, &images.clamp(-1.0, 1.0))
        }
        None => Ok(()),
    })?;
    if map.is_none() {
        println!(
            "no --map given: no sample grids were drawn (dualspace sample --map ... --gan {})",
            a.train.out.display()
        );
    }
    Ok(())
}

/// Trains the pixel GAN.
pub fn train_pixel(a: TrainPixelArgs) -> Result<()> {
    a.train.validate()?;
    let device = a.train.device.setup()?;
    let prev: Option<PixelRunConfig> = a.train.previous(dualspace_pixel_gan::KIND)?;
    let mut data = a.data.clone();
    if let Some(p) = &prev {
        data.dataset = p.dataset.clone();
        data.holdout = p.holdout.join(",");
        if a.data.size.is_none() {
            data.size = Some(p.model.size as usize);
        }
    }
    let seed = prev.as_ref().map_or(a.train.seed, |p| p.train.seed);
    let ds = data.load(seed)?;
    let run = match prev {
        Some(p) => p,
        None => {
            let train = a.train.train_config()?;
            let mut model = DcganConfig::for_images(ds.channels as i64, ds.size as i64);
            model.noise_dim = a.noise_dim;
            model.g_width = a.g_width.unwrap_or(model.g_width);
            model.d_width = a.d_width;
            model.d_norm = match a.d_norm {
                Some(PixelDNormArg::Batch) => PixelDNorm::Batch,
                Some(PixelDNormArg::None) => PixelDNorm::None,
                Some(PixelDNormArg::Spectral) => PixelDNorm::Spectral,
                None if train.loss == Loss::WganGp => PixelDNorm::None,
                None => PixelDNorm::Batch,
            };
            model.validate()?;
            PixelRunConfig::new(model, train, a.data.dataset.clone(), data.holdout_names())
        }
    };
    eprintln!(
        "training the pixel DCGAN ({} loss) on '{}' ({} training images of {}x{}x{}) on {}",
        run.train.loss.name(),
        ds.name,
        ds.train.images.size()[0],
        ds.channels,
        ds.size,
        ds.size,
        dualspace_tensor::device::device_name(device)
    );
    let mut t = pixel_trainer(&run.model, run.train.clone(), &ds.train.images, device)
        .with_context(|| format!("data set '{}'", ds.name))?;
    train_run(&mut t, &a.train, &run, "pixel-gan", grid_saver(&a.train.out))?;
    Ok(())
}

/// Samples a GAN.
/// Most images one `sample` call draws (they are held in memory at once).
const MAX_SAMPLES: i64 = 50_000;

pub fn sample(a: SampleArgs) -> Result<()> {
    let device = a.device.setup()?;
    if !(1..=MAX_SAMPLES).contains(&a.n) {
        bail!("--n {} must be between 1 and {MAX_SAMPLES} (the batch is held in memory)", a.n);
    }
    let interp = match &a.interpolate {
        Some(s) => {
            let parsed = s
                .split_once(['x', 'X'])
                .and_then(|(r, c)| Some((r.trim().parse::<i64>().ok()?, c.trim().parse::<i64>().ok()?)))
                .filter(|&(r, c)| r >= 1 && c >= 2 && r.saturating_mul(c) <= MAX_SAMPLES);
            Some(parsed.with_context(|| {
                format!(
                    "--interpolate '{s}': give ROWSxCOLS with at least 1 row and 2 columns and at most {MAX_SAMPLES} images, e.g. 8x10"
                )
            })?)
        }
        None => None,
    };
    let sampler = Sampler::open(&a.gan, a.map.as_deref(), device)
        .with_context(|| format!("opening the GAN in {}", a.gan.display()))?;
    let images = sampler.sample(a.n, a.seed)?.to_device(tch::Device::Cpu);
    let grid_opts = GridOptions { ncol: a.ncol.max(1), ..GridOptions::default() };
    save_grid(a.out.join("grid.png"), &images, &grid_opts)?;
    write_tensors(a.out.join("samples.safetensors"), &[("images", images.shallow_clone())])?;
    if a.each {
        let dir = a.out.join("images");
        for i in 0..a.n {
            let img = dualspace_tensor::image::grid_image(
                &images.narrow(0, i, 1),
                &GridOptions { pad: 0, ..GridOptions::default() },
            )?;
            let path = dir.join(format!("{i}.png"));
            write_atomic(&path, |tmp| {
                img.save_with_format(tmp, image::ImageFormat::Png)
                    .map_err(|e| dualspace_tensor::Error::Invalid(format!("{}: cannot write PNG: {e}", path.display())))
            })?;
        }
    }
    if let Some((rows, cols)) = interp {
        let x = sampler.interpolate(rows, cols, a.seed)?;
        save_grid(a.out.join("interp.png"), &x, &GridOptions { ncol: cols as usize, ..GridOptions::default() })?;
    }
    let s = images.size();
    println!(
        "sampled {} images of {}x{}x{} from {} (step {}) with seed {}",
        s[0],
        s[1],
        s[2],
        s[3],
        a.gan.display(),
        sampler.gan.step,
        a.seed
    );
    println!(
        "wrote {} (grid.png, samples.safetensors{}{})",
        a.out.display(),
        if a.each { ", images/" } else { "" },
        if interp.is_some() { ", interp.png" } else { "" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::per_network;

    #[test]
    fn betas_for_both_networks_or_each() {
        assert_eq!(per_network("0.5", "--beta1").unwrap(), (0.5, 0.5));
        assert_eq!(per_network("0.5, 0", "--beta1").unwrap(), (0.5, 0.0));
        for bad in ["", "a", "0.1,0.2,0.3"] {
            assert!(per_network(bad, "--beta2").unwrap_err().to_string().contains("--beta2"), "{bad}");
        }
    }
}
