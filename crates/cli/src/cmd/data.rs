//! `dualspace data ...`, and [`DatasetArgs`], the data set flags every
//! command that reads images flattens in.
use anyhow::{bail, Context, Result};
use dualspace_data::{CacheStatus, Dataset, LoadInfo, Source};
use std::path::PathBuf;

/// Which data set to load and how; `#[command(flatten)]` it into a command.
#[derive(clap::Args, Debug, Clone)]
pub struct DatasetArgs {
    /// Data set: fashion-mnist, mnist, cifar10 (default locations), NAME:PATH
    /// for one of those at another location, or a folder of <class>/*.png|jpg.
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Resize and center-crop images to this square side (default: the source's own size).
    #[arg(long)]
    pub size: Option<usize>,
    /// Colour channels: 1 (gray) or 3 (RGB); gray sources are repeated to RGB,
    /// colour ones converted to luma (default: the source's own, RGB for folders).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Class names to hold out of the training split, comma-separated (e.g. ankle-boot);
    /// they stay in the test split for evaluation.
    #[arg(long, default_value = "")]
    pub holdout: String,
    /// Folder where decoded data sets are cached for fast reloads; "none" disables the cache.
    #[arg(long, default_value = ".cache/data")]
    pub data_cache: String,
}

impl DatasetArgs {
    /// The held-out class names.
    pub fn holdout_names(&self) -> Vec<String> {
        crate::common::split_list(&self.holdout)
    }

    /// The cache folder, or None when disabled.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        let s = self.data_cache.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(PathBuf::from(s))
        }
    }

    /// The load options these flags describe, with `seed` for splits of
    /// sources that have no test split of their own.
    pub fn options(&self, seed: u64) -> Result<dualspace_data::LoadOptions> {
        if self.size == Some(0) {
            bail!("--size must be at least 1");
        }
        if let Some(c) = self.channels {
            if c != 1 && c != 3 {
                bail!("--channels must be 1 (gray) or 3 (RGB), got {c}");
            }
        }
        Ok(dualspace_data::LoadOptions {
            size: self.size,
            channels: self.channels,
            holdout: self.holdout_names(),
            seed,
            cache_dir: self.cache_dir(),
        })
    }

    /// Loads the data set.
    pub fn load(&self, seed: u64) -> Result<Dataset> {
        self.load_with_info(seed).map(|(d, _)| d)
    }

    /// Loads the data set, also saying how long it took and whether the
    /// cache was used.
    pub fn load_with_info(&self, seed: u64) -> Result<(Dataset, LoadInfo)> {
        let opts = self.options(seed)?;
        dualspace_data::load_with_info(&self.dataset, &opts)
            .with_context(|| format!("loading data set '{}'", self.dataset))
    }
}

/// Data set commands.
#[derive(clap::Subcommand, Debug)]
pub enum DataCmd {
    /// Print classes and counts, load time, and write a grid of samples per class.
    Inspect(InspectArgs),
}

/// `data inspect` arguments.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Write a PNG grid of test images here: one row per class, held-out classes framed in red.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Images per class (grid row).
    #[arg(long, default_value_t = 8)]
    pub per_class: usize,
    /// Seed of the train/test split of folders (sources without their own split).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs a data command.
pub fn run(cmd: DataCmd) -> Result<()> {
    match cmd {
        DataCmd::Inspect(a) => inspect(a),
    }
}

fn source_str(s: &Source) -> String {
    match s {
        Source::Idx { dir, .. } => format!("IDX files in {}", dir.display()),
        Source::Cifar10 { dir } => format!("CIFAR-10 batches in {}", dir.display()),
        Source::Folder { dir } => format!("image folder {}", dir.display()),
    }
}

fn inspect(a: InspectArgs) -> Result<()> {
    if a.per_class == 0 || a.per_class > 64 {
        bail!("--per-class must be between 1 and 64, got {}", a.per_class);
    }
    let (d, info) = a.data.load_with_info(a.seed)?;
    println!("data set   {} ({})", d.name, source_str(&info.source));
    println!(
        "images     {} x {}x{} ({}), {} classes",
        d.channels,
        d.size,
        d.size,
        if d.channels == 1 { "gray" } else { "RGB" },
        d.n_classes()
    );
    let cache = match &info.cache {
        CacheStatus::Off => "cache off".to_string(),
        CacheStatus::Hit(p) => format!("from cache {}", p.display()),
        CacheStatus::Written(p) => format!("decoded, cached to {}", p.display()),
        CacheStatus::NotWritten(why) => format!("decoded, not cached: {why}"),
    };
    println!("load time  {:.3} s ({cache})", info.seconds);
    let n = d.n_classes();
    let (train, test) = (d.train.class_counts(n), d.test.class_counts(n));
    let width = d.classes.iter().map(|c| c.len()).max().unwrap_or(5).max(5);
    println!();
    println!("{:<width$}  {:>7}  {:>7}", "class", "train", "test");
    for c in 0..n {
        let note = if d.holdout.contains(&(c as i64)) {
            format!("  held out ({} training images removed)", info.removed[c])
        } else {
            String::new()
        };
        println!("{:<width$}  {:>7}  {:>7}{note}", d.classes[c], train[c], test[c]);
    }
    println!("{:<width$}  {:>7}  {:>7}", "total", d.train.len(), d.test.len());
    if !d.holdout.is_empty() {
        let removed: usize = info.removed.iter().sum();
        println!(
            "\nheld out   {} ({removed} training images removed; test: {} seen, {} held-out)",
            d.holdout_names().join(", "),
            d.test_seen().len(),
            d.test_heldout().len()
        );
    }
    if let Some(out) = &a.out {
        let rows = d.test.class_rows(n, a.per_class);
        let borders = (0..n)
            .flat_map(|c| {
                let col = d.holdout.contains(&(c as i64)).then_some([220u8, 40, 40]);
                std::iter::repeat_n(col, a.per_class)
            })
            .collect();
        let opts = dualspace_tensor::image::GridOptions {
            ncol: a.per_class,
            borders: (!d.holdout.is_empty()).then_some(borders),
            ..Default::default()
        };
        dualspace_tensor::image::save_grid(out, &rows, &opts).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "grid       {} ({} rows of {} test images, in class order{})",
            out.display(),
            n,
            a.per_class,
            if d.holdout.is_empty() { "" } else { "; held-out rows framed in red" }
        );
    }
    Ok(())
}
