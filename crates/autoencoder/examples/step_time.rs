//! Times AE training steps (batch 64, 28x28 preset) outside criterion:
//! `cargo run --release -p dualspace-autoencoder --example step_time [threads] [steps]`.
use dualspace_autoencoder::net::TrainableMap;
use dualspace_autoencoder::{ConvAe, NetConfig, Norm};
use dualspace_tensor::optim::{Adam, AdamConfig};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let steps: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    dualspace_tensor::device::set_threads(Some(threads));
    println!("threads {}", dualspace_tensor::device::threads());
    for norm in [Norm::Batch, Norm::None] {
        tch::manual_seed(0);
        let ae = ConvAe::new(NetConfig { norm, ..NetConfig::fashion_mnist() }, Device::Cpu).expect("builds");
        let mut opt = Adam::new(ae.var_store(), AdamConfig::default());
        let x = Tensor::rand([64, 1, 28, 28], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
        for _ in 0..5 {
            let l = ae.train_loss(&x, 0);
            opt.backward_step(&l.loss);
        }
        let (mut fwd, mut bwd, mut upd) = (0.0, 0.0, 0.0);
        let t0 = Instant::now();
        for _ in 0..steps {
            let t = Instant::now();
            let l = ae.train_loss(&x, 0);
            let _ = l.loss.double_value(&[]);
            fwd += t.elapsed().as_secs_f64();
            let t = Instant::now();
            opt.zero_grad();
            l.loss.backward();
            bwd += t.elapsed().as_secs_f64();
            let t = Instant::now();
            opt.step();
            upd += t.elapsed().as_secs_f64();
        }
        let n = steps as f64;
        println!(
            "{norm:?}: {:.2} ms/step (forward {:.2}, backward {:.2}, adam {:.2})",
            t0.elapsed().as_secs_f64() * 1e3 / n,
            fwd * 1e3 / n,
            bwd * 1e3 / n,
            upd * 1e3 / n
        );
    }
}
