//! Mean squared error, as `nn.MSECriterion()`: `(x - t)²` per element.

use super::elementwise::{self, element_criterion, ElementLoss};
use super::Reduction;
use crate::error::Result;
use crate::feed::AsBatch;
use crate::layer::{Backward, Forward, Layer, LayerResult};
use crate::Float;
use ndarray::ArrayViewMut2;

/// Squared error, reduced over every element (mean by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mse {
    /// Mean (torch's default) or sum over elements.
    pub reduction: Reduction,
}

struct Squared;

impl ElementLoss for Squared {
    const NAME: &'static str = "Mse";
    fn loss<F: Float>(x: F, t: F) -> F {
        (x - t) * (x - t)
    }
    fn d_input<F: Float>(x: F, t: F) -> F {
        (x - t) * F::from_f64(2.0)
    }
    fn d_target<F: Float>(x: F, t: F) -> F {
        (t - x) * F::from_f64(2.0)
    }
}

element_criterion!(Mse, Squared, "squared error");
