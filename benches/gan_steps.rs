//! Criterion benchmarks of one adversarial training step, through the one
//! trainer both GANs share: the pixel DCGAN (batch 64, 28x28x1
//! Fashion-MNIST preset) and the latent MLP GAN on 32-dimensional codes
//! (batch 64 and 256, the default 512x512 networks).
//!
//! Reference: PyTorch eager (`scripts/reference/pytorch_steps.py`) on the
//! 2-core development machine. Step times there drift by tens of percent
//! within minutes, so the comparison is `scripts/reference/compare_steps.py`
//! (both sides alternated, 5 rounds, median ratio). On 2026-12-04, after the
//! fused ops (libtorch's leaky ReLU, fused Adam, multi-tensor EMA, one D pass
//! over real and fake for the MLP): latent batch 64 3.83 ms against 7.13 ms
//! (0.53x), batch 256 9.85 ms against 12.94 ms (0.76x), pixel 138 ms against
//! 146 ms (0.94x); criterion beside it: 3.99 ms, 9.58 ms, 145 ms. Run with `cargo bench -p dualspace-cli --bench gan_steps`;
//! `DUALSPACE_BENCH_THREADS` sets libtorch's thread count (default: all
//! cores).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dualspace_latent_gan::{latent_trainer, LatentGanConfig, TrainConfig};
use dualspace_pixel_gan::{pixel_trainer, DcganConfig};
use std::hint::black_box;
use tch::{Device, Kind, Tensor};

fn setup() {
    if let Some(n) = std::env::var("DUALSPACE_BENCH_THREADS").ok().and_then(|s| s.parse().ok()) {
        dualspace_tensor::device::set_threads(Some(n));
    }
    tch::manual_seed(0);
}

fn pixel_step(c: &mut Criterion) {
    setup();
    let images = Tensor::randint(256, [2048, 1, 28, 28], (Kind::Uint8, Device::Cpu));
    let mut t = pixel_trainer(&DcganConfig::fashion_mnist(), TrainConfig::dcgan(0), &images, Device::Cpu)
        .expect("the preset builds");
    let mut g = c.benchmark_group("pixel_gan_step");
    g.throughput(Throughput::Elements(64));
    g.bench_function("dcgan_28x28_batch64", |b| b.iter(|| black_box(t.step().expect("a finite step"))));
    g.finish();
}

fn latent_step(c: &mut Criterion) {
    setup();
    let codes = Tensor::randn([8192, 32], (Kind::Float, Device::Cpu));
    let mut g = c.benchmark_group("latent_gan_step");
    for batch in [64usize, 256] {
        let mut train = TrainConfig::dcgan(0);
        train.batch_size = batch;
        let mut t = latent_trainer(&LatentGanConfig::new(32), train, &codes, Device::Cpu).expect("the default builds");
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("mlp512_codes32_batch{batch}"), |b| {
            b.iter(|| black_box(t.step().expect("a finite step")))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = pixel_step, latent_step
}
criterion_main!(benches);
