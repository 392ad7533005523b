//! Conversions from the arrays users hold into the `(batch, width)` views
//! graphs compute on.
//!
//! A graph input is a matrix with one row per sample. A single sample may be
//! passed as a 1-D array, slice or `Vec`, and is seen as one row.

use ndarray::{ArrayBase, ArrayView2, Data, Ix1, Ix2};

/// Anything that can be viewed as a `(batch, width)` matrix.
pub trait AsBatch<F> {
    /// A `(batch, width)` view of `self`; 1-D values become one row.
    fn as_batch(&self) -> ArrayView2<'_, F>;
}

impl<F, S: Data<Elem = F>> AsBatch<F> for ArrayBase<S, Ix2> {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        self.view()
    }
}

impl<F, S: Data<Elem = F>> AsBatch<F> for ArrayBase<S, Ix1> {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        self.view().insert_axis(ndarray::Axis(0))
    }
}

impl<F> AsBatch<F> for [F] {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        ndarray::ArrayView1::from(self).insert_axis(ndarray::Axis(0))
    }
}

impl<F> AsBatch<F> for Vec<F> {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        self.as_slice().as_batch()
    }
}

impl<F, const N: usize> AsBatch<F> for [F; N] {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        self.as_slice().as_batch()
    }
}

/// Anything that can be viewed as one integer id per sample (for
/// `Embedding` inputs and class targets).
pub trait AsIds {
    /// The ids, one per sample.
    fn as_ids(&self) -> &[usize];
}

impl AsIds for [usize] {
    fn as_ids(&self) -> &[usize] {
        self
    }
}

impl AsIds for Vec<usize> {
    fn as_ids(&self) -> &[usize] {
        self
    }
}

impl<const N: usize> AsIds for [usize; N] {
    fn as_ids(&self) -> &[usize] {
        self
    }
}

impl AsIds for ndarray::Array1<usize> {
    fn as_ids(&self) -> &[usize] {
        self.as_slice().expect("an owned 1-D array is contiguous")
    }
}
