//! libtorch operators that tch 0.24 does not wrap, through the C++ shim in
//! `csrc/fused.cpp` (compiled by this crate's build script against the same
//! torch): leaky ReLU with a chosen slope (tch's `leaky_relu` fixes 0.01),
//! Adam as one fused kernel (`_fused_adam_`), and the multi-tensor updates
//! (`_foreach_lerp_`, `_foreach_norm`, set-to-none gradients) that keep a
//! training step from spending its time on hundreds of small kernels.
//!
//! Each function checks its arguments on the Rust side; an error raised in
//! libtorch comes back as [`Error::Torch`], never as a crash.
use crate::{Error, Result};
use std::ffi::{c_char, c_int, c_void, CStr};
use tch::Tensor;

type CTensor = *mut c_void;

extern "C" {
    fn ds_free_error(err: *mut c_char);
    fn ds_leaky_relu(out: *mut CTensor, x: CTensor, slope: f64) -> *mut c_char;
    #[allow(clippy::too_many_arguments)]
    fn ds_fused_adam(
        params: *const CTensor,
        grads: *const CTensor,
        exp_avgs: *const CTensor,
        exp_avg_sqs: *const CTensor,
        n: c_int,
        step: CTensor,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> *mut c_char;
    fn ds_foreach_lerp(dst: *const CTensor, src: *const CTensor, n: c_int, weight: f64) -> *mut c_char;
    fn ds_total_norm(out: *mut CTensor, ts: *const CTensor, n: c_int) -> *mut c_char;
    fn ds_grads_to_none(ts: *const CTensor, n: c_int) -> *mut c_char;
}

/// Turns the shim's error pointer into a result (and frees it).
fn check(err: *mut c_char) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string malloc'd by the
    // shim, read once here and then freed by the shim's own allocator.
    let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    unsafe { ds_free_error(err) };
    Err(Error::Torch(tch::TchError::Torch(msg)))
}

fn handles(ts: &[Tensor]) -> Vec<CTensor> {
    ts.iter().map(|t| t.as_ptr() as CTensor).collect()
}

fn count(n: usize) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| Error::Invalid(format!("{n} tensors in one fused call is too many")))
}

fn same_len(what: &str, want: usize, got: usize) -> Result<()> {
    if want != got {
        return Err(Error::Invalid(format!("{what}: {got} tensors, expected {want}")));
    }
    Ok(())
}

/// Leaky ReLU `max(x, slope * x)` as libtorch's own kernel, forward and
/// backward (what PyTorch's `nn.LeakyReLU(slope)` runs).
pub fn f_leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    let mut out: CTensor = std::ptr::null_mut();
    // SAFETY: `x` is a live tch tensor; on success the shim stores a new
    // heap tensor in `out`, which the returned Tensor owns.
    check(unsafe { ds_leaky_relu(&mut out, x.as_ptr() as CTensor, slope) })?;
    Ok(unsafe { Tensor::from_ptr(out as *mut _) })
}

/// [`f_leaky_relu`], panicking on a libtorch error like tch's own
/// infallible operators (for use inside `forward`).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    f_leaky_relu(x, slope).unwrap_or_else(|e| panic!("leaky_relu: {e}"))
}

/// One in-place Adam update (PyTorch's formula with L2 `weight_decay`, no
/// amsgrad) of every parameter in `params`, as one fused kernel per
/// tensor. `step` is a float32 scalar tensor on the parameters' device
/// holding the step number of this update (1 for the first). Every list
/// must have the same length; runs without gradient tracking.
#[allow(clippy::too_many_arguments)]
pub fn fused_adam(
    params: &[Tensor],
    grads: &[Tensor],
    exp_avgs: &[Tensor],
    exp_avg_sqs: &[Tensor],
    step: &Tensor,
    lr: f64,
    betas: (f64, f64),
    weight_decay: f64,
    eps: f64,
) -> Result<()> {
    let n = params.len();
    same_len("fused_adam gradients", n, grads.len())?;
    same_len("fused_adam first moments", n, exp_avgs.len())?;
    same_len("fused_adam second moments", n, exp_avg_sqs.len())?;
    if n == 0 {
        return Ok(());
    }
    let nc = count(n)?;
    let (p, g, m, v) = (handles(params), handles(grads), handles(exp_avgs), handles(exp_avg_sqs));
    let _guard = tch::no_grad_guard();
    // SAFETY: four arrays of `n` live tensor handles and one more for the
    // step, all borrowed for the duration of the call.
    check(unsafe {
        ds_fused_adam(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            nc,
            step.as_ptr() as CTensor,
            lr,
            betas.0,
            betas.1,
            weight_decay,
            eps,
        )
    })
}

/// `dst[i] <- dst[i] + weight * (src[i] - dst[i])` in place, for every `i`
/// at once (the EMA update with `weight = 1 - decay`). No gradient tracking.
pub fn foreach_lerp_(dst: &[Tensor], src: &[Tensor], weight: f64) -> Result<()> {
    same_len("foreach_lerp sources", dst.len(), src.len())?;
    if dst.is_empty() {
        return Ok(());
    }
    let nc = count(dst.len())?;
    let (d, s) = (handles(dst), handles(src));
    let _guard = tch::no_grad_guard();
    // SAFETY: two arrays of live tensor handles of equal length.
    check(unsafe { ds_foreach_lerp(d.as_ptr(), s.as_ptr(), nc, weight) })
}

/// The L2 norm of all of `ts` together, as a float scalar tensor on their
/// device (no host synchronisation). `None` when `ts` is empty.
pub fn total_norm(ts: &[Tensor]) -> Result<Option<Tensor>> {
    if ts.is_empty() {
        return Ok(None);
    }
    let nc = count(ts.len())?;
    let h = handles(ts);
    let mut out: CTensor = std::ptr::null_mut();
    let _guard = tch::no_grad_guard();
    // SAFETY: an array of live handles; on success `out` is a new heap
    // tensor that the returned Tensor owns.
    check(unsafe { ds_total_norm(&mut out, h.as_ptr(), nc) })?;
    Ok(Some(unsafe { Tensor::from_ptr(out as *mut _) }))
}

/// Drops the gradients of `ts` (PyTorch's `zero_grad(set_to_none=True)`):
/// the next backward pass writes fresh gradients rather than adding to
/// zeros, which saves a fill and an addition per tensor.
pub fn grads_to_none(ts: &[Tensor]) -> Result<()> {
    if ts.is_empty() {
        return Ok(());
    }
    let nc = count(ts.len())?;
    let h = handles(ts);
    // SAFETY: an array of live tensor handles.
    check(unsafe { ds_grads_to_none(h.as_ptr(), nc) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn v(t: &Tensor) -> Vec<f32> {
        Vec::try_from(&t.detach().contiguous()).unwrap()
    }

    #[test]
    fn leaky_relu_values_and_gradients() {
        let x = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 0.5, 3.0]).set_requires_grad(true);
        let y = leaky_relu(&x, 0.2);
        assert_eq!(v(&y), vec![-2.0 * 0.2, -0.5 * 0.2, 0.0, 0.5, 3.0]);
        y.sum(Kind::Float).backward();
        assert_eq!(v(&x.grad()), vec![0.2, 0.2, 0.2, 1.0, 1.0]);
    }

    #[test]
    fn libtorch_errors_come_back_as_errors() {
        let x = Tensor::from_slice(&[1i64, 2]);
        let e = f_leaky_relu(&x, 0.2).unwrap_err().to_string();
        assert!(e.starts_with("libtorch: ") && !e.contains("frame #"), "{e}");
        let step = Tensor::from_slice(&[1.0f32]).view([]);
        let a = [Tensor::zeros([2], (Kind::Float, Device::Cpu))];
        let b = [Tensor::zeros([3], (Kind::Float, Device::Cpu))];
        assert!(fused_adam(&a, &b, &a, &a, &step, 0.1, (0.9, 0.999), 0.0, 1e-8).is_err());
        assert!(fused_adam(&a, &[], &a, &a, &step, 0.1, (0.9, 0.999), 0.0, 1e-8).is_err());
        assert!(foreach_lerp_(&a, &[], 0.5).is_err());
        assert!(foreach_lerp_(&a, &b, 0.5).is_err());
        let wrong_step = Tensor::from_slice(&[1.0f64]).view([]);
        assert!(fused_adam(&a, &a, &a, &a, &wrong_step, 0.1, (0.9, 0.999), 0.0, 1e-8).is_err());
    }

    #[test]
    fn lerp_and_norm_match_the_formulas() {
        let dst = [Tensor::from_slice(&[1.0f32, 2.0]), Tensor::from_slice(&[3.0f32])];
        let src = [Tensor::from_slice(&[3.0f32, 0.0]), Tensor::from_slice(&[-3.0f32])];
        foreach_lerp_(&dst, &src, 0.25).unwrap();
        assert_eq!(v(&dst[0]), vec![1.5, 1.5]);
        assert_eq!(v(&dst[1]), vec![1.5]);
        let n = total_norm(&[Tensor::from_slice(&[3.0f32]), Tensor::from_slice(&[4.0f32, 12.0])]).unwrap().unwrap();
        assert!((n.double_value(&[]) - 13.0).abs() < 1e-6);
        assert!(total_norm(&[]).unwrap().is_none());
    }

    #[test]
    fn dropped_gradients_are_undefined_and_rewritten() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        (&p * 3.0).sum(Kind::Float).backward();
        assert!(p.grad().defined());
        grads_to_none(std::slice::from_ref(&p)).unwrap();
        assert!(!p.grad().defined());
        (&p * 2.0).sum(Kind::Float).backward();
        assert_eq!(v(&p.grad()), vec![2.0, 2.0], "a fresh gradient, not 3 + 2");
    }
}
