//! Row-wise normalisations: SoftMax and LogSoftMax, each computed with the
//! row maximum subtracted so that large inputs never overflow, the
//! subtraction exact and the log of the sum as `ln_1p` (see [`normaliser`]).

use crate::layer::{Backward, Forward, Layer, LayerResult};
use crate::Float;
use ndarray::{s, ArrayView1, ArrayViewMut2, Axis, Zip};

/// `y_i = exp(x_i) / Σ_j exp(x_j)` over each row, as `nn.SoftMax()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SoftMax;

/// `y_i = x_i - log Σ_j exp(x_j)` over each row, as `nn.LogSoftMax()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogSoftMax;

/// `x - shift` as `(s, err)` with `s + err` exact (Knuth's TwoSum): the
/// rounding of `x - shift` would otherwise grow with `|x - shift|` and
/// pass into `e^(x - shift)` as a relative error.
#[inline]
fn difference<F: Float>(x: F, shift: F) -> (F, F) {
    let s = x - shift;
    if !s.is_finite() {
        // -inf - max: e^s is 0 and needs no correction.
        return (s, F::zero());
    }
    let back = s - x;
    (s, (x - (s - back)) + (-shift - back))
}

/// Calls `f(j, e^(x_j - shift))` for each element of `row`: the
/// exponentials by the element type's vectorised kernel, 64 at a time in a
/// buffer on the stack (no allocation), `x_j - shift` taken exactly.
pub(crate) fn for_each_exp<F: Float>(row: ArrayView1<'_, F>, shift: F, mut f: impl FnMut(usize, F)) {
    const CHUNK: usize = 64;
    let (mut buf, mut err) = ([F::zero(); CHUNK], [F::zero(); CHUNK]);
    let n = row.len();
    let mut start = 0;
    while start < n {
        let len = (n - start).min(CHUNK);
        for ((b, e), &x) in buf[..len]
            .iter_mut()
            .zip(&mut err[..len])
            .zip(row.slice(s![start..start + len]))
        {
            (*b, *e) = difference(x, shift);
        }
        F::exp_in_place(&mut buf[..len]);
        for (k, (&v, &e)) in buf[..len].iter().zip(&err[..len]).enumerate() {
            // e^(s + err) = e^s (1 + err): |err| is at most half an ulp of s.
            f(start + k, v.mul_add(e, v));
        }
        start += len;
    }
}

/// What a row's SoftMax, LogSoftMax and CrossEntropy are computed from, as
/// torch computes them (the maximum subtracted first, so that large inputs
/// never overflow) with one refinement: `(max, rest)` where `rest = Σ_{j ≠
/// argmax} e^(x_j - max)`. The maximum's own term is exactly 1, so the log
/// of the sum is `ln_1p(rest)`, accurate when the other terms are small.
/// A row holding +inf, NaN or nothing but -inf has no finite normaliser:
/// `(NaN, NaN)`, so that the whole row comes out NaN, as torch's does.
pub(crate) fn normaliser<F: Float>(row: ArrayView1<'_, F>) -> (F, F) {
    let (mut max, mut at) = (F::neg_infinity(), usize::MAX);
    for (j, &v) in row.iter().enumerate() {
        if v.is_nan() {
            return (F::nan(), F::nan());
        }
        if v > max {
            (max, at) = (v, j);
        }
    }
    if !max.is_finite() {
        return (F::nan(), F::nan());
    }
    let mut rest = F::zero();
    for_each_exp(row, max, |j, e| {
        if j != at {
            rest += e
        }
    });
    (max, rest)
}

/// `log softmax(x)_j = (x_j - max) - ln_1p(rest)`, the difference exact.
#[inline]
pub(crate) fn log_softmax_of<F: Float>(x: F, (max, rest): (F, F)) -> F {
    let (s, err) = difference(x, max);
    (s - rest.ln_1p()) + err
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
            let (max, rest) = normaliser(x.row(r));
            let sum = F::one() + rest;
            for_each_exp(x.row(r), max, |j, e| out[j] = e / sum);
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
            let n = normaliser(x.row(r));
            Zip::from(&mut out)
                .and(x.row(r))
                .for_each(|o, &v| *o = log_softmax_of(v, n));
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
