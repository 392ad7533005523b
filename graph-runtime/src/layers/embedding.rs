//! Embedding (torch7's LookupTable): integer ids to rows of a learned
//! `(vocab, dim)` table.

use crate::layer::{Backward, Forward, Layer, LayerResult, ParamShape};
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rand::RngExt;

/// `nn.LookupTable(vocab, dim)`: row `ids[b]` of `weight` for each sample `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedding {
    /// Number of ids.
    pub vocab: usize,
    /// Width of each row.
    pub dim: usize,
}

impl Embedding {
    /// A table of `vocab` rows of width `dim`.
    pub const fn new(vocab: usize, dim: usize) -> Self {
        Embedding { vocab, dim }
    }
}

impl<F: Float> Layer<F> for Embedding {
    fn kind(&self) -> &'static str {
        "Embedding"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    /// The table, `weight` of shape `(vocab, dim)`.
    fn param_shapes(&self) -> Vec<ParamShape> {
        vec![ParamShape::new("weight", vec![self.vocab, self.dim])]
    }

    /// Standard normal, as `torch.nn.Embedding`.
    fn init(&self, params: &mut [F], rng: &mut dyn rand::Rng) {
        for p in params {
            // Box-Muller: two uniforms to one normal.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
            *p = F::from_f64((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos());
        }
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::expect_inputs("Embedding", input_widths, 1)?;
        Ok(self.dim)
    }

    /// Copies row `ids[b]` of the table into row `b` of `output`. An id
    /// outside the table is an error.
    fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
        let ids = cx.inputs[0].ids()?;
        let table = ArrayView2::from_shape((self.vocab, self.dim), cx.params).map_err(|e| e.to_string())?;
        if let Some((b, &id)) = ids.iter().enumerate().find(|(_, &id)| id >= self.vocab) {
            return Err(format!(
                "id {id} at row {b} is outside the table of {} ids (Embedding({}, {}))",
                self.vocab, self.vocab, self.dim
            ));
        }
        let dim = self.dim;
        match output.as_slice_mut() {
            // A sequence's rows (T·B of them) are gathered by the pool's
            // threads, each its own run of rows.
            Some(out) if out.len() == ids.len() * dim => {
                crate::kernels::for_row_runs(ids.len(), dim, ids.len() * dim, out, |r0, r1, rows| {
                    for (row, &id) in rows.chunks_exact_mut(dim.max(1)).zip(&ids[r0..r1]) {
                        row.copy_from_slice(&cx.params[id * dim..(id + 1) * dim]);
                    }
                });
            }
            _ => {
                for (&id, mut row) in ids.iter().zip(output.axis_iter_mut(Axis(0))) {
                    row.assign(&table.row(id));
                }
            }
        }
        Ok(())
    }

    /// Adds row `b` of `d_output` into row `ids[b]` of the table's gradient.
    fn backward_params(&self, cx: &Backward<'_, F>, grads: &mut [F]) -> LayerResult {
        let ids = cx.inputs[0].ids()?;
        let mut table =
            ArrayViewMut2::from_shape((self.vocab, self.dim), grads).map_err(|e| e.to_string())?;
        for (&id, d) in ids.iter().zip(cx.d_output.axis_iter(Axis(0))) {
            let mut row = table.row_mut(id);
            row += &d;
        }
        Ok(())
    }

    /// Ids have no gradient; never called.
    fn backward_input(&self, _: usize, _: &Backward<'_, F>, _: ArrayViewMut2<'_, F>) -> LayerResult {
        Ok(())
    }
}
