//! Integration tests: `dualspace train-pixel-gan`, `train-latent-gan` and
//! `sample` on a tiny generated image folder: run folders, resume through
//! the CLI (same final weights as an uninterrupted run), samples decoded
//! through a map, and one-line errors on bad input.
use crate::support::{run_err, run_ok, write_image_folder};
use dualspace_tensor::checkpoint::read_tensors;
use std::path::Path;

/// A 3-class RGB folder of 16x16 images.
fn folder(dir: &Path) -> String {
    let root = dir.join("shapes");
    write_image_folder(&root, &["red", "green", "blue"], 12, 16);
    root.display().to_string()
}

/// `train-map` of a PCA map of `dim` components on `data` into `out`.
fn pca_args<'a>(data: &'a str, out: &'a str, dim: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train-map",
        "--kind",
        "pca",
        "--latent-dim",
        dim,
        "--dataset",
        data,
        "--data-cache",
        "none",
        "--out",
        out,
    ];
    a.extend_from_slice(extra);
    a
}

/// A PCA map of `dim` components on `data`, written to `out`.
fn train_pca(data: &str, out: &str, dim: &str) {
    run_ok(&pca_args(data, out, dim, &[]));
}

fn pixel_args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train-pixel-gan",
        "--dataset",
        data,
        "--data-cache",
        "none",
        "--out",
        out,
        "--batch-size",
        "8",
        "--g-width",
        "16",
        "--d-width",
        "16",
        "--noise-dim",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--log-every",
        "1",
    ];
    a.extend_from_slice(extra);
    a
}

fn same_tensors(a: &Path, b: &Path) {
    let (x, y) = (read_tensors(a).unwrap(), read_tensors(b).unwrap());
    assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
    for (k, t) in &x {
        assert!(t.equal(&y[k]), "{k} differs between {} and {}", a.display(), b.display());
    }
}

#[test]
fn pixel_gan_writes_its_run_folder_and_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path());
    let whole = dir.path().join("whole").display().to_string();
    let out = run_ok(&pixel_args(&data, &whole, &["--steps", "8", "--sample-every", "4", "--checkpoint-every", "4"]));
    assert!(out.contains("pixel-gan: 8 steps") && out.contains("ms/step"), "{out}");
    let w = Path::new(&whole);
    for f in
        ["checkpoint/meta.json", "checkpoint/generator_ema.safetensors", "checkpoint/optim_d.safetensors", "log.jsonl"]
    {
        assert!(w.join(f).exists(), "{f} missing");
    }
    assert!(w.join("samples/step_0000004.png").exists() && w.join("samples/step_0000008.png").exists());
    let steps: Vec<u64> = std::fs::read_to_string(w.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());

    // Stopped at 5, resumed to 8: the same weights as the run that never stopped.
    let split = dir.path().join("split").display().to_string();
    run_ok(&pixel_args(&data, &split, &["--steps", "5", "--checkpoint-every", "0"]));
    let e = run_err(&pixel_args(&data, &split, &["--steps", "8"]));
    assert!(e.contains("already holds a pixel-gan run") && e.contains("--resume"), "{e}");
    let out = run_ok(&pixel_args(&data, &split, &["--steps", "8", "--resume"]));
    assert!(out.contains("pixel-gan: 8 steps"), "{out}");
    for net in ["generator", "discriminator", "generator_ema", "optim_g", "optim_d"] {
        same_tensors(
            &w.join(format!("checkpoint/{net}.safetensors")),
            &Path::new(&split).join(format!("checkpoint/{net}.safetensors")),
        );
    }

    // Sampling: a grid, the tensor for `eval`, single images, an interpolation.
    let s = dir.path().join("samples");
    let s_str = s.display().to_string();
    let out = run_ok(&[
        "sample",
        "--gan",
        &whole,
        "--n",
        "10",
        "--out",
        &s_str,
        "--each",
        "--interpolate",
        "2x5",
        "--device",
        "cpu",
    ]);
    assert!(out.contains("sampled 10 images of 3x16x16") && out.contains("(step 8)"), "{out}");
    let t = read_tensors(s.join("samples.safetensors")).unwrap();
    assert_eq!(t["images"].size(), vec![10, 3, 16, 16]);
    assert!(t["images"].abs().max().double_value(&[]) <= 1.0);
    assert!(s.join("grid.png").exists() && s.join("images/9.png").exists());
    let (iw, ih) = image::image_dimensions(s.join("interp.png")).unwrap();
    assert_eq!((iw, ih), (5 * 18 + 2, 2 * 18 + 2));
    // The same seed gives the same samples.
    let s2 = dir.path().join("again").display().to_string();
    run_ok(&["sample", "--gan", &whole, "--n", "10", "--out", &s2, "--device", "cpu"]);
    same_tensors(&s.join("samples.safetensors"), &Path::new(&s2).join("samples.safetensors"));
}

#[test]
fn latent_gan_trains_on_codes_and_samples_through_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path());
    let map = dir.path().join("pca").display().to_string();
    train_pca(&data, &map, "6");
    let codes = dir.path().join("codes.safetensors").display().to_string();
    run_ok(&["encode", "--map", &map, "--dataset", &data, "--data-cache", "none", "--out", &codes]);
    let lgan = dir.path().join("lgan").display().to_string();
    let out = run_ok(&[
        "train-latent-gan",
        "--codes",
        &codes,
        "--map",
        &map,
        "--out",
        &lgan,
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--g-hidden",
        "32",
        "--d-hidden",
        "32,32",
        "--loss",
        "wgan-gp",
        "--sample-every",
        "3",
        "--device",
        "cpu",
        "--threads",
        "1",
    ]);
    assert!(out.contains("latent-gan: 6 steps"), "{out}");
    let l = Path::new(&lgan);
    assert!(l.join("code_stats.safetensors").exists() && l.join("samples/step_0000006.png").exists());
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(l.join("checkpoint/config.json")).unwrap()).unwrap();
    assert_eq!((cfg["kind"].as_str(), cfg["train"]["loss"].as_str()), (Some("latent-gan"), Some("wgan-gp")));
    assert_eq!(cfg["train"]["n_critic"], 5, "wgan-gp brings its five critic steps");
    // Resuming on other codes of the same length is refused; on its own codes it continues.
    let other = dir.path().join("codes-other.safetensors").display().to_string();
    run_ok(&["encode", "--map", &map, "--dataset", &data, "--holdout", "red", "--data-cache", "none", "--out", &other]);
    let resume = ["train-latent-gan", "--codes", &other, "--out", &lgan, "--steps", "8", "--resume", "--device", "cpu"];
    let e = run_err(&resume);
    assert!(e.contains("is not the codes file") && e.contains("codes.safetensors"), "{e}");
    let out = run_ok(&[&resume[..2], &[codes.as_str()], &resume[3..]].concat());
    assert!(out.contains("latent-gan: 8 steps"), "{out}");
    // `sample` finds the map recorded in the run and decodes to images.
    let s = dir.path().join("s");
    run_ok(&["sample", "--gan", &lgan, "--n", "7", "--out", s.to_str().unwrap(), "--device", "cpu"]);
    let t = read_tensors(s.join("samples.safetensors")).unwrap();
    assert_eq!(t["images"].size(), vec![7, 3, 16, 16]);
}

#[test]
fn gan_commands_refuse_bad_input_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path());
    let d = |p: &str| dir.path().join(p).display().to_string();
    let e = run_err(&["train-latent-gan", "--codes", &d("missing.safetensors"), "--out", &d("x"), "--steps", "2"]);
    assert!(e.contains("missing.safetensors") && e.contains("file not found"), "{e}");
    let e = run_err(&pixel_args(&data, &d("y"), &[]));
    assert!(e.contains("--steps or --budget-s"), "{e}");
    let e = run_err(&pixel_args(&data, &d("y"), &["--steps", "2", "--resume"]));
    assert!(e.contains("holds no checkpoint to resume from"), "{e}");
    let e = run_err(&pixel_args(&data, &d("y"), &["--budget-s=-3"]));
    assert!(e.contains("--budget-s must be a positive number"), "{e}");
    let e = run_err(&pixel_args(&data, &d("y"), &["--steps", "2", "--size", "30"]));
    assert!(e.contains("4 or 7 times a power of two") && e.contains("got 30"), "{e}");
    // Codes whose length does not fit the map.
    let map = d("pca");
    train_pca(&data, &map, "6");
    let map4 = d("pca4");
    train_pca(&data, &map4, "4");
    let codes = d("codes.safetensors");
    run_ok(&["encode", "--map", &map, "--dataset", &data, "--data-cache", "none", "--out", &codes]);
    let e = run_err(&["train-latent-gan", "--codes", &codes, "--map", &map4, "--out", &d("z"), "--steps", "2"]);
    assert!(e.contains("length 4") && e.contains("length 6"), "{e}");
    let e = run_err(&["train-latent-gan", "--codes", &codes, "--out", &d("z"), "--steps", "2", "--g-hidden", "a,b"]);
    assert!(e.contains("--g-hidden 'a,b'"), "{e}");
    // Sampling from something that is not a GAN run, or a pixel GAN with a map.
    let e = run_err(&["sample", "--gan", &map, "--out", &d("s")]);
    assert!(e.contains("not a GAN run"), "{e}");
    let e = run_err(&["sample", "--gan", &d("nowhere"), "--out", &d("s")]);
    assert!(e.contains("no GAN checkpoint"), "{e}");
    let pgan = d("pgan");
    run_ok(&pixel_args(&data, &pgan, &["--steps", "1"]));
    let e = run_err(&["sample", "--gan", &pgan, "--map", &map, "--out", &d("s")]);
    assert!(e.contains("is a pixel GAN"), "{e}");
    let e = run_err(&["sample", "--gan", &pgan, "--out", &d("s"), "--interpolate", "3"]);
    assert!(e.contains("ROWSxCOLS"), "{e}");
    let e = run_err(&["sample", "--gan", &pgan, "--out", &d("s"), "--interpolate", "1000x1000"]);
    assert!(e.contains("at most 50000 images"), "{e}");
    let e = run_err(&["sample", "--gan", &pgan, "--out", &d("s"), "--n", "100000000"]);
    assert!(e.contains("--n 100000000 must be between 1 and 50000"), "{e}");
    assert!(!Path::new(&d("s")).exists(), "a refused sample left a folder behind");
    let e = run_err(&["sample", "--gan", &pgan, "--out", &d("s"), "--device", "tpu"]);
    assert!(e.contains("unknown device 'tpu'"), "{e}");
    // A map is never trained into a GAN run folder, nor a GAN into a map's.
    let e = run_err(&pca_args(&data, &pgan, "4", &[]));
    assert!(e.contains("already holds a GAN run"), "{e}");
    let judge_dir = d("a-judge");
    std::fs::create_dir_all(&judge_dir).unwrap();
    std::fs::write(Path::new(&judge_dir).join("judge.safetensors"), b"{}").unwrap();
    let e = run_err(&pca_args(&data, &judge_dir, "4", &[]));
    assert!(e.contains("already holds a judge"), "{e}");
    assert_eq!(std::fs::read_dir(&judge_dir).unwrap().count(), 1, "nothing was written beside the judge");
    let e = run_err(&pixel_args(&data, &map, &["--steps", "1"]));
    assert!(e.contains("already holds another run (a map or a judge?)"), "{e}");
    let e = run_err(&[
        "judge",
        "train",
        "--dataset",
        &data,
        "--data-cache",
        "none",
        "--judge-cache",
        &d("jc"),
        "--out",
        &map,
    ]);
    assert!(e.contains("already holds a run that is not a judge"), "{e}");
    assert!(!Path::new(&d("jc")).exists(), "the refused judge was trained anyway");
    // Codes that include a class the map held out are refused.
    let map_red = d("pca-red");
    run_ok(&pca_args(&data, &map_red, "4", &["--holdout", "red"]));
    let e = run_err(&[
        "encode",
        "--map",
        &map_red,
        "--dataset",
        &data,
        "--holdout",
        "blue",
        "--data-cache",
        "none",
        "--out",
        &d("c3"),
    ]);
    assert!(e.contains("holding out [red]") && e.contains("--holdout red"), "{e}");
    // No steps at all; resuming a run of the other kind, or a map as a GAN.
    let e = run_err(&pixel_args(&data, &d("y"), &["--steps", "0"]));
    assert!(e.contains("--steps must be at least 1"), "{e}");
    let e = run_err(&["train-latent-gan", "--codes", &codes, "--out", &pgan, "--steps", "3", "--resume"]);
    assert!(e.contains("holds a pixel-gan run, not a latent-gan run"), "{e}");
    let e = run_err(&["encode", "--map", &pgan, "--dataset", &data, "--data-cache", "none", "--out", &d("c2")]);
    assert!(e.contains("this is a pixel-gan run folder, not a map") && e.contains("--gan"), "{e}");
    // A codes file with NaN in it is refused when read, not reported as divergence.
    let mut t = read_tensors(&codes).unwrap();
    let c = t.remove("codes").unwrap();
    let _ = c.get(0).get(0).fill_(f64::NAN);
    t.insert("codes".into(), c);
    let nan = d("nan.safetensors");
    let pairs: Vec<(&str, tch::Tensor)> = t.iter().map(|(k, v)| (k.as_str(), v.shallow_clone())).collect();
    dualspace_tensor::checkpoint::write_tensors(&nan, &pairs).unwrap();
    let e = run_err(&["train-latent-gan", "--codes", &nan, "--out", &d("w"), "--steps", "2"]);
    assert!(e.contains("nan.safetensors") && e.contains("NaN or infinite values"), "{e}");
    assert!(!Path::new(&d("w")).exists(), "a refused run left a folder behind");
}

#[test]
fn sigterm_stops_a_run_with_a_checkpoint_that_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path());
    let out = dir.path().join("pgan");
    let out_s = out.display().to_string();
    let mut cmd = crate::support::dualspace();
    cmd.args(pixel_args(&data, &out_s, &["--steps", "1000000"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let o = crate::support::signal_after_lines(cmd, &out.join("log.jsonl"), 3, 120, "TERM");
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "a stopped run exits cleanly:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint/meta.json")).unwrap()).unwrap();
    let step = meta["step"].as_u64().unwrap();
    assert!(step >= 2, "checkpoint at step {step}");
    let more = (step + 2).to_string();
    let resumed = run_ok(&pixel_args(&data, &out_s, &["--steps", &more, "--resume"]));
    assert!(resumed.contains(&format!("pixel-gan: {more} steps")), "{resumed}");
}
