//! Row-wise normalisations: SoftMax and LogSoftMax, each computed with the
//! row maximum subtracted so that large inputs never overflow.

use crate::layer::{Backward, Forward, Layer, LayerResult};
use crate::Float;
use ndarray::{s, ArrayView1, ArrayView2, ArrayViewMut2, Axis, Zip};

/// `y_i = exp(x_i) / Σ_j exp(x_j)` over each row, as `nn.SoftMax()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SoftMax;

/// `y_i = x_i - log Σ_j exp(x_j)` over each row, as `nn.LogSoftMax()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogSoftMax;

/// Calls `f(j, e^(x_j - shift))` for each element of `row`: the
/// exponentials by the element type's vectorised kernel, 64 at a time in a
/// buffer on the stack (no allocation).
pub(crate) fn for_each_exp<F: Float>(row: ArrayView1<'_, F>, shift: F, mut f: impl FnMut(usize, F)) {
    const CHUNK: usize = 64;
    let mut buf = [F::zero(); CHUNK];
    let n = row.len();
    let mut start = 0;
    while start < n {
        let len = (n - start).min(CHUNK);
        for (b, &x) in buf[..len].iter_mut().zip(row.slice(s![start..start + len])) {
            *b = x - shift;
        }
        F::exp_in_place(&mut buf[..len]);
        for (k, &e) in buf[..len].iter().enumerate() {
            f(start + k, e);
        }
        start += len;
    }
}

/// `log Σ exp(row)`, stable for any magnitude.
pub(crate) fn log_sum_exp<F: Float>(row: ArrayView2<'_, F>, r: usize) -> F {
    let row = row.row(r);
    let max = row.iter().copied().fold(F::neg_infinity(), F::max);
    if !max.is_finite() {
        return max;
    }
    let mut sum = F::zero();
    for_each_exp(row, max, |_, e| sum += e);
    max + sum.ln()
}

impl<F: Float> Layer<F> for SoftMax {
    fn kind(&self) -> &'static str {
        "SoftMax"
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::same_as_input("SoftMax", input_widths)
    }

    fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
        let x = cx.inputs[0].values()?;
        for (r, mut out) in output.axis_iter_mut(Axis(0)).enumerate() {
            let lse = log_sum_exp(x.view(), r);
            for_each_exp(x.row(r), lse, |j, e| out[j] = e);
        }
        Ok(())
    }

    /// `dx_i = y_i (dy_i - Σ_j dy_j y_j)`.
    fn backward_input(
        &self,
        _: usize,
        cx: &Backward<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        for ((mut dx, y), dy) in d_input
            .axis_iter_mut(Axis(0))
            .zip(cx.output.axis_iter(Axis(0)))
            .zip(cx.d_output.axis_iter(Axis(0)))
        {
            let dot = y.iter().zip(dy.iter()).fold(F::zero(), |a, (&y, &d)| a + y * d);
            Zip::from(&mut dx)
                .and(&y)
                .and(&dy)
                .for_each(|dx, &y, &d| *dx += y * (d - dot));
        }
        Ok(())
    }
}

impl<F: Float> Layer<F> for LogSoftMax {
    fn kind(&self) -> &'static str {
        "LogSoftMax"
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::same_as_input("LogSoftMax", input_widths)
    }

    fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
        let x = cx.inputs[0].values()?;
        for (r, mut out) in output.axis_iter_mut(Axis(0)).enumerate() {
            let lse = log_sum_exp(x.view(), r);
            Zip::from(&mut out).and(x.row(r)).for_each(|o, &v| *o = v - lse);
        }
        Ok(())
    }

    /// `dx_i = dy_i - exp(y_i) Σ_j dy_j`.
    fn backward_input(
        &self,
        _: usize,
        cx: &Backward<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        for ((mut dx, y), dy) in d_input
            .axis_iter_mut(Axis(0))
            .zip(cx.output.axis_iter(Axis(0)))
            .zip(cx.d_output.axis_iter(Axis(0)))
        {
            let sum = dy.iter().fold(F::zero(), |a, &d| a + d);
            for_each_exp(y, F::zero(), |j, e| dx[j] += dy[j] - e * sum);
        }
        Ok(())
    }
}
