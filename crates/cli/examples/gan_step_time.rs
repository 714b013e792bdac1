//! Times training steps of the GAN benchmarks (`benches/gan_steps.rs`)
//! outside criterion, in a process of its own, so that
//! `scripts/reference/compare_steps.py` can alternate it with PyTorch's
//! script on a noisy machine:
//!
//! ```sh
//! cargo run --release -p dualspace-cli --example gan_step_time -- latent256 [steps] [threads]
//! # steps 0 = the default: 200 (30 for pixel)
//! ```
//!
//! Cases: `latent64`, `latent256` (the MLP-512 GAN on 32-d codes, the
//! criterion benchmark's), `harness` (the reproduce harness's latent GAN:
//! 256-wide MLPs on 128-d codes, WGAN-GP with 2 critic steps, Adam 3e-4,
//! batch 64) and `pixel` (the 28x28 DCGAN, batch 64). Prints one line,
//! `<case> <median ms per step over 5 chunks>`.
use dualspace_latent_gan::{latent_trainer, LatentGanConfig, TrainConfig, Trainer};
use dualspace_pixel_gan::{pixel_trainer, DcganConfig};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn trainer(case: &str) -> Result<Trainer, String> {
    let train = |batch| TrainConfig { batch_size: batch, ..TrainConfig::dcgan(0) };
    let t = match case {
        "latent64" | "latent256" => {
            let codes = Tensor::randn([8192, 32], (Kind::Float, Device::Cpu));
            let batch = if case == "latent64" { 64 } else { 256 };
            latent_trainer(&LatentGanConfig::new(32), train(batch), &codes, Device::Cpu)
        }
        "harness" => {
            let codes = Tensor::randn([8192, 128], (Kind::Float, Device::Cpu));
            let model =
                LatentGanConfig { g_hidden: vec![256, 256], d_hidden: vec![256, 256], ..LatentGanConfig::new(128) };
            let mut train = TrainConfig { n_critic: 2, ..TrainConfig::wgan_gp(0) };
            train.opt_g.lr = 3e-4;
            train.opt_d.lr = 3e-4;
            latent_trainer(&model, train, &codes, Device::Cpu)
        }
        "pixel" => {
            let images = Tensor::randint(256, [2048, 1, 28, 28], (Kind::Uint8, Device::Cpu));
            pixel_trainer(&DcganConfig::fashion_mnist(), train(64), &images, Device::Cpu)
        }
        other => return Err(format!("unknown case '{other}'; use latent64, latent256, harness or pixel")),
    };
    t.map_err(|e| e.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map_or("latent256", String::as_str);
    let default_steps = if case == "pixel" { 30 } else { 200 };
    let steps: u32 = args.get(2).and_then(|s| s.parse().ok()).filter(|&n| n > 0).unwrap_or(default_steps).max(5);
    if let Some(n) = args.get(3).and_then(|s| s.parse().ok()) {
        dualspace_tensor::device::set_threads(Some(n));
    }
    tch::manual_seed(0);
    let mut t = trainer(case).unwrap_or_else(|e| {
        eprintln!("gan_step_time: {e}");
        std::process::exit(2)
    });
    let mut step = || {
        t.step().unwrap_or_else(|e| {
            eprintln!("gan_step_time: {e}");
            std::process::exit(1)
        })
    };
    for _ in 0..(steps / 10).max(3) {
        step();
    }
    let chunk = steps / 5;
    let mut ms: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..chunk {
                step();
            }
            t0.elapsed().as_secs_f64() * 1e3 / chunk as f64
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!("{case} {:.3}", ms[2]);
}
