//! Integration tests: `dualspace reproduce --quick` end to end on a small
//! generated data set (every report section, finite numbers, every file),
//! Ctrl-C leaving a consistent folder, and one-line errors on bad input.
use crate::support::{dualspace, run_err, signal_after_lines, write_image_folder};
use std::path::Path;

/// Four classes of 16x16 RGB images, 60 each: a seeded tenth of each class
/// is the test split.
fn folder(dir: &Path) -> String {
    let root = dir.join("toys");
    write_image_folder(&root, &["red", "green", "blue", "grey"], 60, 16);
    root.display().to_string()
}

fn quick_args<'a>(data: &'a str, out: &'a str, cache: &'a str) -> Vec<&'a str> {
    vec![
        "reproduce",
        "--quick",
        "--dataset",
        data,
        "--holdout",
        "blue",
        "--data-cache",
        "none",
        "--judge-cache",
        cache,
        "--eval-n",
        "40",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        out,
    ]
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Every number in a JSON value (recursively).
fn numbers(v: &serde_json::Value, out: &mut Vec<f64>) {
    match v {
        serde_json::Value::Number(n) => out.push(n.as_f64().unwrap()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| numbers(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| numbers(x, out)),
        _ => {}
    }
}

#[test]
fn quick_reproduce_writes_every_section_and_finite_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path());
    let out = dir.path().join("run");
    let cache = dir.path().join("judges").display().to_string();
    let mut args = quick_args(&data, out.to_str().unwrap(), &cache);
    args.extend([
        "--map",
        "ae,pca",
        "--seeds",
        "2",
        "--pixel-budget-s",
        "3",
        "--map-budget-s",
        "2",
        "--latent-budget-s",
        "2",
        "--target-fid",
        "500",
    ]);
    let o = dualspace().args(&args).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "reproduce failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("expected duration: about"), "{stderr}");
    assert!(stdout.contains("Claim 1") && stdout.contains("Claim 2"), "{stdout}");

    for f in ["config.json", "environment.json", "evals.jsonl", "summary.json", "report.md", "report.html"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["per_seed"].as_array().unwrap().len(), 2);
    assert_eq!(summary["holdout"][0], "blue");
    let mut nums = Vec::new();
    numbers(&summary["across"], &mut nums);
    numbers(&summary["floor"], &mut nums);
    assert!(nums.len() > 100, "only {} numbers in the summary", nums.len());
    assert!(nums.iter().all(|x| x.is_finite()), "non-finite numbers in the summary");
    // Every pipeline of both seeds was evaluated, with every metric.
    let evals: Vec<serde_json::Value> = std::fs::read_to_string(out.join("evals.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for seed in [0, 1] {
        for p in ["pixel", "dual-ae", "dual-pca"] {
            let pts: Vec<_> = evals.iter().filter(|e| e["seed"] == seed && e["pipeline"] == p).collect();
            assert!(!pts.is_empty(), "no evaluation of {p}, seed {seed}");
            for k in ["fid_judge", "kid_judge", "precision_judge", "recall_judge", "coverage_judge", "heldout_argmax"] {
                assert!(pts[0]["metrics"][k].as_f64().is_some_and(f64::is_finite), "{p} {k}: {}", pts[0]);
            }
            let t: Vec<f64> = pts.iter().map(|e| e["gan_seconds"].as_f64().unwrap()).collect();
            assert!(t.windows(2).all(|w| w[0] < w[1]), "{p}: evaluation times not increasing {t:?}");
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for section in [
        "## Verdict",
        "## Setup",
        "## Time to quality",
        "## Fidelity and diversity",
        "## The mapping",
        "## Held-out classes",
        "## Per-step costs",
        "## Plots",
        "## Samples",
        "## Environment",
        "## Regenerate",
    ] {
        assert!(report.contains(section), "{section} missing from the report");
    }
    assert!(report.contains("fid_judge<=pixel_best") && report.contains("fid_judge<=500"), "targets missing");
    assert!(report.contains("| dual-pca |") || report.contains("dual-pca"), "dual-pca missing");
    // Every image the report shows exists.
    for line in report.lines().filter(|l| l.starts_with("![")) {
        let path = &line[line.find("](").unwrap() + 2..line.len() - 1];
        assert!(out.join(path).exists(), "{path} is in the report but not on disk");
    }
    for f in
        ["plots/fid_judge.png", "plots/losses-pixel.png", "grids/seed0-dual-ae.png", "grids/seed1-heldout-pixel.png"]
    {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Time to quality</h2>") && html.contains("<table>"));
    // The report can be rebuilt from the measurements alone, to the same numbers.
    std::fs::remove_file(out.join("report.md")).unwrap();
    let o = dualspace().args(["reproduce", "--rebuild-report", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains(&format!("from {} evaluation points", evals.len())), "{said}");
    assert!(json(&out.join("summary.json"))["across"] == summary["across"], "the rebuilt summary differs");
    assert!(std::fs::read_to_string(out.join("report.md")).unwrap().contains("## Time to quality"));
    // A second run into the same folder is refused: nothing is overwritten.
    let e = run_err(&args);
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn ctrl_c_leaves_a_consistent_folder_with_an_interrupted_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path());
    let out = dir.path().join("run");
    let cache = dir.path().join("judges").display().to_string();
    let mut args = quick_args(&data, out.to_str().unwrap(), &cache);
    args.extend(["--pixel-budget-s", "600"]);
    let mut cmd = dualspace();
    cmd.args(&args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    // Wait for the first evaluations of the pixel GAN, then press Ctrl-C.
    let o = signal_after_lines(cmd, &out.join("evals.jsonl"), 2, 300, "INT");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("error: interrupted")), "{stderr}");
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["status"], "interrupted");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("INTERRUPTED") && report.contains("## Time to quality"), "{report}");
    // No temporary file is left behind.
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".tmp-"), "temporary file {name} left in the run folder");
    }
}

#[test]
fn reproduce_refuses_bad_arguments_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path());
    let cache = dir.path().join("judges").display().to_string();
    let out = dir.path().join("run").display().to_string();
    let with = |extra: &[&str]| {
        let mut a = vec!["reproduce", "--quick", "--data-cache", "none", "--judge-cache", &cache, "--out", &out];
        a.extend_from_slice(extra);
        if !extra.contains(&"--dataset") {
            a.extend(["--dataset", &data]);
        }
        run_err(&a)
    };
    assert!(with(&["--map", "gan"]).contains("ae, vae and pca"));
    assert!(with(&["--seeds", "0"]).contains("--seeds 0 must be between 1 and 100"));
    assert!(with(&["--seeds", "1000000"]).contains("must be between 1 and 100"));
    assert!(with(&["--threads", "100000"]).contains("--threads 100000 is more than 4x"));
    assert!(with(&["--pixel-budget-s=-1"]).contains("--pixel-budget-s must be a positive"));
    assert!(with(&["--latent-hidden", "x"]).contains("--latent-hidden 'x'"));
    let e = with(&["--holdout", "purple"]);
    assert!(e.contains("unknown class 'purple'") && e.contains("known classes"), "{e}");
    let e = with(&["--dataset", "/nonexistent/folder"]);
    assert!(e.contains("/nonexistent/folder"), "{e}");
    let e = with(&["--device", "cuda:7"]);
    assert!(e.contains("cuda:7"), "{e}");
    assert!(!Path::new(&out).exists(), "a failed start left a run folder behind");
}
