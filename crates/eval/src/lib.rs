//! Evaluation without downloads: a judge classifier trained on the data set
//! itself, and every distribution metric computed on its features.
//!
//! Inception weights cannot be downloaded on closed machines, so the embedding
//! of all metrics here is the penultimate layer of a small CNN ([`Judge`])
//! trained on *all* classes of a data set's training split. Every metric is
//! named after that embedding (`fid_judge`, `kid_judge`, ...) so that nobody
//! compares it with Inception FID.
//!
//! - [`judge`]: the classifier, its presets, training, accuracy, features and
//!   probabilities, checkpoints and a cache keyed by data set and seed.
//! - [`metrics`]: FID (stable matrix square root), KID (unbiased, cubic
//!   kernel), precision/recall, density/coverage (chunked nearest-neighbour
//!   radii), class histogram, held-out-class rate, nearest generated samples.
//! - [`evaluate`](mod@evaluate): one call that embeds real and generated images and
//!   fills a serialisable [`Report`] with every metric and its sample sizes.
//!
//! Other crates: builds on `dualspace-tensor` (checkpoints, Adam, seeds,
//! batches, monitors). It takes tensors and knows no data loader
//! (`dualspace-data`), no generative model (`dualspace-autoencoder`,
//! `dualspace-latent-gan`, `dualspace-pixel-gan`) and no CLI; the
//! `dualspace` CLI and the benchmark harness feed it images.
#![warn(missing_docs)]

pub mod evaluate;
pub mod judge;
pub mod metrics;

pub use evaluate::{evaluate, evaluate_embedded, nearest_generated_rows, subsample_indices, EvalOptions, Report};
pub use judge::{Judge, JudgeAccuracy, JudgeCard, JudgeConfig, JudgeTrainConfig, Trained};
pub use metrics::{Embedded, HeldoutRate};

/// Errors of `dualspace-eval`. Messages say what was wrong, with what, and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the tensor crate (files, checkpoints, shapes).
    #[error(transparent)]
    Tensor(#[from] dualspace_tensor::Error),
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A tensor has the wrong shape or kind.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// What the tensor is.
        what: String,
        /// What was expected.
        expected: String,
        /// What was found.
        got: String,
    },
    /// Training was asked to stop before its last step; nothing was saved.
    #[error("judge training stopped at step {step} of {total}; the judge was not saved")]
    Stopped {
        /// Steps done.
        step: u64,
        /// Steps planned.
        total: u64,
    },
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `t` is `[N, C, H, W]` with the given C, H, W, and returns N.
pub(crate) fn check_images(what: &str, t: &tch::Tensor, c: i64, size: i64) -> Result<i64> {
    let s = t.size();
    if s.len() != 4 || s[1] != c || s[2] != size || s[3] != size {
        return Err(Error::Shape {
            what: what.into(),
            expected: format!("images [N, {c}, {size}, {size}]"),
            got: format!("{s:?}"),
        });
    }
    match t.kind() {
        tch::Kind::Uint8 | tch::Kind::Float | tch::Kind::Double | tch::Kind::Half | tch::Kind::BFloat16 => Ok(s[0]),
        k => Err(Error::Shape {
            what: what.into(),
            expected: "u8 pixels or float images in [-1, 1]".into(),
            got: format!("{k:?}"),
        }),
    }
}

/// u8 pixels to float in [-1, 1]; float images to f32 unchanged.
pub(crate) fn to_unit_f32(t: &tch::Tensor) -> tch::Tensor {
    if t.kind() == tch::Kind::Uint8 {
        dualspace_tensor::image::u8_to_unit(t)
    } else {
        t.to_kind(tch::Kind::Float)
    }
}
