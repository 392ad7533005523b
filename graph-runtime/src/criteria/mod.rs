//! Criteria (losses): a scalar from a prediction and a target, and the
//! gradient of that scalar with respect to the prediction.
//!
//! Each criterion is used two ways:
//! - on its own, as torch's: `Mse::new().forward(&prediction, &target)` is
//!   the loss reduced by its [`Reduction`], `backward` adds its gradient into
//!   a buffer;
//! - as a node of a graph, `loss = Mse()(y, target)`: the node's output is
//!   one loss per sample, `(batch, 1)`; the mean of that column is torch's
//!   mean reduction, its sum the sum reduction.

mod bce;
mod class;
mod elementwise;
mod mse;

pub use bce::Bce;
pub use class::{ClassNll, CrossEntropy};
pub use mse::Mse;

use crate::error::{Error, Shape};
use ndarray::ArrayView2;

/// How per-element (or per-sample) losses become one number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The mean (torch's default).
    #[default]
    Mean,
    /// The sum.
    Sum,
}

impl Reduction {
    /// The factor that turns a sum over `n` terms into this reduction.
    pub(crate) fn scale(self, n: usize) -> f64 {
        match self {
            Reduction::Mean => 1.0 / n.max(1) as f64,
            Reduction::Sum => 1.0,
        }
    }
}

/// Checks that the prediction and another array have one shape.
pub(crate) fn check_same_shape<F>(
    criterion: &str,
    input: &ArrayView2<'_, F>,
    other: &ArrayView2<'_, F>,
    other_name: &str,
) -> Result<(), Error> {
    if input.shape() == other.shape() {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            context: format!("{criterion}: the {other_name} must have the prediction's shape"),
            expected: Shape::from(input.shape()),
            found: Shape::from(other.shape()),
        })
    }
}

/// Checks class ids against a `(batch, classes)` prediction.
pub(crate) fn check_ids<F>(criterion: &str, input: &ArrayView2<'_, F>, ids: &[usize]) -> Result<(), Error> {
    if ids.len() != input.nrows() {
        return Err(Error::ShapeMismatch {
            context: format!("{criterion}: one target id per row of the prediction"),
            expected: Shape(vec![input.nrows()]),
            found: Shape(vec![ids.len()]),
        });
    }
    if let Some((row, &id)) = ids.iter().enumerate().find(|(_, &id)| id >= input.ncols()) {
        return Err(Error::InvalidInput {
            graph: criterion.to_string(),
            message: format!(
                "target id {id} at row {row} is not a class of a prediction with {} classes (0..{})",
                input.ncols(),
                input.ncols()
            ),
        });
    }
    Ok(())
}
