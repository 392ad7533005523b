//! Splitting a product across threads: runs of whole tiles of the output's
//! rows (or, for `x · wᵀ` with few rows, of its columns), one per thread of
//! the pool, so that every output element is computed by the same
//! operations in the same order whatever the thread count (results are
//! bit-identical).

use super::pool;
use crate::Float;
use std::marker::PhantomData;
use std::ops::Range;

/// Products of at least this many multiply-adds (about 3 µs on one core)
/// are split across threads. A worker watching for jobs (see `pool.rs`)
/// takes one in well under a microsecond: measured on a 2-core Zen 4, a
/// 32 x 64 x 128 product (0.26M multiply-adds) ran 1.6x faster on two
/// threads, a step of the char model's LSTM (50 x 128 x 512) 1.9x.
pub(crate) const PARALLEL_WORK: usize = 1 << 17;

/// Rows per unit of a split, for products tiled by `MR` rows of the output
/// and for `x · wᵀ`, which is tiled by 32 or 16 (f32) or 8 (f64) of its
/// rows: a split falls on tile boundaries, so that every output element is
/// computed exactly as by one thread.
pub(super) const ROW_TILES: usize = 6;
pub(super) const TRANSPOSED_TILES: usize = 32;

/// A pointer handed to the threads of one product, each of which writes
/// its own run of rows.
struct Rows<T>(*mut T);
// SAFETY: the threads of a product write disjoint runs of rows (see `by_rows`).
unsafe impl<T: Send> Sync for Rows<T> {}

impl<T> Rows<T> {
    /// The element `offset` past the start. (A method, so that closures
    /// capture the `Rows`, not the raw pointer inside.)
    fn at(&self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// Runs `product(r0, r1, rows of c)` for runs of the `m` rows of `c`
/// (`m x n`), split on multiples of `align` rows across [`pool::threads`]
/// when `work` is large.
pub(super) fn by_rows<F: Float>(
    m: usize,
    n: usize,
    work: usize,
    align: usize,
    c: &mut [F],
    product: impl Fn(usize, usize, &mut [F]) + Sync,
) {
    let parts = if work >= PARALLEL_WORK {
        pool::threads().min(m.div_ceil(align)).max(1)
    } else {
        1
    };
    if parts == 1 {
        product(0, m, c);
        return;
    }
    let rows = Rows(c.as_mut_ptr());
    pool::run_rows(parts, m, align, &|_, run| {
        // SAFETY: the runs of the parts are disjoint and within `c`
        // (`run_rows` splits `0..m`).
        let c = unsafe { std::slice::from_raw_parts_mut(rows.at(run.start * n), run.len() * n) };
        product(run.start, run.end, c);
    });
}

/// A buffer whose disjoint runs the threads of one job write, each its own.
pub(super) struct Disjoint<T>(*mut T, usize);
// SAFETY: the threads of a job write disjoint runs (see `slice`).
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    pub(super) fn new(buffer: &mut [T]) -> Self {
        Disjoint(buffer.as_mut_ptr(), buffer.len())
    }

    /// The `len` values from `start`, writable.
    ///
    /// # Safety
    /// No other thread uses these values while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.1, "a run of the buffer");
        // SAFETY: within the buffer (checked above), as the caller guarantees.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Columns `cols` of a row-major matrix with `n` columns: what one thread
/// of a product split by columns writes, while others write other columns.
#[doc(hidden)]
pub struct Columns<'a, T> {
    ptr: *mut T,
    rows: usize,
    n: usize,
    cols: Range<usize>,
    _matrix: PhantomData<&'a mut [T]>,
}

impl<'a, T> Columns<'a, T> {
    /// All the columns of `c`, `(rows, n)`.
    pub(super) fn all(c: &'a mut [T], rows: usize, n: usize) -> Self {
        assert_eq!(c.len(), rows * n, "a matrix of the product's shape");
        Columns {
            ptr: c.as_mut_ptr(),
            rows,
            n,
            cols: 0..n,
            _matrix: PhantomData,
        }
    }

    /// The columns this part writes.
    pub(super) fn cols(&self) -> Range<usize> {
        self.cols.clone()
    }

    /// Row `r`'s run of the columns, writable.
    pub(super) fn row(&mut self, r: usize) -> &mut [T] {
        assert!(r < self.rows, "row {r} of {}", self.rows);
        // SAFETY: within the matrix (r < rows, cols within 0..n); no other
        // part writes these columns (`by_cols` hands out disjoint runs), and
        // `&mut self` keeps this part from handing out two rows at once.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.n + self.cols.start), self.cols.len()) }
    }
}

/// A matrix whose disjoint runs of columns the threads of a product write.
struct Shared<T>(*mut T);
// SAFETY: the parts of a product write disjoint runs of columns (`by_cols`).
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    fn ptr(&self) -> *mut T {
        self.0
    }
}

/// Runs `product(columns)` for runs of the `n` columns of `c` (`m x n`),
/// split on multiples of `align` columns across [`pool::threads`] when
/// `work` is large: for products with few rows, where a split by rows
/// would leave the parts unequal.
pub(super) fn by_cols<F: Float>(
    m: usize,
    n: usize,
    work: usize,
    align: usize,
    c: &mut [F],
    product: impl Fn(Columns<'_, F>) + Sync,
) {
    let parts = if work >= PARALLEL_WORK {
        pool::threads().min(n.div_ceil(align)).max(1)
    } else {
        1
    };
    if parts == 1 {
        product(Columns::all(c, m, n));
        return;
    }
    assert_eq!(c.len(), m * n, "a matrix of the product's shape");
    let shared = Shared(c.as_mut_ptr());
    let part = |p: usize| {
        let cols = pool::split(n, parts, align, p)..pool::split(n, parts, align, p + 1);
        product(Columns {
            ptr: shared.ptr(),
            rows: m,
            n,
            cols,
            _matrix: PhantomData,
        });
    };
    pool::run(parts, &part);
}
