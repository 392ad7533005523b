//! Binary cross-entropy, as `nn.BCECriterion()`:
//! `-(t ln p + (1 - t) ln(1 - p))` per element, with each log clamped at
//! -100 as torch does, so that `p = 0` or `1` gives a finite loss.

use super::Reduction;
use crate::batch::AsBatch;
use crate::error::Result;
use crate::layer::Layer;
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};

/// Binary cross-entropy of probabilities against targets in `[0, 1]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bce {
    /// Mean (torch's default) or sum over elements.
    pub reduction: Reduction,
}

const LOG_FLOOR: f64 = -100.0;

fn element<F: Float>(p: F, t: F) -> F {
    let floor = F::from_f64(LOG_FLOOR);
    let (lp, lq) = (p.ln().max(floor), (F::one() - p).ln().max(floor));
    -(t * lp + (F::one() - t) * lq)
}

/// `dL/dp = (p - t) / (p (1 - p))`, with `p (1 - p)` kept away from zero.
fn d_element<F: Float>(p: F, t: F) -> F {
    let denom = (p * (F::one() - p)).max(F::from_f64(1e-12));
    (p - t) / denom
}

/// `dL/dt = ln(1 - p) - ln(p)`.
fn d_target<F: Float>(p: F) -> F {
    let floor = F::from_f64(LOG_FLOOR);
    (F::one() - p).ln().max(floor) - p.ln().max(floor)
}

impl Bce {
    /// Mean binary cross-entropy.
    pub const fn new() -> Self {
        Bce {
            reduction: Reduction::Mean,
        }
    }

    /// With the given reduction.
    pub const fn with(reduction: Reduction) -> Self {
        Bce { reduction }
    }

    /// The loss, reduced over every element.
    pub fn forward<F: Float>(
        &self,
        input: &(impl AsBatch<F> + ?Sized),
        target: &(impl AsBatch<F> + ?Sized),
    ) -> Result<F> {
        let (p, t) = (input.as_batch(), target.as_batch());
        super::check_same_shape("Bce", &p, &t, "target")?;
        let mut sum = F::zero();
        Zip::from(&p).and(&t).for_each(|&p, &t| sum += element(p, t));
        Ok(sum * F::from_f64(self.reduction.scale(p.len())))
    }

    /// Adds `d loss / d input` into `grad`.
    pub fn backward<F: Float>(
        &self,
        input: &(impl AsBatch<F> + ?Sized),
        target: &(impl AsBatch<F> + ?Sized),
        grad: ArrayViewMut2<'_, F>,
    ) -> Result<()> {
        let (p, t) = (input.as_batch(), target.as_batch());
        super::check_same_shape("Bce", &p, &t, "target")?;
        super::check_same_shape("Bce", &p, &grad.view(), "gradient buffer")?;
        let scale = F::from_f64(self.reduction.scale(p.len()));
        Zip::from(grad)
            .and(&p)
            .and(&t)
            .for_each(|g, &p, &t| *g += scale * d_element(p, t));
        Ok(())
    }
}

/// As a node: `loss = Bce()(probability, target)`, one loss per sample
/// (the mean over its width).
impl<F: Float> Layer<F> for Bce {
    fn kind(&self) -> &'static str {
        "Bce"
    }

    fn output_width(&self, input_widths: &[usize]) -> Result<usize, String> {
        crate::layers::expect_inputs("Bce", input_widths, 2)?;
        crate::layers::same_widths("Bce", input_widths).map(|_| 1)
    }

    fn forward(&self, _: &[F], inputs: &[ArrayView2<'_, F>], mut output: ArrayViewMut2<'_, F>) {
        let scale = F::from_f64(1.0 / inputs[0].ncols().max(1) as f64);
        for ((mut out, p), t) in output
            .axis_iter_mut(Axis(0))
            .zip(inputs[0].axis_iter(Axis(0)))
            .zip(inputs[1].axis_iter(Axis(0)))
        {
            out[0] = p
                .iter()
                .zip(t.iter())
                .fold(F::zero(), |a, (&p, &t)| a + element(p, t))
                * scale;
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
        let scale = F::from_f64(1.0 / inputs[0].ncols().max(1) as f64);
        for (((mut di, p), t), d) in d_input
            .axis_iter_mut(Axis(0))
            .zip(inputs[0].axis_iter(Axis(0)))
            .zip(inputs[1].axis_iter(Axis(0)))
            .zip(d_output.axis_iter(Axis(0)))
        {
            let k = scale * d[0];
            if index == 0 {
                Zip::from(&mut di)
                    .and(&p)
                    .and(&t)
                    .for_each(|g, &p, &t| *g += k * d_element(p, t));
            } else {
                Zip::from(&mut di).and(&p).for_each(|g, &p| *g += k * d_target(p));
            }
        }
    }
}
