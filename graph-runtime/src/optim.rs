//! Optimizers on a graph's flat parameter and gradient buffers.

use crate::params::ParamStore;
use crate::Float;

/// Stochastic gradient descent with optional momentum and weight decay, as
/// `torch.optim.SGD`: `g += wd * p; v = momentum * v + g; p -= lr * v`.
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

/// Scales the gradients so that their Euclidean norm is at most `max_norm`;
/// returns the norm before clipping (as `torch.nn.utils.clip_grad_norm_`).
pub fn clip_grad_norm<F: Float>(store: &mut ParamStore<F>, max_norm: F) -> F {
    let grads = store.grads_mut();
    let norm = grads.iter().map(|&g| g * g).fold(F::zero(), |a, b| a + b).sqrt();
    if norm > max_norm && norm > F::zero() {
        let scale = max_norm / norm;
        grads.iter_mut().for_each(|g| *g *= scale);
    }
    norm
}
