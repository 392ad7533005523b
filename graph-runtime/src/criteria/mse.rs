//! Mean squared error, as `nn.MSECriterion()`: `(x - t)²` per element.

use super::Reduction;
use crate::batch::AsBatch;
use crate::error::Result;
use crate::layer::Layer;
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};

/// Squared error, reduced over every element (mean by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mse {
    /// Mean (torch's default) or sum over elements.
    pub reduction: Reduction,
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
        let (x, t) = (input.as_batch(), target.as_batch());
        super::check_same_shape("Mse", &x, &t, "target")?;
        let mut sum = F::zero();
        Zip::from(&x).and(&t).for_each(|&x, &t| sum += (x - t) * (x - t));
        Ok(sum * F::from_f64(self.reduction.scale(x.len())))
    }

    /// Adds `d loss / d input` (`2 (x - t)`, reduced) into `grad`.
    pub fn backward<F: Float>(
        &self,
        input: &(impl AsBatch<F> + ?Sized),
        target: &(impl AsBatch<F> + ?Sized),
        grad: ArrayViewMut2<'_, F>,
    ) -> Result<()> {
        let (x, t) = (input.as_batch(), target.as_batch());
        super::check_same_shape("Mse", &x, &t, "target")?;
        super::check_same_shape("Mse", &x, &grad.view(), "gradient buffer")?;
        let scale = F::from_f64(2.0 * self.reduction.scale(x.len()));
        Zip::from(grad)
            .and(&x)
            .and(&t)
            .for_each(|g, &x, &t| *g += scale * (x - t));
        Ok(())
    }
}

/// As a node: `loss = Mse()(prediction, target)`, one loss per sample (the
/// mean over its width).
impl<F: Float> Layer<F> for Mse {
    fn kind(&self) -> &'static str {
        "Mse"
    }

    fn output_width(&self, input_widths: &[usize]) -> Result<usize, String> {
        crate::layers::expect_inputs("Mse", input_widths, 2)?;
        crate::layers::same_widths("Mse", input_widths).map(|_| 1)
    }

    fn forward(&self, _: &[F], inputs: &[ArrayView2<'_, F>], mut output: ArrayViewMut2<'_, F>) {
        let scale = F::from_f64(1.0 / inputs[0].ncols().max(1) as f64);
        for ((mut out, x), t) in output
            .axis_iter_mut(Axis(0))
            .zip(inputs[0].axis_iter(Axis(0)))
            .zip(inputs[1].axis_iter(Axis(0)))
        {
            let sum = x
                .iter()
                .zip(t.iter())
                .fold(F::zero(), |a, (&x, &t)| a + (x - t) * (x - t));
            out[0] = sum * scale;
        }
    }

    fn backward_input(
        &self,
        index: usize,
        _: &[F],
        inputs: &[ArrayView2<'_, F>],
        _: ArrayView2<'_, F>,
        d_output: ArrayView2<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) {
        let sign = if index == 0 { 1.0 } else { -1.0 };
        let scale = F::from_f64(sign * 2.0 / inputs[0].ncols().max(1) as f64);
        for (((mut di, x), t), d) in d_input
            .axis_iter_mut(Axis(0))
            .zip(inputs[0].axis_iter(Axis(0)))
            .zip(inputs[1].axis_iter(Axis(0)))
            .zip(d_output.axis_iter(Axis(0)))
        {
            let k = scale * d[0];
            Zip::from(&mut di)
                .and(&x)
                .and(&t)
                .for_each(|g, &x, &t| *g += k * (x - t));
        }
    }
}
