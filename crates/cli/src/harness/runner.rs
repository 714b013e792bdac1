//! The measuring loops of the harness: one GAN trained for a budget of its
//! own training clock, evaluated at points of that clock with the judge,
//! and the mapping stage of a dual pipeline (train, encode, measure its
//! reconstructions). Evaluation never runs on the training clock.
//!
//! The loops call the library crates and hold no tensor math of their own.
use super::summary::{eval_schedule, EvalPoint};
use crate::common::{interrupted, BarMonitor};
use anyhow::{Context, Result};
use dualspace_autoencoder::{
    decode_batched, encode_batched, reconstruction_error, train_map, Codes, ImageShape, MapSpec, Mapping, RunOptions,
    TrainConfig as MapTrainConfig,
};
use dualspace_eval::{evaluate_embedded, nearest_generated_rows, EvalOptions, Judge, Report};
use dualspace_latent_gan::trainer::{noise, StepStats, Trainer};
use dualspace_tensor::image::{save_grid, GridOptions};
use dualspace_tensor::run::{JsonlLog, Monitor};
use dualspace_tensor::seed;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Tensor};

/// Images per generator or decoder call while sampling for an evaluation.
const SAMPLE_CHUNK: i64 = 500;
/// Seed stream of the fixed evaluation noise.
const EVAL_NOISE: u64 = 0xE7A1;
/// Loss records per GAN run (at most, spread over its budget).
const LOSS_POINTS: f64 = 400.0;

/// What every evaluation shares: the judge, the embedded reference images,
/// the metric options, and the JSONL file every evaluation point goes to.
pub struct EvalCtx<'a> {
    /// The judge.
    pub judge: &'a Judge,
    /// Judge embedding of the reference images (real test images of the
    /// classes the models were trained on).
    pub reference: dualspace_eval::Embedded,
    /// Metric options (sample sizes, k, held-out classes).
    pub opts: EvalOptions,
    /// Generated images per evaluation.
    pub n: i64,
    /// `evals.jsonl` of the run.
    pub log: JsonlLog,
}

impl EvalCtx<'_> {
    /// Every metric of `images` (float in [-1, 1] or u8) against the reference.
    pub fn report(&self, images: &Tensor) -> Result<Report> {
        let t0 = Instant::now();
        let e = self.judge.embed(images, self.opts.batch_size)?;
        let features = t0.elapsed().as_secs_f64();
        let mut r = evaluate_embedded(&self.reference, &e, &self.opts)?;
        r.seconds_features = features;
        r.seconds_total = t0.elapsed().as_secs_f64();
        Ok(r)
    }
}

/// The numbers of a report that go into an evaluation point, by name.
pub fn metrics_of(r: &Report) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    m.insert("fid_judge".into(), r.fid_judge);
    m.insert("kid_judge".into(), r.kid_judge);
    m.insert("precision_judge".into(), r.precision_judge);
    m.insert("recall_judge".into(), r.recall_judge);
    m.insert("density_judge".into(), r.density_judge);
    m.insert("coverage_judge".into(), r.coverage_judge);
    m.insert("modes_covered".into(), r.class_histogram.modes_covered as f64);
    if !r.heldout_rate.classes.is_empty() {
        m.insert("heldout_argmax".into(), r.heldout_rate.argmax);
        m.insert("heldout_p50".into(), r.heldout_rate.conf_0_5);
        m.insert("heldout_p90".into(), r.heldout_rate.conf_0_9);
    }
    m
}

/// Turns a generator's output (on its device) into images on the CPU.
pub type ToImages<'a> = dyn Fn(&Tensor) -> Result<Tensor> + 'a;

/// One GAN of one pipeline and seed, ready to be measured.
pub struct GanJob<'a> {
    /// `pixel` or `dual-<map>`.
    pub pipeline: String,
    /// The run's seed.
    pub seed: u64,
    /// Training-clock budget in seconds.
    pub budget_s: f64,
    /// Seconds the pipeline spent before its GAN (mapping + encoding).
    pub map_seconds: f64,
    /// The trainer, fresh.
    pub trainer: Trainer,
    /// Generator output -> images.
    pub to_images: &'a ToImages<'a>,
    /// Estimated FLOPs of one training step.
    pub step_flops: f64,
    /// Where the loss log goes.
    pub loss_log: PathBuf,
}

/// What one measured GAN run produced.
pub struct GanOutcome {
    /// The evaluation points, in clock order.
    pub points: Vec<EvalPoint>,
    /// Steps, seconds per step, throughput, evaluation time, divergence.
    pub figures: BTreeMap<String, f64>,
    /// The images of the last evaluation (CPU, [-1, 1]).
    pub last_images: Option<Tensor>,
    /// Set when the run diverged: the trainer's message.
    pub diverged: Option<String>,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
}

/// `n` images from the EMA generator for the fixed noise of `seed`, in chunks.
fn sample_images(t: &Trainer, to_images: &ToImages, n: i64, seed: u64) -> Result<Tensor> {
    let z = noise(n, t.noise_dim(), seed::mix(seed, EVAL_NOISE));
    let parts: Result<Vec<Tensor>> = z.split(SAMPLE_CHUNK, 0).iter().map(|c| to_images(&t.sample_from(c))).collect();
    Ok(Tensor::cat(&parts?, 0).to_device(Device::Cpu))
}

/// Trains `job.trainer` for its budget, evaluating at the points of
/// [`eval_schedule`]: each evaluation samples `ctx.n` images with the same
/// noise, embeds them and computes every metric against the reference.
/// Every point is appended to `evals.jsonl` as soon as it is measured.
pub fn run_gan(ctx: &mut EvalCtx, mut job: GanJob, matmul_gflops: f64) -> Result<GanOutcome> {
    let schedule = eval_schedule(job.budget_s);
    let label = format!("s{} {}", job.seed, job.pipeline);
    let mut bar = BarMonitor::new(&label, None, Some(job.budget_s));
    let mut losses = JsonlLog::open(&job.loss_log, true)?;
    let (mut next_eval, mut next_loss) = (0usize, 0.0f64);
    let mut out = GanOutcome {
        points: Vec::new(),
        figures: BTreeMap::new(),
        last_images: None,
        diverged: None,
        interrupted: false,
    };
    let mut eval_seconds = 0.0;
    let mut last_fid = f64::NAN;
    let t = &mut job.trainer;
    loop {
        let secs = t.train_seconds();
        if next_eval < schedule.len() && secs >= schedule[next_eval] {
            while next_eval < schedule.len() && secs >= schedule[next_eval] {
                next_eval += 1;
            }
            let t0 = Instant::now();
            let images = sample_images(t, job.to_images, ctx.n, job.seed)?;
            let r = ctx.report(&images).with_context(|| format!("evaluating {} at {secs:.1} s", job.pipeline))?;
            let p = EvalPoint {
                seed: job.seed,
                pipeline: job.pipeline.clone(),
                step: t.steps_done(),
                gan_seconds: secs,
                map_seconds: job.map_seconds,
                eval_seconds: t0.elapsed().as_secs_f64(),
                metrics: metrics_of(&r),
            };
            eval_seconds += p.eval_seconds;
            last_fid = r.fid_judge;
            bar.message(&format!(
                "{label} at {secs:.1} s (step {}): fid_judge {:.2}, precision {:.3}, recall {:.3}, coverage {:.3} [eval {:.1} s]",
                p.step, r.fid_judge, r.precision_judge, r.recall_judge, r.coverage_judge, p.eval_seconds
            ));
            ctx.log.write(&p)?;
            out.points.push(p);
            out.last_images = Some(images);
        }
        if secs >= job.budget_s {
            break;
        }
        if interrupted() {
            out.interrupted = true;
            break;
        }
        match t.step() {
            Ok(s) => {
                if s.train_seconds >= next_loss {
                    losses.write(&s)?;
                    next_loss = s.train_seconds + job.budget_s / LOSS_POINTS;
                }
                bar.on_step(s.step, None, s.train_seconds, &format!("step {} fid_judge {last_fid:.1}", s.step));
            }
            Err(e) => {
                bar.message(&format!("{label}: {e}; the run stops here, its evaluations so far are kept"));
                out.diverged = Some(e.to_string());
                break;
            }
        }
    }
    bar.finish();
    let steps = t.steps_done();
    let secs = t.train_seconds();
    let f = &mut out.figures;
    f.insert("gan_steps".into(), steps as f64);
    f.insert("gan_seconds".into(), secs);
    f.insert("eval_seconds".into(), eval_seconds);
    f.insert("map_seconds".into(), job.map_seconds);
    if steps > 0 {
        let per = secs / steps as f64;
        f.insert("gan_ms_per_step".into(), 1e3 * per);
        f.insert("gan_step_gflop".into(), job.step_flops / 1e9);
        f.insert("gan_gflops".into(), job.step_flops / per / 1e9);
        f.insert("gan_fraction_of_matmul".into(), job.step_flops / per / 1e9 / matmul_gflops.max(1e-9));
    }
    if out.diverged.is_some() {
        f.insert("diverged_at_step".into(), steps as f64 + 1.0);
    }
    Ok(out)
}

/// The loss records of a GAN run's loss log.
pub fn read_losses(path: &Path) -> Vec<StepStats> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}

/// A trained mapping with its codes and what it cost.
pub struct MapOutcome {
    /// The mapping.
    pub map: Box<dyn Mapping>,
    /// Standardised codes of the training split.
    pub codes: Codes,
    /// Figures: training seconds and steps, encoding seconds, step cost,
    /// reconstruction errors, the judge's view of reconstructions.
    pub figures: BTreeMap<String, f64>,
    /// Whether Ctrl-C stopped its training.
    pub interrupted: bool,
}

/// The images a mapping stage needs.
pub struct MapData<'a> {
    /// Training images (held-out classes removed), u8.
    pub train: &'a Tensor,
    /// Their labels.
    pub train_labels: &'a Tensor,
    /// Test images of the seen classes, u8.
    pub test_seen: &'a Tensor,
    /// Test images of the held-out classes, u8 (None without hold-out).
    pub test_heldout: Option<&'a Tensor>,
    /// Real training images evaluated as the floor; their reconstructions
    /// are evaluated the same way (the mapping's cap).
    pub floor_images: &'a Tensor,
}

/// Estimated FLOPs of one training step of a network mapping (0 for PCA):
/// encoder and decoder forward and backward (twice the forward).
pub fn map_step_flops(spec: &MapSpec, batch: usize) -> f64 {
    let net = match spec {
        MapSpec::Ae(n) => n,
        MapSpec::Vae(v) => &v.net,
        MapSpec::Pca(_) => return 0.0,
    };
    3.0 * batch as f64 * (net.encoder_flops() + net.decoder_flops())
}

/// Trains (or fits) the mapping for its budget, encodes the training split,
/// and measures its reconstructions: MSE/PSNR of seen and held-out test
/// images, every judge metric of reconstructed floor images, and how the
/// judge classifies reconstructed held-out images.
#[allow(clippy::too_many_arguments)]
pub fn run_map(
    ctx: &EvalCtx,
    spec: &MapSpec,
    cfg: &MapTrainConfig,
    data: &MapData,
    dir: &Path,
    device: Device,
    matmul_gflops: f64,
    grid: &Path,
) -> Result<MapOutcome> {
    let label = format!("s{} {}", cfg.seed, spec.kind());
    let mut bar = BarMonitor::new(&label, None, cfg.budget_s);
    let run = RunOptions::new(dir);
    let result = train_map(spec, data.train, data.test_seen, cfg, &run, device, &mut bar);
    bar.finish();
    let (map, summary) = result.with_context(|| format!("training the {} map in {}", spec.kind(), dir.display()))?;
    let t0 = Instant::now();
    let raw = encode_batched(map.as_ref(), data.train, SAMPLE_CHUNK)?;
    let image = ImageShape::new(spec.image().channels, spec.image().size);
    let codes = Codes::standardise(&raw, data.train_labels, Some(image))?;
    let encode_seconds = t0.elapsed().as_secs_f64();
    let mut f = BTreeMap::new();
    f.insert("map_train_seconds".into(), summary.train_seconds);
    f.insert("map_encode_seconds".into(), encode_seconds);
    f.insert("map_steps".into(), summary.steps as f64);
    if summary.steps > 0 {
        let per = summary.train_seconds / summary.steps as f64;
        let flops = map_step_flops(spec, cfg.batch_size);
        f.insert("map_ms_per_step".into(), 1e3 * per);
        f.insert("map_step_gflop".into(), flops / 1e9);
        f.insert("map_gflops".into(), flops / per / 1e9);
        f.insert("map_fraction_of_matmul".into(), flops / per / 1e9 / matmul_gflops.max(1e-9));
    }
    let seen = reconstruction_error(map.as_ref(), data.test_seen, SAMPLE_CHUNK)?;
    f.insert("recon_mse_seen".into(), seen.mse);
    f.insert("recon_psnr_seen".into(), seen.psnr);
    if let Some(h) = data.test_heldout {
        let held = reconstruction_error(map.as_ref(), h, SAMPLE_CHUNK)?;
        f.insert("recon_mse_heldout".into(), held.mse);
        f.insert("recon_psnr_heldout".into(), held.psnr);
        let rec = decode_batched(map.as_ref(), &encode_batched(map.as_ref(), h, SAMPLE_CHUNK)?, SAMPLE_CHUNK)?;
        let probs = ctx.judge.probs(&rec.clamp(-1.0, 1.0), ctx.opts.batch_size)?;
        let rate = dualspace_eval::metrics::heldout_rate(&probs, &ctx.opts.heldout)?;
        f.insert("recon_heldout_argmax".into(), rate.argmax);
        f.insert("recon_heldout_p90".into(), rate.conf_0_9);
    }
    let rec =
        decode_batched(map.as_ref(), &encode_batched(map.as_ref(), data.floor_images, SAMPLE_CHUNK)?, SAMPLE_CHUNK)?
            .clamp(-1.0, 1.0);
    let r = ctx.report(&rec)?;
    for (k, v) in metrics_of(&r) {
        f.insert(format!("recon_{k}"), v);
    }
    let n = rec.size()[0].min(16);
    let real = dualspace_tensor::image::u8_to_unit(&data.floor_images.narrow(0, 0, n));
    let pairs = Tensor::cat(&[real, rec.narrow(0, 0, n)], 0);
    save_grid(grid, &pairs, &GridOptions { ncol: n as usize, ..Default::default() })?;
    Ok(MapOutcome { map, codes, figures: f, interrupted: summary.stopped })
}

/// A grid of real held-out images, each followed by its `k` nearest
/// generated images in judge features.
pub fn heldout_grid(judge: &Judge, heldout: &Tensor, generated: &Tensor, path: &Path) -> Result<()> {
    let k = 7;
    let q = heldout.size()[0].min(6);
    if q == 0 || generated.size()[0] < k {
        return Ok(());
    }
    let rows = nearest_generated_rows(judge, &heldout.narrow(0, 0, q), generated, k, 500)?;
    let borders = (0..rows.size()[0]).map(|i| (i % (k + 1) == 0).then_some([220, 40, 40])).collect();
    save_grid(path, &rows, &GridOptions { ncol: (k + 1) as usize, borders: Some(borders), ..Default::default() })?;
    Ok(())
}
