//! Dropout: in training mode each value is zeroed with probability `p` and
//! the survivors scaled by `1 / (1 - p)` (inverted dropout, as torch); in
//! evaluation mode it is exactly the identity. The mask of each pass is the
//! node's state in the tape, kept for backward.

use crate::kernels::for_row_runs;
use crate::layer::{Backward, Forward, Layer, LayerResult};
use crate::tape::ensure_shape;
use crate::Float;
use ndarray::{ArrayViewMut2, Zip};
use rand::{rngs::StdRng, RngExt, SeedableRng};

/// `nn.Dropout(p)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing a value, in `[0, 1)`.
    pub p: f64,
}

impl Dropout {
    /// Drops each value with probability `p`, which `graph!` checks is in
    /// `[0, 1)`; a value outside is clamped into it.
    pub const fn new(p: f64) -> Self {
        Dropout { p }
    }
}

impl<F: Float> Layer<F> for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::same_as_input("Dropout", input_widths)
    }

    /// Writes the mask (0 or `1 / (1 - p)`) into the state and `output =
    /// input · mask`. The mask depends only on `cx.seed`, so a run is
    /// reproducible. In evaluation mode, or with `p = 0`, the output is the
    /// input and no mask is kept (the state is empty).
    fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
        let input = cx.inputs[0].values()?;
        let p = cx.dropout.unwrap_or(self.p).clamp(0.0, 1.0 - f64::EPSILON);
        if !cx.training || p == 0.0 {
            ensure_shape(cx.state, 0, 0);
            match (input.as_slice(), output.as_slice_mut()) {
                // A sequence's rows, copied by the pool's threads together.
                (Some(x), Some(y)) => {
                    let width = input.ncols();
                    for_row_runs(input.nrows(), width, x.len(), y, |r0, r1, y| {
                        y.copy_from_slice(&x[r0 * width..r1 * width])
                    })
                }
                _ => output.assign(&input),
            }
            return Ok(());
        }
        ensure_shape(cx.state, input.nrows(), input.ncols());
        let mask = cx.state;
        let keep = F::from_f64(1.0 / (1.0 - p));
        let mut rng = StdRng::seed_from_u64(cx.seed);
        mask.iter_mut()
            .for_each(|m| *m = if rng.random::<f64>() < p { F::zero() } else { keep });
        Zip::from(output)
            .and(&input)
            .and(&*mask)
            .for_each(|o, &x, &m| *o = x * m);
        Ok(())
    }

    /// `d_input += d_output · mask` (`d_output` where no mask was kept).
    fn backward_input(
        &self,
        _: usize,
        cx: &Backward<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        if cx.state.is_empty() {
            let width = d_input.ncols();
            match (cx.d_output.as_slice(), d_input.as_slice_mut()) {
                (Some(d), Some(di)) => {
                    for_row_runs(di.len() / width.max(1), width, d.len(), di, |r0, r1, di| {
                        di.iter_mut()
                            .zip(&d[r0 * width..r1 * width])
                            .for_each(|(di, &d)| *di += d)
                    })
                }
                _ => d_input += &cx.d_output,
            }
            return Ok(());
        }
        Zip::from(d_input)
            .and(&cx.d_output)
            .and(&cx.state)
            .for_each(|di, &d, &m| *di += d * m);
        Ok(())
    }
}
