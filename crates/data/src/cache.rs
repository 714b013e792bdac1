//! The cache of decoded data sets: one safetensors file of u8 images and
//! i64 labels per source and size, beside a JSON file that says what it
//! holds and the fingerprint (names, sizes, modification times) of the
//! source files it was decoded from. A stale or broken entry is rebuilt.
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Bumped when the decoding changes, so old caches are rebuilt.
pub const CACHE_FORMAT: u32 = 1;

/// A stable 64-bit hash (FNV-1a) of names, sizes and times.
#[derive(Debug, Clone)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    /// An empty fingerprint.
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Adds bytes.
    pub fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Adds a string (length-prefixed, so "ab"+"c" differs from "a"+"bc").
    pub fn add_str(&mut self, s: &str) {
        self.add(&(s.len() as u64).to_le_bytes());
        self.add(s.as_bytes());
    }

    /// Adds a file's name, size and modification time (missing files count
    /// as size 0, time 0).
    pub fn add_file(&mut self, path: &Path) {
        self.add_str(&path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let (len, nanos) = std::fs::metadata(path)
            .map(|m| {
                let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                (m.len(), t.map_or(0, |d| d.as_nanos() as u64))
            })
            .unwrap_or((0, 0));
        self.add(&len.to_le_bytes());
        self.add(&nanos.to_le_bytes());
    }

    /// The hash.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// What a cache entry holds, written as JSON beside the tensors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CacheMeta {
    /// [`CACHE_FORMAT`] at writing.
    pub format: u32,
    /// The source (canonical path) and its kind.
    pub source: String,
    /// Fingerprint of the source files, hex.
    pub fingerprint: String,
    /// Data set name.
    pub name: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Channels of the cached images.
    pub channels: usize,
    /// Side of the cached images.
    pub size: usize,
}

/// A cache entry's two files.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// The tensors.
    pub tensors: PathBuf,
    /// The JSON description, written last (its presence marks a complete entry).
    pub meta: PathBuf,
}

impl CacheEntry {
    /// The entry for `key` (a readable name) in `dir`.
    pub fn new(dir: &Path, key: &str) -> Self {
        Self { tensors: dir.join(format!("{key}.safetensors")), meta: dir.join(format!("{key}.json")) }
    }

    /// Reads the entry when it exists and describes `want` (same source,
    /// fingerprint, size and channels); None when absent, stale or broken.
    pub fn read(&self, want: &CacheMeta) -> Option<BTreeMap<String, Tensor>> {
        let meta: CacheMeta = dualspace_tensor::checkpoint::read_json(&self.meta).ok()?;
        let same = meta.format == want.format
            && meta.source == want.source
            && meta.fingerprint == want.fingerprint
            && meta.name == want.name
            && meta.classes == want.classes
            && (meta.channels, meta.size) == (want.channels, want.size);
        if !same {
            return None;
        }
        dualspace_tensor::checkpoint::read_tensors(&self.tensors).ok()
    }

    /// Writes the entry: the old description is removed first and the new
    /// one written last, so a crash leaves no entry that looks complete.
    pub fn write(&self, meta: &CacheMeta, tensors: &[(&str, Tensor)]) -> Result<()> {
        if let Some(dir) = self.meta.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        match std::fs::remove_file(&self.meta) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&self.meta, e)),
            _ => {}
        }
        dualspace_tensor::checkpoint::write_tensors(&self.tensors, tensors)?;
        dualspace_tensor::checkpoint::write_json(&self.meta, meta)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_names_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let fp = |p: &Path| {
            let mut f = Fingerprint::new();
            f.add_file(p);
            f.finish()
        };
        let a = fp(&p);
        assert_eq!(a, fp(&p));
        std::fs::write(&p, b"abcd").unwrap();
        assert_ne!(a, fp(&p));
        let mut x = Fingerprint::new();
        x.add_str("ab");
        x.add_str("c");
        let mut y = Fingerprint::new();
        y.add_str("a");
        y.add_str("bc");
        assert_ne!(x.finish(), y.finish());
    }

    #[test]
    fn entry_round_trips_and_refuses_other_sources() {
        let dir = tempfile::tempdir().unwrap();
        let e = CacheEntry::new(dir.path(), "k");
        let meta = CacheMeta {
            format: CACHE_FORMAT,
            source: "/x".into(),
            fingerprint: "01".into(),
            name: "x".into(),
            classes: vec!["a".into()],
            channels: 1,
            size: 2,
        };
        assert!(e.read(&meta).is_none());
        e.write(&meta, &[("all.labels", Tensor::from_slice(&[1i64, 2]))]).unwrap();
        let back = e.read(&meta).unwrap();
        assert_eq!(Vec::<i64>::try_from(&back["all.labels"]).unwrap(), vec![1, 2]);
        let other = CacheMeta { fingerprint: "02".into(), ..meta.clone() };
        assert!(e.read(&other).is_none());
        std::fs::write(&e.tensors, b"broken").unwrap();
        assert!(e.read(&meta).is_none());
    }
}
