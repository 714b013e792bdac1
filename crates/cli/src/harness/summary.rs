//! Evaluation points, time-to-target and the summary across seeds.
//!
//! Everything here is plain data and arithmetic, so it is tested on
//! hand-made points; the runner (`cmd::reproduce`) fills it with real
//! measurements.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One evaluation of one pipeline at one point of its training clock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalPoint {
    /// The run's seed.
    pub seed: u64,
    /// `pixel` or `dual-<map>` (e.g. `dual-ae`).
    pub pipeline: String,
    /// GAN steps done.
    pub step: u64,
    /// GAN training seconds (evaluation excluded).
    pub gan_seconds: f64,
    /// The mapping's training seconds (0 for the pixel pipeline).
    pub map_seconds: f64,
    /// Seconds this evaluation took (sampling + metrics; not training time).
    pub eval_seconds: f64,
    /// Metric name -> value (`fid_judge`, `precision`, ...).
    pub metrics: BTreeMap<String, f64>,
}

/// A quality target: a metric, a threshold and its direction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// Short name, used as a key (`fid_judge<=pixel_best`).
    pub name: String,
    /// The metric.
    pub metric: String,
    /// The threshold.
    pub value: f64,
    /// True when lower is better (FID, KID).
    pub lower_is_better: bool,
    /// When set, a point meets the target only if its `fid_judge` is at
    /// most this as well (a joint target).
    #[serde(default)]
    pub with_fid_at_most: Option<f64>,
}

impl Target {
    /// Whether `v` meets the target.
    pub fn met_by(&self, v: f64) -> bool {
        v.is_finite() && if self.lower_is_better { v <= self.value } else { v >= self.value }
    }

    /// Whether an evaluation point meets the target (and its FID bound).
    pub fn met_at(&self, p: &EvalPoint) -> bool {
        p.metrics.get(&self.metric).is_some_and(|&v| self.met_by(v))
            && self
                .with_fid_at_most
                .is_none_or(|f| p.metrics.get("fid_judge").is_some_and(|&v| v.is_finite() && v <= f))
    }
}

/// Whether lower values of a metric are better.
pub fn lower_is_better(metric: &str) -> bool {
    metric.starts_with("fid") || metric.starts_with("kid")
}

/// The first GAN time at which `points` (one pipeline, one seed, in clock
/// order) met the target; `None` if never. Never extrapolates.
pub fn time_to_target(points: &[&EvalPoint], target: &Target) -> Option<f64> {
    points.iter().find(|p| target.met_at(p)).map(|p| p.gan_seconds)
}

/// The best value of a metric over points (min or max by direction).
pub fn best(points: &[&EvalPoint], metric: &str) -> Option<f64> {
    let vals = points.iter().filter_map(|p| p.metrics.get(metric).copied()).filter(|v| v.is_finite());
    if lower_is_better(metric) {
        vals.reduce(f64::min)
    } else {
        vals.reduce(f64::max)
    }
}

/// Time-to-target of one pipeline against one target, with the speed-up
/// over the pixel pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reach {
    /// The target's name.
    pub target: String,
    /// The pipeline.
    pub pipeline: String,
    /// GAN seconds to reach it; `None` = never reached in the budget.
    pub gan_seconds: Option<f64>,
    /// GAN + mapping seconds to reach it.
    pub total_seconds: Option<f64>,
    /// The pipeline's best value of the metric (said when not reached).
    pub best: Option<f64>,
    /// Pixel seconds / this pipeline's GAN seconds (only when both reached).
    pub speedup_gan_only: Option<f64>,
    /// Pixel seconds / (GAN + mapping seconds).
    pub speedup_with_map: Option<f64>,
}

/// Everything measured for one seed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SeedSummary {
    /// The seed.
    pub seed: u64,
    /// The targets used for this seed.
    pub targets: Vec<Target>,
    /// One row per (target, pipeline).
    pub reaches: Vec<Reach>,
    /// Per pipeline: metric -> value at the last evaluation.
    pub finals: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per pipeline: metric -> best value over the run.
    pub bests: BTreeMap<String, BTreeMap<String, f64>>,
    /// Per pipeline: other figures (seconds per step, map seconds,
    /// reconstruction errors of seen and held-out classes, ...).
    pub figures: BTreeMap<String, BTreeMap<String, f64>>,
}

/// The metrics whose time-to-target is reported against the pixel GAN's best.
pub const TARGET_METRICS: [&str; 4] = ["fid_judge", "precision_judge", "recall_judge", "coverage_judge"];

/// Builds one seed's summary from its evaluation points. Targets: the pixel
/// pipeline's best `fid_judge`; its recall and coverage at that best-FID
/// point; its precision there jointly with that FID; and `fid_judge <=
/// target_fid` when given.
pub fn summarise_seed(
    seed: u64,
    points: &[EvalPoint],
    target_fid: Option<f64>,
    figures: BTreeMap<String, BTreeMap<String, f64>>,
) -> SeedSummary {
    let mut pipelines: Vec<String> = Vec::new();
    for p in points.iter().filter(|p| p.seed == seed) {
        if !pipelines.contains(&p.pipeline) {
            pipelines.push(p.pipeline.clone());
        }
    }
    let of = |name: &str| -> Vec<&EvalPoint> {
        let mut v: Vec<&EvalPoint> = points.iter().filter(|p| p.seed == seed && p.pipeline == name).collect();
        v.sort_by(|a, b| a.gan_seconds.total_cmp(&b.gan_seconds));
        v
    };
    let pixel = of("pixel");
    let mut targets = Vec::new();
    // FID: the pixel GAN's best. Recall and coverage: the pixel GAN's value
    // at that best-FID point. Precision jointly with that FID: an untrained
    // generator's few near-identical samples score precision near 1, so a
    // precision target alone is met by any pipeline at its first point.
    let at_best = pixel
        .iter()
        .filter(|p| p.metrics.get("fid_judge").is_some_and(|v| v.is_finite()))
        .min_by(|a, b| a.metrics["fid_judge"].total_cmp(&b.metrics["fid_judge"]));
    if let Some(bp) = at_best {
        let best_fid = bp.metrics["fid_judge"];
        for m in TARGET_METRICS {
            let Some(&v) = bp.metrics.get(m) else { continue };
            let lower = lower_is_better(m);
            let (name, with_fid_at_most) = match m {
                "fid_judge" => ("fid_judge<=pixel_best".to_string(), None),
                "precision_judge" => {
                    ("precision_judge>=pixel_at_best_fid&fid_judge<=pixel_best".to_string(), Some(best_fid))
                }
                _ => (format!("{m}{}pixel_at_best_fid", if lower { "<=" } else { ">=" }), None),
            };
            targets.push(Target { name, metric: m.into(), value: v, lower_is_better: lower, with_fid_at_most });
        }
    }
    if let Some(t) = target_fid {
        targets.push(Target {
            name: format!("fid_judge<={t}"),
            metric: "fid_judge".into(),
            value: t,
            lower_is_better: true,
            with_fid_at_most: None,
        });
    }
    let mut s = SeedSummary { seed, figures, ..Default::default() };
    for name in &pipelines {
        let pts = of(name);
        if let Some(last) = pts.last() {
            s.finals.insert(name.clone(), last.metrics.clone());
        }
        let metrics: Vec<String> = pts.iter().flat_map(|p| p.metrics.keys().cloned()).collect();
        let mut b = BTreeMap::new();
        for m in metrics {
            if let Some(v) = best(&pts, &m) {
                b.insert(m, v);
            }
        }
        s.bests.insert(name.clone(), b);
    }
    for t in &targets {
        let pixel_t = time_to_target(&pixel, t);
        for name in &pipelines {
            let pts = of(name);
            let map_s = pts.first().map_or(0.0, |p| p.map_seconds);
            let gan = time_to_target(&pts, t);
            let total = gan.map(|g| g + map_s);
            let ratio = |d: Option<f64>| match (pixel_t, d) {
                (Some(p), Some(d)) if d > 0.0 => Some(p / d),
                _ => None,
            };
            s.reaches.push(Reach {
                target: t.name.clone(),
                pipeline: name.clone(),
                gan_seconds: gan,
                total_seconds: total,
                best: best(&pts, &t.metric),
                speedup_gan_only: ratio(gan),
                speedup_with_map: ratio(total),
            });
        }
    }
    s.targets = targets;
    s
}

/// Mean, min, max and standard deviation of a figure across seeds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
    /// How many seeds had a value.
    pub n: usize,
}

impl Spread {
    /// The spread of some values; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = if n > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        Some(Self {
            mean,
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            std: var.sqrt(),
            n,
        })
    }

    /// `mean (min-max)` or `mean ± std`, short.
    pub fn show(&self, digits: usize) -> String {
        if self.n == 1 {
            format!("{:.*}", digits, self.mean)
        } else {
            format!("{:.*} ({:.*}–{:.*}, n={})", digits, self.mean, digits, self.min, digits, self.max, self.n)
        }
    }
}

/// A reach row aggregated over seeds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReachAcross {
    /// Target name (its value may differ per seed: each seed's pixel best).
    pub target: String,
    /// Pipeline.
    pub pipeline: String,
    /// Seeds in which the target was reached, of all seeds.
    pub reached: usize,
    /// Seeds in all.
    pub seeds: usize,
    /// GAN seconds to reach, over the seeds that reached it.
    pub gan_seconds: Option<Spread>,
    /// GAN + map seconds.
    pub total_seconds: Option<Spread>,
    /// Best value of the metric, over all seeds.
    pub best: Option<Spread>,
    /// Speed-up on GAN time, over seeds where both reached it.
    pub speedup_gan_only: Option<Spread>,
    /// Speed-up including the mapping's time.
    pub speedup_with_map: Option<Spread>,
}

/// The summary across seeds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Across {
    /// Reach rows.
    pub reaches: Vec<ReachAcross>,
    /// Per pipeline: metric -> spread of the final value.
    pub finals: BTreeMap<String, BTreeMap<String, Spread>>,
    /// Per pipeline: metric -> spread of the best value.
    pub bests: BTreeMap<String, BTreeMap<String, Spread>>,
    /// Per pipeline: figure -> spread.
    pub figures: BTreeMap<String, BTreeMap<String, Spread>>,
}

fn spread_maps(maps: &[&BTreeMap<String, BTreeMap<String, f64>>]) -> BTreeMap<String, BTreeMap<String, Spread>> {
    let mut vals: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for m in maps {
        for (pipe, kv) in m.iter() {
            for (k, v) in kv {
                vals.entry(pipe.clone()).or_default().entry(k.clone()).or_default().push(*v);
            }
        }
    }
    vals.into_iter()
        .map(|(p, kv)| (p, kv.into_iter().filter_map(|(k, v)| Spread::of(&v).map(|s| (k, s))).collect()))
        .collect()
}

/// Aggregates seed summaries.
pub fn across(seeds: &[SeedSummary]) -> Across {
    let mut keys: Vec<(String, String)> = Vec::new();
    for s in seeds {
        for r in &s.reaches {
            let k = (r.target.clone(), r.pipeline.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let reaches = keys
        .into_iter()
        .map(|(target, pipeline)| {
            let rows: Vec<&Reach> = seeds
                .iter()
                .flat_map(|s| &s.reaches)
                .filter(|r| r.target == target && r.pipeline == pipeline)
                .collect();
            let col =
                |f: &dyn Fn(&Reach) -> Option<f64>| Spread::of(&rows.iter().filter_map(|r| f(r)).collect::<Vec<_>>());
            ReachAcross {
                reached: rows.iter().filter(|r| r.gan_seconds.is_some()).count(),
                seeds: seeds.len(),
                gan_seconds: col(&|r| r.gan_seconds),
                total_seconds: col(&|r| r.total_seconds),
                best: col(&|r| r.best),
                speedup_gan_only: col(&|r| r.speedup_gan_only),
                speedup_with_map: col(&|r| r.speedup_with_map),
                target,
                pipeline,
            }
        })
        .collect();
    Across {
        reaches,
        finals: spread_maps(&seeds.iter().map(|s| &s.finals).collect::<Vec<_>>()),
        bests: spread_maps(&seeds.iter().map(|s| &s.bests).collect::<Vec<_>>()),
        figures: spread_maps(&seeds.iter().map(|s| &s.figures).collect::<Vec<_>>()),
    }
}

/// Evaluation times on a geometric-ish schedule (1, 2, 5, 10, 20, 30, 60,
/// 120, 180, 300, 450, 600, 900, 1200, ... seconds) up to `budget`, always
/// ending with the budget itself.
pub fn eval_schedule(budget: f64) -> Vec<f64> {
    let base = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0, 1200.0, 1800.0];
    let mut v: Vec<f64> = base.iter().copied().filter(|&t| t < budget * 0.95).collect();
    let mut t = 2400.0;
    while t < budget * 0.95 {
        v.push(t);
        t += 1200.0;
    }
    v.push(budget);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(pipe: &str, t: f64, fid: f64, prec: f64) -> EvalPoint {
        EvalPoint {
            seed: 1,
            pipeline: pipe.into(),
            step: (t * 10.0) as u64,
            gan_seconds: t,
            map_seconds: if pipe == "pixel" { 0.0 } else { 30.0 },
            eval_seconds: 1.0,
            metrics: [("fid_judge".to_string(), fid), ("precision_judge".to_string(), prec)].into_iter().collect(),
        }
    }

    #[test]
    fn time_to_target_and_speedups_by_hand() {
        let points = vec![
            pt("pixel", 10.0, 150.0, 0.95),
            pt("pixel", 100.0, 60.0, 0.5),
            pt("pixel", 300.0, 50.0, 0.6),
            pt("dual-ae", 1.0, 120.0, 0.7),
            pt("dual-ae", 3.0, 49.0, 0.8),
            pt("dual-ae", 10.0, 70.0, 0.85),
        ];
        let s = summarise_seed(1, &points, Some(100.0), BTreeMap::new());
        let fid = s.targets.iter().find(|t| t.metric == "fid_judge" && t.name.contains("pixel")).unwrap();
        assert_eq!(fid.value, 50.0);
        // Precision's target is the pixel GAN's value at its best FID (300 s), not its early 0.95,
        // and it holds only together with that FID: the pixel GAN meets it at 300 s, not at 10 s.
        let prec = s.targets.iter().find(|t| t.metric == "precision_judge").unwrap();
        assert_eq!((prec.value, prec.with_fid_at_most), (0.6, Some(50.0)));
        let r = s.reaches.iter().find(|r| r.target == prec.name && r.pipeline == "pixel").unwrap();
        assert_eq!(r.gan_seconds, Some(300.0));
        // dual-ae: precision 0.7 at 1 s (FID 120, too high), 0.8 with FID 49 at 3 s.
        let r = s.reaches.iter().find(|r| r.target == prec.name && r.pipeline == "dual-ae").unwrap();
        assert_eq!(r.gan_seconds, Some(3.0));
        let r = s.reaches.iter().find(|r| r.target == fid.name && r.pipeline == "dual-ae").unwrap();
        assert_eq!(r.gan_seconds, Some(3.0));
        assert_eq!(r.total_seconds, Some(33.0));
        assert_eq!(r.speedup_gan_only, Some(100.0));
        assert!((r.speedup_with_map.unwrap() - 300.0 / 33.0).abs() < 1e-12);
        // The fixed target: pixel reaches FID <= 100 at 100 s, dual at 3 s.
        let r = s.reaches.iter().find(|r| r.target == "fid_judge<=100" && r.pipeline == "dual-ae").unwrap();
        assert_eq!(r.speedup_gan_only, Some(100.0 / 3.0));
        assert_eq!(s.finals["dual-ae"]["fid_judge"], 70.0);
        assert_eq!(s.bests["dual-ae"]["fid_judge"], 49.0);
        assert_eq!(s.bests["pixel"]["precision_judge"], 0.95);
    }

    #[test]
    fn never_reached_is_none_with_best_value() {
        let points = vec![pt("pixel", 10.0, 40.0, 0.6), pt("dual-ae", 10.0, 90.0, 0.9), pt("dual-ae", 20.0, 80.0, 0.9)];
        let s = summarise_seed(1, &points, None, BTreeMap::new());
        let r = s.reaches.iter().find(|r| r.target == "fid_judge<=pixel_best" && r.pipeline == "dual-ae").unwrap();
        assert_eq!(r.gan_seconds, None);
        assert_eq!(r.speedup_gan_only, None);
        assert_eq!(r.best, Some(80.0));
        // Precision 0.9 beats the pixel GAN's 0.6, but never with an FID of 40 or less.
        let r = s.reaches.iter().find(|r| r.target.starts_with("precision_judge") && r.pipeline == "dual-ae").unwrap();
        assert_eq!(r.gan_seconds, None);
    }

    #[test]
    fn spread_and_across_seeds() {
        let s = Spread::of(&[1.0, 2.0, 3.0, f64::NAN]).unwrap();
        assert_eq!((s.mean, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert!((s.std - 1.0).abs() < 1e-12);
        assert!(Spread::of(&[]).is_none());
        let mut a =
            summarise_seed(1, &[pt("pixel", 10.0, 40.0, 0.6), pt("dual-ae", 5.0, 30.0, 0.9)], None, BTreeMap::new());
        let mut p2 = vec![pt("pixel", 10.0, 40.0, 0.6), pt("dual-ae", 5.0, 90.0, 0.9)];
        for p in &mut p2 {
            p.seed = 2;
        }
        let b = summarise_seed(2, &p2, None, BTreeMap::new());
        a.figures.insert("dual-ae".into(), [("sec_per_step".to_string(), 0.002)].into_iter().collect());
        let x = across(&[a, b]);
        let r = x.reaches.iter().find(|r| r.target == "fid_judge<=pixel_best" && r.pipeline == "dual-ae").unwrap();
        assert_eq!((r.reached, r.seeds), (1, 2));
        assert_eq!(r.speedup_gan_only.unwrap().mean, 2.0);
        assert_eq!(x.finals["dual-ae"]["fid_judge"].mean, 60.0);
        assert_eq!(x.figures["dual-ae"]["sec_per_step"].n, 1);
    }

    #[test]
    fn schedule_is_increasing_and_ends_at_budget() {
        assert_eq!(eval_schedule(25.0), vec![1.0, 2.0, 5.0, 10.0, 20.0, 25.0]);
        let s = eval_schedule(3000.0);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*s.last().unwrap(), 3000.0);
    }
}
