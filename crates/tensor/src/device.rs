//! Device selection from a string, thread control, synchronisation.
use crate::{Error, Result};
use tch::Device;

/// Parses `auto`, `cpu`, `cuda` or `cuda:N`. `auto` picks the first GPU when
/// one is present. Asking for CUDA where there is none is an error.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    match s.as_str() {
        "auto" => Ok(if tch::Cuda::is_available() { Device::Cuda(0) } else { Device::Cpu }),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => cuda(0),
        other => match other.strip_prefix("cuda:") {
            Some(n) => {
                let i: usize = n.parse().map_err(|_| {
                    Error::Device(format!("device '{other}': '{n}' is not a GPU index; use cuda:0, cuda:1, ..."))
                })?;
                cuda(i)
            }
            None => Err(Error::Device(format!("unknown device '{other}': use auto, cpu, cuda or cuda:N"))),
        },
    }
}

fn cuda(i: usize) -> Result<Device> {
    if !tch::Cuda::is_available() {
        return Err(Error::Device(format!(
            "device cuda:{i} was asked for but CUDA is not available on this machine; use --device cpu or --device auto"
        )));
    }
    let n = tch::Cuda::device_count() as usize;
    if i >= n {
        return Err(Error::Device(format!("device cuda:{i} was asked for but this machine has {n} GPU(s)")));
    }
    Ok(Device::Cuda(i))
}

/// A short name for a device: `cpu`, `cuda:0`.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Sets libtorch's intra-op thread count for CPU work; `None` or 0 leaves the
/// default (the number of cores).
pub fn set_threads(n: Option<usize>) {
    if let Some(n) = n.filter(|&n| n > 0) {
        tch::set_num_threads(n as i32);
    }
}

/// The current intra-op thread count.
pub fn threads() -> usize {
    tch::get_num_threads() as usize
}

/// Waits for queued GPU work on `d` (no-op on CPU): call before reading a clock.
pub fn sync(d: Device) {
    if let Device::Cuda(i) = d {
        tch::Cuda::synchronize(i as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_auto() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device(" CPU ").unwrap(), Device::Cpu);
        let auto = parse_device("auto").unwrap();
        assert_eq!(auto == Device::Cpu, !tch::Cuda::is_available());
    }

    #[test]
    fn rejects_unknown_and_bad_index() {
        let e = parse_device("tpu").unwrap_err().to_string();
        assert!(e.contains("unknown device 'tpu'"), "{e}");
        let e = parse_device("cuda:x").unwrap_err().to_string();
        assert!(e.contains("not a GPU index"), "{e}");
    }

    #[test]
    fn cuda_absent_is_a_clear_error() {
        if tch::Cuda::is_available() {
            assert!(parse_device("cuda:999").is_err());
        } else {
            let e = parse_device("cuda").unwrap_err().to_string();
            assert!(e.contains("CUDA is not available"), "{e}");
        }
    }
}
