//! Data loading for dualspace: IDX (Fashion-MNIST, MNIST), CIFAR-10 binary
//! batches and image folders, hold-out splits, seeded batches, caches.
//!
//! SKELETON: being filled in; the public API below is the contract other
//! crates code against.
#![warn(missing_docs)]
use std::path::PathBuf;
use tch::Tensor;

/// Errors of the data crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Anything wrong with the input, with the file and what was wrong.
    #[error("{0}")]
    Invalid(String),
    /// From the tensor crate.
    #[error(transparent)]
    Tensor(#[from] dualspace_tensor::Error),
}
/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Images and labels of one split.
#[derive(Debug)]
pub struct Split {
    /// u8 pixels, `[N, C, H, W]`, on the CPU.
    pub images: Tensor,
    /// Class indices, i64 `[N]`, on the CPU.
    pub labels: Tensor,
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

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Resize/center-crop to this square side (default: the source's).
    pub size: Option<usize>,
    /// Class names to hold out of the training split.
    pub holdout: Vec<String>,
    /// Seed for splits of sources without their own test split.
    pub seed: u64,
    /// Where decoded data sets are cached (None = no cache).
    pub cache_dir: Option<PathBuf>,
}

/// Loads `spec`: `fashion-mnist`, `mnist`, `cifar10` (default locations),
/// `NAME:PATH` for another location, or a folder of `<class>/*.png|jpg`.
pub fn load(spec: &str, _opts: &LoadOptions) -> Result<Dataset> {
    Err(Error::Invalid(format!("loading '{spec}' is not implemented yet")))
}
