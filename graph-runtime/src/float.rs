//! The element types a graph can compute in.
//!
//! Every generated graph is generic over `F: Float`; `f32` is the default and
//! `f64` is what gradient checking wants.

use ndarray::NdFloat;
use std::iter::Sum;

/// A floating-point element type usable in graphs: `f32` or `f64`.
///
/// This is ndarray's [`NdFloat`] plus lossless-enough conversion from and to
/// `f64`, which initialisers, criteria and gradient checking need, and the
/// type's own matrix-product kernel. Sealed: only `f32` and `f64` implement it.
pub trait Float: NdFloat + Default + Sum + 'static + crate::kernels::Kernels {
    /// Converts from `f64`, rounding to the nearest value of `Self`.
    fn from_f64(value: f64) -> Self;
    /// Converts to `f64` (exact for `f32` and `f64`).
    fn to_f64(self) -> f64;
}

impl Float for f32 {
    #[inline]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    #[inline]
    fn from_f64(value: f64) -> Self {
        value
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}
