//! The shared link arguments (`build/link-torch.rs`), plus the C++ shim
//! `csrc/fused.cpp`: libtorch operators that tch does not wrap (leaky ReLU
//! with a chosen slope, fused Adam, multi-tensor updates), compiled against
//! the headers of the same torch that torch-sys links.
#[path = "../../build/link-torch.rs"]
mod link_torch;

fn main() {
    println!("cargo:rerun-if-changed=csrc/fused.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let libtorch = link_torch::link().or_else(torch_from_python).unwrap_or_else(|| {
        panic!("LIBTORCH is not set and python3 has no torch, so the C++ shim cannot find torch's headers: run scripts/setup.sh first")
    });
    let include = libtorch.join("include");
    if !include.join("ATen").join("ATen.h").exists() {
        panic!(
            "{}: no ATen/ATen.h; LIBTORCH must be a torch folder with headers (run scripts/setup.sh)",
            include.display()
        );
    }
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .file("csrc/fused.cpp")
        .include(&include)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .compile("dualspace_fused");
}

/// torch's folder from the python on PATH (what torch-sys does with
/// `LIBTORCH_USE_PYTORCH=1`), for builds without `.cargo/config.toml`.
fn torch_from_python() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import torch, os; print(os.path.dirname(torch.__file__))"])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    out.status.success().then(|| std::path::PathBuf::from(dir.trim()))
}
