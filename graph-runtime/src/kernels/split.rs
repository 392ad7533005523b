//! Splitting a product across threads: runs of whole tiles of the output's
//! rows, one per thread of the pool, so that every output element is
//! computed by the same operations in the same order whatever the thread
//! count (results are bit-identical).

use super::pool;
use crate::Float;

/// Products of at least this many multiply-adds (about 130 µs on one core)
/// are split across threads; waking a worker costs about what half of a
/// smaller one saves (measured on the char model: 2M multiply-adds per
/// step ran slower on two threads).
pub(super) const PARALLEL_WORK: usize = 1 << 23;

/// Rows per unit of a split, for products tiled by `MR` rows of the output
/// and for `x · wᵀ`, which is tiled by 16 (f32) or 8 (f64) of its rows: a
/// split falls on tile boundaries, so that every output element is computed
/// exactly as by one thread.
pub(super) const ROW_TILES: usize = 6;
pub(super) const TRANSPOSED_TILES: usize = 16;

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
    let part = |p: usize| {
        let (r0, r1) = (
            pool::split(m, parts, align, p),
            pool::split(m, parts, align, p + 1),
        );
        // SAFETY: the runs r0..r1 of the parts are disjoint and within `c`
        // (`split` is increasing in `p`, from 0 to `m`).
        let c = unsafe { std::slice::from_raw_parts_mut(rows.at(r0 * n), (r1 - r0) * n) };
        product(r0, r1, c);
    };
    pool::run(parts, &part);
}
