//! Build script shared by every dualspace crate (named with `build = ...`;
//! `crates/tensor/build.rs` calls [`link`] and also compiles its C++ shim).
//!
//! Two things the linker would otherwise get wrong:
//! - `libtorch_cuda.so` is dropped under `--as-needed` because no symbol of it
//!   is referenced directly, and then `tch::Cuda::is_available()` is false even
//!   on a GPU machine. Linking it with `--no-as-needed` keeps it; the binary
//!   still runs on machines without a GPU.
//! - The binaries must find torch's `lib/` at run time from any working
//!   directory: an rpath to it is written into every binary, test and bench.
//!
//! `LIBTORCH` is set by `.cargo/config.toml`, which `scripts/setup.sh` writes.
use std::path::PathBuf;

#[allow(dead_code)]
fn main() {
    link();
}

/// Writes the rpath and the `libtorch_cuda` link arguments; returns torch's
/// folder (`LIBTORCH`) when it is set.
pub fn link() -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=../../build/link-torch.rs");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set: run scripts/setup.sh first (binaries will need LD_LIBRARY_PATH)");
        return None;
    };
    let libtorch = PathBuf::from(libtorch);
    let lib = libtorch.join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    Some(libtorch)
}
