//! The error type of the tensor crate.
use std::path::PathBuf;

/// Errors of `dualspace-tensor`. Messages say what was wrong, with what, and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed or written.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A checkpoint does not fit the model it is loaded into.
    #[error("{}: {msg}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What did not fit.
        msg: String,
    },
    /// A tensor has the wrong shape.
    #[error("{what}: expected shape {expected}, got {got}")]
    Shape {
        /// What the tensor is.
        what: String,
        /// The shape that was expected.
        expected: String,
        /// The shape that was found.
        got: String,
    },
    /// A device string is unknown, or the device is absent.
    #[error("{0}")]
    Device(String),
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
