//! The machine a run happened on, and its matrix-multiply throughput.
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Facts about the environment of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical cores.
    pub cores: usize,
    /// libtorch intra-op threads.
    pub torch_threads: usize,
    /// Device used.
    pub device: String,
    /// GPU name when one is used.
    pub cuda_available: bool,
    /// libtorch version.
    pub torch_version: String,
    /// dualspace version.
    pub dualspace_version: String,
    /// Git commit of the source, when it can be found.
    pub git_commit: Option<String>,
    /// Measured f32 matrix-multiply throughput on the device (GFLOP/s).
    pub matmul_gflops: f64,
    /// The matrix side used for it.
    pub matmul_n: i64,
    /// Host name.
    pub host: String,
}

/// Measures the best-of-several f32 `n x n` matmul throughput on `device`.
pub fn matmul_gflops(device: Device, n: i64) -> f64 {
    let _g = tch::no_grad_guard();
    let a = Tensor::randn([n, n], (Kind::Float, device));
    let b = Tensor::randn([n, n], (Kind::Float, device));
    let _ = a.matmul(&b);
    dualspace_tensor::device::sync(device);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        let c = a.matmul(&b);
        dualspace_tensor::device::sync(device);
        best = best.min(t.elapsed().as_secs_f64());
        drop(c);
    }
    2.0 * (n as f64).powi(3) / best / 1e9
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn git_commit() -> Option<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = std::process::Command::new("git").args(["-C", dir, "rev-parse", "--short=12", "HEAD"]).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || s.is_empty() {
        return None;
    }
    let dirty = std::process::Command::new("git")
        .args(["-C", dir, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    Some(if dirty { format!("{s}+dirty") } else { s })
}

/// Collects the environment, measuring matmul throughput on `device`.
pub fn collect(device: Device) -> Environment {
    let n = if device == Device::Cpu { 1024 } else { 8192 };
    Environment {
        cpu_model: cpu_model(),
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        torch_threads: dualspace_tensor::device::threads(),
        device: dualspace_tensor::device::device_name(device),
        cuda_available: tch::Cuda::is_available(),
        torch_version: dualspace_tensor::TORCH_VERSION.into(),
        dualspace_version: dualspace_tensor::CRATE_VERSION.into(),
        git_commit: git_commit(),
        matmul_gflops: matmul_gflops(device, n),
        matmul_n: n,
        host: std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default(),
    }
}
