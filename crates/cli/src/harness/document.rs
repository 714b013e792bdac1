//! The record of a reproduction run (`summary.json`) and the report built
//! from it (`report.md`, `report.html`, plots). Everything here reads
//! numbers that were measured; nothing is estimated or extrapolated, and a
//! target that was not reached is reported as not reached, with the best
//! value that was.
use super::env::Environment;
use super::report::{metric_vs_time, plot_lines, show, to_html, to_markdown, Block, Line};
use super::runner::read_losses;
use super::summary::{Across, EvalPoint, ReachAcross, SeedSummary, Spread};
use crate::cmd::reproduce::Budgets;
use anyhow::Result;
use dualspace_tensor::checkpoint::{write_atomic, write_json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The judge of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgeInfo {
    /// Test accuracy on all classes.
    pub accuracy: Option<f64>,
    /// Test accuracy per class.
    pub per_class: Vec<f64>,
    /// Seconds its training took (when it was trained, or originally).
    pub train_seconds: f64,
    /// Whether it came from the cache.
    pub reused: bool,
    /// Its folder.
    pub dir: String,
    /// Fraction of real held-out test images it assigns to held-out classes.
    pub heldout_real_argmax: Option<f64>,
    /// The same with confidence above 0.9.
    pub heldout_real_p90: Option<f64>,
}

/// Everything a run measured; written as `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// `running`, `complete` or `interrupted`.
    pub status: String,
    /// The command line.
    pub command: String,
    /// Start time, UTC.
    pub started_utc: String,
    /// Wall-clock seconds so far.
    pub wall_seconds: f64,
    /// The duration announced at the start.
    pub expected_seconds: f64,
    /// Seconds the judge took in this run (0 when it came from the cache).
    pub judge_wall_seconds: f64,
    /// Wall-clock seconds of each finished seed (training and evaluation).
    pub seed_wall_seconds: Vec<f64>,
    /// Data set name.
    pub dataset: String,
    /// Image shape, `CxHxW`.
    pub image: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Held-out class names.
    pub holdout: Vec<String>,
    /// Mapping kinds.
    pub maps: Vec<String>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Budgets.
    pub budgets: Budgets,
    /// Generated and real images per evaluation.
    pub eval_n: i64,
    /// Training images (held-out classes removed).
    pub n_train: usize,
    /// Pixel GAN loss.
    pub pixel_loss: String,
    /// Latent GAN loss.
    pub latent_loss: String,
    /// The judge.
    pub judge: JudgeInfo,
    /// Real training images against the reference: the floor of every metric.
    pub floor: BTreeMap<String, f64>,
    /// The fixed FID target, when given.
    pub target_fid: Option<f64>,
    /// One summary per finished seed.
    pub per_seed: Vec<SeedSummary>,
    /// The summary across seeds.
    pub across: Across,
    /// Divergences, interruptions.
    pub notes: Vec<String>,
    /// The machine.
    pub environment: Environment,
}

/// The metrics shown in plots and tables, in order.
const METRICS: [&str; 7] =
    ["fid_judge", "kid_judge", "precision_judge", "recall_judge", "density_judge", "coverage_judge", "modes_covered"];

fn pipelines(rec: &RunRecord) -> Vec<String> {
    std::iter::once("pixel".to_string()).chain(rec.maps.iter().map(|m| format!("dual-{m}"))).collect()
}

fn reach<'a>(rec: &'a RunRecord, target: &str, pipeline: &str) -> Option<&'a ReachAcross> {
    rec.across.reaches.iter().find(|r| r.target == target && r.pipeline == pipeline)
}

fn spread_of<'a>(m: &'a BTreeMap<String, BTreeMap<String, Spread>>, pipe: &str, key: &str) -> Option<&'a Spread> {
    m.get(pipe).and_then(|x| x.get(key))
}

fn fig(rec: &RunRecord, pipe: &str, key: &str) -> Option<Spread> {
    spread_of(&rec.across.figures, pipe, key).copied()
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| "—".into(), |x| format!("{x:.digits$}"))
}

fn pct(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map_or_else(|| "—".into(), |x| format!("{:.2}%", 100.0 * x))
}

fn band(speedup: f64) -> &'static str {
    if speedup >= 100.0 {
        "consistent with the claimed ~100x"
    } else if speedup >= 10.0 {
        "faster, but short of the claimed ~100x"
    } else if speedup >= 1.0 {
        "faster by a small factor, far from the claimed ~100x"
    } else {
        "slower than the pixel GAN"
    }
}

/// The verdict on both claims, in plain words, one paragraph per line.
pub fn verdict_text(rec: &RunRecord) -> Vec<String> {
    let mut out = Vec::new();
    let seeds = rec.per_seed.len();
    if seeds == 0 {
        return vec!["No seed finished: there is nothing to judge yet.".into()];
    }
    let pixel_best = spread_of(&rec.across.bests, "pixel", "fid_judge").copied();
    let pixel_reach = reach(rec, "fid_judge<=pixel_best", "pixel").and_then(|r| r.gan_seconds);
    for m in &rec.maps {
        let p = format!("dual-{m}");
        let Some(r) = reach(rec, "fid_judge<=pixel_best", &p) else { continue };
        let mut s = format!(
            "Claim 1, time to quality ({p}): the target is the pixel GAN's best judge-FID over its {:.0} s budget ({}",
            rec.budgets.pixel_s,
            show(&pixel_best, 1)
        );
        if let Some(t) = pixel_reach {
            s += &format!(", first reached after {} s of pixel training", t.show(0));
        }
        s += "). ";
        if r.reached == 0 {
            s += &format!(
                "{p} never reached it in {seeds} seed(s) within its {:.0} s GAN budget (after {} s of mapping); its best judge-FID was {}. \
                 At these budgets the claim is not supported: the dual pipeline stays above the pixel GAN's quality.",
                rec.budgets.latent_s,
                show(&fig(rec, &p, "map_seconds"), 0),
                show(&r.best, 1)
            );
        } else {
            let with_map = r.speedup_with_map.map(|x| x.mean).unwrap_or(f64::NAN);
            s += &format!(
                "{p} reached it in {} of {} seed(s) after {} s of GAN training ({} s with the mapping): a speed-up of {}x on GAN time and {}x including the mapping, {}.",
                r.reached,
                r.seeds,
                show(&r.gan_seconds, 1),
                show(&r.total_seconds, 1),
                show(&r.speedup_gan_only, 1),
                show(&r.speedup_with_map, 1),
                band(with_map)
            );
        }
        for (metric, what, target) in [
            ("precision_judge", "fidelity", "precision_judge>=pixel_at_best_fid&fid_judge<=pixel_best"),
            ("recall_judge", "diversity", "recall_judge>=pixel_at_best_fid"),
            ("coverage_judge", "coverage", "coverage_judge>=pixel_at_best_fid"),
        ] {
            let Some(r) = reach(rec, target, &p) else { continue };
            let joint = if metric == "precision_judge" { " together with the FID target" } else { "" };
            s += &format!(
                " {} ({metric} >= the pixel GAN's {} at its best FID{joint}): {}.",
                capitalise(what),
                show(&target_value(rec, target), 3),
                if r.reached == 0 {
                    format!("not reached, best {}", show(&r.best, 3))
                } else {
                    format!(
                        "reached in {}/{} seed(s) after {} s of GAN training, {} s with the mapping (speed-up {}x with mapping)",
                        r.reached,
                        r.seeds,
                        show(&r.gan_seconds, 1),
                        show(&r.total_seconds, 1),
                        show(&r.speedup_with_map, 1)
                    )
                }
            );
        }
        out.push(s);
    }
    if rec.holdout.is_empty() {
        out.push("Claim 2, held-out classes: not tested (no class was held out).".into());
        return out;
    }
    let floor = rec.floor.get("heldout_argmax").copied();
    let floor90 = rec.floor.get("heldout_p90").copied();
    let mut s = format!(
        "Claim 2, held-out classes ({}): the judge assigns {} of real held-out test images to them, and {} ({} with confidence > 0.9) of real images of the seen classes (its false-alarm rate).",
        rec.holdout.join(", "),
        pct(rec.judge.heldout_real_argmax),
        pct(floor),
        pct(floor90)
    );
    for p in pipelines(rec) {
        let arg = spread_of(&rec.across.finals, &p, "heldout_argmax").map(|x| x.mean);
        let p90 = spread_of(&rec.across.finals, &p, "heldout_p90").map(|x| x.mean);
        let evidence = match (arg, floor, p90, floor90) {
            (Some(a), Some(f), Some(a9), Some(f9))
                if a > (2.0 * f).max(f + 0.01) && a9 > (2.0 * f9).max(f9 + 0.005) =>
            {
                "above the false-alarm rate: some samples look like the held-out classes to the judge"
            }
            (Some(_), Some(_), _, _) => "no evidence beyond the judge's false-alarm rate",
            _ => "not measured",
        };
        s += &format!(" {p}: {} of its final samples ({} confident) — {evidence}.", pct(arg), pct(p90));
    }
    for m in &rec.maps {
        let p = format!("dual-{m}");
        if let (Some(mse_h), Some(mse_s), Some(rate)) =
            (fig(rec, &p, "recon_mse_heldout"), fig(rec, &p, "recon_mse_seen"), fig(rec, &p, "recon_heldout_argmax"))
        {
            let meaning = if rate.mean >= 0.5 {
                "so its decoder can represent them"
            } else {
                "so its decoder mostly turns them into images of seen classes"
            };
            s += &format!(
                " The {m} map reconstructs held-out test images with MSE {} (seen classes {}); the judge recognises {} of those reconstructions as held-out classes, {meaning}.",
                mse_h.show(5),
                mse_s.show(5),
                pct(Some(rate.mean))
            );
        }
    }
    out.push(s);
    out
}

/// A target's value (it is set per seed from that seed's pixel GAN) across seeds.
fn target_value(rec: &RunRecord, name: &str) -> Option<Spread> {
    let v: Vec<f64> =
        rec.per_seed.iter().flat_map(|s| s.targets.iter()).filter(|t| t.name == name).map(|t| t.value).collect();
    Spread::of(&v)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

fn budgets_line(rec: &RunRecord) -> String {
    let b = &rec.budgets;
    format!(
        "Budgets (training clock, evaluation excluded): pixel GAN {:.0} s; each mapping {:.0} s; each latent GAN {:.0} s. Judge: {} epoch(s). Evaluations: {} generated vs {} real images (real test images of the seen classes), KID {} subsets of {}.",
        b.pixel_s,
        b.map_s,
        b.latent_s,
        b.judge_epochs,
        rec.eval_n,
        rec.eval_n,
        b.kid_subsets,
        b.kid_subset_size
    )
}

/// The report of a run, as blocks.
pub fn report_blocks(rec: &RunRecord, out: &Path) -> Vec<Block> {
    let mut b = vec![Block::Heading(1, format!("dualspace reproduction: {}", rec.dataset))];
    let status = match rec.status.as_str() {
        "complete" => "Complete.".to_string(),
        "interrupted" => {
            "INTERRUPTED: this report covers only what was measured before the run was stopped.".to_string()
        }
        _ => format!("In progress: {} of {} seed(s) finished.", rec.per_seed.len(), rec.seeds.len()),
    };
    let per_seed: Vec<String> = rec.seed_wall_seconds.iter().map(|s| format!("{:.1}", s / 60.0)).collect();
    b.push(Block::Para(format!(
        "{status} Started {} UTC; {:.1} min of wall-clock time (announced: about {:.0} min): judge {:.1} min, seeds [{}] min.",
        rec.started_utc,
        rec.wall_seconds / 60.0,
        (rec.expected_seconds / 60.0).ceil(),
        rec.judge_wall_seconds / 60.0,
        per_seed.join(", ")
    )));
    b.push(Block::Heading(2, "Verdict".into()));
    for v in verdict_text(rec) {
        b.push(Block::Para(v));
    }

    b.push(Block::Heading(2, "Setup".into()));
    let acc = rec.judge.accuracy.map_or("not measured".into(), |a| format!("{:.2}%", 100.0 * a));
    b.push(Block::List(vec![
        format!(
            "Data: {}, {} classes of {} images, {} training images after the hold-out; classes: {}.",
            rec.dataset,
            rec.classes.len(),
            rec.image,
            rec.n_train,
            rec.classes.join(", ")
        ),
        format!("Held out of the mappings and both GANs: {}.", if rec.holdout.is_empty() { "nothing".into() } else { rec.holdout.join(", ") }),
        format!("Pipelines: pixel (DCGAN, {} loss) and {} (latent MLP GAN, {} loss). Seeds: {:?}.", rec.pixel_loss, rec.maps.iter().map(|m| format!("dual-{m}")).collect::<Vec<_>>().join(", "), rec.latent_loss, rec.seeds),
        budgets_line(rec),
        format!(
            "Judge: a CNN trained on all classes (held-out ones included), test accuracy {acc}{}; every metric is computed on its penultimate features and named *_judge. These are not Inception metrics and cannot be compared with published FIDs.",
            if rec.judge.reused { " (reused from the cache)" } else { "" }
        ),
    ]));

    b.push(Block::Heading(2, "Time to quality".into()));
    b.push(Block::Para(
        "Targets (per seed): the pixel GAN's best judge-FID over its budget; for recall and coverage, the pixel GAN's value at that best-FID evaluation; for precision, the pixel GAN's value there together with the FID target (an untrained generator's few near-identical samples score precision near 1, so precision alone is met at anyone's first point); and the fixed judge-FID target when given. A pipeline's time is the first evaluation point of its training clock at which it met the target (exact only to the evaluation schedule: 1, 2, 5, 10, 20, 30, 60, 120, 180, 300, 450 s, ... and the budget); the mapping's training and encoding time is added in the 'with mapping' column. Never extrapolated: '—' means not reached.".into(),
    ));
    let mut rows = Vec::new();
    for r in &rec.across.reaches {
        rows.push(vec![
            r.target.clone(),
            show(&target_value(rec, &r.target), 3),
            r.pipeline.clone(),
            format!("{}/{}", r.reached, r.seeds),
            show(&r.gan_seconds, 1),
            show(&r.total_seconds, 1),
            show(&r.best, 3),
            show(&r.speedup_gan_only, 2),
            show(&r.speedup_with_map, 2),
        ]);
    }
    b.push(Block::Table(
        [
            "target",
            "value",
            "pipeline",
            "reached (seeds)",
            "GAN s",
            "GAN + mapping s",
            "best value",
            "speed-up (GAN)",
            "speed-up (with mapping)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    ));

    b.push(Block::Heading(2, "Fidelity and diversity".into()));
    b.push(Block::Para(
        "Final (last evaluation) and best values over the run; mean with (min–max) over seeds. 'real' is real training images of the seen classes against the same reference: the floor no generator can beat.".into(),
    ));
    let pipes = pipelines(rec);
    let mut header = vec!["metric".to_string(), "real (floor)".to_string()];
    for p in &pipes {
        header.push(format!("{p} final"));
        header.push(format!("{p} best"));
    }
    let mut rows = Vec::new();
    for m in METRICS {
        let mut row = vec![m.to_string(), fmt(rec.floor.get(m).copied(), 3)];
        for p in &pipes {
            row.push(show(&spread_of(&rec.across.finals, p, m).copied(), 3));
            row.push(show(&spread_of(&rec.across.bests, p, m).copied(), 3));
        }
        rows.push(row);
    }
    b.push(Block::Table(header, rows));

    b.push(Block::Heading(2, "The mapping".into()));
    b.push(Block::Para(
        "The dual pipeline can be no better than its mapping: the judge metrics of reconstructed real images (the same training images as the floor) are its cap. Reconstruction errors are per pixel on the [0, 1] scale.".into(),
    ));
    let mut rows = Vec::new();
    for m in &rec.maps {
        let p = format!("dual-{m}");
        let f = |k: &str, d: usize| show(&fig(rec, &p, k), d);
        rows.push(vec![
            m.clone(),
            f("map_train_seconds", 1),
            f("map_steps", 0),
            f("map_encode_seconds", 1),
            f("recon_mse_seen", 5),
            f("recon_mse_heldout", 5),
            f("recon_psnr_seen", 2),
            f("recon_psnr_heldout", 2),
            f("recon_fid_judge", 2),
            f("recon_precision_judge", 3),
            f("recon_recall_judge", 3),
            f("recon_coverage_judge", 3),
        ]);
    }
    b.push(Block::Table(
        [
            "map",
            "train s",
            "steps",
            "encode s",
            "MSE seen",
            "MSE held-out",
            "PSNR seen",
            "PSNR held-out",
            "recon fid_judge",
            "recon precision",
            "recon recall",
            "recon coverage",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    ));

    b.push(Block::Heading(2, "Held-out classes".into()));
    if rec.holdout.is_empty() {
        b.push(Block::Para("No class was held out in this run.".into()));
    } else {
        b.push(Block::Para(format!(
            "Held out: {}. Fraction of images the judge assigns to a held-out class (argmax), and with confidence above 0.5 and 0.9. Real seen-class images give the judge's false-alarm rate; real held-out images show what recognition looks like.",
            rec.holdout.join(", ")
        )));
        let mut rows = vec![
            vec![
                "real, seen classes (false alarms)".into(),
                pct(rec.floor.get("heldout_argmax").copied()),
                pct(rec.floor.get("heldout_p50").copied()),
                pct(rec.floor.get("heldout_p90").copied()),
                "—".into(),
            ],
            vec![
                "real, held-out classes".into(),
                pct(rec.judge.heldout_real_argmax),
                "—".into(),
                pct(rec.judge.heldout_real_p90),
                "—".into(),
            ],
        ];
        for m in &rec.maps {
            let p = format!("dual-{m}");
            rows.push(vec![
                format!("{m} reconstructions of held-out images"),
                pct(fig(rec, &p, "recon_heldout_argmax").map(|s| s.mean)),
                "—".into(),
                pct(fig(rec, &p, "recon_heldout_p90").map(|s| s.mean)),
                "—".into(),
            ]);
        }
        for p in &pipes {
            let f = |k: &str| pct(spread_of(&rec.across.finals, p, k).map(|s| s.mean));
            rows.push(vec![
                format!("{p} samples (final)"),
                f("heldout_argmax"),
                f("heldout_p50"),
                f("heldout_p90"),
                pct(spread_of(&rec.across.bests, p, "heldout_argmax").map(|s| s.mean)),
            ]);
        }
        b.push(Block::Table(
            ["images", "argmax", "p > 0.5", "p > 0.9", "best argmax over the run"].map(String::from).to_vec(),
            rows,
        ));
        let s0 = rec.per_seed.first().map_or(0, |s| s.seed);
        for p in &pipes {
            let g = format!("grids/seed{s0}-heldout-{p}.png");
            if out.join(&g).exists() {
                b.push(Block::Image(
                    g,
                    format!("{p}, seed {s0}: real held-out images (red frame), each followed by its 7 nearest samples in judge features"),
                ));
            }
        }
    }

    b.push(Block::Heading(2, "Per-step costs".into()));
    let peak = rec.environment.matmul_gflops;
    b.push(Block::Para(format!(
        "Seconds per training step on {} ({} libtorch threads), beside this run's measured f32 matrix-multiply throughput: {peak:.1} GFLOP/s at n = {}. FLOPs are estimates from the layer shapes (2 per multiply-add of convolutions and linear layers, backward = 2x forward, WGAN-GP's penalty included); the last column says how close a step runs to that limit.",
        rec.environment.device, rec.environment.torch_threads, rec.environment.matmul_n
    )));
    let mut rows = Vec::new();
    let cost_row =
        |name: String, ms: Option<Spread>, gf: Option<Spread>, rate: Option<Spread>, frac: Option<Spread>| {
            vec![
                name,
                show(&ms, 2),
                show(&gf, 3),
                show(&rate, 1),
                show(&frac.map(|s| Spread { mean: s.mean * 100.0, min: s.min * 100.0, max: s.max * 100.0, ..s }), 1),
            ]
        };
    rows.push(cost_row(
        format!("pixel DCGAN step ({} loss, batch 64)", rec.pixel_loss),
        fig(rec, "pixel", "gan_ms_per_step"),
        fig(rec, "pixel", "gan_step_gflop"),
        fig(rec, "pixel", "gan_gflops"),
        fig(rec, "pixel", "gan_fraction_of_matmul"),
    ));
    for m in &rec.maps {
        let p = format!("dual-{m}");
        if m != "pca" {
            rows.push(cost_row(
                format!("{m} training step (batch 64)"),
                fig(rec, &p, "map_ms_per_step"),
                fig(rec, &p, "map_step_gflop"),
                fig(rec, &p, "map_gflops"),
                fig(rec, &p, "map_fraction_of_matmul"),
            ));
        }
        rows.push(cost_row(
            format!("latent GAN step on {m} codes ({} loss, batch 64)", rec.latent_loss),
            fig(rec, &p, "gan_ms_per_step"),
            fig(rec, &p, "gan_step_gflop"),
            fig(rec, &p, "gan_gflops"),
            fig(rec, &p, "gan_fraction_of_matmul"),
        ));
    }
    b.push(Block::Table(
        ["step", "ms / step", "est. GFLOP / step", "achieved GFLOP/s", "% of matmul throughput"]
            .map(String::from)
            .to_vec(),
        rows,
    ));

    b.push(Block::Heading(2, "Plots".into()));
    for m in ["fid_judge", "precision_judge", "recall_judge", "coverage_judge"] {
        let f = format!("plots/{m}.png");
        if out.join(&f).exists() {
            b.push(Block::Image(
                f,
                format!("{m} against GAN training seconds (log scale); lighter lines add the mapping's time"),
            ));
        }
    }
    for p in &pipes {
        let f = format!("plots/losses-{p}.png");
        if out.join(&f).exists() {
            b.push(Block::Image(f, format!("{p}: discriminator and generator losses against training seconds")));
        }
    }

    b.push(Block::Heading(2, "Samples".into()));
    b.push(Block::Image("grids/real.png".into(), "real test images of the seen classes".into()));
    if out.join("grids/real-heldout.png").exists() {
        b.push(Block::Image("grids/real-heldout.png".into(), "real test images of the held-out classes".into()));
    }
    let s0 = rec.per_seed.first().map_or(0, |s| s.seed);
    for p in &pipes {
        let g = format!("grids/seed{s0}-{p}.png");
        if out.join(&g).exists() {
            b.push(Block::Image(g, format!("{p}, seed {s0}, samples at the end of its budget")));
        }
    }
    for m in &rec.maps {
        let g = format!("grids/seed{s0}-recon-{m}.png");
        if out.join(&g).exists() {
            b.push(Block::Image(
                g,
                format!("{m} map, seed {s0}: real images (top) and their reconstructions (bottom)"),
            ));
        }
    }

    if !rec.notes.is_empty() {
        b.push(Block::Heading(2, "Notes".into()));
        b.push(Block::List(rec.notes.clone()));
    }
    b.push(Block::Heading(2, "Environment".into()));
    let e = &rec.environment;
    b.push(Block::List(vec![
        format!(
            "CPU: {} ({} logical cores); libtorch threads: {}; device: {}",
            e.cpu_model, e.cores, e.torch_threads, e.device
        ),
        format!(
            "libtorch {}, dualspace {}, git commit {}",
            e.torch_version,
            e.dualspace_version,
            e.git_commit.as_deref().unwrap_or("unknown")
        ),
        format!("f32 matmul throughput: {:.1} GFLOP/s (n = {})", e.matmul_gflops, e.matmul_n),
    ]));
    b.push(Block::Heading(2, "Regenerate".into()));
    b.push(Block::Code(rec.command.clone()));
    b
}

/// Writes `summary.json`, the plots, `report.md` and `report.html` into `out`.
pub fn write_all(out: &Path, rec: &RunRecord, points: &[EvalPoint]) -> Result<()> {
    write_json(out.join("summary.json"), rec)?;
    for m in ["fid_judge", "precision_judge", "recall_judge", "coverage_judge"] {
        metric_vs_time(&out.join(format!("plots/{m}.png")), m, points)?;
    }
    for p in pipelines(rec) {
        let mut lines = Vec::new();
        for (i, s) in rec.seeds.iter().enumerate() {
            let l = read_losses(&out.join(format!("seed{s}/losses-{p}.jsonl")));
            if l.is_empty() {
                continue;
            }
            let d = l.iter().map(|x| (x.train_seconds, x.loss_d)).collect();
            let g = l.iter().map(|x| (x.train_seconds, x.loss_g)).collect();
            lines.push(Line { label: format!("seed {s} D"), colour: 2 * i, points: d, light: false });
            lines.push(Line { label: format!("seed {s} G"), colour: 2 * i + 1, points: g, light: false });
        }
        if !lines.is_empty() {
            plot_lines(
                &out.join(format!("plots/losses-{p}.png")),
                &format!("{p} losses"),
                "training seconds",
                "loss",
                &lines,
                false,
            )?;
        }
    }
    let blocks = report_blocks(rec, out);
    let md = to_markdown(&blocks);
    let html = to_html(&format!("dualspace reproduction: {}", rec.dataset), &blocks);
    for (name, text) in [("report.md", md), ("report.html", html)] {
        let path = out.join(name);
        write_atomic(&path, |tmp| std::fs::write(tmp, &text).map_err(|e| dualspace_tensor::Error::io(&path, e)))?;
    }
    Ok(())
}
