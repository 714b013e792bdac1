//! Helpers shared by the integration tests.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `dualspace` binary under test.
pub fn dualspace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dualspace"));
    c.env("OMP_NUM_THREADS", "1");
    c
}

/// Runs `dualspace args...`, returning (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out: Output = dualspace().args(args).output().expect("running dualspace");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Runs and asserts success, returning stdout.
pub fn run_ok(args: &[&str]) -> String {
    let (ok, out, err) = run(args);
    assert!(ok, "dualspace {args:?} failed:\nstdout: {out}\nstderr: {err}");
    out
}

/// Runs and asserts a clean failure: non-zero exit, a one-line `error:`
/// message, no panic. Returns the message.
pub fn run_err(args: &[&str]) -> String {
    let (ok, out, err) = run(args);
    assert!(!ok, "dualspace {args:?} should have failed:\nstdout: {out}");
    assert!(!err.contains("panicked"), "dualspace {args:?} panicked:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{err}");
    lines[0].to_string()
}

/// Starts `cmd`, waits until `watch` has at least `lines` lines (at most
/// `timeout_s` seconds, failing if the process ends first), sends it
/// `signal` (`INT`, `TERM`, ...) and returns its output.
pub fn signal_after_lines(mut cmd: Command, watch: &Path, lines: usize, timeout_s: u64, signal: &str) -> Output {
    use std::time::{Duration, Instant};
    let mut child = cmd.spawn().expect("starting dualspace");
    let t0 = Instant::now();
    while std::fs::read_to_string(watch).map_or(0, |s| s.lines().count()) < lines {
        assert!(
            t0.elapsed() < Duration::from_secs(timeout_s),
            "{} has fewer than {lines} lines after {timeout_s} s",
            watch.display()
        );
        assert!(child.try_wait().unwrap().is_none(), "the process ended before {} had {lines} lines", watch.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
    assert!(kill.success(), "kill -{signal} failed");
    child.wait_with_output().unwrap()
}

/// Where Debian's Fashion-MNIST lives, when installed.
pub fn fashion_mnist() -> Option<PathBuf> {
    let p = Path::new("/usr/share/datasets/fashion-mnist");
    if p.join("train-images-idx3-ubyte.gz").exists() {
        Some(p.to_path_buf())
    } else {
        eprintln!("skipping: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
        None
    }
}

/// The shared dog photos, when present beside the checkout.
pub fn dogs64() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/dogs64");
    if p.join("beagle").is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared/datasets/dogs64 is not present");
        None
    }
}

/// Writes a tiny image folder `root/<class>/<i>.png` with `per_class` images
/// of `size`x`size` RGB per class; each class has its own colour pattern.
pub fn write_image_folder(root: &Path, classes: &[&str], per_class: usize, size: u32) {
    for (c, name) in classes.iter().enumerate() {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(size, size, |x, y| {
                let v = ((x * 7 + y * 3 + i as u32 * 11) % 64) as u8;
                let mut px = [v, v, v];
                px[c % 3] = px[c % 3].saturating_add(150);
                image::Rgb(px)
            });
            img.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
}
