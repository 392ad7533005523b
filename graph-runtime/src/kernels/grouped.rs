//! Weight gradients put off during a backward pass so that those sharing
//! their `A` run as one product (`gemm::blocked` over parts). An LSTM
//! cell's two projections, input and recurrent, have one gradient (the
//! gates'): `dW_ih += dᵀ · x` and `dW_hh += dᵀ · h` then read it, 5 MB per
//! layer in W4, once instead of twice, each block of it for the panels of
//! both products. Every element is computed as by the product alone, so
//! results do not change.
//!
//! The engine opens a [`Scope`] around an unchecked backward pass (checked
//! mode reads each layer's parameter gradients as soon as they are made);
//! [`weight_grad`] then queues its product while the queued ones share its
//! `A`, and runs them when one does not, or when the scope closes.

use super::gemm::Part;
use super::split::ROW_TILES;
use super::{matmul_at_b_acc, pool, split, Operand};
use crate::Float;
use std::cell::RefCell;

/// The most products run as one (an LSTM cell has two).
const MAX_PARTS: usize = 4;

/// A queued `c += aᵀ · b` (`a` `(k, m)`, `b` `(k, n)`, `c` `(m, n)`), its
/// slices as raw parts: the scope's contract keeps them valid.
#[derive(Clone, Copy)]
struct Queued {
    a: *const u8,
    b: *const u8,
    c: *mut u8,
    k: usize,
    m: usize,
    n: usize,
    /// The element type's size (f32 or f64, the only `Float`s).
    size: usize,
}

impl Queued {
    const NONE: Queued = Queued {
        a: std::ptr::null(),
        b: std::ptr::null(),
        c: std::ptr::null_mut(),
        k: 0,
        m: 0,
        n: 0,
        size: 0,
    };

    /// Whether `other` may run in one product with this one: the same `A`,
    /// and outputs that do not overlap.
    fn joins(&self, other: &Queued) -> bool {
        let c = |q: &Queued| q.c as usize..q.c as usize + q.m * q.n * q.size;
        let (mine, theirs) = (c(self), c(other));
        (self.a, self.k, self.m, self.size) == (other.a, other.k, other.m, other.size)
            && (mine.end <= theirs.start || theirs.end <= mine.start)
    }
}

/// This thread's open scopes and queued products.
struct Queue {
    scopes: usize,
    queued: [Queued; MAX_PARTS],
    len: usize,
    /// Runs the queued products: the element type's [`run`].
    run: Option<unsafe fn(&[Queued])>,
}

thread_local! {
    static QUEUE: RefCell<Queue> = const {
        RefCell::new(Queue {
            scopes: 0,
            queued: [Queued::NONE; MAX_PARTS],
            len: 0,
            run: None,
        })
    };
}

/// While open, [`weight_grad`] on this thread may put its product off until
/// another product, or the scope's end, runs it.
pub(crate) struct Scope(std::marker::PhantomData<*const ()>);

impl Scope {
    /// Opens a scope on this thread.
    ///
    /// # Safety
    /// Until the scope is dropped, the slices given to [`weight_grad`] stay
    /// valid, `a` and `b` unchanged, and `c` neither read nor written by
    /// anything else.
    pub(crate) unsafe fn open() -> Self {
        QUEUE.with(|q| q.borrow_mut().scopes += 1);
        Scope(std::marker::PhantomData)
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let last = QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            q.scopes -= 1;
            q.scopes == 0
        });
        if !last {
            return;
        }
        if std::thread::panicking() {
            // The pass failed: what it leaves is not used, and the buffers
            // behind the queue may be partly written.
            QUEUE.with(|q| q.borrow_mut().len = 0);
        } else {
            flush();
        }
    }
}

/// `c += aᵀ · b` where `a` is `(k, m)`, `b` is `(k, n)` and `c` is `(m, n)`,
/// as [`matmul_at_b_acc`]: a layer's weight gradient. Within a [`Scope`] a
/// large product is queued, and runs in one product with those queued
/// beside it that share its `a`.
pub(crate) fn weight_grad<F: Float>(a: &[F], b: &[F], c: &mut [F], k: usize, m: usize, n: usize) {
    assert_eq!(
        (a.len(), b.len(), c.len()),
        (k * m, k * n, m * n),
        "weight_grad: sizes"
    );
    let large = m * k * n >= split::PARALLEL_WORK;
    let open = large && QUEUE.with(|q| q.borrow().scopes > 0);
    if !open {
        return matmul_at_b_acc(a, b, c, k, m, n);
    }
    let next = Queued {
        a: a.as_ptr().cast(),
        b: b.as_ptr().cast(),
        c: c.as_mut_ptr().cast(),
        k,
        m,
        n,
        size: std::mem::size_of::<F>(),
    };
    let joins = QUEUE.with(|q| {
        let q = q.borrow();
        q.len < MAX_PARTS && q.queued[..q.len].iter().all(|queued| queued.joins(&next))
    });
    if !joins {
        flush();
    }
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let len = q.len;
        q.queued[len] = next;
        q.len += 1;
        q.run = Some(run::<F>);
    });
}

/// Runs the queued products.
fn flush() {
    let (queued, len, run) = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let len = std::mem::take(&mut q.len);
        (q.queued, len, q.run)
    });
    if let (true, Some(run)) = (len > 0, run) {
        // SAFETY: queued within a scope, whose contract keeps the slices
        // valid until now; `run` is the element type's they were queued with
        // (a change of type does not join, `Queued::joins`).
        unsafe { run(&queued[..len]) };
    }
}

/// Runs `queued` (one `a`, one element type `F`) as one product, split by
/// rows of the outputs like [`matmul_at_b_acc`].
///
/// # Safety
/// The products' slices are valid, of `F`, as [`Scope::open`] requires.
unsafe fn run<F: Float>(queued: &[Queued]) {
    let first = queued[0];
    let (k, m) = (first.k, first.m);
    // SAFETY: as the caller guarantees.
    let a = unsafe { std::slice::from_raw_parts(first.a as *const F, k * m) };
    let width: usize = queued.iter().map(|q| q.n).sum();
    let outputs: [split::Disjoint<F>; MAX_PARTS] = std::array::from_fn(|i| match queued.get(i) {
        // SAFETY: as the caller guarantees.
        Some(q) => split::Disjoint::new(unsafe { std::slice::from_raw_parts_mut(q.c as *mut F, q.m * q.n) }),
        None => split::Disjoint::new(&mut []),
    });
    let inputs: [(&[F], usize); MAX_PARTS] = std::array::from_fn(|i| match queued.get(i) {
        // SAFETY: as the caller guarantees.
        Some(q) => (
            unsafe { std::slice::from_raw_parts(q.b as *const F, q.k * q.n) },
            q.n,
        ),
        None => (&[][..], 0),
    });
    let len = queued.len();
    let product = |r0: usize, r1: usize| {
        let mut parts = std::array::from_fn::<_, MAX_PARTS, _>(|i| {
            let (b, n) = inputs[i];
            Part {
                n,
                b: Operand::row_major(b, n),
                packed_b: None,
                // SAFETY: each run of rows is one thread's (`run_rows`
                // splits `0..m`).
                c: unsafe { outputs[i].slice(r0 * n, (r1 - r0) * n) },
            }
        });
        // Rows r0.. of aᵀ are columns r0.. of a.
        let a = Operand {
            data: &a[r0..],
            rs: 1,
            cs: m,
        };
        F::gemm(r1 - r0, k, a, &mut parts[..len], true);
    };
    let threads = pool::threads().min(m.div_ceil(ROW_TILES)).max(1);
    if threads == 1 || m * k * width < split::PARALLEL_WORK {
        return product(0, m);
    }
    pool::run_rows(threads, m, ROW_TILES, &|_, run| product(run.start, run.end));
}

#[cfg(test)]
mod tests {
    use super::Queued;

    /// Products join a queue when they share `A` (and its shape and type)
    /// and their outputs do not overlap.
    #[test]
    fn products_join_when_they_share_a_and_not_their_outputs() {
        let (a, other_a) = ([0f32; 12], [0f32; 12]);
        let mut c = [0f32; 20];
        let q = |a: &[f32], c: &mut [f32], m: usize, n: usize, size: usize| Queued {
            a: a.as_ptr().cast(),
            b: std::ptr::null(),
            c: c.as_mut_ptr().cast(),
            k: 3,
            m,
            n,
            size,
        };
        let first = q(&a, &mut c[..8], 4, 2, 4);
        assert!(first.joins(&q(&a, &mut c[8..], 4, 3, 4)), "beside it");
        assert!(!first.joins(&q(&a, &mut c[7..], 4, 3, 4)), "its last value");
        assert!(!first.joins(&q(&a, &mut c[..8], 4, 2, 4)), "the same output");
        assert!(!first.joins(&q(&other_a, &mut c[8..], 4, 3, 4)), "another a");
        assert!(!first.joins(&q(&a, &mut c[8..], 2, 6, 4)), "another shape of a");
        assert!(!first.joins(&q(&a, &mut c[8..], 4, 3, 8)), "another type");
    }
}
