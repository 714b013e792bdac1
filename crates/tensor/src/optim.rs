//! Adam whose state (moments and step) can be saved and restored, so that a
//! resumed run continues exactly where it stopped (tch's own optimiser keeps
//! its state out of reach), plus the EMA update of a network's weights.
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::{nn::VarStore, Kind, Tensor};

/// Adam's hyperparameters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// L2 weight decay added to the gradient (0 = none).
    pub weight_decay: f64,
}

impl AdamConfig {
    /// Adam with the given rate and betas, eps 1e-8, no decay.
    pub fn new(lr: f64, beta1: f64, beta2: f64) -> Self {
        Self { lr, beta1, beta2, eps: 1e-8, weight_decay: 0.0 }
    }

    /// The DCGAN setting: 2e-4, betas 0.5 / 0.999.
    pub fn gan() -> Self {
        Self::new(2e-4, 0.5, 0.999)
    }
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self::new(1e-3, 0.9, 0.999)
    }
}

/// Adam over the trainable variables of one VarStore (sorted by name).
///
/// The update is libtorch's fused Adam kernel ([`crate::fused::fused_adam`],
/// what `torch.optim.Adam(fused=True)` runs): one pass over each tensor
/// instead of a dozen elementwise kernels, with PyTorch's formula.
pub struct Adam {
    /// Hyperparameters (the rate may be changed between steps).
    pub cfg: AdamConfig,
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i64,
    /// The step number as a float32 scalar on the parameters' device (the
    /// fused kernel reads it there).
    step_t: Tensor,
}

impl Adam {
    /// An optimiser for every trainable variable of `vs`.
    pub fn new(vs: &VarStore, cfg: AdamConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let v = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let device = vars.first().map_or(vs.device(), |(_, t)| t.device());
        let (names, params) = vars.into_iter().unzip();
        Self { cfg, names, params, m, v, step: 0, step_t: Tensor::zeros([], (Kind::Float, device)) }
    }

    /// Steps taken.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Drops every gradient (PyTorch's `zero_grad()`, which sets them to
    /// none): the next backward pass writes fresh ones.
    pub fn zero_grad(&mut self) {
        crate::fused::grads_to_none(&self.params).expect("dropping gradients of live tensors cannot fail");
    }

    /// L2 norm of all gradients together (0 when none are set).
    pub fn grad_norm(&self) -> f64 {
        self.grad_norm_tensor().map_or(0.0, |t| t.double_value(&[]))
    }

    /// L2 norm of all gradients together as a scalar tensor on the
    /// parameters' device, without waiting for it (`None` when no gradient
    /// is set).
    pub fn grad_norm_tensor(&self) -> Option<Tensor> {
        let grads: Vec<Tensor> = self.params.iter().map(Tensor::grad).filter(Tensor::defined).collect();
        crate::fused::total_norm(&grads).expect("gradients share the parameters' device and type")
    }

    /// One Adam update from the current gradients (PyTorch's formula);
    /// parameters without a gradient are left alone (their moments too).
    pub fn step(&mut self) {
        self.step += 1;
        let c = self.cfg;
        let _ = self.step_t.fill_(self.step as f64);
        let grads: Vec<Tensor> = self.params.iter().map(Tensor::grad).collect();
        let pick = |ts: &[Tensor]| {
            ts.iter().zip(&grads).filter(|(_, g)| g.defined()).map(|(t, _)| t.shallow_clone()).collect::<Vec<_>>()
        };
        let result = crate::fused::fused_adam(
            &pick(&self.params),
            &pick(&grads),
            &pick(&self.m),
            &pick(&self.v),
            &self.step_t,
            c.lr,
            (c.beta1, c.beta2),
            c.weight_decay,
            c.eps,
        );
        // Moments are made from the parameters and gradients come from
        // autograd in the parameters' layout, so the kernel's checks hold.
        result.unwrap_or_else(|e| panic!("Adam step: {e}"));
    }

    /// Clears gradients, back-propagates `loss`, and steps.
    pub fn backward_step(&mut self, loss: &Tensor) {
        self.zero_grad();
        loss.backward();
        self.step();
    }

    /// The state as named tensors (`m.<var>`, `v.<var>`, `step`), for a
    /// checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.names.len() + 1);
        for (n, m) in self.names.iter().zip(&self.m) {
            out.push((format!("m.{n}"), m.shallow_clone()));
        }
        for (n, v) in self.names.iter().zip(&self.v) {
            out.push((format!("v.{n}"), v.shallow_clone()));
        }
        out.push(("step".into(), Tensor::from_slice(&[self.step])));
        out
    }

    /// Restores a state written by [`Adam::state`].
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let get = |k: &str| {
            state.get(k).ok_or_else(|| {
                Error::Invalid(format!("optimiser state has no tensor '{k}'; it belongs to another model"))
            })
        };
        for (i, n) in self.names.iter().enumerate() {
            for (buf, prefix) in [(&mut self.m[i], "m"), (&mut self.v[i], "v")] {
                let t = get(&format!("{prefix}.{n}"))?;
                if t.size() != buf.size() {
                    return Err(Error::Shape {
                        what: format!("optimiser state {prefix}.{n}"),
                        expected: format!("{:?}", buf.size()),
                        got: format!("{:?}", t.size()),
                    });
                }
                buf.f_copy_(&t.to_device(buf.device()).to_kind(buf.kind()))?;
            }
        }
        let step = get("step")?;
        self.step = step.f_int64_value(&[0]).map_err(|_| Error::Shape {
            what: "optimiser state step".into(),
            expected: "[1]".into(),
            got: format!("{:?}", step.size()),
        })?;
        Ok(())
    }
}

/// `ema <- decay * ema + (1 - decay) * src`, variable by variable (buffers
/// such as batch-norm statistics are copied the same way). Looks the pairs
/// up by name on every call; a training loop keeps an [`Ema`] instead.
pub fn ema_update(ema: &VarStore, src: &VarStore, decay: f64) -> Result<()> {
    Ema::new(ema, src)?.update(decay)
}

/// The EMA update between two VarStores of one network, with the pairs of
/// variables matched by name once: each update is one multi-tensor lerp.
pub struct Ema {
    dst: Vec<Tensor>,
    src: Vec<Tensor>,
}

impl Ema {
    /// Pairs every variable of `ema` with the one of the same name in `src`.
    pub fn new(ema: &VarStore, src: &VarStore) -> Result<Self> {
        let src_vars = src.variables();
        let mut pairs: Vec<(String, Tensor)> = ema.variables().into_iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Self { dst: Vec::with_capacity(pairs.len()), src: Vec::with_capacity(pairs.len()) };
        for (name, e) in pairs {
            let s = src_vars
                .get(&name)
                .ok_or_else(|| Error::Invalid(format!("EMA: '{name}' is missing from the source network")))?;
            if s.size() != e.size() {
                return Err(Error::Shape {
                    what: format!("EMA source '{name}'"),
                    expected: format!("{:?}", e.size()),
                    got: format!("{:?}", s.size()),
                });
            }
            out.dst.push(e);
            out.src.push(s.shallow_clone());
        }
        Ok(out)
    }

    /// `ema <- decay * ema + (1 - decay) * src` for every pair.
    pub fn update(&self, decay: f64) -> Result<()> {
        crate::fused::foreach_lerp_(&self.dst, &self.src, 1.0 - decay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    #[test]
    fn adam_matches_hand_computation() {
        // torch.optim.Adam([p], lr=0.1, betas=(0.9, 0.999)) on loss = sum(p^2), p = [1, -2]:
        //   step 1: g = [2, -4]; m = 0.1 g; v = 0.001 g^2; update = lr * sign(g) => p = [0.9, -1.9]
        let vs = VarStore::new(Device::Cpu);
        let p = vs.root().var_copy("p", &Tensor::from_slice(&[1.0f64, -2.0]).to_kind(Kind::Float));
        let mut opt = Adam::new(&vs, AdamConfig::new(0.1, 0.9, 0.999));
        opt.backward_step(&p.square().sum(Kind::Float));
        let got: Vec<f32> = Vec::try_from(&p).unwrap();
        assert!((got[0] - 0.9).abs() < 1e-5 && (got[1] + 1.9).abs() < 1e-5, "{got:?}");
        // Step 2, by hand: g = [1.8, -3.8]; m = 0.9*0.1*g1 + 0.1*g2; v = 0.999*0.001*g1^2 + 0.001*g2^2
        let g1 = [2.0f64, -4.0];
        let g2 = [1.8f64, -3.8];
        opt.backward_step(&p.square().sum(Kind::Float));
        let got: Vec<f32> = Vec::try_from(&p).unwrap();
        for i in 0..2 {
            let m = 0.9 * 0.1 * g1[i] + 0.1 * g2[i];
            let v = 0.999 * 0.001 * g1[i] * g1[i] + 0.001 * g2[i] * g2[i];
            let mhat = m / (1.0 - 0.81);
            let vhat = v / (1.0 - 0.999f64.powi(2));
            let want = [0.9, -1.9][i] - 0.1 * mhat / (vhat.sqrt() + 1e-8);
            assert!((got[i] as f64 - want).abs() < 1e-5, "param {i}: {} vs {want}", got[i]);
        }
    }

    #[test]
    fn parameters_without_gradient_are_left_alone() {
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().var_copy("a", &Tensor::from_slice(&[1.0f32, -2.0]));
        let b = vs.root().var_copy("b", &Tensor::from_slice(&[3.0f32]));
        let mut opt = Adam::new(&vs, AdamConfig::new(0.1, 0.9, 0.999));
        // Only `a` takes part: `b` has no gradient, and keeps its value and moments.
        opt.backward_step(&a.square().sum(Kind::Float));
        let got: Vec<f32> = Vec::try_from(&a).unwrap();
        assert!((got[0] - 0.9).abs() < 1e-5 && (got[1] + 1.9).abs() < 1e-5, "{got:?}");
        assert_eq!(Vec::<f32>::try_from(&b).unwrap(), vec![3.0]);
        let state: HashMap<String, Tensor> = opt.state().into_iter().collect();
        assert_eq!(state["m.b"].abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert!(state["m.a"].abs().sum(Kind::Float).double_value(&[]) > 0.0);
        // zero_grad drops the gradients, and the norm of none is 0.
        assert!(opt.grad_norm() > 0.0);
        opt.zero_grad();
        assert!(!a.grad().defined());
        assert_eq!(opt.grad_norm(), 0.0);
    }

    #[test]
    fn ema_pairs_refuse_other_networks() {
        let ema = VarStore::new(Device::Cpu);
        let _e = ema.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0]));
        let other = VarStore::new(Device::Cpu);
        let _o = other.root().var_copy("v", &Tensor::from_slice(&[1.0f32, 2.0]));
        let e = Ema::new(&ema, &other).err().expect("a missing name is refused").to_string();
        assert!(e.contains("'w' is missing"), "{e}");
        let wider = VarStore::new(Device::Cpu);
        let _w = wider.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0, 3.0]));
        let e = Ema::new(&ema, &wider).err().expect("another shape is refused").to_string();
        assert!(e.contains("EMA source 'w'"), "{e}");
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let _g = crate::seed::generator_lock();
        let make = || {
            tch::manual_seed(3);
            let vs = VarStore::new(Device::Cpu);
            let lin = nn::linear(vs.root() / "l", 4, 2, Default::default());
            (vs, lin)
        };
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.1, 1.0, 1.0, -0.3, 0.7]).view([2, 4]);
        let loss = |l: &nn::Linear| nn::Module::forward(l, &x).square().mean(Kind::Float);
        // Uninterrupted: 4 steps.
        let (vs_a, la) = make();
        let mut oa = Adam::new(&vs_a, AdamConfig::default());
        for _ in 0..4 {
            oa.backward_step(&loss(&la));
        }
        // Interrupted after 2: save weights and state, rebuild, load, 2 more.
        let (vs_b, lb) = make();
        let mut ob = Adam::new(&vs_b, AdamConfig::default());
        for _ in 0..2 {
            ob.backward_step(&loss(&lb));
        }
        let state: HashMap<String, Tensor> = ob.state().into_iter().map(|(k, t)| (k, t.copy())).collect();
        let weights: HashMap<String, Tensor> = vs_b.variables().into_iter().map(|(k, t)| (k, t.copy())).collect();
        let (vs_c, lc) = make();
        {
            let _g = tch::no_grad_guard();
            for (k, mut t) in vs_c.variables() {
                t.copy_(&weights[&k]);
            }
        }
        let mut oc = Adam::new(&vs_c, AdamConfig::default());
        oc.load_state(&state).unwrap();
        assert_eq!(oc.steps(), 2);
        for _ in 0..2 {
            oc.backward_step(&loss(&lc));
        }
        for (k, t) in vs_a.variables() {
            assert!(t.equal(&vs_c.variables()[&k]), "{k} differs after resume");
        }
    }

    #[test]
    fn ema_matches_formula_on_three_parameters() {
        let ema = VarStore::new(Device::Cpu);
        let e = ema.root().var_copy("w", &Tensor::from_slice(&[1.0f32, 2.0, 3.0]));
        let src = VarStore::new(Device::Cpu);
        let _s = src.root().var_copy("w", &Tensor::from_slice(&[3.0f32, 0.0, -3.0]));
        ema_update(&ema, &src, 0.9).unwrap();
        let got: Vec<f32> = Vec::try_from(&e).unwrap();
        let want = [0.9 * 1.0 + 0.1 * 3.0, 0.9 * 2.0, 0.9 * 3.0 - 0.1 * 3.0];
        for i in 0..3 {
            assert!((got[i] - want[i] as f32).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
}
