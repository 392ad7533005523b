//! Dense matrix products that never allocate once warmed up.
//!
//! ndarray's `dot` (matrixmultiply) allocates a packing buffer on every call,
//! which would break the promise that a warmed-up training step allocates
//! nothing. This is a BLIS-style GEMM instead: blocks of `A` and of `B`,
//! unless they can be read in place, are packed into a per-thread buffer
//! (grown on first use, then reused) and multiplied by a register-blocked
//! micro-kernel: 6 x 32 (f32) with AVX-512, 6 x 16 (f32) or 6 x 8 (f64)
//! with AVX2 and FMA, when the CPU has them (detected at run time), a
//! portable one otherwise.
//!
//! The three products a linear layer needs are thin wrappers that describe
//! their operands by strides. Here: the products (and the unblocked path
//! for tiny ones); `split.rs`: splitting a product across threads;
//! `pool.rs`: the threads; `gemm.rs`: the blocked driver and packing;
//! `packed.rs`: weights packed once per engine pass for a sequence's steps;
//! `grouped.rs`: weight gradients sharing their `dY` run as one product;
//! `distinct.rs`: the distinct rows of a matrix whose rows repeat;
//! `dispatch.rs`: the `Kernels` trait `Float` carries; `micro.rs`: each
//! type's micro-kernel (SIMD or portable); `simd.rs`: the AVX2 + FMA and
//! AVX-512 kernels; `activations.rs`: vectorised f32 `exp`, `tanh`, logistic;
//! `tests.rs`.

use crate::Float;
use gemm::Part;
use split::{by_cols, by_rows, ROW_TILES, TRANSPOSED_TILES};
use std::ops::Range;

pub use dispatch::{with_level, with_portable_kernels, Kernels, Level};

/// A read-only matrix operand: element `(i, j)` is at `i * rs + j * cs`.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Operand<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

impl<'a, T> Operand<'a, T> {
    /// A row-major matrix of rows `cols` long, from `data`'s start.
    fn row_major(data: &'a [T], cols: usize) -> Self {
        Operand {
            data,
            rs: cols,
            cs: 1,
        }
    }
}

/// `c = a · bᵀ` where `a` is `(m, k)`, `b` is `(n, k)` and `c` is `(m, n)`,
/// all row-major and contiguous. Overwrites `c`.
pub fn matmul_a_bt<F: Float>(a: &[F], b: &[F], c: &mut [F], m: usize, k: usize, n: usize) {
    a_bt(a, b, None, c, m, k, n, false)
}

/// [`matmul_a_bt`] for `x · wᵀ` where `w` is a parameter of the graph the
/// current engine pass runs, which cannot change during the pass: with few
/// rows, `wᵀ` may be taken packed once for the pass (`packed.rs`). Only
/// for parameters: another matrix at a reused address could change
/// between two products of one pass. With `bias` (`n` values), `c = x · wᵀ
/// + bias`, the bias added to each tile as it is stored (the same sums as
/// adding it afterwards, without another pass over `c`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_x_wt<F: Float>(
    x: &[F],
    w: &[F],
    bias: Option<&[F]>,
    c: &mut [F],
    m: usize,
    k: usize,
    n: usize,
) {
    a_bt(x, w, bias, c, m, k, n, true)
}

#[allow(clippy::too_many_arguments)]
fn a_bt<F: Float>(
    a: &[F],
    b: &[F],
    bias: Option<&[F]>,
    c: &mut [F],
    m: usize,
    k: usize,
    n: usize,
    b_is_a_parameter: bool,
) {
    assert_eq!(
        (a.len(), b.len(), c.len()),
        (m * k, n * k, m * n),
        "matmul_a_bt: operand sizes"
    );
    assert!(bias.is_none_or(|b| b.len() == n), "matmul_a_bt: bias size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(F::zero());
        add_bias(c, n, bias);
        return;
    }
    if m * k * n <= SMALL_WORK {
        let a = Operand::row_major(a, k);
        // bᵀ(p, j) = b[j * k + p].
        let bt = Operand {
            data: b,
            rs: 1,
            cs: k,
        };
        small(m, n, k, a, bt, c, false, usize::MAX);
        add_bias(c, n, bias);
        return;
    }
    // Many rows (a batch over all steps): `bᵀ` is packed once for the call
    // and each thread computes its own rows, reading `a` in place. Few (one
    // step's batch): each computes a run of the columns, the rows of `b` it
    // reads, which divides the work evenly.
    let work = m * k * n;
    if m >= TRANSPOSED_TILES * 4 * pool::threads() {
        F::many_rows_times_bt(m, k, n, a, b, bias, c);
    } else if !(b_is_a_parameter && F::times_packed_weights(m, k, n, a, b, bias, c)) {
        by_cols(m, n, work, ROW_TILES, c, |c| {
            F::rows_times_packed(m, k, a, b, bias, c)
        });
    }
}

/// `sums[j] += Σ_r a[r * n + j]` for `a` `(m, n)` (a bias's gradient). A
/// small `a` is summed in row order. A large one (a sequence's `T·B` rows)
/// in [`SUM_RUNS`] runs of rows, each summed from zero in row order by one
/// of the pool's threads, the runs' sums then added in order: how the sums
/// associate depends on the shape alone, so the bits do not depend on the
/// thread count. Each thread streams whole rows: split by columns, each
/// read every other kilobyte of the rows, and two threads took longer than
/// one (W4's gates' gradient, 2500 x 512: 0.93 ms on two threads by
/// columns, 0.39 ms by runs of rows).
///
/// Within an engine pass, the sums of a large `a` are kept until the next
/// large call on this thread: the two projections of an LSTM cell (input
/// and recurrent) have one gradient, and the second bias gradient takes the
/// first one's sums. A gradient is complete before any layer reads it, so
/// it does not change within the pass (debug builds check the kept sums).
pub(crate) fn add_column_sums<F: Float>(a: &[F], m: usize, n: usize, sums: &mut [F]) {
    assert_eq!((a.len(), sums.len()), (m * n, n), "add_column_sums: sizes");
    if n == 0 {
        return;
    }
    if m * n < split::PARALLEL_WORK {
        add_rows(a, n, sums);
        return;
    }
    let pass = packed::PassScope::current();
    let key = (a.as_ptr() as usize, m, n, std::mem::size_of::<F>(), pass);
    F::with_scratch((SUM_RUNS + 1) * n, |scratch| {
        let (partial, total) = scratch.split_at_mut(SUM_RUNS * n);
        let kept = pass != 0 && SUMMED.get() == Some(key);
        if !kept || cfg!(debug_assertions) {
            let parts = pool::threads().min(SUM_RUNS);
            let runs = split::Disjoint::new(partial);
            pool::run(parts, &|p| {
                for run in (p..SUM_RUNS).step_by(parts) {
                    let (r0, r1) = (m * run / SUM_RUNS, m * (run + 1) / SUM_RUNS);
                    // SAFETY: each run's `n` values are written by the one part
                    // that takes the run.
                    let out = unsafe { runs.slice(run * n, n) };
                    out.fill(F::zero());
                    add_rows(&a[r0 * n..r1 * n], n, out);
                }
            });
            // The runs' sums added in order, into the first.
            let (first, rest) = partial.split_at_mut(n);
            for run in rest.chunks_exact(n) {
                first.iter_mut().zip(run).for_each(|(s, &v)| *s += v);
            }
            if kept {
                let same = |x: F, y: F| x == y || (x.is_nan() && y.is_nan());
                debug_assert!(
                    first.iter().zip(total.iter()).all(|(&x, &y)| same(x, y)),
                    "add_column_sums: a matrix changed after its sums were kept in this pass"
                );
            } else {
                total.copy_from_slice(first);
            }
        }
        SUMMED.set((pass != 0).then_some(key));
        sums.iter_mut().zip(total.iter()).for_each(|(s, &v)| *s += v);
    });
}

thread_local! {
    /// Which matrix's column sums this thread's scratch buffer keeps (see
    /// [`add_column_sums`]): its address, shape, element size and pass.
    static SUMMED: std::cell::Cell<Option<SummedKey>> = const { std::cell::Cell::new(None) };
}

/// A matrix whose column sums are kept: address, rows, columns, element
/// size, pass.
type SummedKey = (usize, usize, usize, usize, u64);

/// Runs of rows a large column sum is split into, whatever the thread count.
const SUM_RUNS: usize = 4;

/// `sums[j] += a[r * n + j]` for each row `r` in order, with the widest
/// vectors the CPU has (the same additions in the same order on any).
fn add_rows<F: Float>(a: &[F], n: usize, sums: &mut [F]) {
    #[inline(always)]
    fn body<F: Float>(a: &[F], n: usize, sums: &mut [F]) {
        for row in a.chunks_exact(n) {
            sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn wide<F: Float>(a: &[F], n: usize, sums: &mut [F]) {
            body(a, n, sums)
        }
        #[target_feature(enable = "avx2")]
        fn narrow<F: Float>(a: &[F], n: usize, sums: &mut [F]) {
            body(a, n, sums)
        }
        if simd::wide() {
            // SAFETY: the CPU has AVX-512 F.
            return unsafe { wide(a, n, sums) };
        }
        if simd::available() {
            // SAFETY: the CPU has AVX2.
            return unsafe { narrow(a, n, sums) };
        }
    }
    body(a, n, sums)
}

/// Runs `f(r0, r1, rows r0..r1 of c)` over runs of the `m` rows of `c`
/// (`m x n`, row-major), split across the pool when `cost` (about the
/// operations of all the rows, as multiply-adds) is large: for work whose
/// rows are independent, so that results do not depend on the split.
pub(crate) fn for_row_runs<F: Float>(
    m: usize,
    n: usize,
    cost: usize,
    c: &mut [F],
    f: impl Fn(usize, usize, &mut [F]) + Sync,
) {
    assert_eq!(c.len(), m * n, "for_row_runs: a matrix of {m} x {n}");
    by_rows(m, n, cost, 1, c, f);
}

/// Runs `f(run, parts)` over runs of `0..len`, `parts` being those runs of
/// the `S` buffers `bufs` (each `len` long), split across the pool when
/// `len · cost` (`cost` about the operations per element) is large: for
/// element-wise work, each element's result depending on that element's
/// values only, so that results do not depend on the split.
pub(crate) fn for_each_run<F: Float, const S: usize>(
    len: usize,
    cost: usize,
    bufs: [&mut [F]; S],
    f: impl Fn(Range<usize>, [&mut [F]; S]) + Sync,
) {
    assert!(
        bufs.iter().all(|b| b.len() == len),
        "for_each_run: buffers of {len} values"
    );
    let parts = if len.saturating_mul(cost) >= split::PARALLEL_WORK {
        pool::threads().min(len).max(1)
    } else {
        1
    };
    if parts == 1 {
        return f(0..len, bufs);
    }
    let runs = bufs.map(split::Disjoint::new);
    // Runs start on cache lines, so that no line is written by two threads.
    let line = (64 / std::mem::size_of::<F>()).max(1);
    pool::run_rows(parts, len, line, &|_, run| {
        // SAFETY: `run_rows` gives each part a run of its own.
        let parts = std::array::from_fn(|i| unsafe { runs[i].slice(run.start, run.len()) });
        f(run, parts)
    });
}

/// `c += bias` on each row (`n` wide).
fn add_bias<F: Float>(c: &mut [F], n: usize, bias: Option<&[F]>) {
    if let Some(bias) = bias {
        for row in c.chunks_exact_mut(n) {
            row.iter_mut().zip(bias).for_each(|(y, &b)| *y += b);
        }
    }
}

/// Products of at most this many multiply-adds skip packing and tiling:
/// for a few hundred values the blocked path's setup costs more than the
/// arithmetic (it took a third of an iteration of the seed's 4-unit cell).
const SMALL_WORK: usize = 2048;

/// `c = [c +] a · b`, element by element, for products of at most
/// [`SMALL_WORK`] multiply-adds, each element computed as the micro-kernels
/// compute it: a chain of multiply-adds from zero over each block of
/// `block` steps (`x · wᵀ` takes all `k` in one, the blocked GEMM
/// [`gemm::KC`]), added to `c` after the first block or when accumulating;
/// fused multiply-adds where the kernels have them (AVX2 and FMA), a
/// product then a sum where they do not. So a product gives the same bits
/// whether it is small or not, and a loop split across threads by samples
/// (fewer rows per product) gives the bits of one thread.
#[allow(clippy::too_many_arguments)]
fn small<F: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: Operand<'_, F>,
    b: Operand<'_, F>,
    c: &mut [F],
    accumulate: bool,
    block: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if simd::available() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { small_fused(m, n, k, a, b, c, accumulate, block) };
        return;
    }
    small_body::<F, false>(m, n, k, a, b, c, accumulate, block);
}

/// [`small`] compiled for AVX2 and FMA, `mul_add` one instruction.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn small_fused<F: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: Operand<'_, F>,
    b: Operand<'_, F>,
    c: &mut [F],
    accumulate: bool,
    block: usize,
) {
    small_body::<F, true>(m, n, k, a, b, c, accumulate, block);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn small_body<F: Float, const FUSED: bool>(
    m: usize,
    n: usize,
    k: usize,
    a: Operand<'_, F>,
    b: Operand<'_, F>,
    c: &mut [F],
    accumulate: bool,
    block: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let out = &mut c[i * n + j];
            for (q, p0) in (0..k).step_by(block).enumerate() {
                let mut acc = F::zero();
                for p in p0..(p0 + block).min(k) {
                    let (x, y) = (a.data[i * a.rs + p * a.cs], b.data[p * b.rs + j * b.cs]);
                    acc = if FUSED { x.mul_add(y, acc) } else { acc + x * y };
                }
                *out = if accumulate || q > 0 { *out + acc } else { acc };
            }
        }
    }
}

/// `c += a · b` where `a` is `(m, k)`, `b` is `(k, n)` and `c` is `(m, n)`.
pub fn matmul_a_b_acc<F: Float>(a: &[F], b: &[F], c: &mut [F], m: usize, k: usize, n: usize) {
    debug_assert_eq!((a.len(), b.len(), c.len()), (m * k, k * n, m * n));
    by_rows(m, n, m * k * n, ROW_TILES, c, |r0, r1, c| {
        let a = Operand::row_major(&a[r0 * k..], k);
        let b = Operand::row_major(b, n);
        gemm(r1 - r0, n, k, a, b, c, true)
    });
}

/// [`matmul_a_b_acc`] for `dy · w` where `w` is a parameter of the graph
/// the current engine pass runs (see [`matmul_x_wt`]): from its second use
/// in the pass, `w` is taken packed once for the pass (`packed.rs`).
pub(crate) fn matmul_dy_w<F: Float>(dy: &[F], w: &[F], dx: &mut [F], m: usize, k: usize, n: usize) {
    debug_assert_eq!((dy.len(), w.len(), dx.len()), (m * k, k * n, m * n));
    let packed = m * k * n > SMALL_WORK && F::times_packed_weights_acc(m, k, n, dy, w, dx);
    if !packed {
        matmul_a_b_acc(dy, w, dx, m, k, n);
    }
}

/// `c += aᵀ · b` where `a` is `(k, m)`, `b` is `(k, n)` and `c` is `(m, n)`.
pub fn matmul_at_b_acc<F: Float>(a: &[F], b: &[F], c: &mut [F], k: usize, m: usize, n: usize) {
    debug_assert_eq!((a.len(), b.len(), c.len()), (k * m, k * n, m * n));
    by_rows(m, n, m * k * n, ROW_TILES, c, |r0, r1, c| {
        // Rows r0.. of aᵀ are columns r0.. of a.
        let a = Operand {
            data: &a[r0..],
            rs: 1,
            cs: m,
        };
        let b = Operand::row_major(b, n);
        gemm(r1 - r0, n, k, a, b, c, true)
    });
}

/// `c (m x n, row-major) = [c +] a · b`.
fn gemm<F: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: Operand<'_, F>,
    b: Operand<'_, F>,
    c: &mut [F],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(F::zero());
        }
        return;
    }
    if m * n * k <= SMALL_WORK {
        small(m, n, k, a, b, c, accumulate, gemm::KC);
        return;
    }
    let part = Part {
        n,
        b,
        packed_b: None,
        c,
    };
    F::gemm(m, k, a, &mut [part], accumulate);
}

/// The widest vectors element-wise loops may be compiled for here: what
/// the CPU has, unless this thread asked for narrower kernels
/// (`dispatch::with_level`, which the tests use to run every path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Vectors {
    Portable,
    Avx2,
    Avx512,
}

/// See [`Vectors`].
pub(crate) fn vectors() -> Vectors {
    #[cfg(target_arch = "x86_64")]
    {
        // The AVX-512 build also enables AVX2 and FMA: ask for both.
        if simd::available() {
            return if simd::wide() {
                Vectors::Avx512
            } else {
                Vectors::Avx2
            };
        }
    }
    Vectors::Portable
}

/// Defines `unsafe fn $name`, which calls `$body` (an `#[inline(always)]`
/// function of the same arguments) compiled for the widest vectors the CPU
/// has ([`vectors`]), so that its element-wise loops vectorise: the default
/// target, x86-64's baseline, has 4-lane SSE2. For loops of `+`, `-`, `*`,
/// `/` and copies only: LLVM forms no fused multiply-add from `a * b + c`
/// in Rust, so every width computes the same bits.
macro_rules! vectorised {
    ($(#[$attr:meta])* $vis:vis unsafe fn $name:ident<$g:ident: $bound:path>($($arg:ident: $ty:ty),* $(,)?) => $body:path) => {
        $(#[$attr])*
        $vis unsafe fn $name<$g: $bound>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512<$g: $bound>($($arg: $ty),*) {
                // SAFETY: as the caller's contract.
                unsafe { $body($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<$g: $bound>($($arg: $ty),*) {
                // SAFETY: as the caller's contract.
                unsafe { $body($($arg),*) }
            }
            match $crate::kernels::vectors() {
                // SAFETY: the CPU has these features; the rest as the
                // caller's contract.
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::Vectors::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::kernels::Vectors::Avx2 => unsafe { avx2($($arg),*) },
                // SAFETY: as the caller's contract.
                _ => unsafe { $body($($arg),*) },
            }
        }
    };
}
pub(crate) use vectorised;

pub mod activations;
mod dispatch;
pub(crate) mod distinct;
mod gemm;
pub(crate) mod grouped;
mod micro;
pub(crate) mod packed;
pub mod pool;
#[cfg(target_arch = "x86_64")]
mod simd;
mod split;

#[cfg(test)]
mod tests;
