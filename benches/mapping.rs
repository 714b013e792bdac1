//! Criterion benchmarks of the mappings: one autoencoder training step
//! (batch 64, 28x28 Fashion-MNIST preset: forward, backward, Adam), and
//! encode / decode throughput of the AE and of PCA at the same latent size.
//!
//! Reference: PyTorch eager (`scripts/reference/pytorch_steps.py`) on the
//! 2-core development machine took 12.0–12.4 ms per AE training step of this
//! shape on 2026-12-04, beside 14.4 ms here. Run with
//! `cargo bench -p dualspace-cli --bench mapping`; `DUALSPACE_BENCH_THREADS`
//! sets libtorch's thread count (default: all cores).
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dualspace_autoencoder::net::TrainableMap;
use dualspace_autoencoder::{ConvAe, Mapping, NetConfig, Pca, PcaConfig, VaeConfig};
use dualspace_tensor::optim::{Adam, AdamConfig};
use std::hint::black_box;
use tch::{Device, Kind, Tensor};

fn setup() {
    if let Some(n) = std::env::var("DUALSPACE_BENCH_THREADS").ok().and_then(|s| s.parse().ok()) {
        dualspace_tensor::device::set_threads(Some(n));
    }
    tch::manual_seed(0);
}

/// Random images in [-1, 1], `[n, 1, 28, 28]`.
fn images(n: i64) -> Tensor {
    Tensor::rand([n, 1, 28, 28], (Kind::Float, Device::Cpu)) * 2.0 - 1.0
}

fn train_step(c: &mut Criterion) {
    setup();
    let mut g = c.benchmark_group("ae_train_step");
    g.throughput(Throughput::Elements(64));
    let ae = ConvAe::new(NetConfig::fashion_mnist(), Device::Cpu).expect("preset builds");
    let mut opt = Adam::new(ae.var_store(), AdamConfig::default());
    let x = images(64);
    g.bench_function("fashion_mnist_batch64", |b| {
        b.iter(|| {
            let l = ae.train_loss(&x, 0);
            opt.backward_step(&l.loss);
            black_box(l.loss.double_value(&[]))
        })
    });
    let vae = dualspace_autoencoder::Vae::new(VaeConfig { net: NetConfig::fashion_mnist(), beta: 1.0 }, Device::Cpu)
        .expect("preset builds");
    let mut vopt = Adam::new(vae.var_store(), AdamConfig::default());
    g.bench_function("vae_fashion_mnist_batch64", |b| {
        let mut k = 0u64;
        b.iter(|| {
            k += 1;
            let l = vae.train_loss(&x, k);
            vopt.backward_step(&l.loss);
            black_box(l.loss.double_value(&[]))
        })
    });
    g.finish();
}

fn throughput(c: &mut Criterion) {
    setup();
    let n = 1000;
    let x = images(n);
    let ae = ConvAe::new(NetConfig::fashion_mnist(), Device::Cpu).expect("preset builds");
    let pca = Pca::fit(PcaConfig::new(dualspace_autoencoder::ImageShape::new(1, 28), 32), &images(2000), Device::Cpu)
        .expect("PCA fits");
    let maps: [(&str, &dyn Mapping); 2] = [("ae", &ae), ("pca", &pca)];
    let mut g = c.benchmark_group("mapping_throughput");
    g.throughput(Throughput::Elements(n as u64));
    for (name, m) in maps {
        let codes = m.encode(&x).expect("encodes");
        g.bench_function(format!("{name}_encode_1000"), |b| b.iter(|| black_box(m.encode(&x).expect("encodes"))));
        g.bench_function(format!("{name}_decode_1000"), |b| {
            b.iter_batched(
                || codes.shallow_clone(),
                |z| black_box(m.decode(&z).expect("decodes")),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = train_step, throughput
}
criterion_main!(benches);
