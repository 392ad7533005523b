//! Fused units: groups of nodes computed in one pass over their rows (see
//! [`Fusion`]). The pass writes what backward needs and what the graph
//! reads; every other node of the group stays readable on the tape by its
//! name, computed from those when read (`tape::group_storage`). The
//! arithmetic is the layers' own, element by element (the same activation
//! kernels, the same derivative formulas, each product rounded on its own),
//! so a fused pass gives what the nodes one by one give. Large row ranges are
//! split across the pool's threads; every element is computed the same way
//! whatever the split, so results are bit-identical for any thread count.

use crate::kernels::{pool, vectorised};
use crate::spec::{Fusion, LstmGates};
use crate::tape::{Record, SlotPtr};
use crate::Float;
use std::ops::Range;

/// Rows below which a fused pass runs on one thread: a few microseconds of
/// work, about what handing half to another thread costs.
const PARALLEL_ELEMENTS: usize = 1 << 13;

/// A slot of a fused pass: its rows, readable and writable from several
/// threads, each thread its own rows.
#[derive(Clone, Copy)]
struct Slot<F>(SlotPtr<F>);

impl<F> Slot<F> {
    /// The rows `rows`, writable.
    ///
    /// # Safety
    /// The pointers were taken in this pass, and no other live slice may
    /// cover these rows (each thread of a pass takes its own rows, and each
    /// slot a pass writes is a distinct buffer).
    #[inline]
    unsafe fn rows<'a>(self, rows: &Range<usize>) -> &'a mut [F] {
        // SAFETY: as the caller guarantees.
        unsafe { self.0.rows_mut(rows) }
    }

    /// The rows `rows`, only read.
    ///
    /// # Safety
    /// The pointers were taken in this pass, and no thread writes these
    /// rows while the slice lives.
    #[inline]
    unsafe fn read<'a>(self, rows: &Range<usize>) -> &'a [F] {
        // SAFETY: as the caller guarantees.
        unsafe { self.0.rows_ref(rows) }
    }
}

/// The slots of an LSTM gate group and its three inputs, for one pass.
struct Gates<F> {
    a: Slot<F>,
    b: Slot<F>,
    c: Slot<F>,
    /// The sum, whose gradient's columns are the four parts' (its value
    /// and theirs are not kept: `tape::group_storage`).
    sum: Slot<F>,
    sig_i: Slot<F>,
    sig_f: Slot<F>,
    tanh_g: Slot<F>,
    sig_o: Slot<F>,
    c_next: Slot<F>,
    tanh_c: Slot<F>,
    h_next: Slot<F>,
    /// Whether the gradients of `a`, `b`, `c` are wanted, and whether `a`
    /// and `b` are one slot (its gradient then gets both).
    wanted: [bool; 3],
    same_ab: bool,
    /// Whether the gradients of `a` and `b` are the sum's, lying in its
    /// buffer (`LstmGates::sole_inputs`), rather than added to.
    shared_ab: [bool; 2],
}

impl<F: Float> Gates<F> {
    /// The slots of `group` in `record`'s values or gradients.
    fn of(record: &Record<F>, group: &LstmGates, grads: bool) -> Self {
        let spec = record.spec;
        let node_slot = |k: usize| spec.node_slot(k);
        let [a, b] = [0, 1].map(|i| spec.nodes[group.sum].inputs[i]);
        let wanted = [a, b, group.c].map(|s| super::visit::grad_wanted(spec, &record.input_grads, s));
        let pointers = if grads {
            &record.grad_ptrs
        } else {
            &record.value_ptrs
        };
        let slot = |s: usize| Slot(pointers[s]);
        Gates {
            a: slot(a),
            b: slot(b),
            c: slot(group.c),
            sum: slot(node_slot(group.sum)),
            sig_i: slot(node_slot(group.sig_i)),
            sig_f: slot(node_slot(group.sig_f)),
            tanh_g: slot(node_slot(group.tanh_g)),
            sig_o: slot(node_slot(group.sig_o)),
            c_next: slot(node_slot(group.c_next)),
            tanh_c: slot(node_slot(group.tanh_c)),
            h_next: slot(node_slot(group.h_next)),
            wanted,
            same_ab: a == b,
            shared_ab: group.sole_inputs(spec),
        }
    }
}

/// Runs `pass(rows)` over `rows`, split across the pool's threads when
/// there are many elements (`width` per row).
fn split_rows(rows: Range<usize>, width: usize, pass: &(dyn Fn(Range<usize>) + Sync)) {
    let n = rows.len();
    let parts = if n * width >= PARALLEL_ELEMENTS {
        pool::threads().min(n).max(1)
    } else {
        1
    };
    if parts == 1 {
        pass(rows);
        return;
    }
    pool::run(parts, &|p| {
        let (r0, r1) = (rows.start + n * p / parts, rows.start + n * (p + 1) / parts);
        pass(r0..r1);
    });
}

/// The forward pass of a fused group over `rows` of `record`.
pub(crate) fn forward<F: Float>(record: &Record<F>, fusion: &Fusion, rows: Range<usize>) {
    match fusion {
        Fusion::LstmGates(group) => {
            let gates = Gates::of(record, group, false);
            let h = gates.sig_i.0.width();
            split_rows(rows, 4 * h, &|rows| {
                // SAFETY: each slot is its own buffer (distinct nodes, and
                // the inputs only read), and each thread has its own rows.
                unsafe { lstm_forward_wide(&gates, &rows, h) }
            });
        }
    }
}

/// The backward pass of a fused group over `rows`: the gradients of its
/// nodes written, those of its inputs added to.
pub(crate) fn backward<F: Float>(record: &Record<F>, fusion: &Fusion, rows: Range<usize>) {
    match fusion {
        Fusion::LstmGates(group) => {
            let values = Gates::of(record, group, false);
            let grads = Gates::of(record, group, true);
            let h = values.sig_i.0.width();
            split_rows(rows, 4 * h, &|rows| {
                // SAFETY: as in `forward`; values are only read here.
                unsafe { lstm_backward_wide(&values, &grads, &rows, h) }
            });
        }
    }
}

vectorised! {
    /// [`lstm_forward`] for the widest vectors the CPU has.
    ///
    /// # Safety
    /// As [`lstm_forward`].
    unsafe fn lstm_forward_wide<F: Float>(v: &Gates<F>, rows: &Range<usize>, h: usize) => lstm_forward
}

vectorised! {
    /// [`lstm_backward`] for the widest vectors the CPU has.
    ///
    /// # Safety
    /// As [`lstm_backward`].
    unsafe fn lstm_backward_wide<F: Float>(v: &Gates<F>, g: &Gates<F>, rows: &Range<usize>, h: usize) => lstm_backward
}

/// # Safety
/// See [`Slot::rows`].
#[inline(always)]
unsafe fn lstm_forward<F: Float>(v: &Gates<F>, rows: &Range<usize>, h: usize) {
    // SAFETY (each `rows` call): see this function's contract.
    let (a, b) = unsafe { (v.a.read(rows), v.b.read(rows)) };
    let (sig_i, sig_f, tanh_g, sig_o) = unsafe {
        (
            v.sig_i.rows(rows),
            v.sig_f.rows(rows),
            v.tanh_g.rows(rows),
            v.sig_o.rows(rows),
        )
    };
    // Part k of the sum `a + b` is its columns k·h .. (k + 1)·h; the sum is
    // not kept, only its activations.
    for (k, (out, activation)) in [
        (&mut *sig_i, F::sigmoid_in_place as fn(&mut [F])),
        (&mut *sig_f, F::sigmoid_in_place),
        (&mut *tanh_g, F::tanh_in_place),
        (&mut *sig_o, F::sigmoid_in_place),
    ]
    .into_iter()
    .enumerate()
    {
        let parts = a.chunks_exact(4 * h).zip(b.chunks_exact(4 * h));
        for (out, (a, b)) in out.chunks_exact_mut(h).zip(parts) {
            let (a, b) = (&a[k * h..(k + 1) * h], &b[k * h..(k + 1) * h]);
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = x + y;
            }
        }
        activation(out);
    }
    // `c`, `c_next` and `h_next` may be columns of an enclosing graph's
    // slots (`copies::shared_states`): row by row.
    let tanh_c = unsafe { v.tanh_c.rows(rows) };
    for (i, r) in rows.clone().enumerate() {
        let span = i * h..(i + 1) * h;
        let (c, c_next) = unsafe { (v.c.0.row_ref(r), v.c_next.0.row_mut(r)) };
        // c_next = σ(f)·c + σ(i)·tanh(g), each product rounded as the CMul
        // layers round it (the products are not kept).
        let (f, i, g) = (&sig_f[span.clone()], &sig_i[span.clone()], &tanh_g[span.clone()]);
        for ((out, (&f, &c)), (&i, &g)) in c_next.iter_mut().zip(f.iter().zip(c)).zip(i.iter().zip(g)) {
            *out = f * c + i * g;
        }
        tanh_c[span].copy_from_slice(c_next);
    }
    F::tanh_in_place(tanh_c);
    for (i, r) in rows.clone().enumerate() {
        let span = i * h..(i + 1) * h;
        let h_next = unsafe { v.h_next.0.row_mut(r) };
        for ((out, &o), &t) in h_next.iter_mut().zip(&sig_o[span.clone()]).zip(&tanh_c[span]) {
            *out = o * t;
        }
    }
}

/// # Safety
/// See [`Slot::rows`]; `v` holds values (read only), `g` gradients.
#[inline(always)]
unsafe fn lstm_backward<F: Float>(v: &Gates<F>, g: &Gates<F>, rows: &Range<usize>, h: usize) {
    let one = F::one();
    // SAFETY (each `rows` call): see this function's contract.
    // Values are only read: shared slices.
    let (sig_i, sig_f, tanh_g, sig_o) = unsafe {
        (
            v.sig_i.read(rows),
            v.sig_f.read(rows),
            v.tanh_g.read(rows),
            v.sig_o.read(rows),
        )
    };
    let tanh_c = unsafe { v.tanh_c.read(rows) };
    let (d_h, d_c_next) = unsafe { (g.h_next.read(rows), g.c_next.rows(rows)) };
    // h_next = σ(o)·tanh_c, tanh_c = tanh(c_next): c_next's gradient gets
    // tanh_c's, dh·σ(o), through the Tanh layer's derivative.
    for ((dc, &dh), (&o, &t)) in d_c_next.iter_mut().zip(d_h).zip(sig_o.iter().zip(tanh_c)) {
        let dt = dh * o;
        *dc += dt * (one - t * t);
    }
    let d_c_next: &[F] = d_c_next;
    // c_next = f·c + i·g: both products have c_next's gradient. Each part of
    // the sum's gradient is the CMul layer's input gradient (`x·z`: not
    // kept) through the activation's derivative (by its output `y`). `c`
    // (and its gradient) may be columns of an enclosing graph's slot: read
    // row by row.
    let d_sum = unsafe { g.sum.rows(rows) };
    for k in 0..4 {
        for (i, r) in rows.clone().enumerate() {
            let span = i * h..(i + 1) * h;
            let (x, z, y, tanh): (&[F], &[F], &[F], bool) = match k {
                0 => (
                    &d_c_next[span.clone()],
                    &tanh_g[span.clone()],
                    &sig_i[span],
                    false,
                ),
                1 => (
                    &d_c_next[span.clone()],
                    unsafe { v.c.0.row_ref(r) },
                    &sig_f[span],
                    false,
                ),
                2 => (&d_c_next[span.clone()], &sig_i[span.clone()], &tanh_g[span], true),
                _ => (&d_h[span.clone()], &tanh_c[span.clone()], &sig_o[span], false),
            };
            let d_part = &mut d_sum[(4 * i + k) * h..(4 * i + k + 1) * h];
            let factors = d_part.iter_mut().zip(x).zip(z.iter().zip(y));
            if tanh {
                for ((dp, &x), (&z, &y)) in factors {
                    *dp = (x * z) * (one - y * y);
                }
            } else {
                for ((dp, &x), (&z, &y)) in factors {
                    *dp = (x * z) * (y * (one - y));
                }
            }
        }
    }
    if g.wanted[2] {
        for (i, r) in rows.clone().enumerate() {
            let span = i * h..(i + 1) * h;
            let d_c = unsafe { g.c.0.row_mut(r) };
            for ((dc, &df), &f) in d_c.iter_mut().zip(&d_c_next[span.clone()]).zip(&sig_f[span]) {
                *dc += df * f;
            }
        }
    }
    // Both inputs of the sum get its gradient: there already when it is
    // theirs too, else added.
    let adds: &[(Slot<F>, bool, bool)] = if g.same_ab {
        &[(g.a, g.wanted[0], false), (g.a, g.wanted[0], false)]
    } else {
        &[
            (g.a, g.wanted[0], g.shared_ab[0]),
            (g.b, g.wanted[1], g.shared_ab[1]),
        ]
    };
    for &(slot, wanted, shared) in adds {
        if wanted && !shared {
            let d = unsafe { slot.rows(rows) };
            for (d, &s) in d.iter_mut().zip(&*d_sum) {
                *d += s;
            }
        }
    }
}
