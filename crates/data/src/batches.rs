//! Epoch-based mini-batches: a seeded shuffle per epoch, a fixed batch size,
//! an optional short last batch, an optional random horizontal flip.
//!
//! Epoch `e`'s order is a pure function of `(seed, e)`, drawn the way
//! [`dualspace_tensor::batch::StepBatcher`] draws it, so a resumed run sees
//! the batches the uninterrupted run saw. Step-based loops can use
//! `StepBatcher` on [`crate::Split::float_images`] instead.
use crate::{Error, Result, Split};
use dualspace_tensor::seed;
use rand::seq::SliceRandom;
use rand::Rng;
use tch::{Device, Kind, Tensor};

/// The stream of the per-epoch shuffle (shared with `StepBatcher`).
const SHUFFLE_STREAM: u64 = 0x5EED_0000;
/// The stream of the per-epoch flips.
const FLIP_STREAM: u64 = 0xF11B_0000;

/// How to batch a split.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOptions {
    /// Images per batch; a batch larger than the split is shrunk to it.
    pub batch_size: usize,
    /// Seed of the shuffles and flips.
    pub seed: u64,
    /// Drop the last, short batch of each epoch (keeps every batch the same size).
    pub drop_last: bool,
    /// Flip each image left-right with probability 1/2.
    pub flip: bool,
}

impl BatchOptions {
    /// Batches of `batch_size`, shuffled from `seed`, the short batch
    /// dropped, no flips.
    pub fn new(batch_size: usize, seed: u64) -> Self {
        Self { batch_size, seed, drop_last: true, flip: false }
    }
}

/// One batch.
#[derive(Debug)]
pub struct Batch {
    /// f32 in [-1, 1], `[B, C, H, W]`, on the batcher's device.
    pub images: Tensor,
    /// i64 class indices `[B]`, on the batcher's device.
    pub labels: Tensor,
}

/// Batches of a split, epoch by epoch. The split's u8 pixels are moved to
/// the device once; each batch is converted to float there.
#[derive(Debug)]
pub struct Batches {
    images: Tensor,
    labels: Tensor,
    n: usize,
    batch: usize,
    opts: BatchOptions,
}

impl Batches {
    /// Batches over `split` on `device`.
    pub fn new(split: &Split, opts: &BatchOptions, device: Device) -> Result<Self> {
        let n = split.len();
        if n == 0 || opts.batch_size == 0 {
            return Err(Error::Invalid(format!("cannot batch {n} images in batches of {}", opts.batch_size)));
        }
        Ok(Self {
            images: split.images.to_device(device),
            labels: split.labels.to_device(device),
            n,
            batch: opts.batch_size.min(n),
            opts: opts.clone(),
        })
    }

    /// The batch size actually used.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Batches per epoch.
    pub fn per_epoch(&self) -> usize {
        if self.opts.drop_last {
            self.n / self.batch
        } else {
            self.n.div_ceil(self.batch)
        }
    }

    /// The image order of epoch `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<i64> {
        let mut perm: Vec<i64> = (0..self.n as i64).collect();
        perm.shuffle(&mut seed::rng(self.opts.seed, SHUFFLE_STREAM + epoch));
        perm
    }

    /// The batches of epoch `epoch`.
    pub fn epoch(&self, epoch: u64) -> EpochIter<'_> {
        let flips = if self.opts.flip {
            let mut rng = seed::rng(self.opts.seed, FLIP_STREAM + epoch);
            (0..self.n).map(|_| rng.gen::<bool>()).collect()
        } else {
            Vec::new()
        };
        EpochIter { batches: self, order: self.order(epoch), flips, next: 0 }
    }
}

/// The batches of one epoch.
#[derive(Debug)]
pub struct EpochIter<'a> {
    batches: &'a Batches,
    order: Vec<i64>,
    flips: Vec<bool>,
    next: usize,
}

impl Iterator for EpochIter<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let b = self.batches;
        if self.next >= b.per_epoch() {
            return None;
        }
        let start = self.next * b.batch;
        let end = (start + b.batch).min(b.n);
        self.next += 1;
        let device = b.images.device();
        let idx = Tensor::from_slice(&self.order[start..end]).to_device(device);
        let mut images = dualspace_tensor::image::u8_to_unit(&b.images.index_select(0, &idx));
        if !self.flips.is_empty() {
            let mask: Vec<u8> = self.flips[start..end].iter().map(|&f| f as u8).collect();
            let mask = Tensor::from_slice(&mask).to_device(device).to_kind(Kind::Bool).view([-1, 1, 1, 1]);
            images = images.flip([3]).where_self(&mask, &images);
        }
        Some(Batch { images, labels: b.labels.index_select(0, &idx) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batches.per_epoch() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(n: i64) -> Split {
        // Image k is a 1x1x2 row [k, 100 + k], label k.
        let px: Vec<u8> = (0..n).flat_map(|k| [k as u8, 100 + k as u8]).collect();
        Split {
            images: Tensor::from_slice(&px).view([n, 1, 1, 2]),
            labels: Tensor::arange(n, (Kind::Int64, Device::Cpu)),
        }
    }

    fn to_u8(t: &Tensor) -> Vec<u8> {
        Vec::<u8>::try_from(&dualspace_tensor::image::unit_to_u8(t).flatten(0, -1)).unwrap()
    }

    #[test]
    fn epoch_covers_each_image_once_and_repeats_by_seed() {
        let s = split(10);
        let b = Batches::new(&s, &BatchOptions::new(3, 7), Device::Cpu).unwrap();
        assert_eq!(b.per_epoch(), 3);
        let labels: Vec<i64> = b.epoch(0).flat_map(|x| Vec::<i64>::try_from(&x.labels).unwrap()).collect();
        assert_eq!(labels.len(), 9);
        let mut sorted = labels.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 9);
        assert_eq!(labels, b.order(0)[..9].to_vec());
        assert_ne!(b.order(0), b.order(1));
        let again = Batches::new(&s, &BatchOptions::new(3, 7), Device::Cpu).unwrap();
        assert_eq!(again.order(1), b.order(1));
        // The same order as StepBatcher for the same seed.
        let mut step = dualspace_tensor::batch::StepBatcher::new(10, 3, 7).unwrap();
        assert_eq!(step.indices(3), b.order(1)[..3].to_vec());
        // Pixels travel with their labels, scaled to [-1, 1].
        let first = b.epoch(0).next().unwrap();
        assert_eq!(first.images.size(), vec![3, 1, 1, 2]);
        let px = to_u8(&first.images);
        let lb = Vec::<i64>::try_from(&first.labels).unwrap();
        assert_eq!(px[0] as i64, lb[0]);
        assert_eq!(px[1] as i64, 100 + lb[0]);
        assert_eq!(first.images.kind(), Kind::Float);
    }

    #[test]
    fn keeping_the_last_batch_gives_a_short_one() {
        let s = split(10);
        let b = Batches::new(&s, &BatchOptions { drop_last: false, ..BatchOptions::new(4, 1) }, Device::Cpu).unwrap();
        let sizes: Vec<i64> = b.epoch(2).map(|x| x.labels.size()[0]).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
        let big = Batches::new(&s, &BatchOptions::new(64, 1), Device::Cpu).unwrap();
        assert_eq!((big.batch_size(), big.per_epoch()), (10, 1));
        assert!(Batches::new(&s, &BatchOptions::new(0, 1), Device::Cpu).is_err());
    }

    #[test]
    fn flip_mirrors_about_half_the_images() {
        let s = split(100);
        let b = Batches::new(&s, &BatchOptions { flip: true, ..BatchOptions::new(100, 3) }, Device::Cpu).unwrap();
        let batch = b.epoch(0).next().unwrap();
        let px = to_u8(&batch.images);
        let lb = Vec::<i64>::try_from(&batch.labels).unwrap();
        let mut flipped = 0;
        for (k, &l) in lb.iter().enumerate() {
            let (a, c) = (px[2 * k] as i64, px[2 * k + 1] as i64);
            if (a, c) == (100 + l, l) {
                flipped += 1;
            } else {
                assert_eq!((a, c), (l, 100 + l), "image {k} is neither itself nor its mirror");
            }
        }
        assert!((25..=75).contains(&flipped), "{flipped} of 100 flipped");
        let again = b.epoch(0).next().unwrap();
        assert!(again.images.equal(&batch.images), "flips repeat by seed and epoch");
    }
}
