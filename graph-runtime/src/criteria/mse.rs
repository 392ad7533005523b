//! Mean squared error, as `nn.MSECriterion()`: `mean((x - t)²)` over every
//! element.

use crate::batch::AsBatch;
use crate::error::Result;
use crate::Float;
use ndarray::{ArrayViewMut2, Zip};

/// Mean squared error over all elements (torch's default `sizeAverage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mse;

impl Mse {
    /// `mean((input - target)²)`.
    pub fn forward<F: Float>(
        &self,
        input: &(impl AsBatch<F> + ?Sized),
        target: &(impl AsBatch<F> + ?Sized),
    ) -> Result<F> {
        let (x, t) = (input.as_batch(), target.as_batch());
        super::check_same_shape("Mse", &x, &t, "target")?;
        let mut sum = F::zero();
        Zip::from(&x).and(&t).for_each(|&x, &t| sum += (x - t) * (x - t));
        Ok(sum / F::from_f64(x.len().max(1) as f64))
    }

    /// Adds `d loss / d input = 2 (input - target) / n` into `grad`.
    pub fn backward<F: Float>(
        &self,
        input: &(impl AsBatch<F> + ?Sized),
        target: &(impl AsBatch<F> + ?Sized),
        grad: ArrayViewMut2<'_, F>,
    ) -> Result<()> {
        let (x, t) = (input.as_batch(), target.as_batch());
        super::check_same_shape("Mse", &x, &t, "target")?;
        super::check_same_shape("Mse", &x, &grad.view(), "gradient buffer")?;
        let scale = F::from_f64(2.0 / x.len().max(1) as f64);
        Zip::from(grad)
            .and(&x)
            .and(&t)
            .for_each(|g, &x, &t| *g += scale * (x - t));
        Ok(())
    }
}
