//! What a pass is given: [`Feed`], one per declared input (its values or
//! ids, for one step or a whole sequence; a state's initial value, its
//! carried value, or nothing) or one per output (its gradient, or nothing);
//! and the conversions from the arrays users hold that the generated
//! methods accept ([`AsBatch`], [`AsIds`], [`AsSeq`], [`AsIdSeq`], and
//! [`Absent`] for an argument not given).
//!
//! A graph input is a matrix with one row per sample. A single sample may be
//! passed as a 1-D array, slice or `Vec`, and is seen as one row.
//!
//! The argument traits say what they expect in their own messages
//! (`#[diagnostic::on_unimplemented]`); their impls are
//! `#[diagnostic::do_not_recommend]`, so that rustc does not list them,
//! which would point users into this file.

use ndarray::{ArrayBase, ArrayView2, ArrayView3, Data};
use std::borrow::Cow;

/// What a pass is given for one declared input, or (to backward) for one
/// output's gradient. A pass takes one per input, in declaration order.
///
/// - A single step takes [`Values`](Feed::Values) `(B, width)` and
///   [`Ids`](Feed::Ids) `B`.
/// - A pass over `T` steps takes [`Seq`](Feed::Seq) `(T, B, width)` and
///   [`IdSeq`](Feed::IdSeq) `(T, B)` for the inputs that are not
///   recurrent states, and for each state its initial value as
///   [`Values`](Feed::Values) `(B, width)` or [`Carry`](Feed::Carry).
/// - [`Absent`](Feed::Absent): a state starts at zero (as torch's `h_0`);
///   any other input is not given, and the nodes that depend on it are not
///   computed (their values are NaN): a graph with loss nodes runs without
///   its targets. As an output gradient, zero.
#[derive(Debug)]
pub enum Feed<'a, F> {
    /// One step's values, `(B, width)`; a state's initial value; an output
    /// gradient over all rows, `(T·B, width)`.
    Values(ArrayView2<'a, F>),
    /// One step's ids, one per sample.
    Ids(&'a [usize]),
    /// Values over `T` steps, `(T, B, width)`; an output gradient.
    Seq(ArrayView3<'a, F>),
    /// Ids over `T` steps, `(T, B)`.
    IdSeq(ArrayView2<'a, usize>),
    /// A state that starts where the last pass on the tape ended, its
    /// gradient cut (truncated BPTT); zero before any pass.
    Carry,
    /// Not given (see the type's documentation).
    Absent,
}

impl<F> Clone for Feed<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for Feed<'_, F> {}

impl<'a, F> Feed<'a, F> {
    /// The same feed, borrowed for a shorter time (ndarray's views do not
    /// shorten by themselves).
    pub fn reborrow<'b>(&'b self) -> Feed<'b, F>
    where
        'a: 'b,
    {
        match *self {
            Feed::Values(v) => Feed::Values(v.reborrow()),
            Feed::Ids(x) => Feed::Ids(x),
            Feed::Seq(v) => Feed::Seq(v.reborrow()),
            Feed::IdSeq(x) => Feed::IdSeq(x.reborrow()),
            Feed::Carry => Feed::Carry,
            Feed::Absent => Feed::Absent,
        }
    }
}

/// An argument of a generated method that is not given: a state that starts
/// at zero, an input that only loss nodes read (they are then not
/// computed), or an output gradient that is zero.
///
/// ```text
/// let out = model.forward_seq(&mut tape, &xs, &Absent, &Absent, &Absent)?;  // no state, no target
/// let grads = cell.backward_seq(&mut tape, &dy, &Absent)?;                  // no gradient for new_h
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Absent;

/// Anything that can be viewed as a `(batch, width)` matrix, or
/// [`Absent`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a (batch, width) matrix of `{F}`",
    label = "expected a 2-D array, a 1-D array, a slice, a Vec or `Absent`",
    note = "a one-step input, a state's initial value and a one-step output gradient are (batch, width) matrices; a single sample may be a 1-D array or slice"
)]
pub trait AsBatch<F> {
    /// A `(batch, width)` view of `self`; 1-D values become one row.
    fn as_batch(&self) -> ArrayView2<'_, F>;
    /// Whether the argument is given (`false` only for [`Absent`]).
    fn given(&self) -> bool {
        true
    }
}

// Over every dimension, with the dimension as a bound (see `AsSeq`'s impl).
#[diagnostic::do_not_recommend]
impl<F, S: Data<Elem = F>, D: dims::Batch> AsBatch<F> for ArrayBase<S, D> {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        D::batch(self.view())
    }
}

#[diagnostic::do_not_recommend]
impl<F> AsBatch<F> for [F] {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        ndarray::ArrayView1::from(self).insert_axis(ndarray::Axis(0))
    }
}

#[diagnostic::do_not_recommend]
impl<F> AsBatch<F> for Vec<F> {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        self.as_slice().as_batch()
    }
}

#[diagnostic::do_not_recommend]
impl<F, const N: usize> AsBatch<F> for [F; N] {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        self.as_slice().as_batch()
    }
}

#[diagnostic::do_not_recommend]
impl<F> AsBatch<F> for Absent {
    fn as_batch(&self) -> ArrayView2<'_, F> {
        ArrayView2::from_shape((0, 0), &[]).expect("an empty view")
    }
    fn given(&self) -> bool {
        false
    }
}

/// Anything that can be viewed as one integer id per sample (for
/// `Embedding` inputs and class targets): slices, arrays, `Vec`s and 1-D
/// ndarray arrays or views (copied only if they are not contiguous), or
/// [`Absent`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not one integer id per sample",
    label = "expected a slice, an array, a Vec or a 1-D array of `usize`, or `Absent`",
    note = "an input declared `name: usize` takes one id per sample"
)]
pub trait AsIds {
    /// The ids, one per sample.
    fn as_ids(&self) -> Cow<'_, [usize]>;
    /// Whether the argument is given (`false` only for [`Absent`]).
    fn given(&self) -> bool {
        true
    }
}

#[diagnostic::do_not_recommend]
impl AsIds for [usize] {
    fn as_ids(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(self)
    }
}

#[diagnostic::do_not_recommend]
impl AsIds for Vec<usize> {
    fn as_ids(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(self)
    }
}

#[diagnostic::do_not_recommend]
impl<const N: usize> AsIds for [usize; N] {
    fn as_ids(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(self)
    }
}

#[diagnostic::do_not_recommend]
impl<S: Data<Elem = usize>, D: dims::Ids> AsIds for ArrayBase<S, D> {
    fn as_ids(&self) -> Cow<'_, [usize]> {
        match self.as_slice() {
            Some(ids) => Cow::Borrowed(ids),
            None => Cow::Owned(self.iter().copied().collect()),
        }
    }
}

#[diagnostic::do_not_recommend]
impl AsIds for Absent {
    fn as_ids(&self) -> Cow<'_, [usize]> {
        Cow::Borrowed(&[])
    }
    fn given(&self) -> bool {
        false
    }
}

/// Anything that can be viewed as a `(steps, batch, width)` sequence, or
/// [`Absent`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a (steps, batch, width) sequence of `{F}`",
    label = "expected a 3-D array or `Absent`",
    note = "`forward_seq` takes a (steps, batch, width) array for each input that is not a state, and `backward_seq` one per output gradient"
)]
pub trait AsSeq<F> {
    /// A `(steps, batch, width)` view of `self`.
    fn as_seq(&self) -> ArrayView3<'_, F>;
    /// Whether the argument is given (`false` only for [`Absent`]).
    fn given(&self) -> bool {
        true
    }
}

// Over every dimension, with the dimension as a bound: an array of another
// one then fails that bound, which `do_not_recommend` keeps out of the
// message, instead of matching no impl, for which rustc quotes the nearest
// impl from this file.
#[diagnostic::do_not_recommend]
impl<F, S: Data<Elem = F>, D: dims::Seq> AsSeq<F> for ArrayBase<S, D> {
    fn as_seq(&self) -> ArrayView3<'_, F> {
        D::seq(self.view())
    }
}

#[diagnostic::do_not_recommend]
impl<F> AsSeq<F> for Absent {
    fn as_seq(&self) -> ArrayView3<'_, F> {
        ArrayView3::from_shape((0, 0, 0), &[]).expect("an empty view")
    }
    fn given(&self) -> bool {
        false
    }
}

/// Anything that can be viewed as `(steps, batch)` integer ids, or
/// [`Absent`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not (steps, batch) integer ids",
    label = "expected a 2-D array of `usize` or `Absent`",
    note = "`forward_seq` takes a (steps, batch) array of ids for each input declared `name: usize`"
)]
pub trait AsIdSeq {
    /// A `(steps, batch)` view of `self`.
    fn as_id_seq(&self) -> ArrayView2<'_, usize>;
    /// Whether the argument is given (`false` only for [`Absent`]).
    fn given(&self) -> bool {
        true
    }
}

#[diagnostic::do_not_recommend]
impl<S: Data<Elem = usize>, D: dims::IdSeq> AsIdSeq for ArrayBase<S, D> {
    fn as_id_seq(&self) -> ArrayView2<'_, usize> {
        D::id_seq(self.view())
    }
}

#[diagnostic::do_not_recommend]
impl AsIdSeq for Absent {
    fn as_id_seq(&self) -> ArrayView2<'_, usize> {
        ArrayView2::from_shape((0, 0), &[]).expect("an empty view")
    }
    fn given(&self) -> bool {
        false
    }
}

/// The feeds generated methods build from their arguments.
#[doc(hidden)]
pub mod to_feed {
    use super::*;

    /// A value argument of one step, or a state's initial value.
    #[inline]
    pub fn values<F, T: AsBatch<F> + ?Sized>(x: &T) -> Feed<'_, F> {
        if x.given() {
            Feed::Values(x.as_batch())
        } else {
            Feed::Absent
        }
    }

    /// An ids argument of one step; `ids` is `x.as_ids()`, kept by the
    /// caller for as long as the feed.
    #[inline]
    pub fn ids<'a, F, T: AsIds + ?Sized>(x: &T, ids: &'a [usize]) -> Feed<'a, F> {
        if x.given() {
            Feed::Ids(ids)
        } else {
            Feed::Absent
        }
    }

    /// A sequence argument.
    #[inline]
    pub fn seq<F, T: AsSeq<F> + ?Sized>(x: &T) -> Feed<'_, F> {
        if x.given() {
            Feed::Seq(x.as_seq())
        } else {
            Feed::Absent
        }
    }

    /// An ids sequence argument.
    #[inline]
    pub fn id_seq<F, T: AsIdSeq + ?Sized>(x: &T) -> Feed<'_, F> {
        if x.given() {
            Feed::IdSeq(x.as_id_seq())
        } else {
            Feed::Absent
        }
    }
}

/// The dimensions each argument trait accepts, as bounds (see [`AsSeq`]'s
/// impl for why).
mod dims {
    use ndarray::{ArrayView, ArrayView2, ArrayView3, Axis, Dimension, Ix1, Ix2, Ix3};

    /// A `(steps, batch, width)` sequence: 3-D.
    pub trait Seq: Dimension {
        fn seq<F>(view: ArrayView<'_, F, Self>) -> ArrayView3<'_, F>;
    }

    impl Seq for Ix3 {
        fn seq<F>(view: ArrayView<'_, F, Self>) -> ArrayView3<'_, F> {
            view
        }
    }

    /// A `(batch, width)` matrix, or one sample as a row: 2-D or 1-D.
    pub trait Batch: Dimension {
        fn batch<F>(view: ArrayView<'_, F, Self>) -> ArrayView2<'_, F>;
    }

    impl Batch for Ix2 {
        fn batch<F>(view: ArrayView<'_, F, Self>) -> ArrayView2<'_, F> {
            view
        }
    }

    impl Batch for Ix1 {
        fn batch<F>(view: ArrayView<'_, F, Self>) -> ArrayView2<'_, F> {
            view.insert_axis(Axis(0))
        }
    }

    /// One id per sample: 1-D.
    pub trait Ids: Dimension {}

    impl Ids for Ix1 {}

    /// `(steps, batch)` ids: 2-D.
    pub trait IdSeq: Dimension {
        fn id_seq(view: ArrayView<'_, usize, Self>) -> ArrayView2<'_, usize>;
    }

    impl IdSeq for Ix2 {
        fn id_seq(view: ArrayView<'_, usize, Self>) -> ArrayView2<'_, usize> {
            view
        }
    }
}
