//! Integration tests: `dualspace train-map`, `encode` and `decode` on small
//! generated image folders (and on Fashion-MNIST with
//! `DUALSPACE_SLOW_TESTS=1`), resume, and one-line errors on bad input.
use crate::support::{fashion_mnist, run, run_err, run_ok, write_image_folder};
use dualspace_autoencoder::{load_mapping, read_codes};
use dualspace_tensor::checkpoint::read_tensors;
use std::path::Path;

/// Flags shared by every training call: small, single-threaded, no cache.
fn train_args<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train-map",
        "--dataset",
        data,
        "--out",
        out,
        "--data-cache",
        "none",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--batch-size",
        "8",
        "--eval-every",
        "5",
        "--checkpoint-every",
        "4",
    ];
    a.extend_from_slice(extra);
    a
}

fn folder(dir: &Path, size: u32) -> String {
    let root = dir.join(format!("shapes{size}"));
    write_image_folder(&root, &["red", "green", "blue"], 12, size);
    root.to_str().unwrap().to_string()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn train_encode_decode_round_trip_on_an_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 16);
    let run = dir.path().join("runs/ae");
    let run_s = run.to_str().unwrap();
    let out = run_ok(&train_args(&data, run_s, &["--steps", "12", "--latent-dim", "6"]));
    assert!(out.contains("trained ae on 3x16x16 images, latent 6") && out.contains("for 12 steps"), "{out}");
    assert!(out.contains("test reconstruction, all classes: MSE"), "{out}");
    for f in
        ["config.json", "meta.json", "model.safetensors", "optim.safetensors", "log.jsonl", "recon.png", "summary.json"]
    {
        assert!(run.join(f).exists(), "{f} missing in {}", run.display());
    }
    assert_eq!(json(&run.join("meta.json"))["step"], 12);
    // Logged at steps 5, 10 and the end; recon.png is a real row above a decoded row.
    let steps: Vec<u64> = std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![5, 10, 12]);
    let (w, h) = image::image_dimensions(run.join("recon.png")).unwrap();
    assert_eq!(h, 2 * 18 + 2, "two rows of 16 px cells, got {w}x{h}");

    let codes = dir.path().join("codes.safetensors");
    let out = run_ok(&[
        "encode",
        "--map",
        run_s,
        "--dataset",
        &data,
        "--data-cache",
        "none",
        "--out",
        codes.to_str().unwrap(),
    ]);
    assert!(out.contains("codes of dimension 6"), "{out}");
    let c = read_codes(&codes).unwrap();
    let ds = dualspace_data::load(&data, &dualspace_data::LoadOptions::default()).unwrap();
    assert_eq!((c.len(), c.latent_dim()), (ds.train.len() as i64, 6));
    assert!(c.labels.equal(&ds.train.labels));
    let m = c.codes.mean_dim(0, false, tch::Kind::Double).abs().max().double_value(&[]);
    assert!(m < 1e-5, "standardised codes have mean {m}");
    // The raw codes are what the saved map gives for the same images.
    let map = load_mapping(&run, tch::Device::Cpu).unwrap();
    let direct = map.encode(&ds.train.images).unwrap();
    let diff = dualspace_tensor::max_abs_diff(&c.raw(), &direct);
    assert!(diff < 1e-4, "codes file differs from the map's codes by {diff}");

    let grid = dir.path().join("decoded.png");
    let out = run_ok(&[
        "decode",
        "--map",
        run_s,
        "--codes",
        codes.to_str().unwrap(),
        "--count",
        "10",
        "--ncol",
        "5",
        "--out",
        grid.to_str().unwrap(),
    ]);
    assert!(out.contains("grid of 10 decoded images"), "{out}");
    assert_eq!(image::image_dimensions(&grid).unwrap(), (5 * 18 + 2, 2 * 18 + 2));
}

#[test]
fn resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 16);
    for kind in ["ae", "vae"] {
        let straight = dir.path().join(format!("{kind}-straight"));
        let split = dir.path().join(format!("{kind}-split"));
        run_ok(&train_args(&data, straight.to_str().unwrap(), &["--kind", kind, "--steps", "10"]));
        run_ok(&train_args(&data, split.to_str().unwrap(), &["--kind", kind, "--steps", "6"]));
        // Resume takes the run's own kind and settings; only the new total is given.
        let out = run_ok(&train_args(&data, split.to_str().unwrap(), &["--resume", "--steps", "10"]));
        assert!(out.contains("for 10 steps"), "{out}");
        for file in ["model.safetensors", "optim.safetensors"] {
            let a = read_tensors(straight.join(file)).unwrap();
            let b = read_tensors(split.join(file)).unwrap();
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            for (name, t) in &a {
                assert!(t.equal(&b[name]), "{kind}: {file}: '{name}' differs between the straight and the resumed run");
            }
        }
    }
}

#[test]
fn pca_with_holdout_reports_seen_and_held_out_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 16);
    let run = dir.path().join("pca");
    let out =
        run_ok(&train_args(&data, run.to_str().unwrap(), &["--kind", "pca", "--latent-dim", "4", "--holdout", "blue"]));
    assert!(out.contains("fitted pca on 3x16x16 images, latent 4"), "{out}");
    assert!(out.contains("seen classes: MSE") && out.contains("held-out classes (blue): MSE"), "{out}");
    let s = json(&run.join("summary.json"));
    let (seen, held) = (s["test_seen"]["mse"].as_f64().unwrap(), s["test_heldout"]["mse"].as_f64().unwrap());
    // The blue channel pattern was never seen, so PCA cannot rebuild it.
    assert!(held > 5.0 * seen, "held-out MSE {held} vs seen {seen}");
    assert_eq!(json(&run.join("config.json"))["data"]["holdout"][0], "blue");
}

#[test]
fn bad_inputs_give_one_line_errors_naming_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let data = folder(dir.path(), 16);
    let ae = dir.path().join("ae");
    let ae_s = ae.to_str().unwrap();
    run_ok(&train_args(&data, ae_s, &["--steps", "2"]));
    let pca = dir.path().join("pca");
    run_ok(&train_args(&data, pca.to_str().unwrap(), &["--kind", "pca", "--latent-dim", "4"]));

    // A data set of another image size.
    let e = run_err(&[
        "encode",
        "--map",
        ae_s,
        "--dataset",
        &data,
        "--size",
        "8",
        "--data-cache",
        "none",
        "--out",
        dir.path().join("c.safetensors").to_str().unwrap(),
    ]);
    assert!(e.contains("3x8x8 images") && e.contains("takes 3x16x16 images"), "{e}");
    assert!(!dir.path().join("c.safetensors").exists());

    // A codes file whose dimension does not match the map.
    let codes = dir.path().join("pca-codes.safetensors");
    run_ok(&[
        "encode",
        "--map",
        pca.to_str().unwrap(),
        "--dataset",
        &data,
        "--data-cache",
        "none",
        "--out",
        codes.to_str().unwrap(),
    ]);
    let png = dir.path().join("g.png");
    let e = run_err(&["decode", "--map", ae_s, "--codes", codes.to_str().unwrap(), "--out", png.to_str().unwrap()]);
    assert!(e.contains("4-dimensional codes") && e.contains("latent dimension 32"), "{e}");
    assert!(!png.exists());

    // Resuming a run as another kind or size.
    let e = run_err(&train_args(&data, ae_s, &["--resume", "--kind", "vae", "--steps", "4"]));
    assert!(e.contains("the map it holds (ae on 3x16x16") && e.contains("a request for vae on 3x16x16"), "{e}");
    let e = run_err(&train_args(&data, ae_s, &["--resume", "--latent-dim", "8", "--steps", "4"]));
    assert!(e.contains("latent 32") && e.contains("latent 8"), "{e}");
    // A fresh run does not overwrite a trained one.
    let e = run_err(&train_args(&data, ae_s, &["--steps", "2"]));
    assert!(e.contains("already holds a trained map"), "{e}");

    // A checkpoint of another kind under a map's name.
    std::fs::copy(pca.join("pca.safetensors"), ae.join("model.safetensors")).unwrap();
    let e = run_err(&["decode", "--map", ae_s, "--codes", codes.to_str().unwrap(), "--out", png.to_str().unwrap()]);
    assert!(e.contains("describes ae on 3x16x16") && e.contains("another model kind"), "{e}");

    // Not a run folder, not a codes file.
    let e = run_err(&["decode", "--map", dir.path().to_str().unwrap(), "--codes", "x", "--out", "y.png"]);
    assert!(e.contains("no config.json"), "{e}");
    let e = run_err(&["decode", "--map", pca.to_str().unwrap(), "--codes", png.to_str().unwrap(), "--out", "y.png"]);
    assert!(e.contains("file not found") || e.contains("not a readable safetensors"), "{e}");

    // encode and decode keep an existing output unless --force; a folder is never one.
    let (pca_s, codes_s) = (pca.to_str().unwrap(), codes.to_str().unwrap());
    let enc = |out: &str, force: bool| {
        let mut a = vec!["encode", "--map", pca_s, "--dataset", data.as_str(), "--data-cache", "none", "--out", out];
        if force {
            a.push("--force");
        }
        run(&a)
    };
    let before = std::fs::read(&codes).unwrap();
    let e = run_err(&["encode", "--map", pca_s, "--dataset", &data, "--data-cache", "none", "--out", codes_s]);
    assert!(e.contains("already exists") && e.contains("--force"), "{e}");
    assert_eq!(std::fs::read(&codes).unwrap(), before, "a refused encode changed the file");
    assert!(enc(codes_s, true).0, "encode --force overwrites");
    let (ok, _, err) = enc(dir.path().to_str().unwrap(), true);
    assert!(!ok && err.contains("is a folder"), "{err}");
    let grid = dir.path().join("grid.png");
    let decode = ["decode", "--map", pca_s, "--codes", codes_s, "--out", grid.to_str().unwrap()];
    run_ok(&decode);
    let e = run_err(&decode);
    assert!(e.contains("grid.png already exists"), "{e}");
    run_ok(&[&decode[..], &["--force"]].concat());

    // No steps, and a resume without a new total.
    let e = run_err(&train_args(&data, ae_s, &["--steps", "0"]));
    assert!(e.contains("--steps must be at least 1"), "{e}");
    let e = run_err(&train_args(&data, ae_s, &["--resume"]));
    assert!(e.contains("--resume needs a new total"), "{e}");
}

/// AE vs PCA at latent 32 on the real Fashion-MNIST (minutes; opt-in).
#[test]
fn fashion_mnist_ae_and_pca_reconstruct() {
    if std::env::var("DUALSPACE_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipping: set DUALSPACE_SLOW_TESTS=1 to train on Fashion-MNIST");
        return;
    }
    let Some(_) = fashion_mnist() else { return };
    let dir = tempfile::tempdir().unwrap();
    let psnr = |kind: &str, extra: &[&str]| {
        let out = dir.path().join(kind);
        let mut a = vec!["train-map", "--kind", kind, "--out", out.to_str().unwrap(), "--data-cache", "none"];
        a.extend_from_slice(extra);
        let text = run_ok(&a);
        eprintln!("{text}");
        json(&out.join("summary.json"))["test"]["psnr"].as_f64().unwrap()
    };
    let ae = psnr("ae", &["--steps", "1000", "--eval-every", "500"]);
    let pca = psnr("pca", &["--latent-dim", "32"]);
    assert!(ae > 17.5, "AE test PSNR {ae} dB after 1000 steps");
    assert!(pca > 18.0, "PCA test PSNR {pca} dB");
}
