//! Training a mapping from image tensors: the step loop of the AE and VAE
//! (seeded batches, saveable Adam, pausable clock, JSONL log, checkpoints,
//! reconstruction grids, exact resume) and the one-pass fit of PCA.
use crate::config::{MapKind, MapSpec, RunConfig, RunOptions, TrainConfig};
use crate::mapping::{prepare_images, read_run_config, recon_pairs, reconstruction_error, Mapping, Recon};
use crate::net::{ConvAe, TrainableMap, Vae};
use crate::{Error, Pca, Result};
use dualspace_tensor::batch::StepBatcher;
use dualspace_tensor::checkpoint::{write_json, CheckpointDir, CheckpointMeta};
use dualspace_tensor::clock::TrainClock;
use dualspace_tensor::image::{save_grid, GridOptions};
use dualspace_tensor::optim::Adam;
use dualspace_tensor::run::{JsonlLog, Monitor};
use dualspace_tensor::seed;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// File name of the reconstruction grid (real row above decoded row).
pub const RECON_GRID: &str = "recon.png";
/// Images per batch when measuring the whole test set.
const EVAL_CHUNK: i64 = 500;
/// Pairs shown in the reconstruction grid.
const GRID_PAIRS: i64 = 16;

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// The kind of map.
    pub kind: MapKind,
    /// Steps done in total (0 for PCA).
    pub steps: u64,
    /// Training seconds in total (evaluation excluded; the fit for PCA).
    pub train_seconds: f64,
    /// The step this run continued from, when resumed.
    pub resumed_from: Option<u64>,
    /// Whether the monitor stopped the run before its steps or budget.
    pub stopped: bool,
    /// Mean training loss over the last logging interval (none for PCA).
    pub final_loss: Option<f64>,
    /// Training images per second of this session (none for PCA).
    pub images_per_second: Option<f64>,
    /// Reconstruction error on all the test images given.
    pub test: Recon,
}

/// One line of the JSONL log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogRecord {
    /// Steps done.
    pub step: u64,
    /// Training seconds so far.
    pub seconds: f64,
    /// Mean training loss since the previous record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Mean KL term per image since the previous record (VAE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Reconstruction MSE on the fixed test batch, [0, 1] scale.
    pub test_mse: f64,
    /// Reconstruction PSNR on the fixed test batch, dB.
    pub test_psnr: f64,
}

/// Trains (AE, VAE) or fits (PCA) the map `spec` on `train_images` (f32 in
/// [-1, 1] or u8, `[N, C, H, W]`, any device; batches are moved to `device`),
/// measuring on `test_images`. Writes the run folder `run.dir`: `config.json`,
/// `meta.json`, weights (and Adam's state), `log.jsonl`, `recon.png`. With
/// `run.resume` it continues the checkpoint there exactly where it stopped.
pub fn train_map(
    spec: &MapSpec,
    train_images: &Tensor,
    test_images: &Tensor,
    cfg: &TrainConfig,
    run: &RunOptions,
    device: Device,
    monitor: &mut dyn Monitor,
) -> Result<(Box<dyn Mapping>, TrainSummary)> {
    spec.validate()?;
    crate::mapping::check_images(train_images, spec.image())?;
    crate::mapping::check_images(test_images, spec.image())?;
    if train_images.size()[0] == 0 || test_images.size()[0] == 0 {
        return Err(Error::Invalid("training needs at least one training and one test image".into()));
    }
    let ck = CheckpointDir::new(&run.dir);
    if run.resume {
        if !ck.exists() {
            return Err(Error::Invalid(format!(
                "{}: no checkpoint to resume (meta.json is missing); start without --resume",
                run.dir.display()
            )));
        }
        let old = read_run_config(&run.dir)?;
        if old.map != *spec {
            return Err(Error::mismatch(
                format!("resuming {}", run.dir.display()),
                format!("the map it holds ({})", old.map.describe()),
                format!("a request for {}", spec.describe()),
            ));
        }
    } else if ck.exists() {
        return Err(Error::Invalid(format!(
            "{} already holds a trained map; pass --resume to continue it, or choose another --out",
            run.dir.display()
        )));
    }
    match spec {
        MapSpec::Ae(n) => {
            cfg.validate()?;
            let m = {
                let _g = dualspace_tensor::seed::seed_guard(cfg.seed);
                ConvAe::new(n.clone(), device)?
            };
            train_net(m, spec, train_images, test_images, cfg, run, monitor)
        }
        MapSpec::Vae(v) => {
            cfg.validate()?;
            let m = {
                let _g = dualspace_tensor::seed::seed_guard(cfg.seed);
                Vae::new(v.clone(), device)?
            };
            train_net(m, spec, train_images, test_images, cfg, run, monitor)
        }
        MapSpec::Pca(p) => {
            if run.resume {
                return Err(Error::Invalid("a PCA map is fitted in one pass; there is nothing to resume".into()));
            }
            let mut clock = TrainClock::new();
            clock.resume();
            let pca = Pca::fit_seeded(p.clone(), train_images, cfg.seed, device)?;
            clock.pause();
            let secs = clock.seconds();
            monitor.message(&format!(
                "PCA fitted in {secs:.1} s: {} components keep {:.2}% of the variance",
                p.components,
                100.0 * (1.0 - pca.discarded_variance() / pca.total_variance().max(1e-300))
            ));
            let eval_x = test_images.narrow(0, 0, (cfg.eval_batch as i64).min(test_images.size()[0]));
            let batch_err = reconstruction_error(&pca, &eval_x, EVAL_CHUNK)?;
            let mut log = JsonlLog::open(run.log_path(), true)?;
            log.write(&LogRecord {
                step: 0,
                seconds: secs,
                loss: None,
                kl: None,
                test_mse: batch_err.mse,
                test_psnr: batch_err.psnr,
            })?;
            save_recon_grid(&pca, test_images, run)?;
            let test = reconstruction_error(&pca, test_images, EVAL_CHUNK)?;
            write_json(run.dir.join("config.json"), &run_config(spec, cfg, run))?;
            pca.save_weights(&run.dir)?;
            write_json(run.dir.join("meta.json"), &CheckpointMeta::new(0, secs, cfg.seed))?;
            let summary = TrainSummary {
                kind: MapKind::Pca,
                steps: 0,
                train_seconds: secs,
                resumed_from: None,
                stopped: false,
                final_loss: None,
                images_per_second: None,
                test,
            };
            Ok((Box::new(pca), summary))
        }
    }
}

fn run_config(spec: &MapSpec, cfg: &TrainConfig, run: &RunOptions) -> RunConfig {
    RunConfig { map: spec.clone(), train: Some(cfg.clone()), data: run.data.clone() }
}

/// Writes `recon.png`: up to [`GRID_PAIRS`] test images in the top row,
/// their reconstructions below.
fn save_recon_grid(map: &dyn Mapping, test_images: &Tensor, run: &RunOptions) -> Result<()> {
    let pairs = recon_pairs(map, test_images, GRID_PAIRS)?;
    let ncol = (pairs.size()[0] / 2).max(1) as usize;
    Ok(save_grid(run.dir.join(RECON_GRID), &pairs, &GridOptions { ncol, ..Default::default() })?)
}

// `u64::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
fn train_net<M: TrainableMap + 'static>(
    map: M,
    spec: &MapSpec,
    train_images: &Tensor,
    test_images: &Tensor,
    cfg: &TrainConfig,
    run: &RunOptions,
    monitor: &mut dyn Monitor,
) -> Result<(Box<dyn Mapping>, TrainSummary)> {
    let ck = CheckpointDir::new(&run.dir);
    let device = map.device();
    let shape = spec.image();
    let mut adam = Adam::new(map.var_store(), cfg.optim);
    let mut step = 0u64;
    let mut clock = TrainClock::new();
    let resumed_from = if run.resume {
        ck.load_net("model", map.var_store())?;
        adam.load_state(&ck.load_extra("optim")?)?;
        let meta = ck.meta()?;
        step = meta.step;
        clock = TrainClock::with_offset(meta.train_seconds);
        JsonlLog::truncate_after_step(run.log_path(), step)?;
        monitor.message(&format!(
            "resuming {} at step {step} ({:.1} s trained)",
            run.dir.display(),
            meta.train_seconds
        ));
        Some(step)
    } else {
        None
    };
    let run_cfg = run_config(spec, cfg, run);
    let mut log = JsonlLog::open(run.log_path(), !run.resume)?;
    let mut batcher = StepBatcher::new(train_images.size()[0] as usize, cfg.batch_size, cfg.seed)?;
    let eval_x = test_images.narrow(0, 0, (cfg.eval_batch as i64).min(test_images.size()[0]));
    let save = |step: u64, secs: f64, adam: &Adam| -> Result<()> {
        let meta = CheckpointMeta::new(step, secs, cfg.seed);
        Ok(ck.save(&[("model", map.var_store())], &[("optim", adam.state())], &run_cfg, &meta)?)
    };
    let done = |step: u64, clock: &TrainClock| {
        cfg.steps.is_some_and(|s| step >= s) || cfg.budget_s.is_some_and(|b| clock.seconds() >= b)
    };
    let (start_step, start_secs) = (step, clock.seconds());
    let (mut loss_sum, mut kl_sum, mut count) = (0.0, 0.0, 0u64);
    let mut last_loss = None;
    let mut logged_at = None;
    let mut saved_at = None;
    let mut stopped = false;
    let mut evaluate = |step: u64, secs: f64, loss: Option<f64>, kl: Option<f64>| -> Result<Recon> {
        let r = reconstruction_error(&map, &eval_x, EVAL_CHUNK)?;
        log.write(&LogRecord { step, seconds: secs, loss, kl, test_mse: r.mse, test_psnr: r.psnr })?;
        save_recon_grid(&map, test_images, run)?;
        Ok(r)
    };
    clock.resume();
    loop {
        if done(step, &clock) {
            break;
        }
        if monitor.should_stop() {
            stopped = true;
            break;
        }
        // The VAE's noise is drawn from (seed, step) on the Rust side, so a
        // resumed run draws what the uninterrupted run drew, whatever else
        // uses libtorch's global generator meanwhile.
        let x = prepare_images(&batcher.gather(train_images, step)?, shape, device)?;
        let sl = map.train_loss(&x, seed::mix(cfg.seed, step));
        adam.backward_step(&sl.loss);
        step += 1;
        let lv = sl.loss.double_value(&[]);
        if !lv.is_finite() {
            return Err(Error::Invalid(format!(
                "the training loss became {lv} at step {step}; lower the learning rate"
            )));
        }
        loss_sum += lv;
        if let Some(kl) = &sl.kl {
            kl_sum += kl.double_value(&[]);
        }
        count += 1;
        let secs = clock.seconds();
        let rate = (step - start_step) as f64 * batcher.batch_size() as f64 / (secs - start_secs).max(1e-9);
        monitor.on_step(
            step,
            cfg.steps,
            secs,
            &format!("loss {lv:.4}  mse {:.4}  {rate:.0} img/s", sl.mse.double_value(&[])),
        );
        if cfg.eval_every > 0 && step % cfg.eval_every == 0 {
            let (l, k) = (loss_sum / count as f64, kl_sum / count as f64);
            let is_vae = sl.kl.is_some();
            let r = clock.paused(|| evaluate(step, secs, Some(l), is_vae.then_some(k)))?;
            monitor.message(&format!("step {step}: loss {l:.4}, test MSE {:.5}, PSNR {:.2} dB", r.mse, r.psnr));
            last_loss = Some(l);
            (loss_sum, kl_sum, count) = (0.0, 0.0, 0);
            logged_at = Some(step);
        }
        if cfg.checkpoint_every > 0 && step % cfg.checkpoint_every == 0 {
            clock.paused(|| save(step, secs, &adam))?;
            saved_at = Some(step);
        }
    }
    clock.pause();
    let secs = clock.seconds();
    if count > 0 {
        last_loss = Some(loss_sum / count as f64);
    }
    if logged_at != Some(step) {
        let kl = (map.kind() == MapKind::Vae && count > 0).then(|| kl_sum / count as f64);
        evaluate(step, secs, if count > 0 { last_loss } else { None }, kl)?;
    }
    if saved_at != Some(step) {
        save(step, secs, &adam)?;
    }
    monitor.message(&format!("checkpoint at step {step} written to {}", run.dir.display()));
    let test = reconstruction_error(&map, test_images, EVAL_CHUNK)?;
    let images = (step - start_step) as f64 * batcher.batch_size() as f64;
    let summary = TrainSummary {
        kind: map.kind(),
        steps: step,
        train_seconds: secs,
        resumed_from,
        stopped,
        final_loss: last_loss,
        images_per_second: (step > start_step).then(|| images / (secs - start_secs).max(1e-9)),
        test,
    };
    Ok((Box::new(map), summary))
}

/// The test images split by class: those whose label is in `holdout` and
/// the rest. Either part may be empty (`None`).
pub fn split_by_classes(images: &Tensor, labels: &Tensor, holdout: &[i64]) -> (Option<Tensor>, Option<Tensor>) {
    let held = Tensor::from_slice(holdout).to_device(labels.device());
    let mask = if holdout.is_empty() {
        labels.zeros_like().to_kind(Kind::Bool)
    } else {
        Tensor::isin(labels, &held, false, false)
    };
    let pick = |m: &Tensor| {
        let idx = m.nonzero().view([-1]).to_device(images.device());
        (idx.size()[0] > 0).then(|| images.index_select(0, &idx))
    };
    (pick(&mask.logical_not()), pick(&mask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ImageShape, NetConfig, Norm, PcaConfig, ReconLoss, VaeConfig};
    use crate::mapping::load_mapping;
    use dualspace_tensor::checkpoint::read_tensors;
    use dualspace_tensor::run::Silent;

    /// 256 16x16 gray blobs (a Gaussian bump at a random place and width).
    fn blobs(n: i64, seed: i64) -> Tensor {
        let _g = dualspace_tensor::seed::seed_guard(seed as u64);
        let opts = (Kind::Float, Device::Cpu);
        let grid = Tensor::arange(16, opts).view([1, 16]);
        let cx = Tensor::rand([n, 1], opts) * 10.0 + 3.0;
        let cy = Tensor::rand([n, 1], opts) * 10.0 + 3.0;
        let w = Tensor::rand([n, 1], opts) * 3.0 + 1.5;
        let w2: Tensor = &w * &w * 2.0;
        let gx = (-(&grid - &cx).square() / &w2).exp().view([n, 1, 16]);
        let gy = (-(&grid.view([16, 1]).view([1, 16]) - &cy).square() / &w2).exp().view([n, 16, 1]);
        (gy.matmul(&gx) * 2.0 - 1.0).view([n, 1, 16, 16])
    }

    fn net() -> NetConfig {
        NetConfig {
            image: ImageShape::new(1, 16),
            latent_dim: 8,
            widths: vec![8, 16],
            norm: Norm::Batch,
            groups: 4,
            loss: ReconLoss::Mse,
        }
    }

    fn train_cfg(steps: u64) -> TrainConfig {
        TrainConfig {
            steps: Some(steps),
            batch_size: 32,
            checkpoint_every: 0,
            eval_every: 50,
            eval_batch: 64,
            seed: 9,
            ..Default::default()
        }
    }

    /// Stops after `at` steps, like a Ctrl-C.
    struct StopAt(u64, u64);
    impl Monitor for StopAt {
        fn on_step(&mut self, step: u64, _: Option<u64>, _: f64, _: &str) {
            self.1 = step;
        }
        fn should_stop(&self) -> bool {
            self.1 >= self.0
        }
    }

    #[test]
    fn ae_smoke_training_beats_the_mean_image() {
        let (train, test) = (blobs(512, 1), blobs(128, 2));
        let dir = tempfile::tempdir().unwrap();
        let run = RunOptions::new(dir.path().join("ae"));
        let (map, s) =
            train_map(&MapSpec::Ae(net()), &train, &test, &train_cfg(300), &run, Device::Cpu, &mut Silent).unwrap();
        // Predicting the mean test image gives this MSE ([0, 1] scale).
        let mean_mse =
            (&test - test.mean_dim(0, true, Kind::Float)).square().mean(Kind::Double).double_value(&[]) / 4.0;
        assert_eq!(s.steps, 300);
        assert!(s.test.mse < 0.25 * mean_mse, "test MSE {} vs mean-image MSE {mean_mse}", s.test.mse);
        assert!(s.final_loss.unwrap() < 0.08, "final loss {:?}", s.final_loss);
        // The folder is complete and loads back into the same codes.
        for f in ["config.json", "meta.json", "model.safetensors", "optim.safetensors", "log.jsonl", "recon.png"] {
            assert!(run.dir.join(f).exists(), "{f} missing");
        }
        let log = std::fs::read_to_string(run.dir.join("log.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 6);
        let back = load_mapping(&run.dir, Device::Cpu).unwrap();
        assert!(back.encode(&test).unwrap().equal(&map.encode(&test).unwrap()));
        assert_eq!(back.spec(), MapSpec::Ae(net()));
    }

    #[test]
    fn vae_smoke_training_lowers_its_loss() {
        let (train, test) = (blobs(512, 3), blobs(64, 4));
        let dir = tempfile::tempdir().unwrap();
        let run = RunOptions::new(dir.path().join("vae"));
        let spec = MapSpec::Vae(VaeConfig { net: net(), beta: 1.0 });
        let (_, s) = train_map(&spec, &train, &test, &train_cfg(200), &run, Device::Cpu, &mut Silent).unwrap();
        let log = std::fs::read_to_string(run.dir.join("log.jsonl")).unwrap();
        let recs: Vec<LogRecord> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let (first, last) = (recs[0].loss.unwrap(), recs.last().unwrap().loss.unwrap());
        assert!(last < 0.7 * first, "loss {first} -> {last}");
        assert!(recs.iter().all(|r| r.kl.is_some_and(|k| k > 0.0)));
        assert!(s.test.psnr > 13.0, "PSNR {}", s.test.psnr);
    }

    #[test]
    fn resume_continues_bit_identically() {
        let (train, test) = (blobs(256, 5), blobs(32, 6));
        let dir = tempfile::tempdir().unwrap();
        for spec in [MapSpec::Ae(net()), MapSpec::Vae(VaeConfig { net: net(), beta: 1.0 })] {
            let k = spec.kind().as_str();
            let cfg = TrainConfig { eval_every: 4, checkpoint_every: 5, ..train_cfg(12) };
            let straight = RunOptions::new(dir.path().join(format!("{k}-straight")));
            train_map(&spec, &train, &test, &cfg, &straight, Device::Cpu, &mut Silent).unwrap();
            // Interrupted after 7 steps (between checkpoints), then resumed.
            let split = RunOptions::new(dir.path().join(format!("{k}-split")));
            let (_, s1) = train_map(&spec, &train, &test, &cfg, &split, Device::Cpu, &mut StopAt(7, 0)).unwrap();
            assert!(s1.stopped);
            assert_eq!(s1.steps, 7);
            let resume = RunOptions { resume: true, ..split.clone() };
            let (_, s2) = train_map(&spec, &train, &test, &cfg, &resume, Device::Cpu, &mut Silent).unwrap();
            assert_eq!((s2.resumed_from, s2.steps), (Some(7), 12));
            for file in ["model.safetensors", "optim.safetensors"] {
                let a = read_tensors(straight.dir.join(file)).unwrap();
                let b = read_tensors(split.dir.join(file)).unwrap();
                assert_eq!(a.len(), b.len());
                for (name, t) in &a {
                    assert!(t.equal(&b[name]), "{k}: {file} {name} differs after resume");
                }
            }
            // The log has each step once.
            let steps: Vec<u64> = std::fs::read_to_string(split.dir.join("log.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<LogRecord>(l).unwrap().step)
                .collect();
            assert_eq!(steps, vec![4, 7, 8, 12]);
        }
    }

    #[test]
    fn resume_refuses_another_kind_or_size_and_fresh_runs_refuse_to_overwrite() {
        let (train, test) = (blobs(64, 7), blobs(16, 8));
        let dir = tempfile::tempdir().unwrap();
        let run = RunOptions::new(dir.path().join("r"));
        train_map(&MapSpec::Ae(net()), &train, &test, &train_cfg(2), &run, Device::Cpu, &mut Silent).unwrap();
        let e = train_map(&MapSpec::Ae(net()), &train, &test, &train_cfg(2), &run, Device::Cpu, &mut Silent)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("already holds a trained map") && e.contains("--resume"), "{e}");
        let resume = RunOptions { resume: true, ..run.clone() };
        let bigger = MapSpec::Ae(NetConfig { latent_dim: 16, ..net() });
        let e = train_map(&bigger, &train, &test, &train_cfg(4), &resume, Device::Cpu, &mut Silent)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("latent 8") && e.contains("latent 16"), "{e}");
        let vae = MapSpec::Vae(VaeConfig { net: net(), beta: 1.0 });
        let e =
            train_map(&vae, &train, &test, &train_cfg(4), &resume, Device::Cpu, &mut Silent).err().unwrap().to_string();
        assert!(e.contains("the map it holds (ae on 1x16x16") && e.contains("a request for vae on 1x16x16"), "{e}");
        // Weights of another size under a config: load names the tensor and both shapes.
        let cfg_path = run.dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).unwrap().replace("\"latent_dim\": 8", "\"latent_dim\": 6");
        std::fs::write(&cfg_path, text).unwrap();
        let e = load_mapping(&run.dir, Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("latent 6") && e.contains("in the file but the model expects"), "{e}");
    }

    #[test]
    fn pca_run_folder_loads_and_reports() {
        let (train, test) = (blobs(300, 9), blobs(50, 10));
        let dir = tempfile::tempdir().unwrap();
        let run = RunOptions::new(dir.path().join("pca"));
        let spec = MapSpec::Pca(PcaConfig::new(ImageShape::new(1, 16), 8));
        let (map, s) = train_map(&spec, &train, &test, &train_cfg(1), &run, Device::Cpu, &mut Silent).unwrap();
        assert_eq!(s.kind, MapKind::Pca);
        let back = load_mapping(&run.dir, Device::Cpu).unwrap();
        assert!(back.encode(&test).unwrap().equal(&map.encode(&test).unwrap()));
        assert!(run.dir.join("recon.png").exists() && run.dir.join("meta.json").exists());
        // Loading PCA weights under an AE config fails naming the missing tensor.
        std::fs::copy(run.dir.join("pca.safetensors"), run.dir.join("model.safetensors")).unwrap();
        let text = serde_json::to_string(&RunConfig { map: MapSpec::Ae(net()), train: None, data: None }).unwrap();
        std::fs::write(run.dir.join("config.json"), text).unwrap();
        let e = load_mapping(&run.dir, Device::Cpu).err().unwrap().to_string();
        assert!(e.contains("config.json describes ae") && e.contains("another model kind"), "{e}");
    }

    #[test]
    fn split_by_classes_separates_held_out_images() {
        let images = Tensor::arange(6, (Kind::Float, Device::Cpu)).view([6, 1, 1, 1]);
        let labels = Tensor::from_slice(&[0i64, 1, 2, 1, 0, 2]);
        let (seen, held) = split_by_classes(&images, &labels, &[1]);
        assert_eq!(Vec::<f32>::try_from(seen.unwrap().view([-1])).unwrap(), vec![0.0, 2.0, 4.0, 5.0]);
        assert_eq!(Vec::<f32>::try_from(held.unwrap().view([-1])).unwrap(), vec![1.0, 3.0]);
        let (all, none) = split_by_classes(&images, &labels, &[]);
        assert_eq!(all.unwrap().size()[0], 6);
        assert!(none.is_none());
    }
}
