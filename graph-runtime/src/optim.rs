//! Optimizers on a graph's flat parameter and gradient buffers, with
//! torch's update rules. Their state is allocated on the first step and
//! belongs to the store it was made for: a step on a store of another
//! layout is an error, as is a setting that cannot be right (a learning
//! rate that is NaN or below 0, a beta of 1); on an error nothing changes.

use crate::params::ParamStore;
use crate::Float;
use crate::{Error, Result};

/// The error for a setting `name` of `owner` that is not `rule`.
fn check<F: Float>(owner: &str, name: &str, value: F, ok: bool, rule: &str) -> Result<()> {
    if ok && !value.is_nan() {
        return Ok(());
    }
    Err(Error::Setting {
        owner: owner.to_string(),
        message: format!("{name} must be {rule}, not {value:?}"),
    })
}

/// `value` is finite and at least 0.
fn non_negative<F: Float>(owner: &str, name: &str, value: F) -> Result<()> {
    check(
        owner,
        name,
        value,
        value >= F::zero() && value.is_finite(),
        "finite and at least 0",
    )
}

/// `value` is in `[0, 1)`.
fn fraction<F: Float>(owner: &str, name: &str, value: F) -> Result<()> {
    check(
        owner,
        name,
        value,
        value >= F::zero() && value < F::one(),
        "at least 0 and below 1",
    )
}

/// Which store an optimizer's state was made for (its layout and size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    graph: &'static str,
    layout: u64,
    len: usize,
}

impl Owner {
    fn of<F: Float>(store: &ParamStore<F>) -> Self {
        Owner {
            graph: store.graph(),
            layout: store.layout(),
            len: store.len(),
        }
    }

    /// An error unless `store` has the layout of the store the state of
    /// `optimizer` was made for.
    fn check<F: Float>(owner: Option<Owner>, optimizer: &str, store: &ParamStore<F>) -> Result<()> {
        match owner {
            Some(o) if o.layout != store.layout() || o.len != store.len() => Err(Error::Setting {
                owner: optimizer.to_string(),
                message: format!(
                    "its state is for {} ({} parameters), not for this store of {} ({} parameters, \
                     another layout): use one optimizer per model, or reset() it to start over",
                    o.graph,
                    o.len,
                    store.graph(),
                    store.len()
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// Stochastic gradient descent with optional momentum and weight decay, as
/// `torch.optim.SGD`: `g += wd * p; v = momentum * v + g; p -= lr * v`.
///
/// ```
/// use graph_macros::graph;
/// use graph_runtime::prelude::*;
///
/// graph! {
///     pub Net(x: [2]) -> (y) {
///         y = Linear(2, 1)(x);
///     }
/// }
///
/// let mut net = Net::<f64>::new(&mut StdRng::seed_from_u64(0));
/// let mut opt = Sgd::new(0.1).momentum(0.9);
/// let mut tape = net.tape();
/// let before = net.params().to_vec();
/// net.forward(&mut tape, &[1.0, 2.0])?;
/// net.backward(&mut tape, &[1.0])?;       // d loss / d y = 1: every gradient is positive
/// opt.step(net.store_mut())?;
/// net.zero_grad();
/// assert!(net.params().iter().zip(&before).all(|(after, before)| after < before));
/// # Ok::<(), graph_runtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd<F> {
    /// Learning rate (finite, at least 0).
    pub lr: F,
    /// Momentum factor (0 for plain SGD; finite, at least 0).
    pub momentum: F,
    /// L2 penalty added to the gradient (finite, at least 0).
    pub weight_decay: F,
    velocity: Vec<F>,
    owner: Option<Owner>,
}

impl<F: Float> Sgd<F> {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: F) -> Self {
        Sgd {
            lr,
            momentum: F::zero(),
            weight_decay: F::zero(),
            velocity: Vec::new(),
            owner: None,
        }
    }

    /// Sets the momentum factor.
    pub fn momentum(mut self, momentum: F) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets the weight decay.
    pub fn weight_decay(mut self, weight_decay: F) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Updates the parameters from the accumulated gradients (which are left
    /// as they are; call `zero_grad` before the next accumulation). An
    /// error, with nothing changed, if a setting cannot be right or the
    /// momentum is another store's.
    pub fn step(&mut self, store: &mut ParamStore<F>) -> Result<()> {
        non_negative("Sgd", "lr", self.lr)?;
        non_negative("Sgd", "momentum", self.momentum)?;
        non_negative("Sgd", "weight_decay", self.weight_decay)?;
        Owner::check(self.owner, "Sgd", store)?;
        let owner = Owner::of(store);
        let (values, grads) = store.values_and_grads_mut();
        let (lr, momentum, weight_decay) = (self.lr, self.momentum, self.weight_decay);
        let grads: &[F] = grads;
        if momentum == F::zero() {
            // No state: plain SGD may step any store.
            crate::kernels::for_each_run(grads.len(), 4, [values], |run, [values]| {
                for (p, &g) in values.iter_mut().zip(&grads[run]) {
                    *p -= lr * (g + weight_decay * *p);
                }
            });
            return Ok(());
        }
        if self.velocity.len() != values.len() {
            self.velocity = vec![F::zero(); values.len()];
        }
        self.owner = Some(owner);
        let state = [values, &mut self.velocity[..]];
        crate::kernels::for_each_run(grads.len(), 6, state, |run, [values, velocity]| {
            for ((p, &g), v) in values.iter_mut().zip(&grads[run]).zip(velocity) {
                *v = momentum * *v + g + weight_decay * *p;
                *p -= lr * *v;
            }
        });
        Ok(())
    }

    /// Drops the momentum: the next step starts a new run, on any store.
    pub fn reset(&mut self) {
        self.velocity.clear();
        self.owner = None;
    }
}

/// Scales the gradients so that their Euclidean norm is at most `max_norm`,
/// as `torch.nn.utils.clip_grad_norm_`: by `max_norm / (norm + 1e-6)` when
/// that is below 1, otherwise not at all. Returns the norm before clipping.
/// A `max_norm` below 0 or NaN (which would flip or erase the gradients)
/// is an error, and nothing changes; `+inf` clips nothing.
///
/// ```
/// use graph_runtime::optim::clip_grad_norm;
/// use graph_runtime::{ParamShape, ParamStore};
///
/// let mut store = ParamStore::<f64>::new("demo", &[("w", vec![ParamShape::new("weight", vec![2])])]);
/// store.grads_mut().copy_from_slice(&[3.0, 4.0]);
/// let norm = clip_grad_norm(&mut store, 1.0)?;
/// assert_eq!(norm, 5.0);
/// assert!((store.grads()[0] - 0.6).abs() < 1e-6 && (store.grads()[1] - 0.8).abs() < 1e-6);
/// # Ok::<(), graph_runtime::Error>(())
/// ```
pub fn clip_grad_norm<F: Float>(store: &mut ParamStore<F>, max_norm: F) -> Result<F> {
    check(
        "clip_grad_norm",
        "max_norm",
        max_norm,
        max_norm >= F::zero(),
        "at least 0",
    )?;
    let grads = store.grads_mut();
    let norm = grads.iter().map(|&g| g * g).fold(F::zero(), |a, b| a + b).sqrt();
    let coef = max_norm / (norm + F::from_f64(1e-6));
    if coef < F::one() {
        grads.iter_mut().for_each(|g| *g *= coef);
    }
    Ok(norm)
}

/// Clamps every gradient into `[-clip_value, clip_value]`, as
/// `torch.nn.utils.clip_grad_value_` (char-rnn's `grad_clip`). A
/// `clip_value` below 0 or NaN is an error, and nothing changes.
///
/// ```
/// use graph_runtime::optim::clip_grad_value;
/// use graph_runtime::{ParamShape, ParamStore};
///
/// let mut store = ParamStore::<f64>::new("demo", &[("w", vec![ParamShape::new("weight", vec![3])])]);
/// store.grads_mut().copy_from_slice(&[-9.0, 0.5, 7.0]);
/// clip_grad_value(&mut store, 5.0)?;
/// assert_eq!(store.grads(), &[-5.0, 0.5, 5.0]);
/// # Ok::<(), graph_runtime::Error>(())
/// ```
pub fn clip_grad_value<F: Float>(store: &mut ParamStore<F>, clip_value: F) -> Result<()> {
    check(
        "clip_grad_value",
        "clip_value",
        clip_value,
        clip_value >= F::zero(),
        "at least 0",
    )?;
    let grads = store.grads_mut();
    crate::kernels::for_each_run(grads.len(), 2, [grads], |_, [g]| {
        g.iter_mut().for_each(|g| *g = g.max(-clip_value).min(clip_value))
    });
    Ok(())
}

/// Adam, as `torch.optim.Adam`: `m = β1 m + (1 - β1) g`,
/// `v = β2 v + (1 - β2) g²`, `p -= lr · m̂ / (√v̂ + eps)` with the bias
/// corrections `m̂ = m / (1 - β1^t)`, `v̂ = v / (1 - β2^t)`; weight decay
/// adds `wd · p` to the gradient (L2, as torch's Adam).
///
/// ```
/// use graph_macros::graph;
/// use graph_runtime::prelude::*;
///
/// graph! {
///     pub Net(x: [2]) -> (y) {
///         y = Linear(2, 1)(x);
///     }
/// }
///
/// let mut net = Net::<f64>::new(&mut StdRng::seed_from_u64(0));
/// let mut opt = Adam::new(1e-3);
/// let mut tape = net.tape();
/// let before = net.params().to_vec();
/// net.forward(&mut tape, &[1.0, 2.0])?;
/// net.backward(&mut tape, &[1.0])?;       // d loss / d y = 1: every gradient is positive
/// opt.step(net.store_mut())?;
/// net.zero_grad();
/// assert!(net.params().iter().zip(&before).all(|(after, before)| after < before));
/// # Ok::<(), graph_runtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<F> {
    /// Learning rate (default 1e-3; finite, at least 0).
    pub lr: F,
    /// Decay of the first moment (default 0.9; at least 0, below 1).
    pub beta1: F,
    /// Decay of the second moment (default 0.999; at least 0, below 1).
    pub beta2: F,
    /// Added to the denominator (default 1e-8; finite, at least 0).
    pub eps: F,
    /// L2 penalty added to the gradient (default 0; finite, at least 0).
    pub weight_decay: F,
    step: i32,
    m: Vec<F>,
    v: Vec<F>,
    owner: Option<Owner>,
}

impl<F: Float> Adam<F> {
    /// Adam with learning rate `lr` and torch's other defaults.
    pub fn new(lr: F) -> Self {
        Adam {
            lr,
            beta1: F::from_f64(0.9),
            beta2: F::from_f64(0.999),
            eps: F::from_f64(1e-8),
            weight_decay: F::zero(),
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
            owner: None,
        }
    }

    /// Sets the moment decays.
    pub fn betas(mut self, beta1: F, beta2: F) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets the weight decay.
    pub fn weight_decay(mut self, weight_decay: F) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// Updates the parameters from the accumulated gradients. An error,
    /// with nothing changed, if a setting cannot be right or the moments
    /// are another store's (restored or stepped on another layout).
    pub fn step(&mut self, store: &mut ParamStore<F>) -> Result<()> {
        non_negative("Adam", "lr", self.lr)?;
        fraction("Adam", "beta1", self.beta1)?;
        fraction("Adam", "beta2", self.beta2)?;
        non_negative("Adam", "eps", self.eps)?;
        non_negative("Adam", "weight_decay", self.weight_decay)?;
        if self.step == i32::MAX {
            return Err(Error::Setting {
                owner: "Adam".into(),
                message: format!("it has taken {} steps, the most it counts", i32::MAX),
            });
        }
        Owner::check(self.owner, "Adam", store)?;
        self.owner = Some(Owner::of(store));
        let (values, grads) = store.values_and_grads_mut();
        if self.m.len() != values.len() {
            self.m = vec![F::zero(); values.len()];
            self.v = vec![F::zero(); values.len()];
            self.step = 0;
        }
        self.step += 1;
        let one = F::one();
        let bias1 = one - self.beta1.powi(self.step);
        let bias2 = one - self.beta2.powi(self.step);
        let (lr, beta1, beta2, eps, weight_decay) =
            (self.lr, self.beta1, self.beta2, self.eps, self.weight_decay);
        let grads: &[F] = grads;
        // Each parameter on its own: the pool's threads take runs of them.
        let state = [values, &mut self.m[..], &mut self.v[..]];
        crate::kernels::for_each_run(grads.len(), 16, state, |run, [values, m, v]| {
            for (((p, &g), m), v) in values.iter_mut().zip(&grads[run]).zip(m).zip(v) {
                let g = g + weight_decay * *p;
                *m = beta1 * *m + (one - beta1) * g;
                *v = beta2 * *v + (one - beta2) * g * g;
                let m_hat = *m / bias1;
                let v_hat = *v / bias2;
                *p -= lr * m_hat / (v_hat.sqrt() + eps);
            }
        });
        Ok(())
    }

    /// Drops the moments and the step count: the next step starts a new
    /// run, on any store.
    pub fn reset(&mut self) {
        (self.step, self.owner) = (0, None);
        self.m.clear();
        self.v.clear();
    }

    /// What a run has accumulated: the number of steps taken and both
    /// moments (empty before the first step). With [`restore`](Self::restore)
    /// a run saved and resumed takes exactly the steps it would have taken.
    pub fn state(&self) -> AdamState<F> {
        AdamState {
            steps: self.step.max(0) as u32,
            m: self.m.clone(),
            v: self.v.clone(),
        }
    }

    /// Continues from a saved [`state`](Self::state), for the parameters of
    /// `store`: the moments must hold one value per parameter of `store`
    /// (or none, before a first step), be finite, the second moment at
    /// least 0, and the step count fit. Otherwise an error, and nothing
    /// changes. The next [`step`](Self::step) must be on a store of the
    /// same layout.
    pub fn restore(&mut self, state: AdamState<F>, store: &ParamStore<F>) -> Result<()> {
        let fail = |message: String| {
            Err(Error::Setting {
                owner: "Adam".into(),
                message,
            })
        };
        let Ok(steps) = i32::try_from(state.steps) else {
            return fail(format!(
                "a saved state of {} steps is more than it counts",
                state.steps
            ));
        };
        let (m, v) = (state.m.len(), state.v.len());
        let empty = m == 0 && v == 0;
        if !(empty || m == store.len() && v == store.len()) {
            return fail(format!(
                "a saved state has moments of {m} and {v} values; {} has {} parameters",
                store.graph(),
                store.len()
            ));
        }
        if empty && steps > 0 {
            return fail(format!("a saved state of {steps} steps has no moments"));
        }
        if let Some(i) = state.m.iter().position(|x| !x.is_finite()) {
            return fail(format!("a saved first moment holds {:?} at {i}", state.m[i]));
        }
        if let Some(i) = state.v.iter().position(|x| !(x.is_finite() && *x >= F::zero())) {
            return fail(format!(
                "a saved second moment holds {:?} at {i} (it is finite and at least 0)",
                state.v[i]
            ));
        }
        self.step = steps;
        self.m = state.m;
        self.v = state.v;
        self.owner = Some(Owner::of(store));
        Ok(())
    }
}

/// [`Adam`]'s state, to save a run and resume it exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState<F> {
    /// Steps taken (the bias corrections depend on it).
    pub steps: u32,
    /// First moment, one value per parameter.
    pub m: Vec<F>,
    /// Second moment, one value per parameter.
    pub v: Vec<F>,
}

/// RMSProp, as `torch.optim.RMSprop` without momentum or centring:
/// `v = α v + (1 - α) g²`, `p -= lr · g / (√v + eps)`.
///
/// ```
/// use graph_macros::graph;
/// use graph_runtime::prelude::*;
///
/// graph! {
///     pub Net(x: [2]) -> (y) {
///         y = Linear(2, 1)(x);
///     }
/// }
///
/// let mut net = Net::<f64>::new(&mut StdRng::seed_from_u64(0));
/// let mut opt = RmsProp::new(1e-2);
/// let mut tape = net.tape();
/// let before = net.params().to_vec();
/// net.forward(&mut tape, &[1.0, 2.0])?;
/// net.backward(&mut tape, &[1.0])?;       // d loss / d y = 1: every gradient is positive
/// opt.step(net.store_mut())?;
/// net.zero_grad();
/// assert!(net.params().iter().zip(&before).all(|(after, before)| after < before));
/// # Ok::<(), graph_runtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RmsProp<F> {
    /// Learning rate (default 1e-2; finite, at least 0).
    pub lr: F,
    /// Decay of the mean square (default 0.99; at least 0, below 1).
    pub alpha: F,
    /// Added to the denominator (default 1e-8; finite, at least 0).
    pub eps: F,
    square: Vec<F>,
    owner: Option<Owner>,
}

impl<F: Float> RmsProp<F> {
    /// RMSProp with learning rate `lr` and torch's other defaults.
    pub fn new(lr: F) -> Self {
        RmsProp {
            lr,
            alpha: F::from_f64(0.99),
            eps: F::from_f64(1e-8),
            square: Vec::new(),
            owner: None,
        }
    }

    /// Sets the decay of the mean square.
    pub fn alpha(mut self, alpha: F) -> Self {
        self.alpha = alpha;
        self
    }

    /// Updates the parameters from the accumulated gradients. An error,
    /// with nothing changed, if a setting cannot be right or the mean
    /// square is another store's.
    pub fn step(&mut self, store: &mut ParamStore<F>) -> Result<()> {
        non_negative("RmsProp", "lr", self.lr)?;
        fraction("RmsProp", "alpha", self.alpha)?;
        non_negative("RmsProp", "eps", self.eps)?;
        Owner::check(self.owner, "RmsProp", store)?;
        self.owner = Some(Owner::of(store));
        let (values, grads) = store.values_and_grads_mut();
        if self.square.len() != values.len() {
            self.square = vec![F::zero(); values.len()];
        }
        let (lr, alpha, eps) = (self.lr, self.alpha, self.eps);
        let grads: &[F] = grads;
        let state = [values, &mut self.square[..]];
        crate::kernels::for_each_run(grads.len(), 12, state, |run, [values, square]| {
            for ((p, &g), s) in values.iter_mut().zip(&grads[run]).zip(square) {
                *s = alpha * *s + (F::one() - alpha) * g * g;
                *p -= lr * g / (s.sqrt() + eps);
            }
        });
        Ok(())
    }

    /// Drops the mean square: the next step starts a new run, on any store.
    pub fn reset(&mut self) {
        self.square.clear();
        self.owner = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Linear;
    use crate::Layer;

    #[test]
    fn adam_restored_from_a_state_continues_the_run_exactly() {
        let grads = |k: usize| [0.3 - 0.1 * k as f64, -0.2 * k as f64, 1.0, 0.05 * k as f64];
        let mut straight = store(&[1.0, -1.0, 0.5, 0.25], &grads(0));
        let mut adam = Adam::new(0.1);
        for k in 0..5 {
            straight.grads_mut().copy_from_slice(&grads(k));
            adam.step(&mut straight).unwrap();
        }
        let mut resumed = store(&[1.0, -1.0, 0.5, 0.25], &grads(0));
        let mut first = Adam::new(0.1);
        for k in 0..2 {
            resumed.grads_mut().copy_from_slice(&grads(k));
            first.step(&mut resumed).unwrap();
        }
        let mut second = Adam::new(0.1);
        second.restore(first.state(), &resumed).unwrap();
        for k in 2..5 {
            resumed.grads_mut().copy_from_slice(&grads(k));
            second.step(&mut resumed).unwrap();
        }
        assert_eq!(straight.values(), resumed.values());
        // Without the state, the bias corrections restart: not the same run.
        let mut fresh = Adam::new(0.1);
        let mut restarted = resumed.clone();
        restarted.values_mut().copy_from_slice(straight.values());
        fresh.step(&mut restarted).unwrap();
        second.step(&mut resumed).unwrap();
        assert_ne!(restarted.values(), resumed.values());
        let bad = AdamState {
            steps: 1,
            m: vec![0.0; 4],
            v: vec![0.0; 3],
        };
        assert!(Adam::new(0.1).restore(bad, &resumed).is_err());
    }

    fn store(values: &[f64], grads: &[f64]) -> ParamStore<f64> {
        let layer = Linear::new(1, values.len() / 2);
        let mut s = ParamStore::of_layers("T", &[("l", &layer as &dyn Layer<f64>)]);
        s.values_mut().copy_from_slice(values);
        s.grads_mut().copy_from_slice(grads);
        s
    }

    /// A store large enough that the optimizers, clipping and zeroing split
    /// it across the pool: the same bits on one, two and three threads, and
    /// Adam's the same as each parameter updated on its own.
    #[test]
    fn optimizers_clipping_and_zeroing_give_the_same_bits_on_any_thread_count() {
        let n = 140_000;
        let values: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let grads =
            |k: usize| -> Vec<f64> { (0..n).map(|i| 8.0 * ((i + 7 * k) as f64 * 0.11).cos()).collect() };
        let run = |threads: usize| {
            crate::kernels::pool::with_threads(threads, || {
                let mut s = store(&values, &grads(0));
                let mut adam = Adam::new(0.01).weight_decay(0.1);
                for k in 0..3 {
                    s.grads_mut().copy_from_slice(&grads(k));
                    clip_grad_value(&mut s, 5.0).unwrap();
                    adam.step(&mut s).unwrap();
                }
                s.zero_grad();
                assert!(s.grads().iter().all(|&g| g == 0.0));
                let mut others = s.values().to_vec();
                let (mut sgd, mut plain, mut rms) =
                    (Sgd::new(0.01).momentum(0.9), Sgd::new(0.01), RmsProp::new(0.01));
                for k in 0..2 {
                    s.grads_mut().copy_from_slice(&grads(k));
                    sgd.step(&mut s).unwrap();
                    plain.step(&mut s).unwrap();
                    rms.step(&mut s).unwrap();
                }
                let adam_values = std::mem::replace(&mut others, s.values().to_vec());
                [adam_values, others].concat()
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            assert!(one
                .iter()
                .zip(run(threads))
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        // Parameter 0 alone, by the formulas above.
        let (mut p, mut m, mut v) = (values[0], 0.0, 0.0);
        for k in 0..3 {
            let g = grads(k)[0].clamp(-5.0, 5.0) + 0.1 * p;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let (m_hat, v_hat) = (
                m / (1.0 - 0.9f64.powi(k as i32 + 1)),
                v / (1.0 - 0.999f64.powi(k as i32 + 1)),
            );
            p -= 0.01 * m_hat / (v_hat.sqrt() + 1e-8);
        }
        assert!((one[0] - p).abs() < 1e-15, "{} vs {p}", one[0]);
    }

    #[test]
    fn adam_first_step_moves_each_parameter_by_about_lr() {
        // With m̂ = g and v̂ = g², the first step is lr · g / (|g| + eps).
        let mut s = store(&[1.0, -2.0, 0.5, 3.0], &[0.3, -4.0, 1e-3, 0.0]);
        Adam::new(0.1).step(&mut s).unwrap();
        let want = [
            1.0 - 0.1 * 0.3 / (0.3 + 1e-8),
            -2.0 + 0.1 * 4.0 / (4.0 + 1e-8),
            0.5 - 0.1 * 1e-3 / (1e-3 + 1e-8),
            3.0,
        ];
        for (got, want) in s.values().iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn adam_and_rmsprop_minimise_a_quadratic() {
        // f(p) = Σ (p - c)², gradient 2 (p - c).
        let c = [1.5, -0.5, 2.0, 0.25];
        let mut adam = Adam::new(0.05);
        let mut rms = RmsProp::new(0.01);
        let (mut a, mut r) = (store(&[0.0; 4], &[0.0; 4]), store(&[0.0; 4], &[0.0; 4]));
        for _ in 0..2000 {
            for s in [&mut a, &mut r] {
                let g: Vec<f64> = s.values().iter().zip(&c).map(|(p, c)| 2.0 * (p - c)).collect();
                s.grads_mut().copy_from_slice(&g);
            }
            adam.step(&mut a).unwrap();
            rms.step(&mut r).unwrap();
        }
        for s in [&a, &r] {
            for (p, c) in s.values().iter().zip(&c) {
                assert!((p - c).abs() < 1e-2, "{p} vs {c}");
            }
        }
    }

    #[test]
    fn rmsprop_first_step() {
        let mut s = store(&[1.0, 1.0], &[0.5, -2.0]);
        RmsProp::new(0.01).step(&mut s).unwrap();
        let scale = (1.0f64 - 0.99).sqrt();
        let want = [
            1.0 - 0.01 * 0.5 / (scale * 0.5 + 1e-8),
            1.0 + 0.01 * 2.0 / (scale * 2.0 + 1e-8),
        ];
        for (got, want) in s.values().iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn sgd_momentum_and_clipping() {
        // torch: total_norm = 5; clip_coef = max_norm / (total_norm + 1e-6),
        // applied when below 1 (so also when the norm equals max_norm).
        let torch = |g: f64, max: f64| g * (max / (5.0 + 1e-6)).min(1.0);
        for max in [1.0, 5.0, 5.0 + 2e-6, 7.0] {
            let mut s = store(&[1.0, 1.0], &[3.0, 4.0]);
            assert_eq!(clip_grad_norm(&mut s, max).unwrap(), 5.0);
            assert!((s.grads()[0] - torch(3.0, max)).abs() < 1e-12, "max {max}");
            assert!((s.grads()[1] - torch(4.0, max)).abs() < 1e-12, "max {max}");
        }
        let mut s = store(&[1.0, 1.0], &[3.0, 4.0]);
        clip_grad_norm(&mut s, 5.0).unwrap();
        assert!(
            s.grads()[0] < 3.0,
            "a norm equal to max_norm is still scaled, as torch does"
        );
        let g = torch(3.0, 1.0);
        let mut s = store(&[1.0, 1.0], &[3.0, 4.0]);
        clip_grad_norm(&mut s, 1.0).unwrap();
        let mut sgd = Sgd::new(0.1).momentum(0.9);
        sgd.step(&mut s).unwrap();
        sgd.step(&mut s).unwrap();
        // v1 = g, v2 = 0.9 g + g: p = 1 - 0.1 (g + 1.9 g).
        assert!((s.values()[0] - (1.0 - 0.1 * 2.9 * g)).abs() < 1e-12);
    }

    /// A store of `n` parameters in one tensor named `name`.
    fn named(name: &str, n: usize) -> ParamStore<f64> {
        let mut s = ParamStore::new("Other", &[(name, vec![crate::ParamShape::new("w", vec![n])])]);
        s.grads_mut().iter_mut().for_each(|g| *g = 0.5);
        s
    }

    #[test]
    fn settings_that_cannot_be_right_are_errors_and_change_nothing() {
        let nan = f64::NAN;
        type Case = Box<dyn Fn(&mut ParamStore<f64>) -> Result<()>>;
        let cases: Vec<(Case, &str)> = vec![
            (
                Box::new(move |s| Sgd::new(nan).step(s)),
                "Sgd: lr must be finite and at least 0, not NaN",
            ),
            (
                Box::new(move |s| Sgd::new(-0.1).step(s)),
                "Sgd: lr must be finite and at least 0, not -0.1",
            ),
            (
                Box::new(move |s| Sgd::new(0.1).momentum(-0.9).step(s)),
                "Sgd: momentum must be finite and at least 0, not -0.9",
            ),
            (
                Box::new(move |s| Sgd::new(0.1).weight_decay(f64::INFINITY).step(s)),
                "Sgd: weight_decay must be finite and at least 0, not inf",
            ),
            (
                Box::new(move |s| Adam::new(nan).step(s)),
                "Adam: lr must be finite and at least 0, not NaN",
            ),
            (
                Box::new(move |s| Adam::new(1e-3).betas(1.0, 0.999).step(s)),
                "Adam: beta1 must be at least 0 and below 1, not 1.0",
            ),
            (
                Box::new(move |s| Adam::new(1e-3).betas(0.9, nan).step(s)),
                "Adam: beta2 must be at least 0 and below 1, not NaN",
            ),
            (
                Box::new(move |s| {
                    let mut a = Adam::new(1e-3);
                    a.eps = -1e-8;
                    a.step(s)
                }),
                "Adam: eps must be finite and at least 0, not -1e-8",
            ),
            (
                Box::new(move |s| Adam::new(1e-3).weight_decay(-1.0).step(s)),
                "Adam: weight_decay must be finite and at least 0, not -1.0",
            ),
            (
                Box::new(move |s| RmsProp::new(1e-2).alpha(1.5).step(s)),
                "RmsProp: alpha must be at least 0 and below 1, not 1.5",
            ),
            (
                Box::new(move |s| clip_grad_norm(s, nan).map(|_| ())),
                "clip_grad_norm: max_norm must be at least 0, not NaN",
            ),
            (
                Box::new(move |s| clip_grad_norm(s, -1.0).map(|_| ())),
                "clip_grad_norm: max_norm must be at least 0, not -1.0",
            ),
            (
                Box::new(move |s| clip_grad_value(s, -5.0)),
                "clip_grad_value: clip_value must be at least 0, not -5.0",
            ),
            (
                Box::new(move |s| clip_grad_value(s, nan)),
                "clip_grad_value: clip_value must be at least 0, not NaN",
            ),
        ];
        for (run, want) in cases {
            let mut s = store(&[1.0, -1.0, 0.5, 0.25], &[3.0, 4.0, -1.0, 2.0]);
            let before = s.clone();
            assert_eq!(run(&mut s).unwrap_err().to_string(), want);
            assert_eq!(s, before, "{want}: the store changed");
        }
        // Infinity clips nothing; 0 is a threshold like any other.
        let mut s = store(&[1.0, -1.0, 0.5, 0.25], &[3.0, 4.0, -1.0, 2.0]);
        clip_grad_norm(&mut s, f64::INFINITY).unwrap();
        clip_grad_value(&mut s, f64::INFINITY).unwrap();
        assert_eq!(s.grads(), [3.0, 4.0, -1.0, 2.0]);
        clip_grad_value(&mut s, 0.0).unwrap();
        assert_eq!(s.grads(), [0.0; 4]);
    }

    #[test]
    fn state_of_another_store_is_an_error_until_reset() {
        let mut a = named("a", 4);
        let mut b = named("b", 4); // the same length, another layout
        let mut c = named("a", 6);
        let mut adam = Adam::new(0.1);
        adam.step(&mut a).unwrap();
        let before = b.clone();
        let err = adam.step(&mut b).unwrap_err().to_string();
        assert!(
            err.starts_with("Adam: its state is for Other (4 parameters), not for this store of Other (4"),
            "{err}"
        );
        assert_eq!(b, before);
        assert!(adam.step(&mut c).is_err());
        adam.reset();
        adam.step(&mut b).unwrap();
        let mut sgd = Sgd::new(0.1).momentum(0.9);
        sgd.step(&mut a).unwrap();
        assert!(sgd
            .step(&mut c)
            .unwrap_err()
            .to_string()
            .starts_with("Sgd: its state is for"));
        sgd.reset();
        sgd.step(&mut c).unwrap();
        // Plain SGD keeps no state: any store.
        let mut plain = Sgd::new(0.1);
        plain.step(&mut a).unwrap();
        plain.step(&mut c).unwrap();
        let mut rms = RmsProp::new(0.01);
        rms.step(&mut a).unwrap();
        assert!(rms.step(&mut b).is_err());

        // restore checks the moments against the store it is for.
        let state = adam.state(); // of b: 4 values each
        let mut fresh = Adam::new(0.1);
        let err = fresh.restore(state.clone(), &c).unwrap_err().to_string();
        assert_eq!(
            err,
            "Adam: a saved state has moments of 4 and 4 values; Other has 6 parameters"
        );
        assert_eq!(fresh, Adam::new(0.1), "a failed restore changes nothing");
        fresh.restore(state.clone(), &a).unwrap();
        assert!(fresh.step(&mut c).is_err(), "restored for a: c is another layout");
        for (bad, want) in [
            (
                AdamState {
                    steps: 3,
                    m: vec![],
                    v: vec![],
                },
                "a saved state of 3 steps has no moments",
            ),
            (
                AdamState {
                    steps: 1,
                    m: vec![0.0, f64::NAN, 0.0, 0.0],
                    v: vec![0.0; 4],
                },
                "a saved first moment holds NaN at 1",
            ),
            (
                AdamState {
                    steps: 1,
                    m: vec![0.0; 4],
                    v: vec![0.0, 0.0, -1.0, 0.0],
                },
                "a saved second moment holds -1.0 at 2 (it is finite and at least 0)",
            ),
            (
                AdamState {
                    steps: u32::MAX,
                    m: vec![0.0; 4],
                    v: vec![0.0; 4],
                },
                "a saved state of 4294967295 steps is more than it counts",
            ),
        ] {
            let err = Adam::new(0.1).restore(bad, &a).unwrap_err().to_string();
            assert_eq!(err, format!("Adam: {want}"));
        }
        // A state taken before the first step restores into any store.
        Adam::new(0.1).restore(Adam::new(0.1).state(), &c).unwrap();
    }
}
