//! Static dispatch to each element type's kernels: the sealed [`Kernels`]
//! trait that [`Float`](crate::Float) carries (products with the type's own
//! micro-kernel and packing buffer, and its activations), and the switch
//! to the portable micro-kernels used to test them on any CPU.

use super::gemm::{blocked, rows_times_packed, rows_times_wt, Kernel, Part};
use super::packed::{pack_columns, pack_transposed, with_packed, Entry};
use super::split::Columns;
use super::split::{by_cols, by_rows};
use super::{activations, Operand};
use std::cell::RefCell;

/// The kernels of one element type (its matrix products, with its own
/// micro-kernel and packing buffer, and its activations): what [`Float`]
/// carries, so that they dispatch statically. Sealed: implemented for `f32`
/// and `f64` only.
#[doc(hidden)]
pub trait Kernels: Copy + sealed::Sealed {
    /// `x = e^x` for each element.
    fn exp_in_place(x: &mut [Self]);
    /// `x = tanh(x)` for each element.
    fn tanh_in_place(x: &mut [Self]);
    /// `x = 1 / (1 + e^{-x})` for each element.
    fn sigmoid_in_place(x: &mut [Self]);
    /// `c = a · bᵀ [+ bias]`; see [`matmul_a_bt`].
    fn rows_times_packed(
        m: usize,
        k: usize,
        a: &[Self],
        b: &[Self],
        bias: Option<&[Self]>,
        c: Columns<'_, Self>,
    );
    /// `c = a · bᵀ` with `bᵀ` packed once per pass (`packed.rs`), split by
    /// columns across the pool; `false` (nothing done) where no packed copy
    /// is kept (outside a pass, or at `b`'s first use in it).
    #[allow(clippy::too_many_arguments)]
    fn times_packed_weights(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        b: &[Self],
        bias: Option<&[Self]>,
        c: &mut [Self],
    ) -> bool;
    /// `c += a · b` with `b` (`k x n`) packed by columns once per pass
    /// (`packed.rs`), split by rows across the pool; `false` (nothing done)
    /// where no packed copy is kept.
    fn times_packed_weights_acc(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self])
        -> bool;
    /// `c = a · bᵀ` with many rows: `bᵀ` packed for this call (a small
    /// cost beside the product), `a` read in place, split by rows.
    #[allow(clippy::too_many_arguments)]
    fn many_rows_times_bt(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        b: &[Self],
        bias: Option<&[Self]>,
        c: &mut [Self],
    );
    /// `f` on this thread's scratch buffer of `len` values (kept between
    /// calls: allocation-free once warmed up), for partial results. Column
    /// sums keep theirs in it within a pass (`add_column_sums`).
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
    /// [`with_scratch`](Kernels::with_scratch) on another buffer, for the
    /// distinct rows of a layer's input and their products
    /// (`distinct.rs`), which must not overwrite kept column sums.
    fn with_rows_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
    /// `c = [c +] a · b` on strided operands, for each part `(b, c)` of
    /// products sharing `a` (`m x k`).
    fn gemm(m: usize, k: usize, a: Operand<'_, Self>, parts: &mut [Part<'_, Self>], accumulate: bool);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

thread_local! {
    static PACK_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PACK_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    static WEIGHTS_F32: RefCell<Vec<Entry<f32>>> = const { RefCell::new(Vec::new()) };
    static WEIGHTS_F64: RefCell<Vec<Entry<f64>>> = const { RefCell::new(Vec::new()) };
    /// Weights packed by columns for `dy · w` (see `times_packed_weights_acc`).
    static COLUMNS_F32: RefCell<Vec<Entry<f32>>> = const { RefCell::new(Vec::new()) };
    static COLUMNS_F64: RefCell<Vec<Entry<f64>>> = const { RefCell::new(Vec::new()) };
    /// Partial column sums (see `add_column_sums`).
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    /// Distinct rows and their products (see `with_rows_scratch`).
    static ROWS_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static ROWS_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    /// `bᵀ` packed for one product with many rows (see `many_rows_times_bt`).
    static BT_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static BT_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    /// The widest kernels this thread may use (see [`with_level`]).
    static LEVEL: std::cell::Cell<Level> = const { std::cell::Cell::new(Level::Best) };
}

/// The widest kernels a thread may use: what the CPU has, at most this.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Portable Rust, on any CPU.
    Portable,
    /// AVX2 and FMA, where the CPU has them.
    Avx2,
    /// The best the CPU has (AVX-512 where it is there).
    Best,
}

/// The widest kernels this thread may use.
pub(super) fn level() -> Level {
    LEVEL.get()
}

/// Runs `f` with kernels no wider than `level` on this thread (and on the
/// threads its products are split across): how the narrower paths are
/// tested, and measured, on machines with wider ones.
#[doc(hidden)]
pub fn with_level<R>(level: Level, f: impl FnOnce() -> R) -> R {
    let before = LEVEL.replace(level);
    let result = f();
    LEVEL.set(before);
    result
}

/// Runs `f` with the portable micro-kernels on this thread, whatever the
/// CPU has.
#[doc(hidden)]
pub fn with_portable_kernels<R>(f: impl FnOnce() -> R) -> R {
    with_level(Level::Portable, f)
}

/// f32 has vectorised activations; f64 keeps libm's, to full accuracy.
macro_rules! activations_for {
    (f32, exp, $x:ident) => {
        activations::exp_in_place($x)
    };
    (f64, exp, $x:ident) => {
        $x.iter_mut().for_each(|v| *v = v.exp())
    };
    (f32, tanh, $x:ident) => {
        activations::tanh_in_place($x)
    };
    (f32, sigmoid, $x:ident) => {
        activations::sigmoid_in_place($x)
    };
    (f64, tanh, $x:ident) => {
        $x.iter_mut().for_each(|v| *v = v.tanh())
    };
    (f64, sigmoid, $x:ident) => {
        $x.iter_mut().for_each(|v| *v = crate::layers::sigmoid(*v))
    };
}

/// `f` on the first `len` values of `buffer`, grown if shorter.
fn scratch<T: Copy + Default, R>(
    buffer: &'static std::thread::LocalKey<RefCell<Vec<T>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    buffer.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < len {
            buf.resize(len, T::default());
        }
        f(&mut buf[..len])
    })
}

macro_rules! gemm_for {
    ($t:ident, $pack:ident, $weights:ident, $columns:ident, $bt:ident, $scratch:ident, $rows:ident) => {
        impl Kernels for $t {
            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [$t]) -> R) -> R {
                scratch(&$scratch, len, f)
            }

            fn with_rows_scratch<R>(len: usize, f: impl FnOnce(&mut [$t]) -> R) -> R {
                scratch(&$rows, len, f)
            }

            fn exp_in_place(x: &mut [$t]) {
                activations_for!($t, exp, x)
            }

            fn tanh_in_place(x: &mut [$t]) {
                activations_for!($t, tanh, x)
            }

            fn sigmoid_in_place(x: &mut [$t]) {
                activations_for!($t, sigmoid, x)
            }

            fn times_packed_weights(
                m: usize,
                k: usize,
                n: usize,
                a: &[$t],
                b: &[$t],
                bias: Option<&[$t]>,
                c: &mut [$t],
            ) -> bool {
                let nr = <$t as Kernel>::nr();
                $weights
                    .with(|cache| {
                        with_packed(cache, pack_transposed, b, n, k, nr, |wt| {
                            by_cols(m, n, m * k * n, nr, c, |c| {
                                rows_times_wt::<$t>(m, k, a, wt, bias, c)
                            })
                        })
                    })
                    .is_some()
            }

            fn times_packed_weights_acc(
                m: usize,
                k: usize,
                n: usize,
                a: &[$t],
                b: &[$t],
                c: &mut [$t],
            ) -> bool {
                let nr = <$t as Kernel>::nr();
                $columns
                    .with(|cache| {
                        with_packed(cache, pack_columns, b, k, n, nr, |panels| {
                            by_rows(m, n, m * k * n, <$t as Kernel>::MR, c, |r0, r1, c| {
                                let a = Operand::row_major(&a[r0 * k..], k);
                                let b = Operand::row_major(b, n);
                                $pack.with(|buf| {
                                    let part = Part {
                                        n,
                                        b,
                                        packed_b: Some(panels),
                                        c,
                                    };
                                    blocked::<$t>(r1 - r0, k, a, &mut [part], true, &mut buf.borrow_mut())
                                })
                            })
                        })
                    })
                    .is_some()
            }

            fn many_rows_times_bt(
                m: usize,
                k: usize,
                n: usize,
                a: &[$t],
                b: &[$t],
                bias: Option<&[$t]>,
                c: &mut [$t],
            ) {
                $bt.with(|bt| {
                    let mut bt = bt.borrow_mut();
                    pack_transposed(b, n, k, <$t as Kernel>::nr(), &mut bt);
                    let bt = &bt[..];
                    by_rows(m, n, m * k * n, <$t as Kernel>::MR, c, |r0, r1, c| {
                        let c = Columns::all(c, r1 - r0, n);
                        rows_times_wt::<$t>(r1 - r0, k, &a[r0 * k..r1 * k], bt, bias, c)
                    })
                })
            }

            fn rows_times_packed(
                m: usize,
                k: usize,
                a: &[$t],
                b: &[$t],
                bias: Option<&[$t]>,
                c: Columns<'_, $t>,
            ) {
                $pack.with(|buf| rows_times_packed::<$t>(m, k, a, b, bias, c, &mut buf.borrow_mut()));
            }

            fn gemm(m: usize, k: usize, a: Operand<'_, $t>, parts: &mut [Part<'_, $t>], accumulate: bool) {
                $pack.with(|buf| blocked::<$t>(m, k, a, parts, accumulate, &mut buf.borrow_mut()));
            }
        }
    };
}
gemm_for!(
    f32,
    PACK_F32,
    WEIGHTS_F32,
    COLUMNS_F32,
    BT_F32,
    SCRATCH_F32,
    ROWS_F32
);
gemm_for!(
    f64,
    PACK_F64,
    WEIGHTS_F64,
    COLUMNS_F64,
    BT_F64,
    SCRATCH_F64,
    ROWS_F64
);
