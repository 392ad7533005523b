//! Fused units: groups of nodes computed in one pass over their rows (see
//! [`Fusion`]), each node still writing its own slot, so that its value and
//! gradient stay on the tape. The arithmetic is the layers' own, element by
//! element (the same activation kernels, the same derivative formulas), so
//! a fused pass gives what the nodes one by one give. Large row ranges are
//! split across the pool's threads; every element is computed the same way
//! whatever the split, so results are bit-identical for any thread count.

use crate::kernels::pool;
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
    /// The rows `rows`.
    ///
    /// # Safety
    /// The pointers were taken in this pass, and no other live slice may
    /// cover these rows (each thread of a pass takes its own rows, and each
    /// slot of a pass is a distinct buffer, or is only read).
    #[inline]
    unsafe fn rows<'a>(self, rows: &Range<usize>) -> &'a mut [F] {
        // SAFETY: as the caller guarantees.
        unsafe { self.0.rows_mut(rows) }
    }
}

/// The slots of an LSTM gate group and its three inputs, for one pass.
struct Gates<F> {
    a: Slot<F>,
    b: Slot<F>,
    c: Slot<F>,
    /// The sum, whose columns are the four parts (`Record::share`).
    sum: Slot<F>,
    sig_i: Slot<F>,
    sig_f: Slot<F>,
    tanh_g: Slot<F>,
    sig_o: Slot<F>,
    f_c: Slot<F>,
    i_g: Slot<F>,
    c_next: Slot<F>,
    tanh_c: Slot<F>,
    h_next: Slot<F>,
    /// Whether the gradients of `a`, `b`, `c` are wanted, and whether `a`
    /// and `b` are one slot (its gradient then gets both).
    wanted: [bool; 3],
    same_ab: bool,
    /// Whether the gradients of `a` and `b` are the sum's, lying in its
    /// buffer (`LstmGates::writes_input_grads`), rather than added to.
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
            f_c: slot(node_slot(group.f_c)),
            i_g: slot(node_slot(group.i_g)),
            c_next: slot(node_slot(group.c_next)),
            tanh_c: slot(node_slot(group.tanh_c)),
            h_next: slot(node_slot(group.h_next)),
            wanted,
            same_ab: a == b,
            shared_ab: group.writes_input_grads(spec),
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
                unsafe { lstm_forward(&gates, &rows, h) }
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
                unsafe { lstm_backward(&values, &grads, &rows, h) }
            });
        }
    }
}

/// # Safety
/// See [`Slot::rows`].
unsafe fn lstm_forward<F: Float>(v: &Gates<F>, rows: &Range<usize>, h: usize) {
    // SAFETY (each `rows` call): see this function's contract.
    let (a, b, c) = unsafe { (v.a.rows(rows), v.b.rows(rows), v.c.rows(rows)) };
    let sum = unsafe { v.sum.rows(rows) };
    for ((s, &x), &y) in sum.iter_mut().zip(&*a).zip(&*b) {
        *s = x + y;
    }
    let (sig_i, sig_f, tanh_g, sig_o) = unsafe {
        (
            v.sig_i.rows(rows),
            v.sig_f.rows(rows),
            v.tanh_g.rows(rows),
            v.sig_o.rows(rows),
        )
    };
    // Part k of the sum is columns k·h .. (k + 1)·h of each of its rows.
    for (k, (out, activation)) in [
        (&mut *sig_i, F::sigmoid_in_place as fn(&mut [F])),
        (&mut *sig_f, F::sigmoid_in_place),
        (&mut *tanh_g, F::tanh_in_place),
        (&mut *sig_o, F::sigmoid_in_place),
    ]
    .into_iter()
    .enumerate()
    {
        for (out, row) in out.chunks_exact_mut(h).zip(sum.chunks_exact(4 * h)) {
            out.copy_from_slice(&row[k * h..(k + 1) * h]);
        }
        activation(out);
    }
    let (f_c, i_g, c_next) = unsafe { (v.f_c.rows(rows), v.i_g.rows(rows), v.c_next.rows(rows)) };
    // Zipped slices, so that the loops vectorise.
    for ((out, &f), &c) in f_c.iter_mut().zip(&*sig_f).zip(&*c) {
        *out = f * c;
    }
    for ((out, &i), &g) in i_g.iter_mut().zip(&*sig_i).zip(&*tanh_g) {
        *out = i * g;
    }
    for ((out, &a), &b) in c_next.iter_mut().zip(&*f_c).zip(&*i_g) {
        *out = a + b;
    }
    let (tanh_c, h_next) = unsafe { (v.tanh_c.rows(rows), v.h_next.rows(rows)) };
    tanh_c.copy_from_slice(c_next);
    F::tanh_in_place(tanh_c);
    for ((out, &o), &t) in h_next.iter_mut().zip(&*sig_o).zip(&*tanh_c) {
        *out = o * t;
    }
}

/// # Safety
/// See [`Slot::rows`]; `v` holds values (read only), `g` gradients.
unsafe fn lstm_backward<F: Float>(v: &Gates<F>, g: &Gates<F>, rows: &Range<usize>, h: usize) {
    let one = F::one();
    // SAFETY (each `rows` call): see this function's contract.
    // Values are only read: shared slices.
    let (sig_i, sig_f, tanh_g, sig_o): (&[F], &[F], &[F], &[F]) = unsafe {
        (
            v.sig_i.rows(rows),
            v.sig_f.rows(rows),
            v.tanh_g.rows(rows),
            v.sig_o.rows(rows),
        )
    };
    let (c, tanh_c): (&[F], &[F]) = unsafe { (v.c.rows(rows), v.tanh_c.rows(rows)) };
    let d_c = g.wanted[2].then(|| unsafe { g.c.rows(rows) });
    let (d_h, d_c_next, d_tanh_c) =
        unsafe { (g.h_next.rows(rows), g.c_next.rows(rows), g.tanh_c.rows(rows)) };
    let d_sig_o = unsafe { g.sig_o.rows(rows) };
    let (d_sig_i, d_sig_f, d_tanh_g) =
        unsafe { (g.sig_i.rows(rows), g.sig_f.rows(rows), g.tanh_g.rows(rows)) };
    // Zipped slices, a few at a time, so that the loops vectorise. h_next =
    // σ(o)·tanh_c, tanh_c = tanh(c_next): the CMul and Tanh layers'
    // derivatives.
    for (((ds, dt), &dh), (&t, &o)) in d_sig_o
        .iter_mut()
        .zip(d_tanh_c.iter_mut())
        .zip(&*d_h)
        .zip(tanh_c.iter().zip(sig_o))
    {
        *ds = dh * t;
        *dt = dh * o;
    }
    // c_next = f_c + i_g: both get c_next's gradient, which is theirs on
    // the tape (`Record::share`).
    for ((dc, &dt), &t) in d_c_next.iter_mut().zip(&*d_tanh_c).zip(tanh_c) {
        *dc += dt * (one - t * t);
    }
    let (d_f_c, d_i_g): (&[F], &[F]) = (d_c_next, d_c_next);
    // f_c = σ(f)·c, i_g = σ(i)·tanh(g).
    for ((d, &df), &c) in d_sig_f.iter_mut().zip(d_f_c).zip(c) {
        *d = df * c;
    }
    for (((dsi, dtg), &di), (&g, &i)) in d_sig_i
        .iter_mut()
        .zip(d_tanh_g.iter_mut())
        .zip(d_i_g)
        .zip(tanh_g.iter().zip(sig_i))
    {
        *dsi = di * g;
        *dtg = di * i;
    }
    // The activations, by their outputs, into the parts' gradients: the
    // columns of the sum's.
    let sigmoid_back = |d_part: &mut [F], d: &[F], y: &[F]| {
        for ((dp, &d), &y) in d_part.iter_mut().zip(d).zip(y) {
            *dp = d * (y * (one - y));
        }
    };
    let d_sum = unsafe { g.sum.rows(rows) };
    let gates: [(&[F], &[F]); 4] = [
        (d_sig_i, sig_i),
        (d_sig_f, sig_f),
        (d_tanh_g, tanh_g),
        (d_sig_o, sig_o),
    ];
    for (k, (d, y)) in gates.into_iter().enumerate() {
        let by_rows = d.chunks_exact(h).zip(y.chunks_exact(h));
        for (row, (d, y)) in d_sum.chunks_exact_mut(4 * h).zip(by_rows) {
            let d_part = &mut row[k * h..(k + 1) * h];
            if k == 2 {
                for ((dp, &d), &y) in d_part.iter_mut().zip(d).zip(y) {
                    *dp = d * (one - y * y);
                }
            } else {
                sigmoid_back(d_part, d, y);
            }
        }
    }
    if let Some(d_c) = d_c {
        for ((dc, &df), &f) in d_c.iter_mut().zip(d_f_c).zip(sig_f) {
            *dc += df * f;
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
