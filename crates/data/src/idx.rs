//! IDX files (MNIST, Fashion-MNIST), gzipped or plain.
//!
//! Layout: magic `00 00 08 NDIM` (unsigned bytes), NDIM big-endian u32
//! dimensions, then the data. Sizes are checked against the header before
//! anything large is allocated, and gzip output is capped at what the header
//! declares, so a small file cannot expand into a huge allocation.
use crate::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest IDX payload accepted (decompression-bomb guard): 4 GiB.
pub const MAX_IDX_BYTES: u64 = 4 << 30;
/// Deflate cannot expand data by more than about 1032:1.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// A decoded IDX file: its dimensions and its bytes.
#[derive(Debug)]
pub struct Idx {
    /// Dimensions from the header.
    pub dims: Vec<usize>,
    /// The data, `dims.product()` bytes.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes; gzip is detected from the content.
pub fn read(path: &Path) -> Result<Idx> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let gz = raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b;
    if gz {
        let mut dec = flate2::read::GzDecoder::new(&raw[..]);
        let mut head = [0u8; 4];
        read_exact(&mut dec, &mut head, path, "the header")?;
        let ndim = check_magic(&head, path)?;
        let mut dbytes = vec![0u8; 4 * ndim];
        read_exact(&mut dec, &mut dbytes, path, "the dimensions")?;
        let dims = parse_dims(&dbytes);
        let want = payload(&dims, path)?;
        let cap = want.min(raw.len() as u64 * MAX_DEFLATE_RATIO);
        let mut data = Vec::with_capacity(cap as usize);
        (&mut dec)
            .take(want + 1)
            .read_to_end(&mut data)
            .map_err(|e| Error::file(path, format!("corrupt gzip data: {e}")))?;
        check_len(data.len() as u64, want, path)?;
        Ok(Idx { dims, data })
    } else {
        if raw.len() < 4 {
            return Err(Error::file(path, format!("truncated: {} bytes, too short for an IDX header", raw.len())));
        }
        let ndim = check_magic(&raw[..4], path)?;
        let head = 4 + 4 * ndim;
        if raw.len() < head {
            return Err(Error::file(path, format!("truncated: {} bytes, the IDX header needs {head}", raw.len())));
        }
        let dims = parse_dims(&raw[4..head]);
        let want = payload(&dims, path)?;
        check_len((raw.len() - head) as u64, want, path)?;
        let mut raw = raw;
        raw.drain(..head);
        Ok(Idx { dims, data: raw })
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], path: &Path, what: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::file(path, format!("truncated: the file ends inside {what}"))
        } else {
            Error::file(path, format!("corrupt gzip data: {e}"))
        }
    })
}

fn check_magic(m: &[u8], path: &Path) -> Result<usize> {
    let ndim = m[3] as usize;
    if m[0] != 0 || m[1] != 0 || m[2] != 0x08 || !(1..=4).contains(&ndim) {
        return Err(Error::file(
            path,
            format!(
                "wrong IDX magic 0x{:02x}{:02x}{:02x}{:02x} (expected 0x000008NN: unsigned bytes, 1 to 4 dimensions)",
                m[0], m[1], m[2], m[3]
            ),
        ));
    }
    Ok(ndim)
}

fn parse_dims(b: &[u8]) -> Vec<usize> {
    b.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect()
}

fn payload(dims: &[usize], path: &Path) -> Result<u64> {
    let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).unwrap_or(u64::MAX);
    if n > MAX_IDX_BYTES {
        return Err(Error::file(
            path,
            format!("header declares {dims:?} = {n} bytes, over the {MAX_IDX_BYTES}-byte limit"),
        ));
    }
    Ok(n)
}

fn check_len(got: u64, want: u64, path: &Path) -> Result<()> {
    if got < want {
        Err(Error::file(path, format!("truncated: the header declares {want} data bytes but the file holds {got}")))
    } else if got > want {
        Err(Error::file(path, format!("{} bytes of data beyond what the header declares ({want})", got - want)))
    } else {
        Ok(())
    }
}

/// The four files of an IDX data set in `dir` (gzipped or plain names).
#[derive(Debug, Clone)]
pub struct IdxFiles {
    /// Training images.
    pub train_images: PathBuf,
    /// Training labels.
    pub train_labels: PathBuf,
    /// Test images.
    pub test_images: PathBuf,
    /// Test labels.
    pub test_labels: PathBuf,
}

impl IdxFiles {
    /// Finds the four files in `dir`, or None when the train images are absent.
    pub fn find(dir: &Path) -> Option<Self> {
        let pick = |stem: &str, what: &str, idx: &str| -> PathBuf {
            let names = [
                format!("{stem}-{what}-{idx}-ubyte.gz"),
                format!("{stem}-{what}-{idx}-ubyte"),
                format!("{stem}-{what}.{idx}-ubyte.gz"),
                format!("{stem}-{what}.{idx}-ubyte"),
            ];
            names.iter().map(|n| dir.join(n)).find(|p| p.is_file()).unwrap_or_else(|| dir.join(&names[0]))
        };
        let f = Self {
            train_images: pick("train", "images", "idx3"),
            train_labels: pick("train", "labels", "idx1"),
            test_images: pick("t10k", "images", "idx3"),
            test_labels: pick("t10k", "labels", "idx1"),
        };
        f.train_images.is_file().then_some(f)
    }

    /// Every file, for fingerprints.
    pub fn all(&self) -> [&Path; 4] {
        [&self.train_images, &self.train_labels, &self.test_images, &self.test_labels]
    }
}

/// Images and labels read from an IDX pair.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxPair {
    /// Number of images.
    pub n: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// `n * h * w` pixels.
    pub pixels: Vec<u8>,
    /// `n` labels.
    pub labels: Vec<i64>,
}

/// Reads an image file `[N, H, W]` and its label file `[N]`; labels must be
/// below `n_classes`.
pub fn read_pair(images: &Path, labels: &Path, n_classes: usize) -> Result<IdxPair> {
    let (im, lb) = rayon::join(|| read(images), || read(labels));
    let (im, lb) = (im?, lb?);
    if im.dims.len() != 3 {
        return Err(Error::file(
            images,
            format!("expected 3 dimensions [N, H, W] for images, the header has {:?}", im.dims),
        ));
    }
    if lb.dims.len() != 1 {
        return Err(Error::file(labels, format!("expected 1 dimension [N] for labels, the header has {:?}", lb.dims)));
    }
    let (n, h, w) = (im.dims[0], im.dims[1], im.dims[2]);
    if n == 0 || h == 0 || w == 0 {
        return Err(Error::file(images, format!("holds no images (dimensions {:?})", im.dims)));
    }
    if lb.dims[0] != n {
        return Err(Error::file(labels, format!("has {} labels but {} has {n} images", lb.dims[0], images.display())));
    }
    if let Some((i, &l)) = lb.data.iter().enumerate().find(|(_, &l)| l as usize >= n_classes) {
        return Err(Error::file(labels, format!("label {l} of item {i} is out of range for {n_classes} classes")));
    }
    Ok(IdxPair { n, h, w, pixels: im.data, labels: lb.data.iter().map(|&l| l as i64).collect() })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// The bytes of an IDX file of unsigned bytes.
    pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    pub fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gzipped_alike() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..24).collect();
        let b = idx_bytes(&[2, 3, 4], &data);
        std::fs::write(dir.path().join("a"), &b).unwrap();
        std::fs::write(dir.path().join("a.gz"), gzip(&b)).unwrap();
        for name in ["a", "a.gz"] {
            let idx = read(&dir.path().join(name)).unwrap();
            assert_eq!(idx.dims, vec![2, 3, 4]);
            assert_eq!(idx.data, data);
        }
    }

    #[test]
    fn bad_idx_files_name_the_file_and_the_fault() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("magic", vec![0, 0, 0x0d, 3, 0, 0, 0, 1], "wrong IDX magic 0x00000d03"),
            (
                "short",
                idx_bytes(&[2, 2, 2], &[1, 2, 3]),
                "truncated: the header declares 8 data bytes but the file holds 3",
            ),
            ("short.gz", gzip(&idx_bytes(&[2, 2, 2], &[1, 2, 3])), "truncated: the header declares 8 data bytes"),
            ("long", idx_bytes(&[1, 1, 1], &[1, 2]), "1 bytes of data beyond"),
            ("tiny", vec![0, 0], "too short for an IDX header"),
            ("headless", vec![0, 0, 8, 3, 0, 0], "the IDX header needs 16"),
            ("corrupt.gz", vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff], "corrupt gzip data"),
            ("bomb", idx_bytes(&[60000, 60000, 60000], &[]), "over the 4294967296-byte limit"),
        ];
        for (name, bytes, want) in cases {
            std::fs::write(p(name), bytes).unwrap();
            let e = read(&p(name)).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(name), "{name}: {e}");
        }
        let e = read(&p("missing")).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("No such file"), "{e}");
    }

    #[test]
    fn pair_checks_counts_and_label_range() {
        let dir = tempfile::tempdir().unwrap();
        let (im, lb) = (dir.path().join("im"), dir.path().join("lb"));
        std::fs::write(&im, idx_bytes(&[2, 1, 1], &[5, 6])).unwrap();
        std::fs::write(&lb, idx_bytes(&[2], &[0, 1])).unwrap();
        let pair = read_pair(&im, &lb, 10).unwrap();
        assert_eq!(pair, IdxPair { n: 2, h: 1, w: 1, pixels: vec![5, 6], labels: vec![0, 1] });
        std::fs::write(&lb, idx_bytes(&[2], &[0, 10])).unwrap();
        let e = read_pair(&im, &lb, 10).unwrap_err().to_string();
        assert!(e.contains("label 10 of item 1 is out of range for 10 classes"), "{e}");
        std::fs::write(&lb, idx_bytes(&[3], &[0, 1, 2])).unwrap();
        let e = read_pair(&im, &lb, 10).unwrap_err().to_string();
        assert!(e.contains("has 3 labels but") && e.contains("has 2 images"), "{e}");
    }
}
