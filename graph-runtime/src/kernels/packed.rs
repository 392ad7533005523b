//! Weights packed once per engine pass for products with few rows (one
//! step's batch): `wᵀ` in panels of the micro-kernel's width for `x · wᵀ`
//! (forward), so that the step's activations are read in place and each
//! tile is `c`'s own layout (no transposed write-back, no packing of the
//! activations per product); `w` in such panels for `dy · w` (backward),
//! so that each tile reads its panel from L1 rather than `w`'s rows, a
//! power of two apart, from L2.
//!
//! Packing costs about as much as one such product, so it pays only
//! when it is reused: over a pass's steps. A pass holds its graph borrowed,
//! so its weights cannot change while it runs; a packed copy is keyed by the
//! weight's address and length and by the pass, and is packed again (into
//! the same buffer) in the next pass. Outside a pass nothing is cached.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

/// Pass numbers handed out, process-wide, so that no two passes share one.
static PASSES: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The pass this thread is in, 0 outside any.
    static PASS: Cell<u64> = const { Cell::new(0) };
}

/// While alive, the calling thread is in an engine pass (see the module).
#[derive(Debug)]
pub(crate) struct PassScope {
    previous: u64,
}

impl PassScope {
    pub(crate) fn enter() -> Self {
        let pass = PASSES.fetch_add(1, Ordering::Relaxed);
        PassScope {
            previous: PASS.replace(pass),
        }
    }

    /// The calling thread's pass (0 outside any).
    pub(crate) fn current() -> u64 {
        PASS.get()
    }

    /// Puts the calling thread in pass `pass`, another thread's: a pool
    /// worker running part of that pass (its weights packed in this
    /// thread's own cache).
    pub(crate) fn join(pass: u64) -> Self {
        PassScope {
            previous: PASS.replace(pass),
        }
    }
}

impl Drop for PassScope {
    fn drop(&mut self) {
        PASS.set(self.previous);
    }
}

/// The most weights one thread keeps packed: more than a model's per-step
/// weights; past it the least recently packed is packed over.
const ENTRIES: usize = 32;

/// One weight matrix packed as `wᵀ` panels.
pub(super) struct Entry<T> {
    key: (usize, usize, usize, usize),
    /// The pass it was last used in, and the pass its packed copy is of.
    seen: u64,
    pass: u64,
    data: Vec<T>,
}

/// How a weight is packed: `pack(w, rows, cols, nr, out)` for `w` of
/// `rows x cols` ([`pack_transposed`], [`pack_columns`]).
pub(super) type Packing<T> = fn(&[T], usize, usize, usize, &mut Vec<T>);

/// `w` (`n` rows of `k`) packed by `pack` in panels `nr` wide, passed to
/// `f`, from its second use in a pass on (packed then, into a buffer kept
/// in `cache`, which holds one packing's copies); `None` outside a pass and
/// at a weight's first use in one, so that a weight used once per pass (a
/// single step) is never packed.
pub(super) fn with_packed<T: Copy + Default, R>(
    cache: &RefCell<Vec<Entry<T>>>,
    pack: Packing<T>,
    w: &[T],
    n: usize,
    k: usize,
    nr: usize,
    f: impl FnOnce(&[T]) -> R,
) -> Option<R> {
    let pass = PASS.get();
    if pass == 0 {
        return None;
    }
    let mut cache = cache.borrow_mut();
    let key = (w.as_ptr() as usize, w.len(), n, nr);
    let at = match cache.iter().position(|e| e.key == key) {
        Some(i) => i,
        None if cache.len() < ENTRIES => {
            cache.push(Entry {
                key,
                seen: 0,
                pass: 0,
                data: Vec::new(),
            });
            cache.len() - 1
        }
        None => {
            let oldest = (0..cache.len()).min_by_key(|&i| cache[i].seen).unwrap_or(0);
            let e = &mut cache[oldest];
            (e.key, e.seen, e.pass) = (key, 0, 0);
            oldest
        }
    };
    let e = &mut cache[at];
    if e.pass != pass {
        if e.seen != pass {
            e.seen = pass;
            return None;
        }
        pack(w, n, k, nr, &mut e.data);
        e.pass = pass;
    }
    Some(f(&e.data))
}

/// `wᵀ` in panels: panel `q` holds `nr` rows of `w` from row `q * nr`,
/// step `p` of lane `l` at `q * k * nr + p * nr + l`, zero padded.
pub(super) fn pack_transposed<T: Copy + Default>(w: &[T], n: usize, k: usize, nr: usize, out: &mut Vec<T>) {
    let panels = n.div_ceil(nr);
    out.clear();
    out.resize(panels * k * nr, T::default());
    for (q, panel) in out.chunks_exact_mut(k * nr).enumerate() {
        for l in 0..nr.min(n - q * nr) {
            let row = &w[(q * nr + l) * k..(q * nr + l + 1) * k];
            for (p, &v) in row.iter().enumerate() {
                panel[p * nr + l] = v;
            }
        }
    }
}

/// `w` (`k` rows of `n`) in panels of its columns, the layout the blocked
/// GEMM packs `B` in: panel `q` holds columns `q * nr..`, step `p` of lane
/// `l` at `q * k * nr + p * nr + l`, zero padded.
pub(super) fn pack_columns<T: Copy + Default>(w: &[T], k: usize, n: usize, nr: usize, out: &mut Vec<T>) {
    let panels = n.div_ceil(nr);
    out.clear();
    out.resize(panels * k * nr, T::default());
    for (q, panel) in out.chunks_exact_mut(k * nr).enumerate() {
        let (j0, lanes) = (q * nr, nr.min(n - q * nr));
        for (p, step) in panel.chunks_exact_mut(nr).enumerate() {
            step[..lanes].copy_from_slice(&w[p * n + j0..p * n + j0 + lanes]);
        }
    }
}
