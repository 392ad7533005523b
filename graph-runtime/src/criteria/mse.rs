//! Mean squared error, as `nn.MSECriterion()`: `(x - t)²` per element.

use super::elementwise::{self, criterion_layer, ElementLoss};
use super::Reduction;
use crate::batch::AsBatch;
use crate::error::Result;
use crate::layer::Layer;
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2};

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

impl Mse {
    /// Mean squared error.
    pub const fn new() -> Self {
        Mse {
            reduction: Reduction::Mean,
        }
    }

    /// With the given reduction.
    pub const fn with(reduction: Reduction) -> Self {
        Mse { reduction }
    }

    /// The loss: `(x - t)²` reduced over every element.
    pub fn forward<F: Float>(
        &self,
        input: &(impl AsBatch<F> + ?Sized),
        target: &(impl AsBatch<F> + ?Sized),
    ) -> Result<F> {
        elementwise::forward::<Squared, F>(self.reduction, input, target)
    }

    /// Adds `d loss / d input` (`2 (x - t)`, reduced) into `grad`.
    pub fn backward<F: Float>(
        &self,
        input: &(impl AsBatch<F> + ?Sized),
        target: &(impl AsBatch<F> + ?Sized),
        grad: ArrayViewMut2<'_, F>,
    ) -> Result<()> {
        elementwise::backward::<Squared, F>(self.reduction, input, target, grad)
    }
}

criterion_layer!(Mse, Squared);
