//! Layers the discriminators share: spectral normalisation (Miyato et al.,
//! 2018) of any weight, and a spectrally normalised linear layer.
//!
//! The power-iteration vector `u` is a non-trainable variable of the
//! VarStore, so it is checkpointed with the weights and a resumed run
//! continues with exactly the same estimate.
use tch::{nn, Kind, Tensor};

/// Creates the power-iteration vector for a weight with `out` rows: a
/// non-trainable variable `<name>` initialised to a random unit vector.
pub fn sn_vector(p: &nn::Path, name: &str, out: i64) -> Tensor {
    let mut u = p.zeros_no_train(name, &[out]);
    let _guard = tch::no_grad_guard();
    let r = Tensor::randn([out], (Kind::Float, p.device()));
    u.copy_(&normalize(&r));
    u
}

fn normalize(v: &Tensor) -> Tensor {
    v / (v.norm().clamp_min(1e-12))
}

/// `weight / sigma`, where `sigma` estimates the largest singular value of
/// the weight flattened to `[out, -1]`. In training, one power iteration
/// refines `u` in place first; in evaluation `u` is left as it is. Gradients
/// flow through `sigma` (as in PyTorch's `spectral_norm`), not through `u`.
pub fn spectral_normalize(weight: &Tensor, u: &Tensor, train: bool) -> Tensor {
    let out = weight.size()[0];
    let w2 = weight.view([out, -1]);
    let (u_now, v_now) = {
        let _guard = tch::no_grad_guard();
        let wd = w2.detach();
        let v = normalize(&wd.tr().mv(u));
        if train {
            let u_new = normalize(&wd.mv(&v));
            let mut u_var = u.shallow_clone();
            u_var.copy_(&u_new);
            let v = normalize(&wd.tr().mv(&u_new));
            (u_new, v)
        } else {
            (u.copy(), v)
        }
    };
    let sigma = u_now.dot(&w2.mv(&v_now));
    weight / sigma
}

/// A linear layer whose weight is spectrally normalised at every call.
#[derive(Debug)]
pub struct SnLinear {
    /// Weight `[out, in]` (before normalisation).
    pub ws: Tensor,
    /// Bias `[out]`.
    pub bs: Tensor,
    /// Power-iteration vector `[out]` (non-trainable).
    pub u: Tensor,
}

/// A spectrally normalised linear layer under `p` (`weight`, `bias`,
/// `weight_u`), initialised like `nn::linear`.
pub fn sn_linear(p: &nn::Path, in_dim: i64, out_dim: i64) -> SnLinear {
    let lin = nn::linear(p, in_dim, out_dim, Default::default());
    let u = sn_vector(p, "weight_u", out_dim);
    SnLinear { ws: lin.ws, bs: lin.bs.expect("nn::linear has a bias by default"), u }
}

impl nn::ModuleT for SnLinear {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let w = spectral_normalize(&self.ws, &self.u, train);
        xs.linear(&w, Some(&self.bs))
    }
}

/// Leaky ReLU with slope 0.2 (DCGAN's): libtorch's own `leaky_relu`
/// kernel, forward and backward, as PyTorch's `nn.LeakyReLU(0.2)` runs it
/// (tch fixes the slope at 0.01, so it goes through the tensor crate's C++
/// shim). `prelu` with a constant slope gave the same values, but its
/// backward also reduces a gradient for the slope, a scalar loop that cost
/// about a fifth of a latent GAN step.
pub fn leaky_relu(x: &Tensor) -> Tensor {
    dualspace_tensor::fused::leaky_relu(x, 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::ModuleT, Device};

    #[test]
    fn power_iteration_converges_to_the_largest_singular_value() {
        let _g = dualspace_tensor::seed::seed_guard(11);
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = sn_linear(&(vs.root() / "l"), 6, 4);
        let sigma_true = lin.ws.detach().svd(true, false).1.double_value(&[0]);
        for _ in 0..50 {
            let _ = spectral_normalize(&lin.ws, &lin.u, true);
        }
        let w = spectral_normalize(&lin.ws, &lin.u, false);
        let top = w.detach().svd(true, false).1.double_value(&[0]);
        assert!((top - 1.0).abs() < 1e-4, "normalised top singular value {top} (raw {sigma_true})");
        // The layer's output is the plain linear map divided by sigma.
        let x = Tensor::randn([3, 6], (Kind::Float, Device::Cpu));
        let got = lin.forward_t(&x, false);
        let want = x.linear(&(&lin.ws / sigma_true), Some(&lin.bs));
        let d = dualspace_tensor::max_abs_diff(&got, &want);
        assert!(d < 1e-4, "largest difference {d}");
    }

    #[test]
    fn leaky_relu_has_slope_one_fifth() {
        let x = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 0.5, 3.0]).set_requires_grad(true);
        let y = leaky_relu(&x);
        let got: Vec<f32> = Vec::try_from(&y.detach()).unwrap();
        let want: Vec<f32> = Vec::try_from(&x.detach().maximum(&(x.detach() * 0.2))).unwrap();
        assert_eq!(got, want);
        y.sum(Kind::Float).backward();
        let g: Vec<f32> = Vec::try_from(&x.grad()).unwrap();
        assert_eq!((g[0], g[1], g[3], g[4]), (0.2, 0.2, 1.0, 1.0));
    }

    #[test]
    fn evaluation_leaves_the_vector_alone() {
        let _g = dualspace_tensor::seed::seed_guard(12);
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = sn_linear(&(vs.root() / "l"), 5, 3);
        let before = lin.u.copy();
        let _ = lin.forward_t(&Tensor::ones([2, 5], (Kind::Float, Device::Cpu)), false);
        assert!(lin.u.equal(&before));
        let _ = lin.forward_t(&Tensor::ones([2, 5], (Kind::Float, Device::Cpu)), true);
        assert!(!lin.u.equal(&before));
        assert!(!vs.variables()["l.weight_u"].requires_grad());
    }
}
