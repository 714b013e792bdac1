//! What long-running work shares with whoever drives it: a [`Monitor`] that
//! receives progress and can ask the work to stop (the CLI draws a progress
//! bar and turns Ctrl-C into a stop request), and a JSONL log writer.
use crate::{Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Receives progress from a training loop and can ask it to stop early.
pub trait Monitor {
    /// Called after each step: `step` done so far, `total` when known (or
    /// `None` for a time budget), training seconds, and a short status line
    /// (losses, throughput).
    fn on_step(&mut self, _step: u64, _total: Option<u64>, _train_seconds: f64, _status: &str) {}
    /// A one-off message (checkpoint written, evaluation done).
    fn message(&mut self, _msg: &str) {}
    /// Whether the loop should stop now (saving what it has). Checked every step.
    fn should_stop(&self) -> bool {
        false
    }
}

/// A monitor that shows nothing and never stops the work.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;
impl Monitor for Silent {}

/// Appends one JSON object per line to a file, flushing each line so a
/// stopped run keeps everything logged so far.
pub struct JsonlLog {
    path: PathBuf,
    file: std::fs::File,
}

impl JsonlLog {
    /// Opens (creating folders) for appending; `truncate` starts a fresh log.
    pub fn open(path: impl AsRef<Path>, truncate: bool) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(!truncate)
            .write(true)
            .truncate(truncate)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self { path, file })
    }

    /// Writes one record.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_string(record).map_err(|e| Error::Json { path: self.path.clone(), source: e })?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, e))?;
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }

    /// Keeps only records whose `step` is at most `step` (used on resume, so
    /// a resumed run's log has no duplicate steps).
    pub fn truncate_after_step(path: impl AsRef<Path>, step: u64) -> Result<()> {
        let path = path.as_ref();
        let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_none_or(|s| s <= step)
            })
            .collect();
        let mut out = kept.join("\n");
        if !out.is_empty() {
            out.push('\n');
        }
        crate::checkpoint::write_atomic(path, |tmp| std::fs::write(tmp, out).map_err(|e| Error::io(path, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_appends_and_truncates_by_step() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        let mut log = JsonlLog::open(&p, true).unwrap();
        for s in 1..=5u64 {
            log.write(&serde_json::json!({"step": s, "loss": 1.0 / s as f64})).unwrap();
        }
        drop(log);
        JsonlLog::truncate_after_step(&p, 3).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 3);
        let mut log = JsonlLog::open(&p, false).unwrap();
        log.write(&serde_json::json!({"step": 4})).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 4);
    }
}
