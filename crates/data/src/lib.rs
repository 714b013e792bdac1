//! Data loading for dualspace: IDX (Fashion-MNIST, MNIST), CIFAR-10 binary
//! batches and image folders (`root/<class>/*.png|jpg`), decoded in
//! parallel, center-cropped and resized to a square, gray or RGB; held-out
//! classes; seeded epoch batches; and a cache of decoded data sets.
//!
//! [`load`] turns a data set name or path into a [`Dataset`] of u8 images and
//! i64 labels on the CPU, with the format's own train/test split where it has
//! one (a seeded, stratified split of folders otherwise) and the held-out
//! classes removed from the training split. [`Batches`] feeds a split to an
//! epoch-based training loop.
//!
//! Neighbours: builds on `dualspace-tensor` (seeding, image conversion,
//! atomic safetensors writes). Only the CLI (`dualspace-cli`) uses this
//! crate; the model crates (`dualspace-autoencoder`, `dualspace-latent-gan`,
//! `dualspace-pixel-gan`, `dualspace-eval`) take tensors and know nothing of
//! it.
#![warn(missing_docs)]
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Kind, Tensor};

mod batches;
pub mod cache;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod pixels;

pub use batches::{Batch, BatchOptions, Batches, EpochIter};

/// Errors of the data crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Anything wrong with the input that is not about one file.
    #[error("{0}")]
    Invalid(String),
    /// A file or folder that is wrong, and what is wrong with it.
    #[error("{}: {msg}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A file or folder that cannot be read. (The cause is part of the
    /// message rather than a `source`, so error chains print it once.)
    #[error("{}: {err}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// From the tensor crate.
    #[error(transparent)]
    Tensor(#[from] dualspace_tensor::Error),
    /// From libtorch (its message).
    #[error("libtorch: {0}")]
    Torch(String),
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e.to_string())
    }
}
/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::File`].
    pub fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::File { path: path.into(), msg: msg.into() }
    }
    /// An [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io { path: path.into(), err }
    }
}

/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"];
/// MNIST's class names, in label order.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
/// CIFAR-10's class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = cifar::CLASSES;
/// Where Debian's `dataset-fashion-mnist` package puts Fashion-MNIST.
pub const DEFAULT_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";
/// Where `mnist` is looked for by default.
pub const DEFAULT_MNIST: &str = "/usr/share/datasets/mnist";
/// Where `cifar10` is looked for by default (the folder of the binary
/// batches, or its parent).
pub const DEFAULT_CIFAR10: &str = "/usr/share/datasets/cifar10";
/// Share of each class of an image folder that goes to its test split.
pub const FOLDER_TEST_FRACTION: f64 = 0.1;
/// The seed stream of folder splits.
const SPLIT_STREAM: u64 = 0x5B17_0000;

/// Images and labels of one split.
#[derive(Debug)]
pub struct Split {
    /// u8 pixels, `[N, C, H, W]`, on the CPU.
    pub images: Tensor,
    /// Class indices, i64 `[N]`, on the CPU.
    pub labels: Tensor,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images as f32 in [-1, 1], `[N, C, H, W]`.
    pub fn float_images(&self) -> Tensor {
        dualspace_tensor::image::u8_to_unit(&self.images)
    }

    /// The labels as a vector.
    pub fn labels_vec(&self) -> Vec<i64> {
        Vec::<i64>::try_from(&self.labels.to_kind(Kind::Int64).contiguous()).unwrap_or_default()
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[i64]) -> Split {
        let idx = Tensor::from_slice(indices);
        Split { images: self.images.index_select(0, &idx), labels: self.labels.index_select(0, &idx) }
    }

    /// A second handle on the same tensors (no copy).
    pub fn shallow_clone(&self) -> Split {
        Split { images: self.images.shallow_clone(), labels: self.labels.shallow_clone() }
    }

    /// The images of the given classes, in their order here.
    pub fn only_classes(&self, classes: &[i64]) -> Split {
        self.filter(|l| classes.contains(&l))
    }

    /// The images of every class but the given ones, in their order here.
    pub fn without_classes(&self, classes: &[i64]) -> Split {
        self.filter(|l| !classes.contains(&l))
    }

    fn filter(&self, keep: impl Fn(i64) -> bool) -> Split {
        let idx: Vec<i64> =
            self.labels_vec().into_iter().enumerate().filter(|(_, l)| keep(*l)).map(|(i, _)| i as i64).collect();
        self.select(&idx)
    }

    /// The first `n` images (all when there are fewer).
    pub fn take(&self, n: usize) -> Split {
        let n = n.min(self.len()) as i64;
        Split { images: self.images.narrow(0, 0, n), labels: self.labels.narrow(0, 0, n) }
    }

    /// Images per class, for classes `0..n_classes` (labels outside are not counted).
    pub fn class_counts(&self, n_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; n_classes];
        for l in self.labels_vec() {
            if (0..n_classes as i64).contains(&l) {
                counts[l as usize] += 1;
            }
        }
        counts
    }

    /// Up to `per_class` images of each class `0..n_classes`, class by class,
    /// as f32 in [-1, 1]; rows short of images are filled with black
    /// (-1) ones. Ready for a grid with one row per class.
    pub fn class_rows(&self, n_classes: usize, per_class: usize) -> Tensor {
        let labels = self.labels_vec();
        let size = self.images.size();
        let mut rows = Vec::with_capacity(n_classes);
        for c in 0..n_classes as i64 {
            let mut idx: Vec<i64> =
                labels.iter().enumerate().filter(|(_, &l)| l == c).map(|(i, _)| i as i64).take(per_class).collect();
            let found = idx.len();
            idx.resize(per_class, 0);
            let mut row = self.select(&idx).float_images();
            if found < per_class && !self.is_empty() {
                let _ = row.narrow(0, found as i64, (per_class - found) as i64).fill_(-1.0);
            } else if self.is_empty() {
                row =
                    Tensor::full([per_class as i64, size[1], size[2], size[3]], -1.0, (Kind::Float, tch::Device::Cpu));
            }
            rows.push(row);
        }
        Tensor::cat(&rows, 0)
    }

    /// Batches of this split, epoch by epoch, on `device`.
    pub fn batches(&self, opts: &BatchOptions, device: tch::Device) -> Result<Batches> {
        Batches::new(self, opts, device)
    }
}

/// A loaded data set.
#[derive(Debug)]
pub struct Dataset {
    /// Short name (`fashion-mnist`, or the folder's name).
    pub name: String,
    /// Class names, index = label.
    pub classes: Vec<String>,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    /// Side of the square images.
    pub size: usize,
    /// Training split with the held-out classes removed.
    pub train: Split,
    /// Test split, all classes.
    pub test: Split,
    /// Indices of held-out classes.
    pub holdout: Vec<i64>,
}

impl Dataset {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// The test images of the classes that were trained on.
    pub fn test_seen(&self) -> Split {
        self.test.without_classes(&self.holdout)
    }

    /// The test images of the held-out classes (empty without hold-out).
    pub fn test_heldout(&self) -> Split {
        self.test.only_classes(&self.holdout)
    }

    /// The index of a class by name (case-insensitive; `-`, `_` and spaces
    /// alike). An unknown name is an error that lists the known ones.
    pub fn class_index(&self, name: &str) -> Result<i64> {
        class_index(&self.classes, name)
    }

    /// Names of the held-out classes.
    pub fn holdout_names(&self) -> Vec<String> {
        self.holdout.iter().map(|&i| self.classes[i as usize].clone()).collect()
    }
}

fn normalise(name: &str) -> String {
    name.trim().to_lowercase().replace(['_', ' '], "-")
}

/// The index of `name` in `classes` (case-insensitive; `-`, `_` and spaces
/// alike); an unknown name is an error that lists the known ones.
pub fn class_index(classes: &[String], name: &str) -> Result<i64> {
    let want = normalise(name);
    classes
        .iter()
        .position(|c| normalise(c) == want)
        .map(|i| i as i64)
        .ok_or_else(|| Error::Invalid(format!("unknown class '{name}'; known classes: {}", classes.join(", "))))
}

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Resize/center-crop to this square side (default: the source's).
    pub size: Option<usize>,
    /// Colour channels, 1 or 3 (default: the source's own; RGB for folders).
    pub channels: Option<usize>,
    /// Class names to hold out of the training split.
    pub holdout: Vec<String>,
    /// Seed for splits of sources without their own test split.
    pub seed: u64,
    /// Where decoded data sets are cached (None = no cache).
    pub cache_dir: Option<PathBuf>,
}

/// Where a data set comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A folder of IDX files; `fashion` picks Fashion-MNIST's class names
    /// over MNIST's digits.
    Idx {
        /// The folder.
        dir: PathBuf,
        /// Fashion-MNIST (true) or MNIST (false).
        fashion: bool,
    },
    /// A folder of CIFAR-10 binary batches.
    Cifar10 {
        /// The folder.
        dir: PathBuf,
    },
    /// A folder of `<class>/` image folders.
    Folder {
        /// The folder.
        dir: PathBuf,
    },
}

impl Source {
    /// Resolves a spec: `fashion-mnist`, `mnist`, `cifar10` (default
    /// locations), `NAME:PATH` for one of those elsewhere, or a path. A path
    /// holding `train-images-idx3-ubyte[.gz]` is read as IDX (Fashion-MNIST
    /// when the path mentions "fashion"), one holding `data_batch_1.bin` as
    /// CIFAR-10, any other folder as an image folder.
    pub fn resolve(spec: &str) -> Result<(String, Source)> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(Error::Invalid("empty data set name; use fashion-mnist, mnist, cifar10 or a folder".into()));
        }
        let (name, path) = match spec.split_once(':') {
            Some((n, p)) if known(n).is_some() => (known(n), Some(PathBuf::from(p))),
            _ => (known(spec), None),
        };
        let Some(name) = name else {
            let dir = PathBuf::from(spec);
            if let Some(src) = detect(&dir) {
                let name = match src {
                    Source::Idx { fashion: true, .. } => "fashion-mnist".to_string(),
                    Source::Idx { fashion: false, .. } => "mnist".to_string(),
                    Source::Cifar10 { .. } => "cifar10".to_string(),
                    Source::Folder { .. } => folder_name(&dir),
                };
                return Ok((name, src));
            }
            return Ok((folder_name(&dir), Source::Folder { dir }));
        };
        let dir = path.unwrap_or_else(|| {
            PathBuf::from(match name {
                "fashion-mnist" => DEFAULT_FASHION_MNIST,
                "mnist" => DEFAULT_MNIST,
                _ => DEFAULT_CIFAR10,
            })
        });
        let src = match name {
            "cifar10" => Source::Cifar10 { dir },
            n => Source::Idx { dir, fashion: n == "fashion-mnist" },
        };
        Ok((name.to_string(), src))
    }
}

fn known(name: &str) -> Option<&'static str> {
    match normalise(name).as_str() {
        "fashion-mnist" | "fashionmnist" => Some("fashion-mnist"),
        "mnist" => Some("mnist"),
        "cifar10" | "cifar-10" => Some("cifar10"),
        _ => None,
    }
}

fn detect(dir: &Path) -> Option<Source> {
    if !dir.is_dir() {
        return None;
    }
    if idx::IdxFiles::find(dir).is_some() {
        let fashion = dir.to_string_lossy().to_lowercase().contains("fashion");
        return Some(Source::Idx { dir: dir.to_path_buf(), fashion });
    }
    if cifar::CifarFiles::find(dir).is_some() {
        return Some(Source::Cifar10 { dir: dir.to_path_buf() });
    }
    None
}

fn folder_name(dir: &Path) -> String {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canon.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "folder".into())
}

/// Whether a load came from the cache.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheStatus {
    /// No cache folder was given.
    Off,
    /// Read from this cache file.
    Hit(PathBuf),
    /// Decoded, then written to this cache file.
    Written(PathBuf),
    /// Decoded; the cache could not be written (why).
    NotWritten(String),
}

/// How a load went.
#[derive(Debug, Clone)]
pub struct LoadInfo {
    /// The resolved source.
    pub source: Source,
    /// Wall-clock seconds of the whole load.
    pub seconds: f64,
    /// Whether the cache was used.
    pub cache: CacheStatus,
    /// Training images the hold-out removed, per class.
    pub removed: Vec<usize>,
}

/// Loads `spec`: `fashion-mnist`, `mnist`, `cifar10` (default locations),
/// `NAME:PATH` for another location, or a folder of `<class>/*.png|jpg`.
pub fn load(spec: &str, opts: &LoadOptions) -> Result<Dataset> {
    load_with_info(spec, opts).map(|(d, _)| d)
}

/// Decoded pixels of a whole source, before the hold-out.
struct Decoded {
    classes: Vec<String>,
    channels: usize,
    size: usize,
    /// (images, labels) of train and test, or of everything for folders.
    parts: Vec<(&'static str, Tensor, Tensor)>,
}

/// [`load`], also saying how long it took and whether the cache was used.
pub fn load_with_info(spec: &str, opts: &LoadOptions) -> Result<(Dataset, LoadInfo)> {
    let start = Instant::now();
    if opts.size == Some(0) {
        return Err(Error::Invalid("the image size must be at least 1".into()));
    }
    if let Some(c) = opts.channels {
        if c != 1 && c != 3 {
            return Err(Error::Invalid(format!("channels must be 1 (gray) or 3 (RGB), got {c}")));
        }
    }
    let (name, source) = Source::resolve(spec)?;
    // Everything needed to name and check a cache entry, without decoding.
    let plan = Plan::new(&name, &source, opts)?;
    // The hold-out names are checked before any decoding, so a typo fails fast.
    let mut holdout = Vec::new();
    for h in &opts.holdout {
        let i = class_index(&plan.classes, h)?;
        if !holdout.contains(&i) {
            holdout.push(i);
        }
    }
    holdout.sort();
    if holdout.len() >= plan.classes.len() {
        return Err(Error::Invalid("every class is held out; nothing is left to train on".into()));
    }

    let entry = opts.cache_dir.as_ref().map(|d| cache::CacheEntry::new(d, &plan.key));
    let cached = entry.as_ref().and_then(|e| e.read(&plan.meta)).and_then(|t| plan.check_cached(t));
    let (decoded, cache_status) = match (cached, &entry) {
        (Some(d), Some(e)) => (d, CacheStatus::Hit(e.tensors.clone())),
        _ => {
            let d = plan.decode()?;
            let status = match &entry {
                None => CacheStatus::Off,
                Some(e) => {
                    let tensors: Vec<(String, Tensor)> = d
                        .parts
                        .iter()
                        .flat_map(|(p, im, lb)| {
                            [(format!("{p}.images"), im.shallow_clone()), (format!("{p}.labels"), lb.shallow_clone())]
                        })
                        .collect();
                    let refs: Vec<(&str, Tensor)> =
                        tensors.iter().map(|(n, t)| (n.as_str(), t.shallow_clone())).collect();
                    match e.write(&plan.meta, &refs) {
                        Ok(()) => CacheStatus::Written(e.tensors.clone()),
                        Err(err) => CacheStatus::NotWritten(err.to_string()),
                    }
                }
            };
            (d, status)
        }
    };

    let (train, test) = match decoded.parts.as_slice() {
        [(_, im, lb)] => {
            let all = Split { images: im.shallow_clone(), labels: lb.shallow_clone() };
            let labels = all.labels_vec();
            let (tr, te) = stratified_split(&labels, decoded.classes.len(), FOLDER_TEST_FRACTION, opts.seed);
            (all.select(&tr), all.select(&te))
        }
        [(_, tim, tlb), (_, sim, slb)] => (
            Split { images: tim.shallow_clone(), labels: tlb.shallow_clone() },
            Split { images: sim.shallow_clone(), labels: slb.shallow_clone() },
        ),
        _ => return Err(Error::Invalid("internal: unexpected number of parts".into())),
    };
    let mut removed = vec![0; decoded.classes.len()];
    let train = if holdout.is_empty() {
        train
    } else {
        let before = train.class_counts(decoded.classes.len());
        for &h in &holdout {
            removed[h as usize] = before[h as usize];
        }
        train.without_classes(&holdout)
    };
    let data = Dataset {
        name,
        classes: decoded.classes,
        channels: decoded.channels,
        size: decoded.size,
        train,
        test,
        holdout,
    };
    let info = LoadInfo { source, seconds: start.elapsed().as_secs_f64(), cache: cache_status, removed };
    Ok((data, info))
}

/// Indices of a seeded split that sends `frac` of every class (rounded up,
/// at least one image left for training) to the test side. Both lists are
/// ascending.
pub fn stratified_split(labels: &[i64], n_classes: usize, frac: f64, seed: u64) -> (Vec<i64>, Vec<i64>) {
    use rand::seq::SliceRandom;
    let mut by_class: Vec<Vec<i64>> = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        if (0..n_classes as i64).contains(&l) {
            by_class[l as usize].push(i as i64);
        }
    }
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (c, mut idx) in by_class.into_iter().enumerate() {
        idx.shuffle(&mut dualspace_tensor::seed::rng(seed, SPLIT_STREAM + c as u64));
        let k = ((idx.len() as f64 * frac).ceil() as usize).min(idx.len().saturating_sub(1));
        test.extend_from_slice(&idx[..k]);
        train.extend_from_slice(&idx[k..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// One decoded part before resizing: name, count, side, CHW pixels, labels.
type RawPart = (&'static str, usize, usize, Vec<u8>, Vec<i64>);

/// What a load will read, and its cache key.
struct Plan {
    source: Source,
    folder: Option<folder::FolderIndex>,
    classes: Vec<String>,
    channels: usize,
    size: Option<usize>,
    key: String,
    meta: cache::CacheMeta,
}

impl Plan {
    fn new(name: &str, source: &Source, opts: &LoadOptions) -> Result<Self> {
        let mut fp = cache::Fingerprint::new();
        let (classes, native_channels, folder, dir, kind): (Vec<String>, usize, _, &Path, &str) = match source {
            Source::Idx { dir, fashion } => {
                let files = idx_files(dir, name)?;
                files.all().iter().for_each(|p| fp.add_file(p));
                let names: &[&str] = if *fashion { &FASHION_MNIST_CLASSES } else { &MNIST_CLASSES };
                (names.iter().map(|s| s.to_string()).collect(), 1, None, dir, "idx")
            }
            Source::Cifar10 { dir } => {
                let files = cifar_files(dir)?;
                files.all().iter().for_each(|p| fp.add_file(p));
                (CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(), 3, None, dir, "cifar10")
            }
            Source::Folder { dir } => {
                let index = folder::scan(dir)?;
                fp.add(&index.fingerprint.to_le_bytes());
                (index.classes.clone(), 3, Some(index), dir, "folder")
            }
        };
        let channels = opts.channels.unwrap_or(native_channels);
        let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let source_str = format!("{kind}:{}", canon.display());
        let mut src_hash = cache::Fingerprint::new();
        src_hash.add_str(&source_str);
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let size_tag = opts.size.map_or("native".to_string(), |s| format!("{s}px"));
        let key = format!("{safe}-{size_tag}-{channels}ch-{:08x}", src_hash.finish() as u32);
        let meta = cache::CacheMeta {
            format: cache::CACHE_FORMAT,
            source: source_str,
            fingerprint: format!("{:016x}", fp.finish()),
            name: name.to_string(),
            classes: classes.clone(),
            channels,
            size: opts.size.unwrap_or(0),
        };
        Ok(Self { source: source.clone(), folder, classes, channels, size: opts.size, key, meta })
    }

    fn decode(&self) -> Result<Decoded> {
        let n_classes = self.classes.len();
        let (native_c, parts): (usize, Vec<RawPart>) = match &self.source {
            Source::Idx { dir, .. } => {
                let f = idx_files(dir, &self.meta.name)?;
                let (tr, te) = rayon::join(
                    || idx::read_pair(&f.train_images, &f.train_labels, n_classes),
                    || idx::read_pair(&f.test_images, &f.test_labels, n_classes),
                );
                let (tr, te) = (tr?, te?);
                for (part, path) in [(&tr, &f.train_images), (&te, &f.test_images)] {
                    if part.h != part.w {
                        return Err(Error::file(
                            path,
                            format!("images are {}x{}; only square images are supported", part.w, part.h),
                        ));
                    }
                }
                if tr.h != te.h {
                    return Err(Error::file(
                        &f.test_images,
                        format!("images are {0}x{0} but the training images are {1}x{1}", te.h, tr.h),
                    ));
                }
                (1, vec![("train", tr.n, tr.h, tr.pixels, tr.labels), ("test", te.n, te.h, te.pixels, te.labels)])
            }
            Source::Cifar10 { dir } => {
                let f = cifar_files(dir)?;
                let (tr, te) = rayon::join(
                    || cifar::read_batches(&f.train),
                    || cifar::read_batches(std::slice::from_ref(&f.test)),
                );
                let (tr, te) = (tr?, te?);
                (3, vec![("train", tr.1.len(), 32, tr.0, tr.1), ("test", te.1.len(), 32, te.0, te.1)])
            }
            Source::Folder { .. } => {
                let index =
                    self.folder.as_ref().ok_or_else(|| Error::Invalid("internal: folder not scanned".into()))?;
                let (side, px) = folder::decode_all(index, self.size, self.channels)?;
                let labels: Vec<i64> = index.files.iter().map(|(_, l)| *l).collect();
                (self.channels, vec![("all", labels.len(), side, px, labels)])
            }
        };
        let mut out = Vec::new();
        let mut side_out = 0;
        for (name, n, side, px, labels) in parts {
            let to = self.size.unwrap_or(side);
            pixels::check_decoded_size(n, self.channels, to)?;
            let px = pixels::resize_all_owned(px, native_c, side, to);
            let px = pixels::convert_channels(px, native_c, self.channels, to * to);
            let images = Tensor::from_slice(&px).view([n as i64, self.channels as i64, to as i64, to as i64]);
            out.push((name, images, Tensor::from_slice(&labels)));
            side_out = to;
        }
        Ok(Decoded { classes: self.classes.clone(), channels: self.channels, size: side_out, parts: out })
    }

    /// Checks cached tensors against the plan; None when they do not fit.
    fn check_cached(&self, mut t: std::collections::BTreeMap<String, Tensor>) -> Option<Decoded> {
        let names: &[&'static str] =
            if matches!(self.source, Source::Folder { .. }) { &["all"] } else { &["train", "test"] };
        let mut parts = Vec::new();
        let mut side = None;
        for &p in names {
            let im = t.remove(&format!("{p}.images"))?;
            let lb = t.remove(&format!("{p}.labels"))?;
            let s = im.size();
            let ok = s.len() == 4
                && im.kind() == Kind::Uint8
                && lb.kind() == Kind::Int64
                && lb.size() == [s[0]]
                && s[1] == self.channels as i64
                && s[2] == s[3]
                && self.size.is_none_or(|z| z as i64 == s[2])
                && side.is_none_or(|z| z == s[2]);
            if !ok {
                return None;
            }
            side = Some(s[2]);
            parts.push((p, im, lb));
        }
        Some(Decoded { classes: self.classes.clone(), channels: self.channels, size: side? as usize, parts })
    }
}

fn idx_files(dir: &Path, name: &str) -> Result<idx::IdxFiles> {
    if !dir.exists() {
        return Err(Error::file(
            dir,
            format!("not found; pass {name}:PATH with the folder holding train-images-idx3-ubyte[.gz]"),
        ));
    }
    idx::IdxFiles::find(dir).ok_or_else(|| {
        Error::file(dir, "holds no train-images-idx3-ubyte[.gz]; expected the four IDX files of MNIST or Fashion-MNIST")
    })
}

fn cifar_files(dir: &Path) -> Result<cifar::CifarFiles> {
    if !dir.exists() {
        return Err(Error::file(
            dir,
            "not found; pass cifar10:PATH with the folder holding data_batch_1.bin .. test_batch.bin",
        ));
    }
    cifar::CifarFiles::find(dir)
        .ok_or_else(|| Error::file(dir, "holds no data_batch_1.bin; expected CIFAR-10's binary batches"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::tests::{gzip, idx_bytes};

    /// Writes a Fashion-MNIST-style IDX folder: `n_train`/`n_test` 4x4 images,
    /// image k filled with 10 * label + 1 and labelled k % 3; gzipped or plain.
    fn write_idx(dir: &Path, n_train: u32, n_test: u32, gz: bool) {
        std::fs::create_dir_all(dir).unwrap();
        for (stem, n) in [("train", n_train), ("t10k", n_test)] {
            let labels: Vec<u8> = (0..n).map(|k| (k % 3) as u8).collect();
            let px: Vec<u8> = labels.iter().flat_map(|&l| [10 * l + 1; 16]).collect();
            let files = [
                (format!("{stem}-images-idx3-ubyte"), idx_bytes(&[n, 4, 4], &px)),
                (format!("{stem}-labels-idx1-ubyte"), idx_bytes(&[n], &labels)),
            ];
            for (name, bytes) in files {
                if gz {
                    std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
                } else {
                    std::fs::write(dir.join(name), bytes).unwrap();
                }
            }
        }
    }

    fn opts() -> LoadOptions {
        LoadOptions { seed: 1, ..Default::default() }
    }

    #[test]
    fn idx_folders_load_with_their_own_split_gz_or_plain() {
        let dir = tempfile::tempdir().unwrap();
        let (gz, plain) = (dir.path().join("fashion-gz"), dir.path().join("plain"));
        write_idx(&gz, 9, 6, true);
        write_idx(&plain, 9, 6, false);
        let a = load(gz.to_str().unwrap(), &opts()).unwrap();
        assert_eq!(a.name, "fashion-mnist", "a path mentioning fashion gets its class names");
        assert_eq!(a.classes[9], "ankle-boot");
        assert_eq!((a.train.len(), a.test.len(), a.channels, a.size), (9, 6, 1, 4));
        assert_eq!(a.train.class_counts(10)[..4], [3, 3, 3, 0]);
        assert_eq!(a.train.images.kind(), Kind::Uint8);
        assert_eq!(a.train.images.int64_value(&[4, 0, 3, 3]), 11);
        let b = load(&format!("mnist:{}", plain.display()), &opts()).unwrap();
        assert_eq!(b.name, "mnist");
        assert_eq!(b.classes[3], "3");
        assert!(a.train.images.equal(&b.train.images) && a.test.labels.equal(&b.test.labels));
        // Resized and turned to RGB: constant images stay constant.
        let c = load(gz.to_str().unwrap(), &LoadOptions { size: Some(8), channels: Some(3), ..opts() }).unwrap();
        assert_eq!(c.train.images.size(), vec![9, 3, 8, 8]);
        assert_eq!(c.train.images.int64_value(&[5, 2, 7, 0]), 21);
        let f = c.train.float_images();
        assert!((f.double_value(&[5, 2, 7, 0]) - (21.0 / 127.5 - 1.0)).abs() < 1e-6);
    }

    #[test]
    fn holdout_leaves_training_but_stays_in_test() {
        let dir = tempfile::tempdir().unwrap();
        write_idx(dir.path(), 12, 9, true);
        let spec = format!("fashion-mnist:{}", dir.path().display());
        let d = load(&spec, &LoadOptions { holdout: vec!["Pullover".into(), "pullover".into()], ..opts() }).unwrap();
        assert_eq!(d.holdout, vec![2]);
        let (_, info) = load_with_info(&spec, &LoadOptions { holdout: vec!["pullover".into()], ..opts() }).unwrap();
        assert_eq!(info.removed[..3], [0, 0, 4]);
        assert_eq!(info.cache, CacheStatus::Off);
        assert_eq!(d.holdout_names(), vec!["pullover"]);
        assert_eq!(d.train.class_counts(10)[..3], [4, 4, 0]);
        assert_eq!(d.test.class_counts(10)[..3], [3, 3, 3]);
        assert_eq!(d.test_seen().class_counts(10)[..3], [3, 3, 0]);
        assert_eq!(d.test_heldout().class_counts(10)[..3], [0, 0, 3]);
        assert_eq!(d.class_index("ANKLE_BOOT").unwrap(), 9);
        assert_eq!(d.test.take(4).len(), 4);
        let rows = d.train.class_rows(10, 5);
        assert_eq!(rows.size(), vec![50, 1, 4, 4]);
        // Class 1 (value 11) has 4 training images: the fifth cell is black.
        assert!((rows.double_value(&[8, 0, 0, 0]) - (11.0 / 127.5 - 1.0)).abs() < 1e-6);
        assert_eq!(rows.double_value(&[9, 0, 0, 0]), -1.0);
        assert_eq!(rows.double_value(&[10, 0, 0, 0]), -1.0, "held-out class 2 has no training images");
        assert_eq!(d.test.take(100).len(), 9);
        let e = load(&spec, &LoadOptions { holdout: vec!["boots".into()], ..opts() }).unwrap_err().to_string();
        assert!(
            e.contains("unknown class 'boots'")
                && e.contains("known classes: t-shirt, trouser")
                && e.contains("ankle-boot"),
            "{e}"
        );
        let all: Vec<String> = FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect();
        let e = load(&spec, &LoadOptions { holdout: all, ..opts() }).unwrap_err().to_string();
        assert!(e.contains("every class is held out"), "{e}");
    }

    #[test]
    fn folders_get_a_seeded_stratified_split() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pets");
        folder::tests::write_folder(&root, &["cat", "dog", "owl"], 10, 6);
        let spec = root.to_str().unwrap();
        let a = load(spec, &opts()).unwrap();
        assert_eq!((a.name.as_str(), a.channels, a.size), ("pets", 3, 6));
        assert_eq!(a.classes, vec!["cat", "dog", "owl"]);
        assert_eq!(a.train.class_counts(3), vec![9, 9, 9]);
        assert_eq!(a.test.class_counts(3), vec![1, 1, 1]);
        // Class "dog" (index 1) is green-heavy.
        let dog = a.test.only_classes(&[1]);
        assert!(dog.images.int64_value(&[0, 1, 0, 0]) >= 150);
        let again = load(spec, &opts()).unwrap();
        assert!(again.test.images.equal(&a.test.images), "same seed, same split");
        let splits: Vec<Vec<i64>> = (2..6)
            .map(|s| {
                let d = load(spec, &LoadOptions { seed: s, ..opts() }).unwrap();
                Vec::<i64>::try_from(&d.test.images.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Int64))
                    .unwrap()
            })
            .collect();
        assert!(splits.iter().any(|s| s != &splits[0]), "other seeds pick other test images");
        let held = load(spec, &LoadOptions { holdout: vec!["OWL".into()], size: Some(4), channels: Some(1), ..opts() })
            .unwrap();
        assert_eq!(held.train.class_counts(3), vec![9, 9, 0]);
        assert_eq!(held.train.images.size(), vec![18, 1, 4, 4]);
    }

    #[test]
    fn stratified_split_sends_a_tenth_of_each_class_to_test() {
        let labels: Vec<i64> = (0..25).map(|i| if i < 20 { 0 } else { 1 }).chain([2]).collect();
        let (train, test) = stratified_split(&labels, 3, 0.1, 5);
        assert_eq!(test.iter().filter(|&&i| labels[i as usize] == 0).count(), 2);
        assert_eq!(test.iter().filter(|&&i| labels[i as usize] == 1).count(), 1);
        assert!(train.contains(&25), "a class of one image stays in training");
        assert_eq!(train.len() + test.len(), 26);
    }

    #[test]
    fn cifar_batches_load_with_class_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir_all(&d).unwrap();
        let record =
            |label: u8| -> Vec<u8> { std::iter::once(label).chain(std::iter::repeat_n(label * 20, 3072)).collect() };
        for i in 1..=5 {
            let raw: Vec<u8> = [(i % 10) as u8, 9].iter().flat_map(|&l| record(l)).collect();
            std::fs::write(d.join(format!("data_batch_{i}.bin")), raw).unwrap();
        }
        std::fs::write(d.join("test_batch.bin"), record(3)).unwrap();
        let c = load(&format!("cifar10:{}", dir.path().display()), &opts()).unwrap();
        assert_eq!((c.name.as_str(), c.channels, c.size, c.train.len(), c.test.len()), ("cifar10", 3, 32, 10, 1));
        assert_eq!(c.train.class_counts(10)[9], 5);
        assert_eq!(c.test.images.int64_value(&[0, 2, 31, 31]), 60);
        let auto = load(d.to_str().unwrap(), &opts()).unwrap();
        assert_eq!(auto.classes[0], "airplane");
        std::fs::write(d.join("data_batch_3.bin"), b"short").unwrap();
        let e = load(d.to_str().unwrap(), &opts()).unwrap_err().to_string();
        assert!(e.contains("data_batch_3.bin") && e.contains("5 bytes is not a whole number"), "{e}");
    }

    #[test]
    fn cache_serves_the_second_load_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shapes");
        folder::tests::write_folder(&root, &["a", "b"], 5, 8);
        let o = LoadOptions { cache_dir: Some(dir.path().join("cache")), size: Some(4), ..opts() };
        let spec = root.to_str().unwrap();
        let (first, info) = load_with_info(spec, &o).unwrap();
        assert!(matches!(info.cache, CacheStatus::Written(_)), "{:?}", info.cache);
        let (second, info) = load_with_info(spec, &o).unwrap();
        let CacheStatus::Hit(path) = info.cache else { panic!("expected a cache hit, got {:?}", info.cache) };
        assert!(path.file_name().unwrap().to_str().unwrap().starts_with("shapes-4px-3ch-"), "{path:?}");
        assert!(first.train.images.equal(&second.train.images) && first.test.labels.equal(&second.test.labels));
        // Another size is another entry.
        let (_, info) = load_with_info(spec, &LoadOptions { size: Some(8), ..o.clone() }).unwrap();
        assert!(matches!(info.cache, CacheStatus::Written(_)));
        // A changed source is decoded again.
        image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3])).save(root.join("b/9.png")).unwrap();
        let (third, info) = load_with_info(spec, &o).unwrap();
        assert!(matches!(info.cache, CacheStatus::Written(_)), "{:?}", info.cache);
        assert_eq!(third.train.len() + third.test.len(), 11);
        // A broken cache file is rebuilt, not an error.
        std::fs::write(&path, b"junk").unwrap();
        let (_, info) = load_with_info(spec, &o).unwrap();
        assert!(matches!(info.cache, CacheStatus::Written(_)), "{:?}", info.cache);
        // An unwritable cache folder costs the cache, not the load.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let (_, info) = load_with_info(spec, &LoadOptions { cache_dir: Some(blocker.join("sub")), ..o }).unwrap();
        assert!(matches!(info.cache, CacheStatus::NotWritten(_)), "{:?}", info.cache);
    }

    #[test]
    fn missing_sources_say_where_they_looked() {
        let e = load("fashion-mnist:/nonexistent/fm", &opts()).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/fm: not found; pass fashion-mnist:PATH"), "{e}");
        let e = load("/nonexistent/folder", &opts()).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/folder") && e.contains("No such file"), "{e}");
        let e = load("", &opts()).unwrap_err().to_string();
        assert!(e.contains("empty data set name"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = load(&format!("mnist:{}", dir.path().display()), &opts()).unwrap_err().to_string();
        assert!(e.contains("holds no train-images-idx3-ubyte"), "{e}");
        assert!(load(&format!("mnist:{}", dir.path().display()), &LoadOptions { size: Some(0), ..opts() }).is_err());
        assert!(load("mnist", &LoadOptions { channels: Some(2), ..opts() })
            .unwrap_err()
            .to_string()
            .contains("channels must be 1"));
    }

    #[test]
    fn real_fashion_mnist_has_70000_images_in_10_balanced_classes() {
        if !Path::new(DEFAULT_FASHION_MNIST).join("train-images-idx3-ubyte.gz").exists() {
            eprintln!("skipping: Fashion-MNIST is not installed at {DEFAULT_FASHION_MNIST}");
            return;
        }
        let d = load("fashion-mnist", &LoadOptions { holdout: vec!["ankle-boot".into()], ..opts() }).unwrap();
        assert_eq!((d.channels, d.size, d.n_classes()), (1, 28, 10));
        assert_eq!(d.test.class_counts(10), vec![1000; 10]);
        let mut want = vec![6000; 10];
        want[9] = 0;
        assert_eq!(d.train.class_counts(10), want);
        assert_eq!(d.train.len() + d.test.len() + 6000, 70_000);
        assert_eq!(d.test_heldout().len(), 1000);
        let mean = d.train.images.to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        assert!((60.0..90.0).contains(&mean), "mean pixel {mean}");
    }

    #[test]
    fn real_dog_photos_have_10_breeds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/dogs64");
        if !root.join("beagle").is_dir() {
            eprintln!("skipping: {} is not present", root.display());
            return;
        }
        let d = load(root.to_str().unwrap(), &LoadOptions { size: Some(32), ..opts() }).unwrap();
        assert_eq!((d.name.as_str(), d.channels, d.size, d.n_classes()), ("dogs64", 3, 32, 10));
        assert!(d.classes.contains(&"beagle".to_string()));
        assert_eq!(d.train.len() + d.test.len(), 10_697);
        for (c, (tr, te)) in d.train.class_counts(10).into_iter().zip(d.test.class_counts(10)).enumerate() {
            assert!(te * 9 <= tr + 9 && te * 11 >= tr, "class {c}: {tr} train, {te} test");
        }
    }
}
