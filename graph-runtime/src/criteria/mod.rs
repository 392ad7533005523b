//! Criteria (losses): a scalar from a prediction and a target, and the
//! gradient of that scalar with respect to the prediction.

mod mse;

pub use mse::Mse;

use crate::error::{Error, Shape};
use ndarray::ArrayView2;

/// Checks that the prediction and the target (and the gradient buffer, if
/// any) have one shape.
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
