//! The machinery shared by criteria that compare a prediction and a target
//! element by element (Mse, Bce): a per-element loss `l(x, t)` and its
//! derivatives, reduced over all elements when used alone, or over each
//! row when used as a graph node.

use super::Reduction;
use crate::batch::AsBatch;
use crate::error::Result;
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};

/// A per-element loss and its derivatives with respect to the prediction
/// `x` and the target `t`.
pub(crate) trait ElementLoss {
    const NAME: &'static str;
    fn loss<F: Float>(x: F, t: F) -> F;
    fn d_input<F: Float>(x: F, t: F) -> F;
    fn d_target<F: Float>(x: F, t: F) -> F;
}

/// `Σ l(x, t)` reduced over every element.
pub(crate) fn forward<L: ElementLoss, F: Float>(
    reduction: Reduction,
    input: &(impl AsBatch<F> + ?Sized),
    target: &(impl AsBatch<F> + ?Sized),
) -> Result<F> {
    let (x, t) = (input.as_batch(), target.as_batch());
    super::check_same_shape(L::NAME, &x, &t, "target")?;
    let mut sum = F::zero();
    Zip::from(&x).and(&t).for_each(|&x, &t| sum += L::loss(x, t));
    Ok(sum * F::from_f64(reduction.scale(x.len())))
}

/// Adds the gradient of [`forward`] with respect to the input into `grad`.
pub(crate) fn backward<L: ElementLoss, F: Float>(
    reduction: Reduction,
    input: &(impl AsBatch<F> + ?Sized),
    target: &(impl AsBatch<F> + ?Sized),
    grad: ArrayViewMut2<'_, F>,
) -> Result<()> {
    let (x, t) = (input.as_batch(), target.as_batch());
    super::check_same_shape(L::NAME, &x, &t, "target")?;
    super::check_same_shape(L::NAME, &x, &grad.view(), "gradient buffer")?;
    let scale = F::from_f64(reduction.scale(x.len()));
    Zip::from(grad)
        .and(&x)
        .and(&t)
        .for_each(|g, &x, &t| *g += scale * L::d_input(x, t));
    Ok(())
}

/// As a node: the mean of `l(x, t)` over each row, into `output[r, 0]`.
pub(crate) fn node_forward<L: ElementLoss, F: Float>(
    inputs: &[ArrayView2<'_, F>],
    mut output: ArrayViewMut2<'_, F>,
) {
    let scale = F::from_f64(1.0 / inputs[0].ncols().max(1) as f64);
    for ((mut out, x), t) in output
        .axis_iter_mut(Axis(0))
        .zip(inputs[0].axis_iter(Axis(0)))
        .zip(inputs[1].axis_iter(Axis(0)))
    {
        out[0] = x
            .iter()
            .zip(t.iter())
            .fold(F::zero(), |a, (&x, &t)| a + L::loss(x, t))
            * scale;
    }
}

/// As a node: adds the gradient for the prediction (`index` 0) or the
/// target (1), each row scaled by its output gradient.
pub(crate) fn node_backward<L: ElementLoss, F: Float>(
    index: usize,
    inputs: &[ArrayView2<'_, F>],
    d_output: ArrayView2<'_, F>,
    mut d_input: ArrayViewMut2<'_, F>,
) {
    let scale = F::from_f64(1.0 / inputs[0].ncols().max(1) as f64);
    for (((mut di, x), t), d) in d_input
        .axis_iter_mut(Axis(0))
        .zip(inputs[0].axis_iter(Axis(0)))
        .zip(inputs[1].axis_iter(Axis(0)))
        .zip(d_output.axis_iter(Axis(0)))
    {
        let k = scale * d[0];
        if index == 0 {
            Zip::from(&mut di)
                .and(&x)
                .and(&t)
                .for_each(|g, &x, &t| *g += k * L::d_input(x, t));
        } else {
            Zip::from(&mut di)
                .and(&x)
                .and(&t)
                .for_each(|g, &x, &t| *g += k * L::d_target(x, t));
        }
    }
}

/// The `Layer` impl of an element-wise criterion used as a node.
macro_rules! criterion_layer {
    ($ty:ty, $loss:ty) => {
        /// As a node: `loss = Criterion()(prediction, target)`, one loss per
        /// sample (the mean over its width).
        impl<F: Float> Layer<F> for $ty {
            fn kind(&self) -> &'static str {
                <$loss as ElementLoss>::NAME
            }

            fn output_width(&self, input_widths: &[usize]) -> Result<usize, String> {
                let name = <$loss as ElementLoss>::NAME;
                crate::layers::expect_inputs(name, input_widths, 2)?;
                crate::layers::same_widths(name, input_widths).map(|_| 1)
            }

            fn forward(&self, _: &[F], inputs: &[ArrayView2<'_, F>], output: ArrayViewMut2<'_, F>) {
                elementwise::node_forward::<$loss, F>(inputs, output);
            }

            fn backward_input(
                &self,
                index: usize,
                _: &[F],
                inputs: &[ArrayView2<'_, F>],
                _: ArrayView2<'_, F>,
                d_output: ArrayView2<'_, F>,
                d_input: ArrayViewMut2<'_, F>,
            ) {
                elementwise::node_backward::<$loss, F>(index, inputs, d_output, d_input);
            }
        }
    };
}
pub(crate) use criterion_layer;
