//! `Linear(in, out)`: `y = x · Wᵀ + b`, torch layout (`weight` is `(out, in)`
//! row-major, then `bias` of length `out`).

use crate::kernels::grouped::weight_grad;
use crate::kernels::{add_column_sums, matmul_dy_w, matmul_x_wt};
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
            // y = x · Wᵀ + b, the bias added as each tile is stored.
            (Some(x), Some(y)) => matmul_x_wt(x, w, Some(b), y, batch, n_in, n_out),
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
                weight_grad(dys, xs, dw, x.nrows(), n_out, n_in);
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

fn weight_view<F>(w: &[F], n_out: usize, n_in: usize) -> LayerResult<ArrayView2<'_, F>> {
    ArrayView2::from_shape((n_out, n_in), w).map_err(|e| e.to_string())
}
