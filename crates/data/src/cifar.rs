//! CIFAR-10 binary batches: `data_batch_1.bin` .. `data_batch_5.bin` (train)
//! and `test_batch.bin` (test), each a run of 3073-byte records: one label
//! byte, then 32x32 red, green and blue planes.
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Bytes of one record.
pub const RECORD: usize = 1 + 3 * 32 * 32;
/// The class names, in label order.
pub const CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// The batch files of a CIFAR-10 folder.
#[derive(Debug, Clone)]
pub struct CifarFiles {
    /// Training batches, in order.
    pub train: Vec<PathBuf>,
    /// The test batch.
    pub test: PathBuf,
}

impl CifarFiles {
    /// Finds the batches in `dir` or in its `cifar-10-batches-bin` subfolder;
    /// None when there is no `data_batch_1.bin`.
    pub fn find(dir: &Path) -> Option<Self> {
        [dir.to_path_buf(), dir.join("cifar-10-batches-bin")].into_iter().find_map(|d| {
            d.join("data_batch_1.bin").is_file().then(|| Self {
                train: (1..=5).map(|i| d.join(format!("data_batch_{i}.bin"))).collect(),
                test: d.join("test_batch.bin"),
            })
        })
    }

    /// Every file, for fingerprints.
    pub fn all(&self) -> Vec<&Path> {
        self.train.iter().map(|p| p.as_path()).chain([self.test.as_path()]).collect()
    }
}

/// Reads batch files into (CHW pixels, labels).
pub fn read_batches(files: &[PathBuf]) -> Result<(Vec<u8>, Vec<i64>)> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in files {
        let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        if raw.is_empty() || raw.len() % RECORD != 0 {
            return Err(Error::file(
                path,
                format!(
                    "truncated or not a CIFAR-10 batch: {} bytes is not a whole number of {RECORD}-byte records",
                    raw.len()
                ),
            ));
        }
        pixels.reserve(raw.len() / RECORD * (RECORD - 1));
        for (i, rec) in raw.chunks_exact(RECORD).enumerate() {
            if rec[0] as usize >= CLASSES.len() {
                return Err(Error::file(
                    path,
                    format!("label {} of record {i} is out of range for 10 classes", rec[0]),
                ));
            }
            labels.push(rec[0] as i64);
            pixels.extend_from_slice(&rec[1..]);
        }
    }
    Ok((pixels, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_into_labels_and_planes() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = Vec::new();
        for label in [3u8, 9] {
            raw.push(label);
            raw.extend((0..RECORD - 1).map(|i| (i % 256) as u8 ^ label));
        }
        let p = dir.path().join("data_batch_1.bin");
        std::fs::write(&p, &raw).unwrap();
        let (px, labels) = read_batches(std::slice::from_ref(&p)).unwrap();
        assert_eq!(labels, vec![3, 9]);
        assert_eq!(px.len(), 2 * 3072);
        assert_eq!(px[1], 1 ^ 3);
        assert_eq!(px[3072 + 2], 2 ^ 9);
        std::fs::write(&p, &raw[..RECORD + 5]).unwrap();
        let e = read_batches(std::slice::from_ref(&p)).unwrap_err().to_string();
        assert!(e.contains("data_batch_1.bin") && e.contains("3078 bytes is not a whole number"), "{e}");
        raw[RECORD] = 10;
        std::fs::write(&p, &raw).unwrap();
        let e = read_batches(std::slice::from_ref(&p)).unwrap_err().to_string();
        assert!(e.contains("label 10 of record 1"), "{e}");
    }
}
