//! `Linear(in, out)`: `y = x · Wᵀ + b`, torch layout (`weight` is `(out, in)`
//! row-major, then `bias` of length `out`).

use crate::kernels::distinct::{with_distinct_rows, Distinct};
use crate::kernels::grouped::weight_grad;
use crate::kernels::{add_column_sums, for_row_runs, matmul_at_b_acc, matmul_dy_w, matmul_x_wt};
use crate::layer::{Backward, Forward, Layer, LayerResult, ParamShape};
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rand::RngExt;

/// Fully connected layer, as `nn.Linear(in, out)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    /// Width of the input.
    pub in_features: usize,
    /// Width of the output.
    pub out_features: usize,
}

impl Linear {
    /// A linear map from `in_features` to `out_features` columns.
    pub const fn new(in_features: usize, out_features: usize) -> Self {
        Linear {
            in_features,
            out_features,
        }
    }

    fn split<'a, F>(&self, params: &'a [F]) -> (&'a [F], &'a [F]) {
        params.split_at(self.in_features * self.out_features)
    }
}

impl<F: Float> Layer<F> for Linear {
    fn kind(&self) -> &'static str {
        "Linear"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    fn param_shapes(&self) -> Vec<ParamShape> {
        vec![
            ParamShape::new("weight", vec![self.out_features, self.in_features]),
            ParamShape::new("bias", vec![self.out_features]),
        ]
    }

    /// Uniform in ±1/√in, as torch7's `nn.Linear:reset()`.
    fn init(&self, params: &mut [F], rng: &mut dyn rand::Rng) {
        let bound = 1.0 / (self.in_features.max(1) as f64).sqrt();
        for p in params {
            *p = F::from_f64(rng.random_range(-bound..=bound));
        }
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::expect_inputs("Linear", input_widths, 1)?;
        if input_widths[0] != self.in_features {
            return Err(format!(
                "Linear({}, {}) expects an input of width {}, got width {}",
                self.in_features, self.out_features, self.in_features, input_widths[0]
            ));
        }
        Ok(self.out_features)
    }

    fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
        let (w, b) = self.split(cx.params);
        let x = cx.inputs[0].values()?;
        let (batch, n_in, n_out) = (x.nrows(), self.in_features, self.out_features);
        match (x.as_slice(), output.as_slice_mut()) {
            // y = x · Wᵀ + b, the bias added as each tile is stored; over
            // rows that repeat (an embedding's), each distinct row's once.
            (Some(x), Some(y)) => {
                let repeated = batch >= REPEATS_FROM
                    && n_in > 0
                    && with_distinct_rows(x, n_in, batch / REPEATS, |d| {
                        d.map(|d| forward_distinct(d, x, w, b, y, n_in, n_out))
                    })
                    .is_some();
                if !repeated {
                    matmul_x_wt(x, w, Some(b), y, batch, n_in, n_out);
                }
            }
            _ => {
                let w = weight_view(w, n_out, n_in)?;
                ndarray::linalg::general_mat_mul(F::one(), &x, &w.t(), F::zero(), &mut output);
                for mut row in output.axis_iter_mut(Axis(0)) {
                    row.iter_mut().zip(b).for_each(|(y, &b)| *y += b);
                }
            }
        }
        Ok(())
    }

    fn backward_params(&self, cx: &Backward<'_, F>, grads: &mut [F]) -> LayerResult {
        let (n_in, n_out) = (self.in_features, self.out_features);
        let (dw, db) = grads.split_at_mut(n_in * n_out);
        let (x, d_output) = (cx.inputs[0].values()?, cx.d_output);
        match (x.as_slice(), d_output.as_slice()) {
            // dW += dYᵀ · X (in a backward pass maybe later, in one product
            // with another layer's sharing dY), db += the column sums of dY
            (Some(xs), Some(dys)) => {
                let rows = x.nrows();
                let repeated = rows >= REPEATS_FROM
                    && n_in > 0
                    && with_distinct_rows(xs, n_in, rows / REPEATS, |d| {
                        d.map(|d| weight_grad_distinct(d, xs, dys, dw, n_in, n_out))
                    })
                    .is_some();
                if !repeated {
                    weight_grad(dys, xs, dw, rows, n_out, n_in);
                }
                add_column_sums(dys, d_output.nrows(), n_out, db);
            }
            _ => {
                let mut dw = ArrayViewMut2::from_shape((n_out, n_in), dw).map_err(|e| e.to_string())?;
                ndarray::linalg::general_mat_mul(F::one(), &d_output.t(), &x, F::one(), &mut dw);
                for row in d_output.axis_iter(Axis(0)) {
                    db.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
                }
            }
        }
        Ok(())
    }

    fn backward_input(
        &self,
        _: usize,
        cx: &Backward<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        let (w, _) = self.split(cx.params);
        let d_output = cx.d_output;
        let (n_in, n_out) = (self.in_features, self.out_features);
        let batch = d_output.nrows();
        match (d_output.as_slice(), d_input.as_slice_mut()) {
            // dX += dY · W
            (Some(dy), Some(dx)) => matmul_dy_w(dy, w, dx, batch, n_out, n_in),
            _ => {
                let w = weight_view(w, n_out, n_in)?;
                ndarray::linalg::general_mat_mul(F::one(), &d_output, &w, F::one(), &mut d_input);
            }
        }
        Ok(())
    }
}

/// Inputs of at least this many rows are looked at for rows that repeat.
const REPEATS_FROM: usize = 1024;

/// ... and taken as repeating with at most one distinct row in this many:
/// then the product over the distinct rows is at least this many times
/// smaller, and a matrix that does not repeat costs the hashing of this
/// fraction of its rows.
const REPEATS: usize = 8;

/// `y = x · Wᵀ + b` over the distinct rows `d` of `x`, each product row
/// copied to the rows equal to it. Each row is the product's chain for that
/// row, whatever the number of rows: the same bits as the whole product.
fn forward_distinct<F: Float>(
    d: &Distinct,
    x: &[F],
    w: &[F],
    b: &[F],
    y: &mut [F],
    n_in: usize,
    n_out: usize,
) {
    let count = d.first.len();
    F::with_rows_scratch(count * (n_in + n_out), |scratch| {
        let (rows, products) = scratch.split_at_mut(count * n_in);
        for (out, &r) in rows.chunks_exact_mut(n_in).zip(&d.first) {
            out.copy_from_slice(&x[r * n_in..(r + 1) * n_in]);
        }
        matmul_x_wt(rows, w, Some(b), products, count, n_in, n_out);
        let products: &[F] = products;
        let batch = d.of_row.len();
        for_row_runs(batch, n_out, batch * n_out, y, |r0, r1, y| {
            for (out, &i) in y.chunks_exact_mut(n_out).zip(&d.of_row[r0..r1]) {
                let i = i as usize;
                out.copy_from_slice(&products[i * n_out..(i + 1) * n_out]);
            }
        });
    })
}

/// `dW += dYᵀ · X` over the distinct rows `d` of `X`: each distinct row
/// times the sum of the rows of `dY` where it appears (summed in row order),
/// `Gᵀ · U`. The same sums in another order than the product over all rows.
fn weight_grad_distinct<F: Float>(d: &Distinct, x: &[F], dy: &[F], dw: &mut [F], n_in: usize, n_out: usize) {
    let count = d.first.len();
    F::with_rows_scratch(count * (n_in + n_out), |scratch| {
        let (rows, sums) = scratch.split_at_mut(count * n_in);
        for (out, &r) in rows.chunks_exact_mut(n_in).zip(&d.first) {
            out.copy_from_slice(&x[r * n_in..(r + 1) * n_in]);
        }
        sums.fill(F::zero());
        for (dy, &i) in dy.chunks_exact(n_out).zip(&d.of_row) {
            let i = i as usize;
            let sum = &mut sums[i * n_out..(i + 1) * n_out];
            sum.iter_mut().zip(dy).for_each(|(s, &g)| *s += g);
        }
        matmul_at_b_acc(sums, rows, dw, count, n_out, n_in);
    })
}

fn weight_view<F>(w: &[F], n_out: usize, n_in: usize) -> LayerResult<ArrayView2<'_, F>> {
    ArrayView2::from_shape((n_out, n_in), w).map_err(|e| e.to_string())
}
