//! The common tensor layer of dualspace, on libtorch through `tch`.
//!
//! What every other crate shares: device selection ([`device`]), one seed for
//! libtorch and Rust-side randomness ([`seed`]), images to and from NCHW
//! tensors and PNG grids ([`image`]), atomic checkpoints in safetensors with
//! JSON metadata ([`checkpoint`]), an Adam optimiser whose state can be saved
//! and resumed ([`optim`]), a pausable training clock ([`clock`]), and the
//! progress/stop hook and JSONL log of long runs ([`run`]).
//!
//! Other crates: `dualspace-data` (loaders) and the model crates
//! (`dualspace-autoencoder`, `dualspace-latent-gan`, `dualspace-pixel-gan`,
//! `dualspace-eval`) build on this one; this crate knows no model and no data
//! set.
#![warn(missing_docs)]

pub mod batch;
pub mod checkpoint;
pub mod clock;
pub mod device;
pub mod error;
pub mod fused;
pub mod image;
pub mod optim;
pub mod run;
pub mod seed;

pub use error::{Error, Result};
pub use tch;

/// The libtorch version this build is pinned to (torch-sys refuses any other).
pub const TORCH_VERSION: &str = "2.11.0";
/// The version of the dualspace crates.
pub const CRATE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Shape of a tensor as a short string, for error messages: `[64, 1, 28, 28]`.
pub fn shape_str(t: &tch::Tensor) -> String {
    format!("{:?}", t.size())
}

/// Largest absolute difference between two tensors of one shape (f64), for
/// tests and diagnostics.
pub fn max_abs_diff(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    (a.to_kind(tch::Kind::Double) - b.to_kind(tch::Kind::Double)).abs().max().double_value(&[])
}
