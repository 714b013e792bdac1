//! Seeded mini-batches addressed by step number.
//!
//! The batch of step `k` is a pure function of `(seed, k)`: each epoch's
//! permutation comes from the seed and the epoch number. A run resumed at step
//! `k` therefore sees exactly the batches the uninterrupted run saw.
use crate::{seed, Error, Result};
use rand::seq::SliceRandom;
use tch::Tensor;

/// Yields index batches of a fixed size over `n` items; the last partial
/// batch of each epoch is dropped.
#[derive(Debug, Clone)]
pub struct StepBatcher {
    n: usize,
    batch: usize,
    seed: u64,
    epoch: Option<u64>,
    perm: Vec<i64>,
}

impl StepBatcher {
    /// Batches of `batch` out of `n` items, shuffled per epoch from `seed`.
    /// A batch larger than the data is shrunk to the data's size.
    pub fn new(n: usize, batch: usize, seed: u64) -> Result<Self> {
        if n == 0 || batch == 0 {
            return Err(Error::Invalid(format!("cannot batch {n} items in batches of {batch}")));
        }
        Ok(Self { n, batch: batch.min(n), seed, epoch: None, perm: Vec::new() })
    }

    /// The batch size actually used.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Full batches per epoch.
    pub fn per_epoch(&self) -> usize {
        self.n / self.batch
    }

    /// The indices of step `step`'s batch.
    pub fn indices(&mut self, step: u64) -> Vec<i64> {
        let per = self.per_epoch() as u64;
        let epoch = step / per;
        if self.epoch != Some(epoch) {
            let mut rng = seed::rng(self.seed, 0x5EED_0000 + epoch);
            self.perm = (0..self.n as i64).collect();
            self.perm.shuffle(&mut rng);
            self.epoch = Some(epoch);
        }
        let k = (step % per) as usize * self.batch;
        self.perm[k..k + self.batch].to_vec()
    }

    /// Step `step`'s batch gathered from `data` along its first dimension
    /// (on `data`'s device).
    pub fn gather(&mut self, data: &Tensor, step: u64) -> Result<Tensor> {
        let idx = Tensor::from_slice(&self.indices(step)).to_device(data.device());
        Ok(data.f_index_select(0, &idx)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_cover_every_item_once_and_repeat_by_seed() {
        let mut b = StepBatcher::new(10, 3, 42).unwrap();
        assert_eq!(b.per_epoch(), 3);
        let mut seen: Vec<i64> = (0..3).flat_map(|s| b.indices(s)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9);
        let mut again = StepBatcher::new(10, 3, 42).unwrap();
        assert_eq!(again.indices(4), b.indices(4));
        let mut other = StepBatcher::new(10, 3, 43).unwrap();
        assert_ne!(
            (0..3).flat_map(|s| other.indices(s)).collect::<Vec<_>>(),
            (0..3).flat_map(|s| b.indices(s)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn gather_picks_rows() {
        let data = Tensor::arange(20, (tch::Kind::Float, tch::Device::Cpu)).view([10, 2]);
        let mut b = StepBatcher::new(10, 4, 1).unwrap();
        let idx = b.indices(0);
        let g = b.gather(&data, 0).unwrap();
        assert_eq!(g.size(), vec![4, 2]);
        assert_eq!(g.double_value(&[0, 0]), 2.0 * idx[0] as f64);
        assert!(StepBatcher::new(0, 4, 1).is_err());
    }
}
