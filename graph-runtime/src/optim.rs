//! Optimizers on a graph's flat parameter and gradient buffers, with
//! torch's update rules. Their state is allocated on the first step.

use crate::params::ParamStore;
use crate::Float;
use crate::{Error, Result};

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
/// opt.step(net.store_mut());
/// net.zero_grad();
/// assert!(net.params().iter().zip(&before).all(|(after, before)| after < before));
/// # Ok::<(), graph_runtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd<F> {
    /// Learning rate.
    pub lr: F,
    /// Momentum factor (0 for plain SGD).
    pub momentum: F,
    /// L2 penalty added to the gradient.
    pub weight_decay: F,
    velocity: Vec<F>,
}

impl<F: Float> Sgd<F> {
    /// Plain SGD with learning rate `lr`.
    pub fn new(lr: F) -> Self {
        Sgd {
            lr,
            momentum: F::zero(),
            weight_decay: F::zero(),
            velocity: Vec::new(),
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
    /// as they are; call `zero_grad` before the next accumulation).
    pub fn step(&mut self, store: &mut ParamStore<F>) {
        let (values, grads) = store.values_and_grads_mut();
        if self.momentum == F::zero() {
            for (p, &g) in values.iter_mut().zip(grads.iter()) {
                *p -= self.lr * (g + self.weight_decay * *p);
            }
            return;
        }
        if self.velocity.len() != values.len() {
            self.velocity = vec![F::zero(); values.len()];
        }
        for ((p, &g), v) in values.iter_mut().zip(grads.iter()).zip(&mut self.velocity) {
            *v = self.momentum * *v + g + self.weight_decay * *p;
            *p -= self.lr * *v;
        }
    }
}

/// Scales the gradients so that their Euclidean norm is at most `max_norm`,
/// as `torch.nn.utils.clip_grad_norm_`: by `max_norm / (norm + 1e-6)` when
/// that is below 1, otherwise not at all. Returns the norm before clipping.
///
/// ```
/// use graph_runtime::optim::clip_grad_norm;
/// use graph_runtime::{ParamShape, ParamStore};
///
/// let mut store = ParamStore::<f64>::new("demo", &[("w", vec![ParamShape::new("weight", vec![2])])]);
/// store.grads_mut().copy_from_slice(&[3.0, 4.0]);
/// let norm = clip_grad_norm(&mut store, 1.0);
/// assert_eq!(norm, 5.0);
/// assert!((store.grads()[0] - 0.6).abs() < 1e-6 && (store.grads()[1] - 0.8).abs() < 1e-6);
/// ```
pub fn clip_grad_norm<F: Float>(store: &mut ParamStore<F>, max_norm: F) -> F {
    let grads = store.grads_mut();
    let norm = grads.iter().map(|&g| g * g).fold(F::zero(), |a, b| a + b).sqrt();
    let coef = max_norm / (norm + F::from_f64(1e-6));
    if coef < F::one() {
        grads.iter_mut().for_each(|g| *g *= coef);
    }
    norm
}

/// Clamps every gradient into `[-clip_value, clip_value]`, as
/// `torch.nn.utils.clip_grad_value_` (char-rnn's `grad_clip`).
///
/// ```
/// use graph_runtime::optim::clip_grad_value;
/// use graph_runtime::{ParamShape, ParamStore};
///
/// let mut store = ParamStore::<f64>::new("demo", &[("w", vec![ParamShape::new("weight", vec![3])])]);
/// store.grads_mut().copy_from_slice(&[-9.0, 0.5, 7.0]);
/// clip_grad_value(&mut store, 5.0);
/// assert_eq!(store.grads(), &[-5.0, 0.5, 5.0]);
/// ```
pub fn clip_grad_value<F: Float>(store: &mut ParamStore<F>, clip_value: F) {
    let clip = clip_value.abs();
    store
        .grads_mut()
        .iter_mut()
        .for_each(|g| *g = g.max(-clip).min(clip));
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
/// opt.step(net.store_mut());
/// net.zero_grad();
/// assert!(net.params().iter().zip(&before).all(|(after, before)| after < before));
/// # Ok::<(), graph_runtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adam<F> {
    /// Learning rate (default 1e-3).
    pub lr: F,
    /// Decay of the first moment (default 0.9).
    pub beta1: F,
    /// Decay of the second moment (default 0.999).
    pub beta2: F,
    /// Added to the denominator (default 1e-8).
    pub eps: F,
    /// L2 penalty added to the gradient (default 0).
    pub weight_decay: F,
    step: i32,
    m: Vec<F>,
    v: Vec<F>,
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

    /// Updates the parameters from the accumulated gradients.
    pub fn step(&mut self, store: &mut ParamStore<F>) {
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
        for (((p, &g), m), v) in values
            .iter_mut()
            .zip(grads.iter())
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            let g = g + self.weight_decay * *p;
            *m = self.beta1 * *m + (one - self.beta1) * g;
            *v = self.beta2 * *v + (one - self.beta2) * g * g;
            let m_hat = *m / bias1;
            let v_hat = *v / bias2;
            *p -= self.lr * m_hat / (v_hat.sqrt() + self.eps);
        }
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

    /// Continues from a saved [`state`](Self::state). An error if the
    /// moments differ in length or the step count does not fit; nothing
    /// changes then. The moments must have one value per parameter of the
    /// store the next [`step`](Self::step) updates: moments of another
    /// length are dropped there, and the run starts over as a new one.
    pub fn restore(&mut self, state: AdamState<F>) -> Result<()> {
        let steps = i32::try_from(state.steps).ok();
        match steps {
            Some(steps) if state.m.len() == state.v.len() => {
                self.step = steps;
                self.m = state.m;
                self.v = state.v;
                Ok(())
            }
            _ => Err(Error::InvalidInput {
                graph: "Adam".into(),
                message: format!(
                    "a saved state has {} steps, a first moment of {} values and a second of {}",
                    state.steps,
                    state.m.len(),
                    state.v.len()
                ),
            }),
        }
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
/// opt.step(net.store_mut());
/// net.zero_grad();
/// assert!(net.params().iter().zip(&before).all(|(after, before)| after < before));
/// # Ok::<(), graph_runtime::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RmsProp<F> {
    /// Learning rate (default 1e-2).
    pub lr: F,
    /// Decay of the mean square (default 0.99).
    pub alpha: F,
    /// Added to the denominator (default 1e-8).
    pub eps: F,
    square: Vec<F>,
}

impl<F: Float> RmsProp<F> {
    /// RMSProp with learning rate `lr` and torch's other defaults.
    pub fn new(lr: F) -> Self {
        RmsProp {
            lr,
            alpha: F::from_f64(0.99),
            eps: F::from_f64(1e-8),
            square: Vec::new(),
        }
    }

    /// Sets the decay of the mean square.
    pub fn alpha(mut self, alpha: F) -> Self {
        self.alpha = alpha;
        self
    }

    /// Updates the parameters from the accumulated gradients.
    pub fn step(&mut self, store: &mut ParamStore<F>) {
        let (values, grads) = store.values_and_grads_mut();
        if self.square.len() != values.len() {
            self.square = vec![F::zero(); values.len()];
        }
        for ((p, &g), s) in values.iter_mut().zip(grads.iter()).zip(&mut self.square) {
            *s = self.alpha * *s + (F::one() - self.alpha) * g * g;
            *p -= self.lr * g / (s.sqrt() + self.eps);
        }
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
            adam.step(&mut straight);
        }
        let mut resumed = store(&[1.0, -1.0, 0.5, 0.25], &grads(0));
        let mut first = Adam::new(0.1);
        for k in 0..2 {
            resumed.grads_mut().copy_from_slice(&grads(k));
            first.step(&mut resumed);
        }
        let mut second = Adam::new(0.1);
        second.restore(first.state()).unwrap();
        for k in 2..5 {
            resumed.grads_mut().copy_from_slice(&grads(k));
            second.step(&mut resumed);
        }
        assert_eq!(straight.values(), resumed.values());
        // Without the state, the bias corrections restart: not the same run.
        let mut fresh = Adam::new(0.1);
        let mut restarted = resumed.clone();
        restarted.values_mut().copy_from_slice(straight.values());
        fresh.step(&mut restarted);
        second.step(&mut resumed);
        assert_ne!(restarted.values(), resumed.values());
        let bad = AdamState {
            steps: 1,
            m: vec![0.0; 4],
            v: vec![0.0; 3],
        };
        assert!(Adam::new(0.1).restore(bad).is_err());
    }

    fn store(values: &[f64], grads: &[f64]) -> ParamStore<f64> {
        let layer = Linear::new(1, values.len() / 2);
        let mut s = ParamStore::of_layers("T", &[("l", &layer as &dyn Layer<f64>)]);
        s.values_mut().copy_from_slice(values);
        s.grads_mut().copy_from_slice(grads);
        s
    }

    #[test]
    fn adam_first_step_moves_each_parameter_by_about_lr() {
        // With m̂ = g and v̂ = g², the first step is lr · g / (|g| + eps).
        let mut s = store(&[1.0, -2.0, 0.5, 3.0], &[0.3, -4.0, 1e-3, 0.0]);
        Adam::new(0.1).step(&mut s);
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
            adam.step(&mut a);
            rms.step(&mut r);
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
        RmsProp::new(0.01).step(&mut s);
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
            assert_eq!(clip_grad_norm(&mut s, max), 5.0);
            assert!((s.grads()[0] - torch(3.0, max)).abs() < 1e-12, "max {max}");
            assert!((s.grads()[1] - torch(4.0, max)).abs() < 1e-12, "max {max}");
        }
        let mut s = store(&[1.0, 1.0], &[3.0, 4.0]);
        clip_grad_norm(&mut s, 5.0);
        assert!(
            s.grads()[0] < 3.0,
            "a norm equal to max_norm is still scaled, as torch does"
        );
        let g = torch(3.0, 1.0);
        let mut s = store(&[1.0, 1.0], &[3.0, 4.0]);
        clip_grad_norm(&mut s, 1.0);
        let mut sgd = Sgd::new(0.1).momentum(0.9);
        sgd.step(&mut s);
        sgd.step(&mut s);
        // v1 = g, v2 = 0.9 g + g: p = 1 - 0.1 (g + 1.9 g).
        assert!((s.values()[0] - (1.0 - 0.1 * 2.9 * g)).abs() < 1e-12);
    }
}
