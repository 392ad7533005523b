//! Row-wise normalisations: SoftMax and LogSoftMax, each computed with the
//! row maximum subtracted so that large inputs never overflow, the
//! subtraction exact and the log of the sum as `ln_1p` (see [`normaliser`]).

use crate::kernels::activations::{difference, exp_shifted, SHIFTED_CHUNK};
use crate::layer::{Backward, Forward, Layer, LayerResult};
use crate::Float;
use ndarray::{s, ArrayView1, ArrayViewMut2, Axis, Zip};

/// `y_i = exp(x_i) / Σ_j exp(x_j)` over each row, as `nn.SoftMax()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SoftMax;

/// `y_i = x_i - log Σ_j exp(x_j)` over each row, as `nn.LogSoftMax()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogSoftMax;

/// Calls `f(j, e^(x_j - shift))` for each element of `row`: the
/// exponentials by the element type's vectorised kernel, 64 at a time in a
/// buffer on the stack (no allocation), `x_j - shift` taken exactly
/// ([`exp_shifted`]).
pub(crate) fn for_each_exp<F: Float>(row: ArrayView1<'_, F>, shift: F, mut f: impl FnMut(usize, F)) {
    let (mut buf, mut copy) = ([F::zero(); SHIFTED_CHUNK], [F::zero(); SHIFTED_CHUNK]);
    let (n, slice) = (row.len(), row.as_slice());
    let mut start = 0;
    while start < n {
        let len = (n - start).min(SHIFTED_CHUNK);
        let x = match slice {
            Some(s) => &s[start..start + len],
            None => {
                for (c, &v) in copy.iter_mut().zip(row.slice(s![start..start + len])) {
                    *c = v;
                }
                &copy[..len]
            }
        };
        exp_shifted(x, shift, &mut buf[..len]);
        for (k, &e) in buf[..len].iter().enumerate() {
            f(start + k, e);
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
    let found = match row.as_slice() {
        Some(x) => first_max(x),
        None => {
            let (mut max, mut at) = (F::neg_infinity(), usize::MAX);
            for (j, &v) in row.iter().enumerate() {
                if v.is_nan() {
                    return (F::nan(), F::nan());
                }
                if v > max {
                    (max, at) = (v, j);
                }
            }
            Some((max, at))
        }
    };
    let Some((max, at)) = found.filter(|(max, _)| max.is_finite()) else {
        return (F::nan(), F::nan());
    };
    let mut rest = F::zero();
    for_each_exp(row, max, |j, e| {
        if j != at {
            rest += e
        }
    });
    (max, rest)
}

/// The first largest element of `x` and where it is (`-inf` and no place
/// when nothing is above `-inf`); `None` if `x` holds a NaN. Eight running maxima, so
/// that the scan vectorises; the first element equal to their maximum is
/// the one a scan from the left keeps (its sign of zero included).
fn first_max<F: Float>(x: &[F]) -> Option<(F, usize)> {
    const LANES: usize = 8;
    if x.iter().fold(false, |nan, v| nan | v.is_nan()) {
        return None;
    }
    let mut lanes = [F::neg_infinity(); LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = lanes
        .iter()
        .chain(tail)
        .fold(F::neg_infinity(), |m, &v| if v > m { v } else { m });
    // Nothing above -inf: the scan never moves.
    match x
        .iter()
        .position(|&v| v == max)
        .filter(|_| max > F::neg_infinity())
    {
        Some(at) => Some((x[at], at)),
        None => Some((max, usize::MAX)),
    }
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

    fn rows_independent(&self) -> bool {
        true
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

    fn rows_independent(&self) -> bool {
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan `first_max` replaces: left to right, a new maximum only
    /// when strictly larger.
    fn scan(x: &[f32]) -> Option<(f32, usize)> {
        let (mut max, mut at) = (f32::NEG_INFINITY, usize::MAX);
        for (j, &v) in x.iter().enumerate() {
            if v.is_nan() {
                return None;
            }
            if v > max {
                (max, at) = (v, j);
            }
        }
        Some((max, at))
    }

    #[test]
    fn the_first_maximum_is_the_one_a_scan_from_the_left_keeps() {
        let values = [
            0.0,
            -0.0,
            1.5,
            -3.0,
            1.5,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
        ];
        let mut rows: Vec<Vec<f32>> = vec![
            vec![],
            vec![f32::NEG_INFINITY; 9],
            vec![-0.0, 0.0],
            vec![0.0, -0.0],
        ];
        // Every length around the eight lanes, with ties, zeros of both
        // signs and infinities in every place, and a NaN now and then.
        for len in 1..27 {
            for seed in 0..40usize {
                rows.push(
                    (0..len)
                        .map(|i| {
                            values
                                [(i * 7 + seed * 3 + i * seed) % (values.len() - usize::from(seed % 5 != 0))]
                        })
                        .collect(),
                );
            }
        }
        // Both zeros as the maximum, in lanes or tail that a combination of
        // lanes visits in another order than the scan.
        for len in 2..20 {
            for p in 0..len {
                for q in 0..len {
                    if p != q {
                        let mut x = vec![-3.0; len];
                        (x[p], x[q]) = (0.0, -0.0);
                        rows.push(x);
                    }
                }
            }
        }
        for x in &rows {
            let (got, want) = (first_max(x), scan(x));
            let bits = |r: Option<(f32, usize)>| r.map(|(m, at)| (m.to_bits(), at));
            assert_eq!(bits(got), bits(want), "row {x:?}");
        }
    }
}
