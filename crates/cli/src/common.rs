//! What the subcommands share: device and thread options, progress bars with
//! Ctrl-C handling, and small argument parsers.
#![allow(dead_code)]
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Device and threads, flattened into every command that computes.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Where to compute: auto, cpu, cuda or cuda:N (auto picks a GPU when present).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// CPU threads for libtorch (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl DeviceArgs {
    /// Parses the device and applies the thread count.
    pub fn setup(&self) -> Result<tch::Device> {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        if self.threads > 4 * cores {
            anyhow::bail!(
                "--threads {} is more than 4x this machine's {cores} cores; use 0 (all cores) or at most {}",
                self.threads,
                4 * cores
            );
        }
        dualspace_tensor::device::set_threads(Some(self.threads));
        Ok(dualspace_tensor::device::parse_device(&self.device)?)
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static HANDLER: Once = Once::new();

/// Installs the Ctrl-C handler (once): the first Ctrl-C (or SIGTERM, or
/// SIGHUP: a `kill`, a job scheduler's stop, a closed terminal) asks running
/// work to stop cleanly (it saves what it has); a second one exits at once.
pub fn install_ctrlc() {
    HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond stop signal: exiting without saving");
                std::process::exit(130);
            }
            eprintln!(
                "\nstop signal (Ctrl-C or SIGTERM): stopping after the current step and saving (again to exit at once)"
            );
        });
    });
}

/// Refuses an output file that exists (unless `force`) or names a folder,
/// before any work is done.
pub fn check_out_file(path: &std::path::Path, force: bool) -> Result<()> {
    if path.is_dir() {
        anyhow::bail!("--out {} is a folder; give the path of the file to write", path.display());
    }
    if path.exists() && !force {
        anyhow::bail!("{} already exists; pass --force to overwrite it, or choose another --out", path.display());
    }
    Ok(())
}

/// What a run folder holds, judged by the files each command writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// A GAN run (`checkpoint/`, or `checkpoint.old` of an interrupted
    /// save), with the `kind` of its config when readable.
    Gan(Option<String>),
    /// A judge (`judge.safetensors`).
    Judge,
    /// A map (any other `config.json`).
    Map,
}

/// What `dir` holds, if it holds a run.
pub fn folder_holds(dir: &std::path::Path) -> Option<Held> {
    let checkpoint = dualspace_latent_gan::trainer::CHECKPOINT;
    if let Some(ck) =
        [checkpoint.to_string(), format!("{checkpoint}.old")].iter().map(|c| dir.join(c)).find(|p| p.exists())
    {
        let config: Option<serde_json::Value> = dualspace_tensor::checkpoint::read_json(ck.join("config.json")).ok();
        return Some(Held::Gan(config.and_then(|v| v.get("kind")?.as_str().map(String::from))));
    }
    if dir.join("judge.safetensors").exists() {
        return Some(Held::Judge);
    }
    dir.join("config.json").exists().then_some(Held::Map)
}

/// Refuses a GAN run folder where a map is expected, naming its kind.
pub fn refuse_gan_as_map(dir: &std::path::Path) -> Result<()> {
    if let Some(Held::Gan(kind)) = folder_holds(dir) {
        anyhow::bail!(
            "{}: this is a {} run folder, not a map; give a folder written by `dualspace train-map` (a GAN run goes to --gan)",
            dir.display(),
            kind.as_deref().unwrap_or("GAN")
        );
    }
    Ok(())
}

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// A progress bar as a [`dualspace_tensor::run::Monitor`]: steps (or seconds
/// of a time budget), a status line, and Ctrl-C as the stop request.
pub struct BarMonitor {
    bar: ProgressBar,
    budget_s: Option<f64>,
}

impl BarMonitor {
    /// A bar for `steps` steps, or for `budget_s` seconds when steps are
    /// unknown. Hidden when stderr is not a terminal.
    pub fn new(label: &str, steps: Option<u64>, budget_s: Option<f64>) -> Self {
        install_ctrlc();
        let (len, unit) = match (steps, budget_s) {
            (Some(n), _) => (n, "steps"),
            (None, Some(s)) => ((s * 10.0).ceil() as u64, "s/10"),
            (None, None) => (0, ""),
        };
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix:>12}} [{{elapsed_precise}}] {{bar:30}} {{pos}}/{{len}} {unit} {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(label.to_string());
        Self { bar, budget_s: if steps.is_some() { None } else { budget_s } }
    }

    /// Finishes the bar, leaving its last line.
    pub fn finish(&self) {
        self.bar.finish();
    }
}

impl dualspace_tensor::run::Monitor for BarMonitor {
    fn on_step(&mut self, step: u64, _total: Option<u64>, train_seconds: f64, status: &str) {
        if self.budget_s.is_some() {
            self.bar.set_position((train_seconds * 10.0) as u64);
        } else {
            self.bar.set_position(step);
        }
        self.bar.set_message(status.to_string());
    }
    fn message(&mut self, msg: &str) {
        // A hidden bar (stderr is not a terminal: a log file, CI) drops
        // println; the message still belongs in the log.
        if self.bar.is_hidden() {
            eprintln!("{msg}");
        } else {
            self.bar.println(msg);
        }
    }
    fn should_stop(&self) -> bool {
        interrupted()
    }
}

/// Splits a comma-separated list, dropping empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
}

/// Parses a flag's comma-separated list of layer widths (at least one, all
/// positive); the error names the flag, the bad item and an example.
pub fn parse_widths(s: &str, flag: &str) -> Result<Vec<i64>> {
    let items = split_list(s);
    if items.is_empty() {
        anyhow::bail!("{flag} '{s}': give at least one width, e.g. 32,64");
    }
    items
        .iter()
        .map(|w| match w.parse::<i64>() {
            Ok(v) if v > 0 => Ok(v),
            _ => anyhow::bail!("{flag} '{s}': '{w}' is not a positive whole number; write e.g. 32,64"),
        })
        .collect()
}

/// An error and its causes on one line, joined by ": ". A cause whose text
/// the line already holds (library errors often repeat their source in
/// their own message) is left out, so "Is a directory (os error 21)" is not
/// printed twice; line breaks become spaces.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if s.is_empty() || out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;
    use anyhow::Context;

    #[test]
    fn repeated_causes_are_printed_once() {
        let io = std::io::Error::other("Is a directory (os error 21)");
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "tiny: {}", self.0)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Err::<(), _>(Wrap(io)).context("writing tiny").unwrap_err();
        assert_eq!(one_line(&e), "writing tiny: tiny: Is a directory (os error 21)");
        let e = anyhow::anyhow!("two\nlines").context("outer");
        assert_eq!(one_line(&e), "outer: two lines");
    }
}
