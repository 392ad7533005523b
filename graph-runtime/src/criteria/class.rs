//! Criteria over classes, with targets given as integer ids:
//! - `ClassNll` (`nn.ClassNLLCriterion`): `-x[t]` of log-probabilities `x`;
//! - `CrossEntropy` (`nn.CrossEntropyCriterion`): LogSoftMax then ClassNll,
//!   fused: `log Σ exp(x) - x[t]` with the row maximum subtracted, so logits
//!   of any magnitude give a finite loss and gradient.

use super::Reduction;
use crate::error::Result;
use crate::feed::{AsBatch, AsIds};
use crate::kernels::for_row_runs;
use crate::layer::{Backward, Forward, Layer, LayerResult};
use crate::layers::{for_each_exp, log_softmax_of, normaliser};
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// About the work of one score of one row (an `exp` and a few compares),
/// in multiply-adds: how the rows are split across threads (a batch of 50
/// over 65 classes runs alone; a sequence's T·B rows are split).
const ROW_COST: usize = 16;

/// Negative log-likelihood of log-probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassNll {
    /// Mean over the batch (torch's default) or sum.
    pub reduction: Reduction,
}

/// Softmax cross-entropy of raw scores (logits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrossEntropy {
    /// Mean over the batch (torch's default) or sum.
    pub reduction: Reduction,
}

macro_rules! class_criterion {
    ($ty:ident, $name:literal, per_sample: |$x:ident, $r:ident, $t:ident| $loss:expr,
     gradient: |$gx:ident, $gr:ident, $gt:ident, $grow:ident, $k:ident| $grad:block) => {
        impl $ty {
            /// With the mean reduction.
            pub const fn new() -> Self {
                $ty {
                    reduction: Reduction::Mean,
                }
            }

            /// With the given reduction.
            pub const fn with(reduction: Reduction) -> Self {
                $ty { reduction }
            }

            /// The loss over a `(batch, classes)` input and one target id per row.
            pub fn forward<F: Float>(&self, input: &(impl AsBatch<F> + ?Sized), target: &(impl AsIds + ?Sized)) -> Result<F> {
                let ($x, ids) = (input.as_batch(), target.as_ids());
                let ids = &*ids;
                super::check_ids($name, &$x, ids)?;
                let mut sum = F::zero();
                for ($r, &$t) in ids.iter().enumerate() {
                    sum += $loss;
                }
                Ok(sum * F::from_f64(self.reduction.scale(ids.len())))
            }

            /// Adds `d loss / d input` into `grad`.
            pub fn backward<F: Float>(
                &self,
                input: &(impl AsBatch<F> + ?Sized),
                target: &(impl AsIds + ?Sized),
                mut grad: ArrayViewMut2<'_, F>,
            ) -> Result<()> {
                let (x, ids) = (input.as_batch(), target.as_ids());
                let ids = &*ids;
                super::check_ids($name, &x, ids)?;
                super::check_same_shape($name, &x, &grad.view(), "gradient buffer")?;
                let scale = F::from_f64(self.reduction.scale(ids.len()));
                Self::add_grad(x, ids, |_| scale, grad.view_mut());
                Ok(())
            }

            /// Adds each row's gradient, scaled by `k(row)`: the rows split
            /// across the pool when there are many (T·B of a sequence).
            fn add_grad<F: Float>(
                $gx: ArrayView2<'_, F>,
                ids: &[usize],
                $k: impl Fn(usize) -> F + Sync,
                mut d_input: ArrayViewMut2<'_, F>,
            ) {
                let (rows, width) = d_input.dim();
                match d_input.as_slice_mut() {
                    Some(d) if width > 0 => for_row_runs(rows, width, ROW_COST * rows * width, d, |r0, r1, d| {
                        for (($gr, &$gt), $grow) in (r0..r1).zip(&ids[r0..r1]).zip(d.chunks_exact_mut(width)) $grad
                    }),
                    _ => for (($gr, &$gt), mut $grow) in ids.iter().enumerate().zip(d_input.axis_iter_mut(Axis(0))) $grad,
                }
            }
        }

        /// As a node: `loss = Criterion()(scores, target)` with `target: usize`
        /// ids, one loss per sample. An id outside the classes is an error.
        impl<F: Float> Layer<F> for $ty {
            fn kind(&self) -> &'static str {
                $name
            }

            fn rows_independent(&self) -> bool {
                true
            }

            fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
                crate::layers::expect_inputs($name, input_widths, 2).map(|_| 1)
            }

            fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
                let ($x, ids) = (cx.inputs[0].values()?, cx.inputs[1].ids()?);
                super::check_ids($name, &$x, ids).map_err(|e| e.to_string())?;
                let cost = ROW_COST * ids.len() * $x.ncols();
                match output.as_slice_mut() {
                    Some(out) => for_row_runs(ids.len(), 1, cost, out, |r0, r1, out| {
                        for (($r, &$t), o) in (r0..r1).zip(&ids[r0..r1]).zip(out) {
                            *o = $loss;
                        }
                    }),
                    None => {
                        for ($r, &$t) in ids.iter().enumerate() {
                            output[[$r, 0]] = $loss;
                        }
                    }
                }
                Ok(())
            }

            /// The gradient of `Σ d_output · loss` for the scores (the ids have none).
            fn backward_input(&self, _: usize, cx: &Backward<'_, F>, d_input: ArrayViewMut2<'_, F>) -> LayerResult {
                let (x, ids, d) = (cx.inputs[0].values()?, cx.inputs[1].ids()?, cx.d_output);
                Self::add_grad(x, ids, |r| d[[r, 0]], d_input);
                Ok(())
            }
        }
    };
}

class_criterion!(ClassNll, "ClassNll",
    per_sample: |x, r, t| -x[[r, t]],
    gradient: |x, r, t, row, k| {
        let _ = &x;
        row[t] -= k(r);
    }
);

class_criterion!(CrossEntropy, "CrossEntropy",
    per_sample: |x, r, t| -log_softmax_of(x[[r, t]], normaliser(x.row(r))),
    gradient: |x, r, t, row, k| {
        // softmax(x) - onehot(t), scaled.
        let (max, rest) = normaliser(x.row(r));
        let k = k(r);
        let scale = k / (F::one() + rest);
        for_each_exp(x.row(r), max, |j, e| row[j] += scale * e);
        row[t] -= k;
    }
);
