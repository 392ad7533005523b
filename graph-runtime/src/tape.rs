//! The record of a pass: one `(T·B, width)` matrix per input and node for
//! values and one for gradients (step `t` is rows `t·B .. (t+1)·B`; a
//! single step is `T = 1`), each node's layer state, and the records of
//! nested graphs, which cover the same rows.
//!
//! A [`Tape`] is made by a graph ([`Graph::tape`](crate::Graph::tape)) and
//! remembers which graph and widths it was made for: using it with another
//! is an error, never a panic. It holds the plan its passes follow, and is
//! reused across calls: it reallocates only when the number of steps or the
//! batch size changes.

use crate::engine::plan::{Hop, Plan, SpecTree};
use crate::error::{Error, Result};
use crate::spec::GraphSpec;
use crate::Float;
use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut2, CowArray, Ix2, ShapeBuilder};
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// What one graph of a tape holds: values, gradients, ids, layer states and
/// the records of its nested graphs.
#[derive(Debug, Clone)]
pub(crate) struct Record<F> {
    pub spec: &'static GraphSpec,
    /// Width of every slot (0 for an ids input and a host node).
    pub widths: Vec<usize>,
    pub values: Vec<Array2<F>>,
    pub grads: Vec<Array2<F>>,
    /// The ids of each ids input, `T·B` of them (empty for value inputs).
    pub ids: Vec<Vec<usize>>,
    /// Per node, per run (one per step in a loop, one otherwise): the state
    /// a layer keeps for backward.
    pub states: Vec<Vec<Array2<F>>>,
    /// Per node: whether its layer kept a state in the last forward.
    pub stateful: Vec<bool>,
    /// Per node: the records of its nested graphs (one for a nested graph,
    /// one per layer for a stack, none for a layer).
    pub nested: Vec<Vec<Record<F>>>,
    /// The host nodes (those with nested graphs), in order.
    pub hosts: Vec<usize>,
    /// Per input: whether backward computes its gradient.
    pub input_grads: Vec<bool>,
    /// Per slot: whether backward writes its whole gradient (the inner nodes
    /// of a fused group), so that it need not be cleared first.
    pub written: Vec<bool>,
    /// Per slot: whether backward clears its gradient step by step, in the
    /// loop that first adds to it (`engine::clear`), when the pass runs its
    /// loops step by step.
    pub cleared_in_loop: Vec<bool>,
    /// Per slot: whether it holds its value (not a slot the plan passes
    /// on without a copy, which takes no memory).
    pub kept: Vec<bool>,
    /// Per slot: where its values, and its gradients, are: in a buffer of
    /// its own, in columns of another slot's, or computed from two other
    /// slots' when read ([`Held`]; the inner nodes of a fused group).
    pub values_held: Vec<Held>,
    pub grads_held: Vec<Held>,
    /// Where the [`Held::Outer`] slots are.
    pub outer: Vec<OuterSlot>,
    /// Whether any slot is held otherwise than [`Held::Own`] (most graphs:
    /// none, and a pass need not look).
    any_held: bool,
    /// Per slot: the values, and the gradients, of a [`Held::Derived`]
    /// slot, computed at its first read by name after a pass.
    derived_values: Vec<OnceLock<Array2<F>>>,
    derived_grads: Vec<OnceLock<Array2<F>>>,
    /// Per slot: where its values and its gradients lie, taken at the start
    /// of each pass ([`Record::take_pointers`]) for the units that address
    /// rows of several slots at once (copies, fused groups, loops split
    /// across threads).
    pub value_ptrs: Vec<SlotPtr<F>>,
    pub grad_ptrs: Vec<SlotPtr<F>>,
}

/// Where a slot's `(rows, width)` row-major matrix lies in memory, so that
/// units running on several threads can each write their own rows of it.
/// Taken from the tape borrowed mutably at the start of a pass, and only
/// used during that pass, while the tape stays borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotPtr<F> {
    ptr: *mut F,
    rows: usize,
    width: usize,
    /// Elements from one row to the next: the width, or more for a slot
    /// that is columns of another ([`Within`]).
    stride: usize,
}

/// Where a slot's values (or gradients) are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Held {
    /// In a buffer of its own.
    #[default]
    Own,
    /// In columns of another slot's buffer (a part of a fused sum).
    In(Within),
    /// Nowhere: a pass does not write them; reading them by name computes
    /// them from two slots that are kept, exactly as the pass would have
    /// (a fused group's `a + b`, `σ(f)·c`, and the gradients of its
    /// activations).
    Derived(Derived),
    /// In columns of a slot of an enclosing graph's record
    /// ([`Record::outer`], by index): a nested LSTM cell's state that its
    /// fused pass reads and writes where the enclosing graph keeps it,
    /// instead of copying it in and out at every step (`Tape::new`).
    Outer(usize),
}

/// Columns `start .. start + width` of slot `slot` of the record at `path`
/// from the tape's root: where a [`Held::Outer`] slot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OuterSlot {
    pub path: Vec<Hop>,
    pub slot: usize,
    pub start: usize,
    pub width: usize,
}

impl OuterSlot {
    /// The columns, within their record.
    fn within(&self) -> Within {
        Within {
            slot: self.slot,
            start: self.start,
            width: self.width,
        }
    }
}

/// `x op y`, element by element, of two slots' values or gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Derived {
    pub op: Op,
    pub x: Operand,
    pub y: Operand,
}

/// The operation of a [`Derived`] slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Mul,
}

/// The values (or, `grad`, the gradients) of slot `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operand {
    pub slot: usize,
    pub grad: bool,
}

/// Columns `start .. start + width` of slot `slot` of the same record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Within {
    pub slot: usize,
    pub start: usize,
    pub width: usize,
}

impl Within {
    /// The columns.
    #[inline]
    pub fn cols(&self) -> Range<usize> {
        self.start..self.start + self.width
    }
}

// SAFETY: a `SlotPtr` is an address into a buffer of the tape it belongs
// to; it is dereferenced only during a pass, through the methods below,
// whose callers write disjoint rows from each thread.
unsafe impl<F: Send> Send for SlotPtr<F> {}
unsafe impl<F: Sync> Sync for SlotPtr<F> {}

impl<F> SlotPtr<F> {
    const NONE: SlotPtr<F> = SlotPtr {
        ptr: std::ptr::null_mut(),
        rows: 0,
        width: 0,
        stride: 0,
    };

    fn of(m: &mut Array2<F>) -> Self {
        debug_assert!(m.is_standard_layout());
        SlotPtr {
            ptr: m.as_mut_ptr(),
            rows: m.nrows(),
            width: m.ncols(),
            stride: m.ncols(),
        }
    }

    /// Columns `within` of the slot this points to.
    fn columns(self, within: &Within) -> Self {
        assert!(within.start + within.width <= self.width, "columns of the slot");
        SlotPtr {
            // Inside the buffer (checked above); `wrapping_add` for an
            // empty one, whose pointer is never read.
            ptr: self.ptr.wrapping_add(within.start),
            rows: self.rows,
            width: within.width,
            stride: self.stride,
        }
    }

    /// Columns per row.
    #[inline]
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows.
    #[inline]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Rows `rows`, columns `cols`, readable.
    ///
    /// # Safety
    /// The pointers were taken in this pass, and no thread writes these
    /// rows while the view lives.
    #[inline]
    pub unsafe fn view<'a>(&self, rows: Range<usize>, cols: Range<usize>) -> ArrayView2<'a, F> {
        let (shape, first) = self.block(&rows, &cols);
        // SAFETY: inside the buffer (`block`), as the caller guarantees.
        unsafe { ArrayView2::from_shape_ptr(shape, first) }
    }

    /// Rows `rows`, columns `cols`, writable.
    ///
    /// # Safety
    /// The pointers were taken in this pass, and no other view of these
    /// rows lives meanwhile (each thread has its own rows).
    #[inline]
    pub unsafe fn view_mut<'a>(&self, rows: Range<usize>, cols: Range<usize>) -> ArrayViewMut2<'a, F> {
        let (shape, first) = self.block(&rows, &cols);
        // SAFETY: inside the buffer (`block`), as the caller guarantees.
        unsafe { ArrayViewMut2::from_shape_ptr(shape, first) }
    }

    /// The shape of rows `rows`, columns `cols`, and their first element;
    /// a panic if they are not the slot's.
    #[inline]
    fn block(&self, rows: &Range<usize>, cols: &Range<usize>) -> (ndarray::StrideShape<Ix2>, *mut F) {
        assert!(
            rows.end <= self.rows && cols.end <= self.width,
            "rows and columns of the slot"
        );
        let shape = (rows.len(), cols.len()).strides((self.stride, 1));
        (shape, self.at(rows.start, cols.start))
    }

    /// The address of row `row`, column `col` (`row` up to `rows`, `col`
    /// up to the width), clamped into the buffer for an empty view.
    #[inline]
    fn at(&self, row: usize, col: usize) -> *mut F {
        let end = match self.rows {
            0 => 0,
            rows => (rows - 1) * self.stride + self.width,
        };
        // `wrapping_add`: an empty buffer's pointer is dangling, and an empty
        // view's pointer is never read.
        self.ptr.wrapping_add((row * self.stride + col).min(end))
    }

    /// Whether columns `cols` of this slot are columns `other_cols` of
    /// `other`, the same memory (a copy between them does nothing).
    pub fn same_columns(&self, cols: &Range<usize>, other: &SlotPtr<F>, other_cols: &Range<usize>) -> bool {
        self.rows > 0
            && self.rows == other.rows
            && self.stride == other.stride
            && cols.len() == other_cols.len()
            && self.at(0, cols.start) == other.at(0, other_cols.start)
    }

    /// Row `row`, readable.
    ///
    /// # Safety
    /// As [`view`](Self::view).
    #[inline]
    pub unsafe fn row_ref<'a>(&self, row: usize) -> &'a [F] {
        assert!(row < self.rows, "a row of the slot");
        // SAFETY: inside the buffer (`row < rows`), as the caller guarantees.
        unsafe { std::slice::from_raw_parts(self.at(row, 0), self.width) }
    }

    /// Row `row`, writable.
    ///
    /// # Safety
    /// As [`view_mut`](Self::view_mut).
    #[inline]
    pub unsafe fn row_mut<'a>(&self, row: usize) -> &'a mut [F] {
        assert!(row < self.rows, "a row of the slot");
        // SAFETY: inside the buffer (`row < rows`), as the caller guarantees.
        unsafe { std::slice::from_raw_parts_mut(self.at(row, 0), self.width) }
    }

    /// Rows `rows` as one slice, readable (of a slot with its own buffer).
    ///
    /// # Safety
    /// As [`view`](Self::view).
    #[inline]
    pub unsafe fn rows_ref<'a>(&self, rows: &Range<usize>) -> &'a [F] {
        let (first, len) = self.run(rows);
        // SAFETY: inside the buffer (`run`), as the caller guarantees.
        unsafe { std::slice::from_raw_parts(first, len) }
    }

    /// Rows `rows` as one slice (of a slot with its own buffer).
    ///
    /// # Safety
    /// As [`view_mut`](Self::view_mut).
    #[inline]
    pub unsafe fn rows_mut<'a>(&self, rows: &Range<usize>) -> &'a mut [F] {
        let (first, len) = self.run(rows);
        // SAFETY: inside the buffer (`run`), as the caller guarantees.
        unsafe { std::slice::from_raw_parts_mut(first, len) }
    }

    /// The first element of rows `rows` and their number of elements, as
    /// one run; a panic if they are not the slot's, or the slot is columns
    /// of another (its rows are not one run).
    #[inline]
    fn run(&self, rows: &Range<usize>) -> (*mut F, usize) {
        assert!(rows.end <= self.rows, "rows of the slot");
        assert!(
            self.stride == self.width,
            "rows of a slot that is columns of another"
        );
        (self.at(rows.start, 0), rows.len() * self.width)
    }
}

impl<F: Float> Record<F> {
    /// An empty record for `spec` with these slot widths; `nested` gives the
    /// records of its host nodes.
    pub fn new(spec: &'static GraphSpec, widths: Vec<usize>, nested: Vec<Vec<Record<F>>>) -> Self {
        let (slots, nodes, inputs) = (spec.slots(), spec.nodes.len(), spec.inputs.len());
        Record {
            spec,
            widths,
            values: (0..slots).map(|_| Array2::zeros((0, 0))).collect(),
            grads: (0..slots).map(|_| Array2::zeros((0, 0))).collect(),
            ids: vec![Vec::new(); inputs],
            // Run 0's state is always there (empty until a layer keeps one).
            states: (0..nodes).map(|_| vec![Array2::zeros((0, 0))]).collect(),
            stateful: vec![false; nodes],
            hosts: (0..nodes)
                .filter(|&k| nested.get(k).is_some_and(|n| !n.is_empty()))
                .collect(),
            nested,
            input_grads: vec![true; inputs],
            written: vec![false; slots],
            cleared_in_loop: vec![false; slots],
            kept: vec![true; slots],
            values_held: vec![Held::Own; slots],
            grads_held: vec![Held::Own; slots],
            outer: Vec::new(),
            any_held: false,
            derived_values: (0..slots).map(|_| OnceLock::new()).collect(),
            derived_grads: (0..slots).map(|_| OnceLock::new()).collect(),
            value_ptrs: vec![SlotPtr::NONE; slots],
            grad_ptrs: vec![SlotPtr::NONE; slots],
        }
    }

    /// Takes the addresses of every slot's values and gradients, nested
    /// records' too, and forgets the derived slots' values computed from
    /// the last pass: at the start of a pass, after any reallocation.
    pub fn take_pointers(&mut self) {
        for (p, m) in self.value_ptrs.iter_mut().zip(&mut self.values) {
            *p = SlotPtr::of(m);
        }
        for (p, m) in self.grad_ptrs.iter_mut().zip(&mut self.grads) {
            *p = SlotPtr::of(m);
        }
        if self.any_held {
            self.take_held_pointers();
        }
        for &k in &self.hosts {
            for n in &mut self.nested[k] {
                n.take_pointers();
            }
        }
    }

    /// [`take_pointers`](Self::take_pointers) for the slots not held in a
    /// buffer of their own.
    fn take_held_pointers(&mut self) {
        for cell in self.derived_values.iter_mut().chain(&mut self.derived_grads) {
            if cell.get().is_some() {
                *cell = OnceLock::new();
            }
        }
        // Columns of a slot that has a buffer (those of a derived one have
        // none either).
        for s in 0..self.values.len() {
            if let Held::In(w) = self.values_held[s] {
                if self.values_held[w.slot] == Held::Own {
                    self.value_ptrs[s] = self.value_ptrs[w.slot].columns(&w);
                }
            }
            if let Held::In(w) = self.grads_held[s] {
                if self.grads_held[w.slot] == Held::Own {
                    self.grad_ptrs[s] = self.grad_ptrs[w.slot].columns(&w);
                }
            }
        }
    }

    /// Says where slot `slot`'s values (or gradients, `grads`) are, when
    /// not in a buffer of their own: made before the first pass, and kept.
    pub fn hold(&mut self, slot: usize, held: Held, grads: bool) {
        debug_assert!(match held {
            Held::In(w) =>
                w.slot != slot && w.start + w.width <= self.widths[w.slot] && w.width == self.widths[slot],
            _ => true,
        });
        self.any_held = true;
        if grads {
            self.grads_held[slot] = held;
        } else {
            self.values_held[slot] = held;
        }
    }

    /// The values of slot `s`, rows `rows`: borrowed from its buffer (or the
    /// columns of another's, here or in an enclosing record of `root`'s),
    /// or computed for a derived slot.
    pub fn value_rows<'a>(
        &'a self,
        root: &'a Record<F>,
        s: usize,
        rows: Range<usize>,
    ) -> CowArray<'a, F, Ix2> {
        self.rows_of(root, Operand { slot: s, grad: false }, rows)
    }

    /// The gradients of slot `s`, rows `rows`, as [`value_rows`](Self::value_rows).
    pub fn grad_rows<'a>(
        &'a self,
        root: &'a Record<F>,
        s: usize,
        rows: Range<usize>,
    ) -> CowArray<'a, F, Ix2> {
        self.rows_of(root, Operand { slot: s, grad: true }, rows)
    }

    fn rows_of<'a>(&'a self, root: &'a Record<F>, of: Operand, rows: Range<usize>) -> CowArray<'a, F, Ix2> {
        let (buffers, held) = if of.grad {
            (&self.grads, self.grads_held[of.slot])
        } else {
            (&self.values, self.values_held[of.slot])
        };
        match held {
            Held::Own => row_range(&buffers[of.slot], rows).into(),
            Held::In(w) => self
                .rows_of(root, Operand { slot: w.slot, ..of }, rows)
                .slice_move(ndarray::s![.., w.cols()]),
            Held::Derived(d) => self.derive(root, d, rows).into(),
            Held::Outer(i) => {
                let o = &self.outer[i];
                root.at(&o.path)
                    .rows_of(root, Operand { slot: o.slot, ..of }, rows)
                    .slice_move(ndarray::s![.., o.start..o.start + o.width])
            }
        }
    }

    /// A derived slot's rows `rows`, computed as the pass would have.
    fn derive(&self, root: &Record<F>, d: Derived, rows: Range<usize>) -> Array2<F> {
        let (x, y) = (
            self.rows_of(root, d.x, rows.clone()),
            self.rows_of(root, d.y, rows),
        );
        let op = match d.op {
            Op::Add => |x: &F, y: &F| *x + *y,
            Op::Mul => |x: &F, y: &F| *x * *y,
        };
        ndarray::Zip::from(&x).and(&y).map_collect(op)
    }

    /// All rows of slot `s`'s values (or gradients, `grads`) as a
    /// row-major matrix, and the columns of it that are the slot's when it
    /// lies in another slot's (here or in an enclosing record of `root`'s).
    /// A derived slot is computed once after a pass.
    fn whole<'a>(
        &'a self,
        root: &'a Record<F>,
        s: usize,
        grads: bool,
    ) -> (ArrayView2<'a, F>, Option<Within>) {
        let (buffers, held, derived) = if grads {
            (&self.grads, self.grads_held[s], &self.derived_grads)
        } else {
            (&self.values, self.values_held[s], &self.derived_values)
        };
        match held {
            Held::Own => (buffers[s].view(), None),
            // The slot it lies in has a buffer or is derived (`hold`).
            Held::In(w) => (self.whole(root, w.slot, grads).0, Some(w)),
            Held::Derived(d) => {
                // Every slot's buffer has the pass's rows, if no columns.
                let rows = buffers[s].nrows();
                (
                    derived[s].get_or_init(|| self.derive(root, d, 0..rows)).view(),
                    None,
                )
            }
            // The enclosing slot has a buffer of its own (`Tape::new`).
            Held::Outer(i) => {
                let o = &self.outer[i];
                (root.at(&o.path).whole(root, o.slot, grads).0, Some(o.within()))
            }
        }
    }

    /// The specs of this record's graph and its nested graphs.
    pub fn spec_tree(&self) -> SpecTree {
        SpecTree {
            spec: self.spec,
            nested: self
                .nested
                .iter()
                .map(|n| n.iter().map(Record::spec_tree).collect())
                .collect(),
        }
    }

    /// Sizes every buffer for `rows` rows, nested records too.
    pub fn resize(&mut self, rows: usize) {
        for (slot, (v, g)) in self.values.iter_mut().zip(&mut self.grads).enumerate() {
            let ids = slot < self.spec.inputs.len() && self.spec.inputs[slot].ids;
            // No memory for ids, a slot the plan passes on, or values or
            // gradients that lie in another slot or are derived.
            let own = !ids && self.kept[slot];
            let width = |held: Held| {
                if own && held == Held::Own {
                    self.widths[slot]
                } else {
                    0
                }
            };
            ensure_shape(v, rows, width(self.values_held[slot]));
            ensure_shape(g, rows, width(self.grads_held[slot]));
        }
        for (i, ids) in self.ids.iter_mut().enumerate() {
            if self.spec.inputs[i].ids {
                ids.resize(rows, 0);
            }
        }
        for &k in &self.hosts {
            for n in &mut self.nested[k] {
                n.resize(rows);
            }
        }
    }

    /// Sets every gradient to zero, nested records' too, but unless `all`
    /// those that backward writes in full and, with `in_loops`, those it
    /// clears step by step (not the slots `seeded` here, given gradients
    /// before backward).
    pub fn clear_grads(&mut self, all: bool, in_loops: bool, seeded: &[bool]) {
        for (s, g) in self.grads.iter_mut().enumerate() {
            let later = in_loops && self.cleared_in_loop[s] && !seeded.get(s).copied().unwrap_or(false);
            if all || !(self.written[s] || later) {
                zero(g);
            }
        }
        for &k in &self.hosts {
            for n in &mut self.nested[k] {
                n.clear_grads(all, in_loops, &[]);
            }
        }
    }

    /// Whether this record was made for `spec` with these widths.
    pub fn same_graph(&self, spec: &'static GraphSpec, widths: &[usize]) -> bool {
        (std::ptr::eq(self.spec, spec) || self.spec.name == spec.name) && self.widths == widths
    }

    /// The record of the graph at `path` (host nodes from this one).
    #[inline]
    pub fn at(&self, path: &[Hop]) -> &Record<F> {
        let mut r = self;
        for h in path {
            r = &r.nested[h.node][h.layer];
        }
        r
    }

    /// The record of the graph at `path`, writable.
    #[inline]
    pub fn at_mut(&mut self, path: &[Hop]) -> &mut Record<F> {
        let mut r = self;
        for h in path {
            r = &mut r.nested[h.node][h.layer];
        }
        r
    }

    /// The slot named `name` here, or in a nested graph by its path
    /// (`layer1.h_next`), with the record that holds it and the hops to it
    /// (pushed onto `hops`).
    fn find(&self, name: &str, hops: &mut Vec<Hop>) -> Result<(&Record<F>, usize)> {
        if let Some(s) = (0..self.spec.slots()).find(|&s| self.spec.slot_name(s) == name) {
            return Ok((self, s));
        }
        if let Some((host, rest)) = name.split_once('.') {
            // A stack's layer by its index: `lstm[1].h_next`.
            let (host, layer) = match host.split_once('[') {
                Some((h, l)) => (h, l.strip_suffix(']').and_then(|l| l.parse().ok())),
                None => (host, Some(0)),
            };
            let k = self.spec.nodes.iter().position(|n| n.name == host);
            if let Some((k, l)) = k.zip(layer) {
                if let Some(inner) = self.nested[k].get(l) {
                    hops.push(Hop { node: k, layer: l });
                    return inner.find(rest, hops);
                }
            }
        }
        let known: Vec<&str> = (0..self.spec.slots()).map(|s| self.spec.slot_name(s)).collect();
        Err(Error::InvalidInput {
            graph: self.spec.name.to_string(),
            message: format!(
                "no input or node is named `{name}`; the names are {} (a nested graph's by its path, `node.inner`)",
                known.join(", ")
            ),
        })
    }
}

/// Where the nodes of a fused LSTM group keep their values and gradients.
/// The pass writes what backward needs and what the graph reads: the sum's
/// gradient (which its parts' are columns of, and, when nothing else reads
/// them, the projections' are), the four activations, `c_next`, `tanh_c`
/// and `h_next`; backward writes `c_next`'s gradient (which `f·c`'s and
/// `i·g`'s are). The rest is computed from those when read by name.
fn group_storage<F: Float>(record: &mut Record<F>, group: &crate::spec::LstmGates) {
    let spec = record.spec;
    let slot = |k: usize| spec.node_slot(k);
    for k in group.inner() {
        record.written[slot(k)] = true;
    }
    let value = |slot: usize| Operand { slot, grad: false };
    let grad = |slot: usize| Operand { slot, grad: true };
    let derived = |op: Op, x: Operand, y: Operand| Held::Derived(Derived { op, x, y });
    let (sum, ab) = (slot(group.sum), spec.nodes[group.sum].inputs);
    let width = record.widths[sum];
    record.hold(sum, derived(Op::Add, value(ab[0]), value(ab[1])), false);
    for (i, &k) in group.parts.iter().enumerate() {
        let part = Held::In(Within {
            slot: sum,
            start: i * width / 4,
            width: width / 4,
        });
        record.hold(slot(k), part, false);
        record.hold(slot(k), part, true);
    }
    // An input of the sum that nothing else reads has the sum's gradient.
    for (&s, sole) in ab.iter().zip(group.sole_inputs(spec)) {
        if sole {
            record.hold(
                s,
                Held::In(Within {
                    slot: sum,
                    start: 0,
                    width,
                }),
                true,
            );
        }
    }
    let (sig_i, sig_f, tanh_g, sig_o) = (
        slot(group.sig_i),
        slot(group.sig_f),
        slot(group.tanh_g),
        slot(group.sig_o),
    );
    let (c_next, tanh_c, h_next) = (slot(group.c_next), slot(group.tanh_c), slot(group.h_next));
    let c = group.c;
    record.hold(slot(group.f_c), derived(Op::Mul, value(sig_f), value(c)), false);
    record.hold(
        slot(group.i_g),
        derived(Op::Mul, value(sig_i), value(tanh_g)),
        false,
    );
    // `c_next = f·c + i·g`: both products have `c_next`'s gradient.
    let whole = Held::In(Within {
        slot: c_next,
        start: 0,
        width: record.widths[c_next],
    });
    record.hold(slot(group.f_c), whole, true);
    record.hold(slot(group.i_g), whole, true);
    // The CMul layers' input gradients: `h_next = σ(o)·tanh_c`, `f·c`, `i·g`.
    record.hold(sig_o, derived(Op::Mul, grad(h_next), value(tanh_c)), true);
    record.hold(tanh_c, derived(Op::Mul, grad(h_next), value(sig_o)), true);
    record.hold(sig_f, derived(Op::Mul, grad(c_next), value(c)), true);
    record.hold(sig_i, derived(Op::Mul, grad(c_next), value(tanh_g)), true);
    record.hold(tanh_g, derived(Op::Mul, grad(c_next), value(sig_i)), true);
}

/// The record of a pass of a graph over `T` steps of `B` samples (`T = 1`
/// for a single step): every input's and node's value and, after backward,
/// every gradient, one `(T·B, width)` matrix per slot, step `t` being rows
/// `t·B .. (t+1)·B` (a state input's block `t` holds the state entering
/// step `t`); each node's layer state; the records of nested graphs; and
/// the plan the passes follow.
///
/// Made by [`Graph::tape`](crate::Graph::tape), it remembers the graph and
/// widths it was made for: using it with another is an error, never a
/// panic. Reuse it: it reallocates only when `T` or `B` changes.
#[derive(Debug, Clone)]
pub struct Tape<F> {
    pub(crate) root: Record<F>,
    pub(crate) plan: Arc<Plan>,
    pub(crate) steps: usize,
    pub(crate) batch: usize,
    /// Whether the last forward pass completed (backward needs one).
    pub(crate) valid: bool,
    /// The parameters' generation that forward pass read: backward refuses
    /// parameters changed since (its gradients would be of other weights).
    pub(crate) weights: u64,
    /// Forward passes made on this tape: Dropout masks depend on it.
    pub(crate) calls: u64,
    /// Per recurrent pair: the state a carried pass starts from, kept from
    /// the last pass while the buffers are reused.
    pub(crate) carry: Vec<Array2<F>>,
    /// Per input: not given to the last pass.
    pub(crate) absent: Vec<bool>,
    /// Per unit of the plan: not run, because it depends on an absent input.
    pub(crate) skipped: Vec<bool>,
    pub(crate) any_skipped: bool,
    /// The slots of nested records held in an enclosing record's columns
    /// ([`Held::Outer`]): their record's path and the slot.
    outer_slots: Vec<(Vec<Hop>, usize)>,
    /// The gradient buffers backward clears step by step in a loop.
    pub(crate) loop_clears: Vec<crate::engine::clear::LoopClear>,
    /// Whether the last clearing left [`loop_clears`](Self::loop_clears)
    /// to the loops, and per top-level slot, whether it was given
    /// gradients before backward (it is cleared before then).
    pub(crate) clear_in_loops: bool,
    pub(crate) seeded: Vec<bool>,
}

impl<F: Float> Tape<F> {
    /// A tape over `root` (made with its nested records), following `plan`.
    pub(crate) fn new(mut root: Record<F>, plan: Plan) -> Self {
        let spec = root.spec;
        for u in 0..plan.units.len() {
            if let crate::engine::plan::UnitKind::Fused { fusion } = plan.units[u].kind {
                let record = root.at_mut(plan.path(u));
                let spec = record.spec;
                let crate::spec::Fusion::LstmGates(group) = &spec.fusions[fusion];
                group_storage(record, group);
            }
        }
        for (path, slot) in plan.elided_slots() {
            root.at_mut(path).kept[slot] = false;
        }
        let shared = crate::engine::copies::shared_states(&root, &plan);
        let mut outer_slots = Vec::with_capacity(shared.len());
        for state in shared {
            let record = root.at_mut(&state.path);
            record.outer.push(state.at);
            let held = Held::Outer(record.outer.len() - 1);
            record.hold(state.slot, held, false);
            if state.grads {
                record.hold(state.slot, held, true);
            }
            outer_slots.push((state.path, state.slot));
        }
        let loop_clears = crate::engine::clear::loop_clears(&root, &plan);
        for c in &loop_clears {
            root.at_mut(&c.path).cleared_in_loop[c.slot] = true;
        }
        Tape {
            outer_slots,
            loop_clears,
            clear_in_loops: false,
            seeded: Vec::new(),
            carry: spec.recurrent.iter().map(|_| Array2::zeros((0, 0))).collect(),
            absent: vec![false; spec.inputs.len()],
            skipped: vec![false; plan.units.len()],
            any_skipped: false,
            root,
            plan: Arc::new(plan),
            steps: 0,
            batch: 0,
            valid: false,
            weights: 0,
            calls: 0,
        }
    }

    /// Clears the gradients for a backward pass, before the top-level slots
    /// `seeded` are given theirs. A pass whose loops run step by step
    /// over many rows (more than one step, [`LOOP_CLEAR_ROWS`] in all)
    /// clears [`loop_clears`](Self::loop_clears) itself, in the loops, but
    /// those seeded.
    pub(crate) fn clear_grads(&mut self, seeded: impl Fn(usize) -> bool) {
        self.clear_in_loops = !self.any_skipped
            && self.steps > 1
            && self.steps * self.batch >= LOOP_CLEAR_ROWS
            && !self.loop_clears.is_empty();
        self.seeded.clear();
        self.seeded.extend((0..self.root.spec.slots()).map(seeded));
        self.root
            .clear_grads(self.any_skipped, self.clear_in_loops, &self.seeded);
    }

    /// Takes the addresses of every slot's values and gradients for a
    /// pass ([`Record::take_pointers`]), those of the slots held in an
    /// enclosing record's columns pointing there.
    pub(crate) fn take_pointers(&mut self) {
        self.root.take_pointers();
        for (path, slot) in &self.outer_slots {
            for grads in [false, true] {
                let record = self.root.at(path);
                let held = if grads {
                    record.grads_held[*slot]
                } else {
                    record.values_held[*slot]
                };
                let Held::Outer(i) = held else { continue };
                let o = &record.outer[i];
                let from = self.root.at(&o.path);
                let at = if grads {
                    from.grad_ptrs[o.slot]
                } else {
                    from.value_ptrs[o.slot]
                }
                .columns(&o.within());
                let record = self.root.at_mut(path);
                if grads {
                    record.grad_ptrs[*slot] = at;
                } else {
                    record.value_ptrs[*slot] = at;
                }
            }
        }
    }

    /// The name of the graph this tape was made for.
    pub fn graph(&self) -> &'static str {
        self.root.spec.name
    }

    /// The number of steps of the recorded pass (1 for a single step; 0
    /// before the first pass).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The batch size of the recorded pass (0 before the first pass).
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Whether the last forward pass completed, so that backward may run.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// The plan passes on this tape follow.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Forward passes made on this tape. Dropout masks depend on it and on
    /// the graph's seed, so successive passes draw different masks.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Sets the count of forward passes, so that the next pass draws the
    /// masks it would draw after that many: a resumed training run sets the
    /// count the interrupted run had reached, and continues exactly.
    pub fn set_calls(&mut self, calls: u64) {
        self.calls = calls;
    }

    /// Whether backward computes the gradient of the input named `name` (on
    /// by default). Turning it off for data saves a matrix product per layer
    /// it feeds, as torch's `requires_grad = False`; its gradient then stays
    /// zero. An error naming the graph if it has no such input.
    pub fn set_input_grad(&mut self, name: &str, on: bool) -> Result<()> {
        let i = input_named(self.root.spec, name)?;
        self.root.input_grads[i] = on;
        Ok(())
    }

    /// The recorded value of the input or node `name` over all steps,
    /// `(T·B, width)` (a nested graph's node by its path: `layer1.h_next`).
    /// The nodes of a fused LSTM group that its pass does not keep (the
    /// gates' sum and its parts, `σ(f)·c`, `σ(i)·tanh(g)`; for gradients,
    /// those of the activations) are computed at their first read after a
    /// pass, exactly as the nodes one by one compute them.
    pub fn value(&self, name: &str) -> Result<ArrayView2<'_, F>> {
        let (r, s) = self.slot(name)?;
        let (m, within) = r.whole(&self.root, s, false);
        Ok(columns(m, within))
    }

    /// The record and slot of `name`; an error for a slot the plan does not
    /// copy into (a nested graph's input or output it only passes on),
    /// naming where the value is.
    fn slot(&self, name: &str) -> Result<(&Record<F>, usize)> {
        let mut hops = Vec::new();
        let (r, s) = self.root.find(name, &mut hops)?;
        if let Some(source) = self.plan.elided(&hops, s) {
            return Err(Error::InvalidInput {
                graph: self.root.spec.name.to_string(),
                message: format!(
                    "`{name}` is not kept on the tape: its graph passes it on without a copy; read `{source}`"
                ),
            });
        }
        Ok((r, s))
    }

    /// The gradient of the loss with respect to the input or node `name`,
    /// `(T·B, width)`, valid after backward.
    pub fn grad(&self, name: &str) -> Result<ArrayView2<'_, F>> {
        let (r, s) = self.slot(name)?;
        let (m, within) = r.whole(&self.root, s, true);
        Ok(columns(m, within))
    }

    /// [`value`](Self::value) step by step, `(T, B, width)`.
    pub fn value_seq(&self, name: &str) -> Result<ArrayView3<'_, F>> {
        let (r, s) = self.slot(name)?;
        let (m, within) = r.whole(&self.root, s, false);
        Ok(columns(self.steps_view(m), within))
    }

    /// [`grad`](Self::grad) step by step, `(T, B, width)`.
    pub fn grad_seq(&self, name: &str) -> Result<ArrayView3<'_, F>> {
        let (r, s) = self.slot(name)?;
        let (m, within) = r.whole(&self.root, s, true);
        Ok(columns(self.steps_view(m), within))
    }

    /// The final value of the state input `name` (`#[recurrent(name = ..)]`)
    /// after the last pass, `(B, width)`: where
    /// [`Feed::Carry`](crate::Feed::Carry) starts the next one. An error if
    /// `name` is no state, or the last pass did not complete.
    pub fn final_state(&self, name: &str) -> Result<ArrayView2<'_, F>> {
        let spec = self.root.spec;
        let i = input_named(spec, name)?;
        let Some(&(_, o)) = spec.recurrent.iter().find(|&&(s, _)| s == i) else {
            return Err(Error::InvalidInput {
                graph: spec.name.to_string(),
                message: format!("input `{name}` is not a recurrent state"),
            });
        };
        if !self.valid {
            return Err(no_forward(spec, self.steps > 0));
        }
        let last = (self.steps - 1) * self.batch..self.steps * self.batch;
        Ok(row_range(&self.root.values[spec.output_slot(o)], last))
    }

    /// Output `o` over all rows, `(T·B, width)`: for generated code, which
    /// passes only indices of the graph's outputs (an empty view otherwise).
    #[doc(hidden)]
    pub fn __output(&self, o: usize) -> ArrayView2<'_, F> {
        self.slot_view(self.output_slot(o), false)
    }

    /// Output `o`, `(T, B, width)`.
    #[doc(hidden)]
    pub fn __output_seq(&self, o: usize) -> ArrayView3<'_, F> {
        self.steps_view_of(self.output_slot(o), false)
    }

    /// The gradient of input `i` over all rows, `(T·B, width)`.
    #[doc(hidden)]
    pub fn __input_grad(&self, i: usize) -> ArrayView2<'_, F> {
        self.slot_view(Some(i).filter(|&i| i < self.root.spec.inputs.len()), true)
    }

    /// The gradient of input `i`, `(T, B, width)`.
    #[doc(hidden)]
    pub fn __input_grad_seq(&self, i: usize) -> ArrayView3<'_, F> {
        self.steps_view_of(Some(i).filter(|&i| i < self.root.spec.inputs.len()), true)
    }

    /// The gradient of input `i` at step 0, `(B, width)`: for a state, the
    /// gradient of its initial value.
    #[doc(hidden)]
    pub fn __initial_grad(&self, i: usize) -> ArrayView2<'_, F> {
        match self.root.grads.get(i) {
            Some(g) if i < self.root.spec.inputs.len() => row_range(g, 0..self.batch.min(g.nrows())),
            _ => empty2(),
        }
    }

    fn output_slot(&self, o: usize) -> Option<usize> {
        (o < self.root.spec.outputs.len()).then(|| self.root.spec.output_slot(o))
    }

    fn slot_view(&self, slot: Option<usize>, grad: bool) -> ArrayView2<'_, F> {
        let buffers = if grad { &self.root.grads } else { &self.root.values };
        slot.and_then(|s| buffers.get(s))
            .map_or_else(empty2, |m| m.view())
    }

    fn steps_view_of(&self, slot: Option<usize>, grad: bool) -> ArrayView3<'_, F> {
        let buffers = if grad { &self.root.grads } else { &self.root.values };
        match slot.and_then(|s| buffers.get(s)) {
            Some(m) => self.steps_view(m.view()),
            None => ArrayView3::from_shape((0, 0, 0), &[]).expect("an empty view"),
        }
    }

    /// A row-major `(T·B, width)` matrix as `(T, B, width)`.
    fn steps_view<'a>(&self, m: ArrayView2<'a, F>) -> ArrayView3<'a, F> {
        let (rows, cols) = m.dim();
        let steps = rows.checked_div(self.batch).unwrap_or(0);
        m.into_shape_with_order((steps, self.batch, cols))
            .unwrap_or_else(|_| ArrayView3::from_shape((0, 0, cols), &[]).expect("an empty view"))
    }
}

fn empty2<'a, F>() -> ArrayView2<'a, F> {
    ArrayView2::from_shape((0, 0), &[]).expect("an empty view")
}

/// The index of the input named `name`, or an error naming the graph and
/// its inputs.
pub(crate) fn input_named(spec: &GraphSpec, name: &str) -> Result<usize> {
    spec.inputs.iter().position(|i| i.name == name).ok_or_else(|| {
        let names: Vec<&str> = spec.inputs.iter().map(|i| i.name).collect();
        Error::InvalidInput {
            graph: spec.name.to_string(),
            message: format!("no input is named `{name}`; the inputs are {}", names.join(", ")),
        }
    })
}

/// The index of the output named `name`, or an error naming the graph and
/// its outputs.
pub(crate) fn output_named(spec: &GraphSpec, name: &str) -> Result<usize> {
    spec.outputs.iter().position(|o| o.name == name).ok_or_else(|| {
        let names: Vec<&str> = spec.outputs.iter().map(|o| o.name).collect();
        Error::InvalidInput {
            graph: spec.name.to_string(),
            message: format!(
                "no output is named `{name}`; the outputs are {}",
                names.join(", ")
            ),
        }
    })
}

/// The columns `within` of a view of a whole slot (its last axis), or the
/// view for none.
fn columns<'a, F, D: ndarray::Dimension>(
    view: ndarray::ArrayView<'a, F, D>,
    within: Option<Within>,
) -> ndarray::ArrayView<'a, F, D> {
    match within {
        None => view,
        Some(w) => {
            let mut view = view;
            let last = ndarray::Axis(view.ndim() - 1);
            view.slice_axis_inplace(last, w.cols().into());
            view
        }
    }
}

/// Rows `rows` of a matrix: on our row-major buffers, a view of a
/// contiguous run of the data (ndarray's `slice(s![rows, ..])` took 40% of a
/// small graph's iteration).
#[inline]
pub(crate) fn row_range<F>(a: &Array2<F>, rows: Range<usize>) -> ArrayView2<'_, F> {
    if rows.start == 0 && rows.end == a.nrows() {
        return a.view();
    }
    let cols = a.ncols();
    match a.as_slice() {
        Some(data) if rows.start <= rows.end && rows.end <= a.nrows() => {
            let data = &data[rows.start * cols..rows.end * cols];
            // SAFETY: `data` holds exactly `rows.len() * cols` elements, which
            // the view reads in standard (row-major) layout.
            unsafe { ArrayView2::from_shape_ptr((rows.len(), cols), data.as_ptr()) }
        }
        _ => a.slice(ndarray::s![rows, ..]),
    }
}

/// [`row_range`], writable.
#[inline]
pub(crate) fn row_range_mut<F>(a: &mut Array2<F>, rows: Range<usize>) -> ArrayViewMut2<'_, F> {
    let (nrows, cols) = a.dim();
    if rows.start == 0 && rows.end == nrows {
        return a.view_mut();
    }
    if rows.start <= rows.end && rows.end <= nrows {
        if let Some(data) = a.as_slice_mut() {
            let data = &mut data[rows.start * cols..rows.end * cols];
            // SAFETY: `data` holds exactly `rows.len() * cols` elements, which
            // the view writes in standard (row-major) layout, borrowed
            // mutably for the view's lifetime.
            return unsafe { ArrayViewMut2::from_shape_ptr((rows.len(), cols), data.as_mut_ptr()) };
        }
    }
    a.slice_mut(ndarray::s![rows, ..])
}

/// Rows (`T·B`) from which a pass clears the gradients its loops write
/// first step by step in the loops (`engine::clear`): below, the buffers
/// fit in cache, and one `memset` each before the pass costs less than one
/// per step (the seed cell's W1, 5 rows: 2% of its time).
const LOOP_CLEAR_ROWS: usize = 256;

/// Sets every element to zero: a `memset` on the contiguous buffer (ndarray's
/// `fill` goes element by element, which showed in profiles of sequences).
pub(crate) fn zero<F: Float>(a: &mut Array2<F>) {
    match a.as_slice_memory_order_mut() {
        // A large buffer (a slot over all T·B rows) is cleared by the pool's
        // threads together, in runs.
        Some(s) => crate::kernels::for_row_runs(s.len(), 1, s.len(), s, |_, _, run| run.fill(F::zero())),
        None => a.fill(F::zero()),
    }
}

/// Makes `buffer` a `(rows, cols)` matrix, reallocating only when its shape
/// differs.
#[inline]
pub fn ensure_shape<F: Float>(buffer: &mut Array2<F>, rows: usize, cols: usize) {
    if buffer.dim() != (rows, cols) {
        *buffer = Array2::zeros((rows, cols));
    }
}

/// The error of a backward pass, or a read of values, on a tape whose last
/// forward pass failed (`ran`) or that has none.
pub(crate) fn no_forward(spec: &GraphSpec, ran: bool) -> Error {
    if ran {
        Error::InvalidInput {
            graph: spec.name.to_string(),
            message: "the last forward pass on this tape failed; run a forward pass that succeeds \
                      before backward"
                .to_string(),
        }
    } else {
        Error::NoForward {
            graph: spec.name.to_string(),
        }
    }
}
