//! The error type of the mappings crate.

/// Errors of `dualspace-autoencoder`. Messages say what was wrong, with what,
/// and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the tensor crate (files, checkpoints, JSON).
    #[error(transparent)]
    Tensor(#[from] dualspace_tensor::Error),
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// Two things that must agree do not: a map and its input, a checkpoint
    /// and the configuration asking for it, a codes file and a map.
    #[error("{what}: expected {expected}, got {got}")]
    Mismatch {
        /// What was compared.
        what: String,
        /// What the map (or the first side) expects.
        expected: String,
        /// What was found.
        got: String,
    },
    /// Any other invalid argument or configuration.
    #[error("{0}")]
    Invalid(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Mismatch`].
    pub fn mismatch(what: impl Into<String>, expected: impl Into<String>, got: impl Into<String>) -> Self {
        Error::Mismatch { what: what.into(), expected: expected.into(), got: got.into() }
    }
}
