//! What every generated graph is, seen from the runtime: the [`Graph`] and
//! [`Tape`] traits that unrolling, gradient checking and optimizers build on.
//!
//! A call flows like this: [`Graph::forward_views`] checks the inputs' shapes,
//! sizes the tape for the batch, copies the inputs into it and runs
//! [`Graph::forward_tape`] (generated: every node's layer in topological
//! order). [`Graph::backward_views`] checks the output gradients, clears the
//! tape's gradient buffers, adds the output gradients in and runs
//! [`Graph::backward_tape`] (generated: every node in reverse order, each
//! adding into its inputs' gradients and its parameters' gradients).

use crate::error::{Error, Pass, Result, Shape};
use crate::params::ParamStore;
use crate::Float;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// The record of one forward pass: every node's value and, after backward,
/// every node's gradient. Reused across calls; it reallocates only when the
/// batch size changes.
pub trait Tape<F: Float> {
    /// The batch size of the recorded pass, or `None` before the first one.
    fn batch_size(&self) -> Option<usize>;
    /// Sizes every buffer for `batch` rows (a no-op when already so).
    fn resize(&mut self, batch: usize);
    /// The recorded value of input `i`.
    fn input(&self, i: usize) -> ArrayView2<'_, F>;
    /// Where input `i` is written before [`Graph::forward_tape`].
    fn input_mut(&mut self, i: usize) -> ArrayViewMut2<'_, F>;
    /// Where ids input `i` is written before [`Graph::forward_tape`]; the
    /// tape keeps its capacity, so this allocates only to grow.
    fn set_ids(&mut self, i: usize, ids: &[usize]) {
        let _ = ids;
        panic!("input {i} holds values, not ids")
    }
    /// The recorded ids of ids input `i`.
    fn input_ids(&self, i: usize) -> &[usize] {
        panic!("input {i} holds values, not ids")
    }
    /// The recorded value of output `i`.
    fn output(&self, i: usize) -> ArrayView2<'_, F>;
    /// The gradient buffer of output `i`; add the loss gradient here before
    /// [`Graph::backward_tape`].
    fn output_grad_mut(&mut self, i: usize) -> ArrayViewMut2<'_, F>;
    /// The value of output `i` and its gradient buffer, at once (a loss
    /// reads the one and writes the other).
    fn output_and_grad_mut(&mut self, i: usize) -> (ArrayView2<'_, F>, ArrayViewMut2<'_, F>);
    /// The gradient of input `i`, valid after [`Graph::backward_tape`].
    fn input_grad(&self, i: usize) -> ArrayView2<'_, F>;
    /// Sets every gradient buffer to zero.
    fn clear_grads(&mut self);
    /// Whether backward computes the gradient of input `i` (on by default).
    /// Turning it off for data saves a matrix product per layer it feeds, as
    /// torch's `requires_grad = False`; [`input_grad`](Tape::input_grad)
    /// then stays zero.
    fn set_input_grad(&mut self, i: usize, on: bool);
}

/// A graph declared with `graph!`, as the runtime sees it.
pub trait Graph<F: Float> {
    /// The graph's typed record of activations.
    type Tape: Tape<F> + Clone + std::fmt::Debug;

    /// The graph's name, as declared.
    fn name(&self) -> &'static str;
    /// Input names, in declaration order.
    fn input_names(&self) -> &'static [&'static str];
    /// Output names, in declaration order.
    fn output_names(&self) -> &'static [&'static str];
    /// Width of input `i` (1 for an ids input).
    fn input_width(&self, i: usize) -> usize;
    /// Whether input `i` holds integer ids (`name: usize`) rather than values.
    fn input_is_ids(&self, i: usize) -> bool {
        let _ = i;
        false
    }
    /// Width of output `i`.
    fn output_width(&self, i: usize) -> usize;
    /// Recurrent state pairs `(input index, output index)`: the output feeds
    /// the input at the next step. Empty for a graph without `#[recurrent]`.
    fn recurrent_pairs(&self) -> &'static [(usize, usize)] {
        &[]
    }

    /// A fresh, empty tape.
    fn new_tape(&self) -> Self::Tape;
    /// Runs every node on the inputs already in `tape` (sized by [`Tape::resize`]).
    /// Fails only in checked mode, at the first node whose output is not finite.
    fn forward_tape(&self, tape: &mut Self::Tape) -> Result<()>;
    /// Propagates the gradients already in `tape`'s output buffers to every
    /// node and input, adding parameter gradients into the gradient buffer.
    /// Fails only in checked mode, at the first node whose gradient is not finite.
    fn backward_tape(&mut self, tape: &mut Self::Tape) -> Result<()>;

    /// The parameters and their gradients.
    fn store(&self) -> &ParamStore<F>;
    /// The parameters and their gradients, writable.
    fn store_mut(&mut self) -> &mut ParamStore<F>;

    /// Whether the graph is in training mode (Dropout active).
    fn is_training(&self) -> bool;
    /// Switches between training and evaluation mode.
    fn set_training(&mut self, training: bool);
    /// Whether checked mode is on: every node's output and gradient is
    /// tested for NaN and infinity, and the first offender is an error.
    fn is_checked(&self) -> bool;
    /// Turns checked mode on or off (off by default; off costs one branch per node).
    fn set_checked(&mut self, checked: bool);

    /// Checks `inputs` (one `(batch, width)` view per declared input), records
    /// them in `tape` and runs the forward pass.
    fn forward_views(&self, tape: &mut Self::Tape, inputs: &[ArrayView2<'_, F>]) -> Result<()> {
        let batch = check_inputs(self, inputs.len(), |i| Input::Values(inputs[i].view()))?;
        tape.resize(batch);
        for (i, x) in inputs.iter().enumerate() {
            tape.input_mut(i).assign(x);
        }
        self.forward_tape(tape)
    }

    /// Like [`forward_views`](Self::forward_views), for graphs with ids inputs.
    fn forward_inputs(&self, tape: &mut Self::Tape, inputs: &[Input<'_, F>]) -> Result<()> {
        let batch = check_inputs(self, inputs.len(), |i| inputs[i].clone())?;
        tape.resize(batch);
        for (i, x) in inputs.iter().enumerate() {
            match x {
                Input::Values(v) => tape.input_mut(i).assign(v),
                Input::Ids(ids) => tape.set_ids(i, ids),
            }
        }
        self.forward_tape(tape)
    }

    /// Checks `d_outputs` (one per declared output, each of its output's
    /// shape), and propagates them back through the pass recorded in `tape`.
    /// Parameter gradients accumulate until [`ParamStore::zero_grad`].
    fn backward_views(&mut self, tape: &mut Self::Tape, d_outputs: &[ArrayView2<'_, F>]) -> Result<()> {
        let graph = self.name();
        let batch = tape.batch_size().ok_or_else(|| Error::NoForward {
            graph: graph.to_string(),
        })?;
        let names = self.output_names();
        if d_outputs.len() != names.len() {
            return Err(Error::Arity {
                graph: graph.to_string(),
                what: "output gradients",
                expected: names.len(),
                found: d_outputs.len(),
            });
        }
        for (i, d) in d_outputs.iter().enumerate() {
            let expected = [batch, self.output_width(i)];
            if d.shape() != expected {
                return Err(Error::GradShape {
                    graph: graph.to_string(),
                    output: names[i].to_string(),
                    expected: Shape::from(&expected[..]),
                    found: Shape::from(d.shape()),
                });
            }
        }
        tape.clear_grads();
        for (i, d) in d_outputs.iter().enumerate() {
            let mut seed = tape.output_grad_mut(i);
            seed += d;
        }
        self.backward_tape(tape)
    }
}

/// One input of a forward call: values, or integer ids.
#[derive(Debug, Clone)]
pub enum Input<'a, F> {
    /// A `(batch, width)` matrix.
    Values(ArrayView2<'a, F>),
    /// One id per sample.
    Ids(&'a [usize]),
}

/// Checks the number, kinds, widths and batch sizes of a graph's inputs and
/// returns the batch size.
pub fn check_inputs<'a, F: Float, G: Graph<F> + ?Sized>(
    graph: &G,
    count: usize,
    input: impl Fn(usize) -> Input<'a, F>,
) -> Result<usize> {
    let names = graph.input_names();
    if count != names.len() {
        return Err(Error::Arity {
            graph: graph.name().to_string(),
            what: "inputs",
            expected: names.len(),
            found: count,
        });
    }
    let mut batch = None;
    for (i, name) in names.iter().enumerate() {
        let rows = match (input(i), graph.input_is_ids(i)) {
            (Input::Values(x), false) => {
                let width = graph.input_width(i);
                if x.ncols() != width {
                    return Err(Error::InputWidth {
                        graph: graph.name().to_string(),
                        input: name.to_string(),
                        expected: width,
                        found: x.ncols(),
                    });
                }
                x.nrows()
            }
            (Input::Ids(ids), true) => ids.len(),
            (_, is_ids) => {
                return Err(Error::InvalidInput {
                    graph: graph.name().to_string(),
                    message: format!(
                        "input `{name}` takes {}",
                        if is_ids { "integer ids" } else { "values, not ids" }
                    ),
                })
            }
        };
        match batch {
            None => batch = Some((i, rows)),
            Some((first, expected)) if expected != rows => {
                return Err(Error::BatchMismatch {
                    graph: graph.name().to_string(),
                    first: names[first].to_string(),
                    expected,
                    input: name.to_string(),
                    found: rows,
                })
            }
            Some(_) => {}
        }
    }
    Ok(batch.map_or(0, |(_, rows)| rows))
}

/// A seed for the tape being made: distinct for every tape of the process,
/// so that Dropout masks differ between the steps of a sequence.
pub fn next_tape_salt() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TAPES: AtomicU64 = AtomicU64::new(0);
    TAPES.fetch_add(1, Ordering::Relaxed)
}

/// What a forward pass needs to know besides the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// Training mode (Dropout active).
    pub training: bool,
    /// Checked mode (NaN and infinity are errors).
    pub checked: bool,
    /// Seed of Dropout masks.
    pub seed: u64,
}

/// The index of `name` in `names` (usable in constants); `usize::MAX` when
/// absent, which generated code reports before using it.
pub const fn position(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        if str_eq(names[i], name) {
            return i;
        }
        i += 1;
    }
    usize::MAX
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Mixes seeds for one Dropout mask (SplitMix64 finaliser).
pub fn mix_seed(a: u64, b: u64, c: u64, d: u64) -> u64 {
    let mut z = a ^ b.rotate_left(17) ^ c.rotate_left(34) ^ d.rotate_left(51);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Checked mode: the first NaN or infinity in `values` as an error naming
/// the node and where it is declared.
#[cold]
pub fn check_finite<F: Float>(
    graph: &str,
    node: &str,
    file: &str,
    line: u32,
    pass: Pass,
    values: ArrayView2<'_, F>,
) -> Result<()> {
    match values.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, v)) => Err(Error::NonFinite {
            graph: graph.to_string(),
            node: node.to_string(),
            file: file.to_string(),
            line,
            pass,
            step: None,
            index,
            value: Float::to_f64(*v),
        }),
    }
}

/// Makes `buffer` a `(rows, cols)` matrix, reallocating only when its shape
/// differs. Used by generated tapes.
#[inline]
pub fn ensure_shape<F: Float>(buffer: &mut Array2<F>, rows: usize, cols: usize) {
    if buffer.dim() != (rows, cols) {
        *buffer = Array2::zeros((rows, cols));
    }
}
