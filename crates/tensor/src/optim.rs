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
pub struct Adam {
    /// Hyperparameters (the rate may be changed between steps).
    pub cfg: AdamConfig,
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i64,
}

impl Adam {
    /// An optimiser for every trainable variable of `vs`.
    pub fn new(vs: &VarStore, cfg: AdamConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let v = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let (names, params) = vars.into_iter().unzip();
        Self { cfg, names, params, m, v, step: 0 }
    }

    /// Steps taken.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Clears every gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// L2 norm of all gradients together (0 when none are set).
    pub fn grad_norm(&self) -> f64 {
        let _guard = tch::no_grad_guard();
        let mut total = 0.0;
        for p in &self.params {
            let g = p.grad();
            if g.defined() {
                total += g.to_kind(Kind::Double).square().sum(Kind::Double).double_value(&[]);
            }
        }
        total.sqrt()
    }

    /// One Adam update from the current gradients (PyTorch's formula).
    pub fn step(&mut self) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2 = 1.0 - c.beta2.powi(self.step as i32);
        for ((p, m), v) in self.params.iter_mut().zip(self.m.iter_mut()).zip(self.v.iter_mut()) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let g = if c.weight_decay != 0.0 { &g + &*p * c.weight_decay } else { g };
            let _ = m.lerp_(&g, 1.0 - c.beta1);
            let _ = v.g_mul_scalar_(c.beta2);
            let _ = v.addcmul_(&g, &(&g * (1.0 - c.beta2)));
            let denom = (&*v / bc2).sqrt() + c.eps;
            let _ = p.addcdiv_(&(&*m * (-c.lr / bc1)), &denom);
        }
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
/// such as batch-norm statistics are copied the same way).
pub fn ema_update(ema: &VarStore, src: &VarStore, decay: f64) -> Result<()> {
    let _guard = tch::no_grad_guard();
    let src_vars = src.variables();
    for (name, mut e) in ema.variables() {
        let s = src_vars
            .get(&name)
            .ok_or_else(|| Error::Invalid(format!("EMA: '{name}' is missing from the source network")))?;
        let _ = e.f_lerp_(s, 1.0 - decay)?;
    }
    Ok(())
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
