//! The record of one forward pass: every input's and node's value, and after
//! backward every gradient, one `(batch, width)` matrix per slot; each
//! node's state (Dropout's mask); the tapes of nested graphs.
//!
//! A tape is made by a graph ([`Graph::new_tape`](crate::Graph::new_tape))
//! and remembers which graph and widths it was made for: using it with
//! another is an error, never a panic. It is reused across calls and
//! reallocates only when the batch size changes.

use crate::error::{Error, Result};
use crate::spec::GraphSpec;
use crate::Float;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use std::ops::Range;

/// The record of a forward pass of one graph: every input's and node's
/// value and, after backward, every gradient, one `(batch, width)` matrix
/// per slot; each node's state (Dropout's mask); the tapes of nested graphs.
///
/// Made by [`Graph::new_tape`](crate::Graph::new_tape) (or the graph's
/// `tape()`), it remembers the graph and widths it was made for: using it
/// with another is an error, never a panic. Reuse it: it reallocates only
/// when the batch size changes.
#[derive(Debug, Clone)]
pub struct Tape<F> {
    pub(crate) spec: &'static GraphSpec,
    /// Width of every slot (1 for an ids input).
    pub(crate) widths: Vec<usize>,
    pub(crate) batch: Option<usize>,
    /// Whether the last forward pass completed (backward needs one).
    pub(crate) valid: bool,
    pub(crate) values: Vec<Array2<F>>,
    pub(crate) grads: Vec<Array2<F>>,
    /// The ids of each ids input (empty for value inputs).
    pub(crate) ids: Vec<Vec<usize>>,
    /// Per node: state a layer keeps for backward.
    pub(crate) states: Vec<Array2<F>>,
    /// Per node: the tape of a nested graph, made by its first forward.
    pub(crate) nested: Vec<Option<Tape<F>>>,
    /// Per input: whether backward computes its gradient.
    pub(crate) input_grads: Vec<bool>,
    /// Forward calls made on this tape, and a stream number set by whoever
    /// keeps several tapes: together they seed Dropout reproducibly.
    pub(crate) calls: u64,
    pub(crate) stream: u64,
}

impl<F: Float> Tape<F> {
    /// An empty tape for a graph of this spec and slot widths.
    pub(crate) fn new(spec: &'static GraphSpec, widths: Vec<usize>) -> Self {
        let (slots, nodes, inputs) = (spec.slots(), spec.nodes.len(), spec.inputs.len());
        Tape {
            spec,
            widths,
            batch: None,
            valid: false,
            values: (0..slots).map(|_| Array2::zeros((0, 0))).collect(),
            grads: (0..slots).map(|_| Array2::zeros((0, 0))).collect(),
            ids: vec![Vec::new(); inputs],
            states: (0..nodes).map(|_| Array2::zeros((0, 0))).collect(),
            nested: vec![None; nodes],
            input_grads: vec![true; inputs],
            calls: 0,
            stream: 0,
        }
    }

    /// The name of the graph this tape was made for.
    pub fn graph(&self) -> &'static str {
        self.spec.name
    }

    /// The batch size of the recorded pass, or `None` before the first one.
    pub fn batch_size(&self) -> Option<usize> {
        self.batch
    }

    /// Whether the last forward pass completed, so that backward may run.
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Sizes every buffer for `batch` rows (a no-op when already so).
    pub fn resize(&mut self, batch: usize) {
        for (slot, (v, g)) in self.values.iter_mut().zip(&mut self.grads).enumerate() {
            let ids = slot < self.spec.inputs.len() && self.spec.inputs[slot].ids;
            let width = if ids { 0 } else { self.widths[slot] };
            ensure_shape(v, batch, width);
            ensure_shape(g, batch, width);
        }
        self.batch = Some(batch);
    }

    /// Sets every gradient buffer to zero, nested tapes' too.
    pub fn clear_grads(&mut self) {
        self.grads.iter_mut().for_each(zero);
        self.nested.iter_mut().flatten().for_each(Tape::clear_grads);
    }

    /// Whether backward computes the gradient of input `i` (on by default).
    /// Turning it off for data saves a matrix product per layer it feeds, as
    /// torch's `requires_grad = False`; its gradient then stays zero.
    ///
    /// # Panics
    /// If `i` is not an input of the graph, as slice indexing does.
    pub fn set_input_grad(&mut self, i: usize, on: bool) {
        self.input_grads[i] = on;
    }

    /// Sets the stream number: tapes kept side by side (one per step of a
    /// sequence) get different Dropout masks by having different streams.
    pub fn set_stream(&mut self, stream: u64) {
        self.stream = stream;
    }

    /// The recorded value of the input or node named `name`.
    pub fn value(&self, name: &str) -> Result<ArrayView2<'_, F>> {
        Ok(self.values[self.slot(name)?].view())
    }

    /// The gradient of the loss with respect to the input or node `name`,
    /// valid after backward.
    pub fn grad(&self, name: &str) -> Result<ArrayView2<'_, F>> {
        Ok(self.grads[self.slot(name)?].view())
    }

    fn slot(&self, name: &str) -> Result<usize> {
        (0..self.spec.slots())
            .find(|&s| self.spec.slot_name(s) == name)
            .ok_or_else(|| {
                let known: Vec<&str> = (0..self.spec.slots()).map(|s| self.spec.slot_name(s)).collect();
                Error::InvalidInput {
                    graph: self.spec.name.to_string(),
                    message: format!(
                        "no input or node is named `{name}`; the names are {}",
                        known.join(", ")
                    ),
                }
            })
    }

    /// The recorded value of input `i`.
    ///
    /// # Panics
    /// If `i` is not an input, as slice indexing does.
    pub fn input(&self, i: usize) -> ArrayView2<'_, F> {
        self.values[i].view()
    }

    /// Where value input `i` is written before a pass.
    ///
    /// # Panics
    /// If `i` is not an input, as slice indexing does.
    pub fn input_mut(&mut self, i: usize) -> ArrayViewMut2<'_, F> {
        self.values[i].view_mut()
    }

    /// Sets the ids of ids input `i`; the tape keeps its capacity, so this
    /// allocates only to grow.
    ///
    /// # Panics
    /// If `i` is not an input, as slice indexing does.
    pub fn set_ids(&mut self, i: usize, ids: &[usize]) {
        self.ids[i].clear();
        self.ids[i].extend_from_slice(ids);
    }

    /// The recorded ids of ids input `i` (empty for a value input).
    ///
    /// # Panics
    /// If `i` is not an input, as slice indexing does.
    pub fn input_ids(&self, i: usize) -> &[usize] {
        &self.ids[i]
    }

    /// The recorded value of output `o`.
    ///
    /// # Panics
    /// If `o` is not an output, as slice indexing does.
    pub fn output(&self, o: usize) -> ArrayView2<'_, F> {
        self.values[self.spec.output_slot(o)].view()
    }

    /// The gradient buffer of output `o`: add the loss gradient here before
    /// a backward pass.
    ///
    /// # Panics
    /// If `o` is not an output, as slice indexing does.
    pub fn output_grad_mut(&mut self, o: usize) -> ArrayViewMut2<'_, F> {
        self.grads[self.spec.output_slot(o)].view_mut()
    }

    /// The value of output `o` and its gradient buffer, at once (a loss
    /// reads the one and writes the other).
    ///
    /// # Panics
    /// If `o` is not an output, as slice indexing does.
    pub fn output_and_grad_mut(&mut self, o: usize) -> (ArrayView2<'_, F>, ArrayViewMut2<'_, F>) {
        let slot = self.spec.output_slot(o);
        (self.values[slot].view(), self.grads[slot].view_mut())
    }

    /// The gradient of input `i`, valid after backward.
    ///
    /// # Panics
    /// If `i` is not an input, as slice indexing does.
    pub fn input_grad(&self, i: usize) -> ArrayView2<'_, F> {
        self.grads[i].view()
    }

    /// Checks that this tape was made for the graph `spec` with these widths.
    pub(crate) fn check_owner(&self, spec: &'static GraphSpec, widths: &[usize]) -> Result<()> {
        let same_graph = std::ptr::eq(self.spec, spec) || self.spec.name == spec.name;
        if same_graph && self.widths == widths {
            return Ok(());
        }
        Err(Error::InvalidInput {
            graph: spec.name.to_string(),
            message: format!(
                "this tape was made by a graph `{}` with slot widths {:?}, not by this one (widths {:?}); \
                 make one with `tape()`",
                self.spec.name, self.widths, widths
            ),
        })
    }
}

/// Rows `rows` of a matrix: on our row-major buffers, a view of a
/// contiguous run of the data (ndarray's `slice(s![rows, ..])` took 40% of a
/// small graph's iteration).
#[inline]
pub(crate) fn row_range<F>(a: &Array2<F>, rows: Range<usize>) -> ArrayView2<'_, F> {
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

/// Sets every element to zero: a `memset` on the contiguous buffer (ndarray's
/// `fill` goes element by element, which showed in profiles of sequences).
pub(crate) fn zero<F: Float>(a: &mut Array2<F>) {
    match a.as_slice_memory_order_mut() {
        Some(s) => s.fill(F::zero()),
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
