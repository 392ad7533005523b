//! The machinery shared by criteria that compare a prediction and a target
//! element by element (Mse, Bce): a per-element loss `l(x, t)` and its
//! derivatives, reduced over all elements when used alone, or over each
//! row when used as a graph node.

use super::Reduction;
use crate::error::{Error, Result};
use crate::feed::AsBatch;
use crate::layer::{Backward, Input, LayerResult};
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};

/// A per-element loss and its derivatives with respect to the prediction
/// `x` and the target `t`.
pub(crate) trait ElementLoss {
    const NAME: &'static str;
    fn loss<F: Float>(x: F, t: F) -> F;
    fn d_input<F: Float>(x: F, t: F) -> F;
    fn d_target<F: Float>(x: F, t: F) -> F;
    /// Whether `(x, t)` is in the loss's domain; a message saying why not.
    fn check<F: Float>(x: F, t: F) -> std::result::Result<(), String> {
        let _ = (x, t);
        Ok(())
    }
}

/// The first element pair outside the loss's domain, as a message.
fn check_domain<L: ElementLoss, F: Float>(
    x: &ArrayView2<'_, F>,
    t: &ArrayView2<'_, F>,
) -> std::result::Result<(), String> {
    for ((index, &x), &t) in x.indexed_iter().zip(t.iter()) {
        L::check(x, t).map_err(|m| format!("{}: at {index:?}: {m}", L::NAME))?;
    }
    Ok(())
}

/// `Σ l(x, t)` reduced over every element.
pub(crate) fn forward<L: ElementLoss, F: Float>(
    reduction: Reduction,
    input: &(impl AsBatch<F> + ?Sized),
    target: &(impl AsBatch<F> + ?Sized),
) -> Result<F> {
    let (x, t) = (input.as_batch(), target.as_batch());
    super::check_same_shape(L::NAME, &x, &t, "target")?;
    check_domain::<L, F>(&x, &t).map_err(|message| Error::InvalidInput {
        graph: L::NAME.to_string(),
        message,
    })?;
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
    check_domain::<L, F>(&x, &t).map_err(|message| Error::InvalidInput {
        graph: L::NAME.to_string(),
        message,
    })?;
    let scale = F::from_f64(reduction.scale(x.len()));
    Zip::from(grad)
        .and(&x)
        .and(&t)
        .for_each(|g, &x, &t| *g += scale * L::d_input(x, t));
    Ok(())
}

/// As a node: the mean of `l(x, t)` over each row, into `output[r, 0]`.
pub(crate) fn node_forward<L: ElementLoss, F: Float>(
    inputs: &[Input<'_, F>],
    mut output: ArrayViewMut2<'_, F>,
) -> LayerResult {
    let (x, t) = (inputs[0].values()?, inputs[1].values()?);
    check_domain::<L, F>(&x, &t)?;
    let scale = F::from_f64(1.0 / x.ncols().max(1) as f64);
    for ((mut out, x), t) in output
        .axis_iter_mut(Axis(0))
        .zip(x.axis_iter(Axis(0)))
        .zip(t.axis_iter(Axis(0)))
    {
        out[0] = x
            .iter()
            .zip(t.iter())
            .fold(F::zero(), |a, (&x, &t)| a + L::loss(x, t))
            * scale;
    }
    Ok(())
}

/// As a node: adds the gradient for the prediction (`index` 0) or the
/// target (1), each row scaled by its output gradient.
pub(crate) fn node_backward<L: ElementLoss, F: Float>(
    index: usize,
    cx: &Backward<'_, F>,
    mut d_input: ArrayViewMut2<'_, F>,
) -> LayerResult {
    let (x, t) = (cx.inputs[0].values()?, cx.inputs[1].values()?);
    let scale = F::from_f64(1.0 / x.ncols().max(1) as f64);
    for (((mut di, x), t), d) in d_input
        .axis_iter_mut(Axis(0))
        .zip(x.axis_iter(Axis(0)))
        .zip(t.axis_iter(Axis(0)))
        .zip(cx.d_output.axis_iter(Axis(0)))
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
    Ok(())
}

/// An element-wise criterion: its constructors, its use on its own
/// (reduced by its `Reduction`) and its `Layer` impl as a graph node (one
/// loss per sample, the mean over its width).
macro_rules! element_criterion {
    ($ty:ident, $loss:ty, $what:literal) => {
        impl $ty {
            #[doc = concat!("Mean ", $what, ".")]
            pub const fn new() -> Self {
                $ty {
                    reduction: Reduction::Mean,
                }
            }

            /// With the given reduction.
            pub const fn with(reduction: Reduction) -> Self {
                $ty { reduction }
            }

            #[doc = concat!("The ", $what, ", reduced over every element.")]
            pub fn forward<F: Float>(
                &self,
                input: &(impl AsBatch<F> + ?Sized),
                target: &(impl AsBatch<F> + ?Sized),
            ) -> Result<F> {
                elementwise::forward::<$loss, F>(self.reduction, input, target)
            }

            /// Adds `d loss / d input`, reduced, into `grad`.
            pub fn backward<F: Float>(
                &self,
                input: &(impl AsBatch<F> + ?Sized),
                target: &(impl AsBatch<F> + ?Sized),
                grad: ArrayViewMut2<'_, F>,
            ) -> Result<()> {
                elementwise::backward::<$loss, F>(self.reduction, input, target, grad)
            }
        }

        /// As a node: `loss = Criterion()(prediction, target)`, one loss per
        /// sample (the mean over its width).
        impl<F: Float> Layer<F> for $ty {
            fn kind(&self) -> &'static str {
                <$loss as ElementLoss>::NAME
            }

            fn rows_independent(&self) -> bool {
                true
            }

            fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
                crate::layers::element_wise(<$loss as ElementLoss>::NAME, input_widths, 2, false).map(|_| 1)
            }

            fn forward(&self, cx: Forward<'_, F>, output: ArrayViewMut2<'_, F>) -> LayerResult {
                elementwise::node_forward::<$loss, F>(cx.inputs, output)
            }

            fn backward_input(
                &self,
                index: usize,
                cx: &Backward<'_, F>,
                d_input: ArrayViewMut2<'_, F>,
            ) -> LayerResult {
                elementwise::node_backward::<$loss, F>(index, cx, d_input)
            }
        }
    };
}
pub(crate) use element_criterion;
