//! The error type of the GAN crates.

/// Errors of `dualspace-latent-gan` (and, through it, `dualspace-pixel-gan`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the tensor crate (files, checkpoints, shapes).
    #[error(transparent)]
    Tensor(#[from] dualspace_tensor::Error),
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A loss or gradient became NaN or infinite; the run stopped before saving.
    #[error(
        "training diverged at step {step}: {what} is {value}; the last good checkpoint is kept \
         (try a lower learning rate, another loss, or a penalty)"
    )]
    Diverged {
        /// The step (1-based) whose update produced the bad value.
        step: u64,
        /// Which quantity (`loss_d`, `loss_g`, `grad_norm_d`, ...).
        what: String,
        /// Its value.
        value: f64,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Training data has the wrong shape or content.
    #[error("training data: {0}")]
    Data(String),
    /// A checkpoint or run folder is missing or belongs to something else.
    #[error("{0}")]
    Run(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
