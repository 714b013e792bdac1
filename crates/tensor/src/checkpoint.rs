//! Checkpoints: named tensors in `.safetensors` files beside `config.json` and
//! a small metadata JSON, all written atomically (temp file + rename), and
//! loaded back with errors that name the missing or mis-shaped tensor.
use crate::{Error, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Tensor};

/// Metadata saved with every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckpointMeta {
    /// Optimisation steps done.
    pub step: u64,
    /// Training seconds on the training clock (evaluation excluded).
    pub train_seconds: f64,
    /// The run's seed.
    pub seed: u64,
    /// libtorch version.
    pub torch_version: String,
    /// dualspace version.
    pub dualspace_version: String,
    /// Seconds since the Unix epoch at saving.
    pub saved_unix: u64,
}

impl CheckpointMeta {
    /// Metadata for now.
    pub fn new(step: u64, train_seconds: f64, seed: u64) -> Self {
        let saved_unix =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Self {
            step,
            train_seconds,
            seed,
            torch_version: crate::TORCH_VERSION.into(),
            dualspace_version: crate::CRATE_VERSION.into(),
            saved_unix,
        }
    }
}

/// Writes `path` through `write(tmp)` and a rename, so no half-written file is
/// ever visible under `path`. The temp file lies in the same folder.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    // Keep the extension last: some writers pick the format from it.
    let tmp = dir.join(format!(".tmp-{}-{name}", std::process::id()));
    // The data reach the disk before the name does (a crash leaves the old file or the new one).
    let written =
        write(&tmp).and_then(|()| std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| Error::io(&tmp, e)));
    match written {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: impl AsRef<Path>, value: &T) -> Result<()> {
    let path = path.as_ref();
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Json { path: path.into(), source: e })?;
    write_atomic(path, |tmp| std::fs::write(tmp, text.as_bytes()).map_err(|e| Error::io(path, e)))
}

/// Reads a JSON file.
pub fn read_json<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Json { path: path.into(), source: e })
}

/// Writes named tensors as safetensors, atomically. Tensors are moved to the
/// CPU and made contiguous first.
pub fn write_tensors<S: AsRef<str>>(path: impl AsRef<Path>, tensors: &[(S, Tensor)]) -> Result<()> {
    let path = path.as_ref();
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.as_ref().to_string(), t.detach().to_device(tch::Device::Cpu).contiguous()))
        .collect();
    write_atomic(path, |tmp| Ok(Tensor::write_safetensors(&cpu, tmp)?))
}

/// Reads every tensor of a safetensors file, by name.
pub fn read_tensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(Error::Checkpoint { path: path.into(), msg: "file not found".into() });
    }
    let list = Tensor::read_safetensors(path)
        .map_err(|e| Error::Checkpoint { path: path.into(), msg: format!("not a readable safetensors file: {e}") })?;
    Ok(list.into_iter().collect())
}

/// Saves every variable of a VarStore as safetensors, atomically.
pub fn save_varstore(vs: &VarStore, path: impl AsRef<Path>) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    write_tensors(path, &vars)
}

/// Copies named tensors into a VarStore's variables. Every variable must be
/// present with its exact shape; extra tensors in the file are an error too
/// (they mean the file was written for another model).
pub fn load_varstore_from(vs: &VarStore, tensors: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
    let vars = vs.variables();
    let mut missing: Vec<&String> = vars.keys().filter(|k| !tensors.contains_key(*k)).collect();
    missing.sort();
    if let Some(name) = missing.first() {
        return Err(Error::Checkpoint {
            path: path.into(),
            msg: format!(
                "tensor '{name}' is missing ({} of {} model tensors missing); the file was written for another model kind or configuration",
                missing.len(),
                vars.len()
            ),
        });
    }
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !vars.contains_key(*k)).collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(Error::Checkpoint {
            path: path.into(),
            msg: format!(
                "tensor '{name}' in the file is not part of the model; the file was written for another model kind"
            ),
        });
    }
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in &names {
        let (v, t) = (&vars[*name], &tensors[*name]);
        if v.size() != t.size() {
            return Err(Error::Checkpoint {
                path: path.into(),
                msg: format!(
                    "tensor '{name}' has shape {:?} in the file but the model expects {:?}",
                    t.size(),
                    v.size()
                ),
            });
        }
    }
    let _guard = tch::no_grad_guard();
    for name in names {
        let mut v = vars[name].shallow_clone();
        v.f_copy_(&tensors[name].to_kind(v.kind()).to_device(v.device()))?;
    }
    Ok(())
}

/// Loads a safetensors file written by [`save_varstore`] into a VarStore with
/// the same structure.
pub fn load_varstore(vs: &VarStore, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let tensors = read_tensors(path)?;
    load_varstore_from(vs, &tensors, path)
}

/// The files of one checkpoint folder: `<name>.safetensors` per network,
/// `config.json`, `meta.json`.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    /// The folder.
    pub dir: PathBuf,
}

impl CheckpointDir {
    /// A checkpoint folder (not created until saving).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Path of a network's tensors.
    pub fn tensors_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.safetensors"))
    }

    /// Whether a complete checkpoint is there (meta.json is written last).
    pub fn exists(&self) -> bool {
        self.dir.join("meta.json").exists()
    }

    /// Saves networks, extra tensors (optimiser state and the like), the
    /// config and the metadata. `meta.json` is written last, so a checkpoint
    /// with a meta file is complete.
    pub fn save<C: Serialize>(
        &self,
        nets: &[(&str, &VarStore)],
        extra: &[(&str, Vec<(String, Tensor)>)],
        config: &C,
        meta: &CheckpointMeta,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        // Each file is written atomically, but the set is not: without its
        // meta file a half-rewritten folder is not taken for a checkpoint
        // (new weights beside an old optimiser state would resume silently wrong).
        let meta_path = self.dir.join("meta.json");
        match std::fs::remove_file(&meta_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&meta_path, e)),
        }
        for (name, vs) in nets {
            save_varstore(vs, self.tensors_path(name))?;
        }
        for (name, tensors) in extra {
            write_tensors(self.tensors_path(name), tensors)?;
        }
        write_json(self.dir.join("config.json"), config)?;
        write_json(meta_path, meta)
    }

    /// Reads the config.
    pub fn config<C: DeserializeOwned>(&self) -> Result<C> {
        read_json(self.dir.join("config.json"))
    }

    /// Reads the metadata.
    pub fn meta(&self) -> Result<CheckpointMeta> {
        read_json(self.dir.join("meta.json"))
    }

    /// Loads one network.
    pub fn load_net(&self, name: &str, vs: &VarStore) -> Result<()> {
        load_varstore(vs, self.tensors_path(name))
    }

    /// Reads an extra tensor file as a map.
    pub fn load_extra(&self, name: &str) -> Result<HashMap<String, Tensor>> {
        Ok(read_tensors(self.tensors_path(name))?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    fn net(vs: &VarStore, hidden: i64) -> nn::Sequential {
        let p = vs.root();
        nn::seq().add(nn::linear(&p / "fc1", 3, hidden, Default::default())).add(nn::linear(
            &p / "fc2",
            hidden,
            2,
            Default::default(),
        ))
    }

    #[test]
    fn save_load_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let _g = crate::seed::seed_guard(1);
        let a = VarStore::new(Device::Cpu);
        let _n = net(&a, 4);
        let b = VarStore::new(Device::Cpu);
        let _m = net(&b, 4);
        let p = dir.path().join("w.safetensors");
        save_varstore(&a, &p).unwrap();
        load_varstore(&b, &p).unwrap();
        for (k, v) in a.variables() {
            assert!(v.equal(&b.variables()[&k]), "{k} differs");
        }
        // No temp file left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn misfit_names_the_tensor() {
        let _g = crate::seed::generator_lock();
        let dir = tempfile::tempdir().unwrap();
        let a = VarStore::new(Device::Cpu);
        let _n = net(&a, 4);
        let p = dir.path().join("w.safetensors");
        save_varstore(&a, &p).unwrap();
        let b = VarStore::new(Device::Cpu);
        let _m = net(&b, 5);
        let e = load_varstore(&b, &p).unwrap_err().to_string();
        assert!(e.contains("tensor 'fc1.bias' has shape [4] in the file but the model expects [5]"), "{e}");
        let c = VarStore::new(Device::Cpu);
        let _x = nn::linear(c.root() / "other", 3, 4, Default::default());
        let e = load_varstore(&c, &p).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("other."), "{e}");
        let e = load_varstore(&c, dir.path().join("nope.safetensors")).unwrap_err().to_string();
        assert!(e.contains("file not found"), "{e}");
        std::fs::write(dir.path().join("bad.safetensors"), b"garbage").unwrap();
        let e = load_varstore(&c, dir.path().join("bad.safetensors")).unwrap_err().to_string();
        assert!(e.contains("not a readable safetensors"), "{e}");
    }

    #[test]
    fn checkpoint_dir_saves_everything() {
        let _g = crate::seed::generator_lock();
        let dir = tempfile::tempdir().unwrap();
        let ck = CheckpointDir::new(dir.path().join("run/ckpt"));
        assert!(!ck.exists());
        let a = VarStore::new(Device::Cpu);
        let _n = net(&a, 4);
        let extra = vec![("state.x".to_string(), Tensor::ones([2], (Kind::Float, Device::Cpu)))];
        let meta = CheckpointMeta::new(10, 1.5, 3);
        ck.save(&[("gen", &a)], &[("optim", extra)], &serde_json::json!({"k": 1}), &meta).unwrap();
        assert!(ck.exists());
        assert_eq!(ck.meta().unwrap(), meta);
        let cfg: serde_json::Value = ck.config().unwrap();
        assert_eq!(cfg["k"], 1);
        assert_eq!(ck.load_extra("optim").unwrap()["state.x"].sum(Kind::Float).double_value(&[]), 2.0);
        // A save that fails part-way (here: the optimiser file cannot be
        // written) leaves no checkpoint, not new weights beside old state.
        std::fs::remove_file(ck.tensors_path("optim")).unwrap();
        std::fs::create_dir(ck.tensors_path("optim")).unwrap();
        std::fs::write(ck.tensors_path("optim").join("x"), b"x").unwrap();
        let extra = vec![("state.x".to_string(), Tensor::ones([2], (Kind::Float, Device::Cpu)))];
        assert!(ck.save(&[("gen", &a)], &[("optim", extra)], &serde_json::json!({"k": 2}), &meta).is_err());
        assert!(!ck.exists(), "a half-written checkpoint must not look complete");
    }
}
