//! One seed drives libtorch and every Rust-side random choice.
//!
//! Long runs re-seed libtorch at every step from `(seed, step)` with
//! [`seed_step`], so that a run resumed at step `k` draws exactly the random
//! numbers the uninterrupted run drew from step `k` on, without having to save
//! libtorch's generator state.
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Seeds libtorch (CPU and every GPU).
pub fn seed_all(seed: u64) {
    tch::manual_seed(seed as i64);
    if tch::Cuda::is_available() {
        tch::Cuda::manual_seed_all(seed);
    }
}

/// libtorch's CPU generator is one per process. Code that seeds it and then
/// draws from it while other threads may do the same (tests run on parallel
/// threads; a harness may train several models) holds this guard across the
/// seeding and the draws, so that no other thread's draws interleave. The
/// lock is not re-entrant: take it once, at the outermost level.
pub fn generator_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`seed_all`] under [`generator_lock`]; draw while holding the guard.
pub fn seed_guard(seed: u64) -> std::sync::MutexGuard<'static, ()> {
    let g = generator_lock();
    seed_all(seed);
    g
}

/// Mixes a seed with a stream number (SplitMix64), giving well-spread,
/// independent sub-seeds.
pub fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 0x7FFF_FFFF_FFFF_FFFF
}

/// Re-seeds libtorch for one training step of a run.
pub fn seed_step(seed: u64, step: u64) {
    seed_all(mix(seed, step.wrapping_add(1 << 40)));
}

/// A Rust-side generator for a named stream of a run (shuffles, splits).
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use tch::{Kind, Tensor};

    #[test]
    fn same_seed_gives_bit_identical_tensors() {
        let _g = seed_guard(7);
        let a = Tensor::randn([4, 5], (Kind::Float, tch::Device::Cpu));
        seed_all(7);
        let b = Tensor::randn([4, 5], (Kind::Float, tch::Device::Cpu));
        assert!(a.equal(&b));
        seed_all(8);
        let c = Tensor::randn([4, 5], (Kind::Float, tch::Device::Cpu));
        assert!(!a.equal(&c));
    }

    #[test]
    fn rust_streams_repeat_and_differ() {
        let a: Vec<u32> = (0..8).map(|_| 0).scan(rng(1, 2), |r, _: u32| Some(r.gen())).collect();
        let b: Vec<u32> = (0..8).map(|_| 0).scan(rng(1, 2), |r, _: u32| Some(r.gen())).collect();
        let c: Vec<u32> = (0..8).map(|_| 0).scan(rng(1, 3), |r, _: u32| Some(r.gen())).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
