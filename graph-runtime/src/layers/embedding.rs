//! Embedding (torch7's LookupTable): integer ids to rows of a learned
//! `(vocab, dim)` table.

use crate::layer::ParamShape;
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rand::Rng;

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

    /// The table, `weight` of shape `(vocab, dim)`.
    pub fn param_shapes(&self) -> Vec<ParamShape> {
        vec![ParamShape {
            name: "weight".into(),
            shape: vec![self.vocab, self.dim],
        }]
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.vocab * self.dim
    }

    /// Standard normal, as `torch.nn.Embedding`.
    pub fn init<F: Float>(&self, params: &mut [F], rng: &mut dyn rand::RngCore) {
        for p in params {
            // Box-Muller: two uniforms to one normal.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
            *p = F::from_f64((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos());
        }
    }

    /// Forward: copies row `ids[b]` of the table into row `b` of `output`.
    /// An id outside the table is an error (generated code adds the graph,
    /// the node and its source line).
    pub fn forward_ids<F: Float>(
        &self,
        params: &[F],
        ids: &[usize],
        mut output: ArrayViewMut2<'_, F>,
    ) -> std::result::Result<(), String> {
        let table =
            ArrayView2::from_shape((self.vocab, self.dim), params).expect("table has vocab * dim entries");
        for (b, (&id, mut row)) in ids.iter().zip(output.axis_iter_mut(Axis(0))).enumerate() {
            if id >= self.vocab {
                return Err(format!(
                    "id {id} at row {b} is outside the table of {} ids (Embedding({}, {}))",
                    self.vocab, self.vocab, self.dim
                ));
            }
            row.assign(&table.row(id));
        }
        Ok(())
    }

    /// Backward: adds row `b` of `d_output` into row `ids[b]` of the table's
    /// gradient. Ids have no gradient.
    pub fn backward_ids<F: Float>(&self, grads: &mut [F], ids: &[usize], d_output: ArrayView2<'_, F>) {
        let mut table =
            ArrayViewMut2::from_shape((self.vocab, self.dim), grads).expect("table has vocab * dim entries");
        for (&id, d) in ids.iter().zip(d_output.axis_iter(Axis(0))) {
            let mut row = table.row_mut(id);
            row += &d;
        }
    }
}
