//! Integration tests: `dualspace data inspect` on generated folders, on the
//! real Fashion-MNIST and dog photos when present, and on bad inputs.
use crate::support::{dogs64, fashion_mnist, run_err, run_ok, write_image_folder};

fn png_size(path: &std::path::Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn inspect_folder_prints_counts_holdout_and_writes_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bugs");
    write_image_folder(&root, &["ant", "bee", "cat"], 10, 12);
    std::fs::write(root.join("index.csv"), "file,class\n").unwrap();
    let grid = dir.path().join("grid.png");
    let cache = dir.path().join("cache");
    let args = [
        "data",
        "inspect",
        "--dataset",
        root.to_str().unwrap(),
        "--holdout",
        "BEE",
        "--per-class",
        "4",
        "--out",
        grid.to_str().unwrap(),
        "--data-cache",
        cache.to_str().unwrap(),
    ];
    let out = run_ok(&args);
    assert!(out.contains("3 x 12x12 (RGB), 3 classes"), "{out}");
    // A seeded 10% of each class is the test split; the held-out class leaves training.
    let line = |name: &str| {
        out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} line in {out}")).to_string()
    };
    let words = |l: String| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(words(line("ant"))[1..3], ["9", "1"]);
    assert_eq!(words(line("bee"))[1..3], ["0", "1"]);
    assert!(line("bee").contains("held out (9 training images removed)"), "{out}");
    assert_eq!(words(line("total"))[1..3], ["18", "3"]);
    assert!(out.contains("load time") && out.contains("cached to"), "{out}");
    // One row of 4 per class, 12 px cells with 2 px padding.
    assert_eq!(png_size(&grid), (4 * 14 + 2, 3 * 14 + 2));
    let again = run_ok(&args);
    assert!(again.contains("from cache"), "{again}");
}

#[test]
fn inspect_real_fashion_mnist() {
    let Some(fm) = fashion_mnist() else { return };
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("fm.png");
    let spec = format!("fashion-mnist:{}", fm.display());
    let out = run_ok(&[
        "data",
        "inspect",
        "--dataset",
        &spec,
        "--holdout",
        "ankle-boot",
        "--out",
        grid.to_str().unwrap(),
        "--data-cache",
        "none",
    ]);
    assert!(out.contains("1 x 28x28 (gray), 10 classes"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("t-shirt") && l.contains("6000") && l.contains("1000")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("total") && l.contains("54000") && l.contains("10000")), "{out}");
    assert!(out.contains("ankle-boot (6000 training images removed"), "{out}");
    assert_eq!(png_size(&grid), (8 * 30 + 2, 10 * 30 + 2));
}

#[test]
fn inspect_real_dog_photos() {
    let Some(dogs) = dogs64() else { return };
    let out = run_ok(&["data", "inspect", "--dataset", dogs.to_str().unwrap(), "--size", "32", "--data-cache", "none"]);
    assert!(out.contains("3 x 32x32 (RGB), 10 classes"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("beagle")), "{out}");
}

#[test]
fn bad_data_inputs_fail_with_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let inspect = |spec: &str, extra: &[&str]| {
        let mut args = vec!["data", "inspect", "--dataset", spec, "--data-cache", "none"];
        args.extend_from_slice(extra);
        run_err(&args)
    };
    let e = inspect(&p("missing"), &[]);
    assert!(e.contains("missing") && e.contains("No such file"), "{e}");
    std::fs::create_dir(p("empty")).unwrap();
    let e = inspect(&p("empty"), &[]);
    assert!(e.contains("empty folder"), "{e}");
    write_image_folder(&dir.path().join("corrupt"), &["a", "b"], 3, 8);
    std::fs::write(dir.path().join("corrupt/b/2.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let e = inspect(&p("corrupt"), &[]);
    assert!(e.contains("b/2.png") && e.contains("cannot decode image"), "{e}");
    write_image_folder(&dir.path().join("one"), &["solo"], 2, 8);
    let e = inspect(&p("one"), &[]);
    assert!(e.contains("only one class folder"), "{e}");
    write_image_folder(&dir.path().join("ok"), &["a", "b"], 2, 8);
    let e = inspect(&p("ok"), &["--holdout", "c"]);
    assert!(e.contains("unknown class 'c'; known classes: a, b"), "{e}");
    let e = inspect(&p("ok"), &["--size", "0"]);
    assert!(e.contains("--size must be at least 1"), "{e}");
    std::fs::create_dir(p("idx")).unwrap();
    std::fs::write(dir.path().join("idx/train-images-idx3-ubyte"), [0u8, 0, 9, 3]).unwrap();
    let e = inspect(&format!("mnist:{}", p("idx")), &[]);
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("wrong IDX magic"), "{e}");
}
