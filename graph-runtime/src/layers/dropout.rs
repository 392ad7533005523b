//! Dropout: in training mode each value is zeroed with probability `p` and
//! the survivors scaled by `1 / (1 - p)` (inverted dropout, as torch); in
//! evaluation mode it is exactly the identity. The mask of each pass is kept
//! in the tape for backward.

use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// `nn.Dropout(p)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing a value.
    pub p: f64,
}

impl Dropout {
    /// Drops each value with probability `p` (clamped to `[0, 1)`).
    pub const fn new(p: f64) -> Self {
        Dropout { p }
    }

    /// Output width for the given input widths.
    pub fn output_width(&self, input_widths: &[usize]) -> Result<usize, String> {
        crate::layers::expect_inputs("Dropout", input_widths, 1)?;
        Ok(input_widths[0])
    }

    /// Forward: writes the mask (0 or `1 / (1 - p)`, or 1 in evaluation
    /// mode) and `output = input · mask`. `seed` makes the mask reproducible.
    pub fn forward_masked<F: Float>(
        &self,
        training: bool,
        seed: u64,
        input: ArrayView2<'_, F>,
        mut mask: ArrayViewMut2<'_, F>,
        output: ArrayViewMut2<'_, F>,
    ) {
        let p = self.p.clamp(0.0, 1.0 - f64::EPSILON);
        if !training || p == 0.0 {
            mask.fill(F::one());
            Zip::from(output).and(&input).for_each(|o, &x| *o = x);
            return;
        }
        let keep = F::from_f64(1.0 / (1.0 - p));
        let mut rng = StdRng::seed_from_u64(seed);
        mask.iter_mut()
            .for_each(|m| *m = if rng.random::<f64>() < p { F::zero() } else { keep });
        Zip::from(output)
            .and(&input)
            .and(&mask)
            .for_each(|o, &x, &m| *o = x * m);
    }

    /// Backward: `d_input += d_output · mask`.
    pub fn backward_masked<F: Float>(
        &self,
        mask: ArrayView2<'_, F>,
        d_output: ArrayView2<'_, F>,
        d_input: ArrayViewMut2<'_, F>,
    ) {
        Zip::from(d_input)
            .and(&d_output)
            .and(&mask)
            .for_each(|di, &d, &m| *di += d * m);
    }
}
