//! Conversions from the arrays users hold into the `(batch, width)` views
//! graphs compute on.
//!
//! A graph input is a matrix with one row per sample. A single sample may be
//! passed as a 1-D array, slice or `Vec`, and is seen as one row.

use ndarray::{ArrayBase, ArrayView2, Data, Ix1, Ix2};
use std::borrow::Cow;

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
/// `Embedding` inputs and class targets): slices, arrays, `Vec`s and 1-D
/// ndarray arrays or views (copied only if they are not contiguous).
pub trait AsIds {
    /// The ids, one per sample.
    fn as_ids(&self) -> Cow<'_, [usize]>;
}

impl AsIds for [usize] {
    fn as_ids(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(self)
    }
}

impl AsIds for Vec<usize> {
    fn as_ids(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(self)
    }
}

impl<const N: usize> AsIds for [usize; N] {
    fn as_ids(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(self)
    }
}

impl<S: Data<Elem = usize>> AsIds for ArrayBase<S, Ix1> {
    fn as_ids(&self) -> Cow<'_, [usize]> {
        match self.as_slice() {
            Some(ids) => Cow::Borrowed(ids),
            None => Cow::Owned(self.iter().copied().collect()),
        }
    }
}

/// Anything that can be viewed as a `(steps, batch, width)` sequence.
pub trait AsSequence<F> {
    /// A `(steps, batch, width)` view of `self`.
    fn as_sequence(&self) -> ndarray::ArrayView3<'_, F>;
}

impl<F, S: Data<Elem = F>> AsSequence<F> for ArrayBase<S, ndarray::Ix3> {
    fn as_sequence(&self) -> ndarray::ArrayView3<'_, F> {
        self.view()
    }
}

/// Anything that can be viewed as `(steps, batch)` integer ids.
pub trait AsIdSequence {
    /// A `(steps, batch)` view of `self`.
    fn as_id_sequence(&self) -> ArrayView2<'_, usize>;
}

impl<S: Data<Elem = usize>> AsIdSequence for ArrayBase<S, Ix2> {
    fn as_id_sequence(&self) -> ArrayView2<'_, usize> {
        self.view()
    }
}
