//! Running a recurrent graph over a sequence with ONE parameter set, and
//! backpropagation through time.
//!
//! torch7 cloned a cell T times and tied the clones' weights. Here there is
//! nothing to tie: an [`Unroll`] keeps one [`Tape`] per step and every step
//! runs the same graph, so a write to the parameters is seen by every step
//! by construction, and every step's parameter gradients add up in the one
//! gradient buffer. The graph's `#[recurrent(input = output)]` pairs say
//! which output feeds which input at the next step.
//!
//! Tapes are kept between calls: a second call with the same length and
//! batch size allocates nothing.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::tape::{ensure_shape, Tape};
use crate::Float;
use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut2, Axis};

/// A loss over the outputs of a sequence: called once per step and output
/// with the output's value; returns that term of the loss and, when given a
/// gradient buffer, ADDS the term's gradient into it. Return `Ok(0)` for
/// outputs that carry no loss.
///
/// Arguments: `(step, output index, value, gradient buffer)`.
pub trait SequenceLoss<F>:
    FnMut(usize, usize, ArrayView2<'_, F>, Option<ArrayViewMut2<'_, F>>) -> Result<F>
{
}

impl<F, T> SequenceLoss<F> for T where
    T: FnMut(usize, usize, ArrayView2<'_, F>, Option<ArrayViewMut2<'_, F>>) -> Result<F>
{
}

/// A recurrent graph unrolled over a sequence: one tape per step, shared
/// parameters, BPTT.
///
/// Calls that take the graph's inputs return a `Result`. The accessors that
/// take a step `t` and an output or pair index (`output`, `input_grad`, ...)
/// panic on an index past [`steps`](Self::steps) or the graph's outputs,
/// as slice indexing does.
///
/// ```text
/// unroll.forward(&cell, &[h0.view()], &[xs.view()])?;   // xs: (T, batch, width)
/// let loss = unroll.loss(|t, out, y, grad| ...)?;       // seeds output gradients
/// unroll.backward(&mut cell)?;                          // into cell's gradient buffer
/// ```
#[derive(Debug, Clone)]
pub struct Unroll<F: Float, G: Graph<F>> {
    tapes: Vec<Tape<F>>,
    /// Whether backward already ran on the last forward.
    backward_done: bool,
    /// The parameter gradients before a checked backward, restored if it fails.
    saved_grads: Vec<F>,
    _graph: std::marker::PhantomData<fn(&G)>,
    steps: usize,
    batch: usize,
    /// The final state of the last forward, for truncated BPTT.
    carry: Vec<Array2<F>>,
    /// For each declared input: `Some(k)` if it is the state of pair `k`.
    state_of_input: Vec<Option<usize>>,
    /// Declared indices of the value inputs that come from the sequence.
    sequence_inputs: Vec<usize>,
    /// Declared indices of the ids inputs (`name: usize`), all from the sequence.
    id_inputs: Vec<usize>,
    n_outputs: usize,
    /// Whether backward computes the gradients of the sequence inputs.
    sequence_grads: bool,
}

enum Start<'a, 'b, F> {
    Given(&'a [ArrayView2<'b, F>]),
    Carry,
}

impl<F: Float, G: Graph<F>> Unroll<F, G> {
    /// An unroll for `graph`; tapes are made as sequences need them.
    pub fn new(graph: &G) -> Self {
        let pairs = graph.recurrent_pairs();
        let n_inputs = graph.num_inputs();
        let state_of_input: Vec<Option<usize>> = (0..n_inputs)
            .map(|i| pairs.iter().position(|&(input, _)| input == i))
            .collect();
        let sequence_inputs = (0..n_inputs)
            .filter(|&i| state_of_input[i].is_none() && !graph.input_is_ids(i))
            .collect();
        let id_inputs = (0..n_inputs).filter(|&i| graph.input_is_ids(i)).collect();
        Unroll {
            tapes: Vec::new(),
            backward_done: false,
            saved_grads: Vec::new(),
            _graph: std::marker::PhantomData,
            steps: 0,
            batch: 0,
            carry: pairs
                .iter()
                .map(|&(i, _)| Array2::zeros((0, graph.input_width(i))))
                .collect(),
            state_of_input,
            sequence_inputs,
            id_inputs,
            n_outputs: graph.num_outputs(),
            sequence_grads: true,
        }
    }

    /// Runs the graph over `sequence`, starting from `initial`.
    ///
    /// - `initial`: one `(batch, width)` state per recurrent pair, in the
    ///   order of `#[recurrent(...)]`.
    /// - `sequence`: one `(steps, batch, width)` array per input that is not
    ///   a state, in declaration order.
    ///
    /// Clears the gradients of every step, ready for [`loss`](Self::loss) or
    /// [`output_grad_mut`](Self::output_grad_mut).
    pub fn forward(
        &mut self,
        graph: &G,
        initial: &[ArrayView2<'_, F>],
        sequence: &[ArrayView3<'_, F>],
    ) -> Result<()> {
        self.run(graph, Start::Given(initial), sequence, &[])
    }

    /// Like [`forward`](Self::forward), for a graph with ids inputs
    /// (`name: usize`): `ids` holds one `(steps, batch)` array per ids
    /// input, in declaration order.
    pub fn forward_with_ids(
        &mut self,
        graph: &G,
        initial: &[ArrayView2<'_, F>],
        sequence: &[ArrayView3<'_, F>],
        ids: &[ArrayView2<'_, usize>],
    ) -> Result<()> {
        self.run(graph, Start::Given(initial), sequence, ids)
    }

    /// Like [`forward_carry`](Self::forward_carry), for a graph with ids inputs.
    pub fn forward_carry_with_ids(
        &mut self,
        graph: &G,
        sequence: &[ArrayView3<'_, F>],
        ids: &[ArrayView2<'_, usize>],
    ) -> Result<()> {
        self.run(graph, Start::Carry, sequence, ids)
    }

    /// Like [`forward`](Self::forward), but starts from the final state of
    /// the previous call, whose gradient is cut: truncated BPTT. Before any
    /// call the state is zero.
    pub fn forward_carry(&mut self, graph: &G, sequence: &[ArrayView3<'_, F>]) -> Result<()> {
        self.run(graph, Start::Carry, sequence, &[])
    }

    fn run(
        &mut self,
        graph: &G,
        start: Start<'_, '_, F>,
        sequence: &[ArrayView3<'_, F>],
        ids: &[ArrayView2<'_, usize>],
    ) -> Result<()> {
        let (steps, batch) = self.check(graph, &start, sequence, ids)?;
        if let Some(tape) = self.tapes.first() {
            // Tapes made by another graph (of other sizes) would not fit.
            tape.check_owner(G::SPEC, &graph.parts().1.widths)?;
        }
        // Until this pass completes there is nothing to run backward on.
        self.steps = 0;
        self.backward_done = false;
        let pairs = graph.recurrent_pairs();
        if let Start::Carry = start {
            for (carry, &(i, _)) in self.carry.iter_mut().zip(pairs) {
                if carry.nrows() != batch {
                    // No previous call with this batch size: start from zero.
                    ensure_shape(carry, batch, graph.input_width(i));
                    carry.fill(F::zero());
                }
            }
        }
        while self.tapes.len() < steps {
            let mut tape = graph.new_tape();
            // Each step its own Dropout masks.
            tape.set_stream(self.tapes.len() as u64);
            for &i in &self.sequence_inputs {
                tape.set_input_grad(i, self.sequence_grads);
            }
            self.tapes.push(tape);
        }
        for t in 0..steps {
            let (done, rest) = self.tapes.split_at_mut(t);
            let tape = &mut rest[0];
            tape.resize(batch);
            for (slot, &i) in self.sequence_inputs.iter().enumerate() {
                tape.input_mut(i).assign(&sequence[slot].index_axis(Axis(0), t));
            }
            for (slot, &i) in self.id_inputs.iter().enumerate() {
                let row = ids[slot].index_axis(Axis(0), t);
                tape.set_ids(i, row.as_slice().expect("checked: standard layout"));
            }
            for (k, &(i, o)) in pairs.iter().enumerate() {
                let mut dst = tape.input_mut(i);
                match (t, &start) {
                    (0, Start::Given(initial)) => dst.assign(&initial[k]),
                    (0, Start::Carry) => dst.assign(&self.carry[k]),
                    _ => dst.assign(&done[t - 1].output(o)),
                }
            }
            graph.forward_tape(tape).map_err(|e| e.at_step(t))?;
            tape.clear_grads();
        }
        for (k, &(i, o)) in pairs.iter().enumerate() {
            ensure_shape(&mut self.carry[k], batch, graph.input_width(i));
            self.carry[k].assign(&self.tapes[steps - 1].output(o));
        }
        self.steps = steps;
        self.batch = batch;
        Ok(())
    }

    fn check(
        &self,
        graph: &G,
        start: &Start<'_, '_, F>,
        sequence: &[ArrayView3<'_, F>],
        ids: &[ArrayView2<'_, usize>],
    ) -> Result<(usize, usize)> {
        let name = graph.name();
        let err = |message: String| Error::Sequence {
            graph: name.to_string(),
            message,
        };
        let pairs = graph.recurrent_pairs();
        let inputs = |i: usize| G::SPEC.inputs[i].name;
        if sequence.len() != self.sequence_inputs.len() {
            let names: Vec<&str> = self.sequence_inputs.iter().map(|&i| inputs(i)).collect();
            return Err(err(format!(
                "expected {} sequence(s) ({}), got {}",
                names.len(),
                names.join(", "),
                sequence.len()
            )));
        }
        let mut dims: Option<(usize, usize, &str)> = None;
        for (seq, &i) in sequence.iter().zip(&self.sequence_inputs) {
            let (steps, batch, width) = seq.dim();
            if width != graph.input_width(i) {
                return Err(Error::InputWidth {
                    graph: name.to_string(),
                    input: inputs(i).to_string(),
                    expected: graph.input_width(i),
                    found: width,
                });
            }
            match dims {
                None => dims = Some((steps, batch, inputs(i))),
                Some((s, b, first)) if (s, b) != (steps, batch) => {
                    return Err(err(format!(
                        "sequence `{}` is {steps} steps of batch {batch}, but `{first}` is {s} steps of batch {b}",
                        inputs(i)
                    )))
                }
                Some(_) => {}
            }
        }
        if ids.len() != self.id_inputs.len() {
            let names: Vec<&str> = self.id_inputs.iter().map(|&i| inputs(i)).collect();
            return Err(err(format!(
                "expected {} ids sequence(s) ({}), got {}",
                names.len(),
                names.join(", "),
                ids.len()
            )));
        }
        for (seq, &i) in ids.iter().zip(&self.id_inputs) {
            let (steps, batch) = seq.dim();
            if !seq.is_standard_layout() {
                return Err(err(format!(
                    "ids sequence `{}` must be in standard (row-major) layout",
                    inputs(i)
                )));
            }
            match dims {
                None => dims = Some((steps, batch, inputs(i))),
                Some((s, b, first)) if (s, b) != (steps, batch) => {
                    return Err(err(format!(
                        "ids sequence `{}` is {steps} steps of batch {batch}, but `{first}` is {s} steps of batch {b}",
                        inputs(i)
                    )))
                }
                Some(_) => {}
            }
        }
        let initial = match start {
            Start::Given(initial) => *initial,
            Start::Carry => &[],
        };
        if let Start::Given(_) = start {
            if initial.len() != pairs.len() {
                return Err(err(format!(
                    "expected {} initial state(s), one per recurrent pair, got {}",
                    pairs.len(),
                    initial.len()
                )));
            }
        }
        let mut batch = dims.map(|(_, b, _)| b);
        for (state, &(i, _)) in initial.iter().zip(pairs) {
            if state.ncols() != graph.input_width(i) {
                return Err(Error::InputWidth {
                    graph: name.to_string(),
                    input: inputs(i).to_string(),
                    expected: graph.input_width(i),
                    found: state.ncols(),
                });
            }
            match batch {
                None => batch = Some(state.nrows()),
                Some(b) if b != state.nrows() => {
                    return Err(err(format!(
                        "initial state `{}` has batch size {}, but the sequence has batch size {b}",
                        inputs(i),
                        state.nrows()
                    )))
                }
                Some(_) => {}
            }
        }
        let steps = match dims {
            Some((s, _, _)) => s,
            None => {
                return Err(err(
                    "the graph has no sequence input, so the number of steps is unknown".to_string(),
                ))
            }
        };
        if steps == 0 {
            return Err(err("the sequence has no steps".to_string()));
        }
        Ok((steps, batch.unwrap_or(0)))
    }

    /// Evaluates `loss` on every step's outputs, adds its gradient into the
    /// output gradients, and returns the total.
    pub fn loss(&mut self, mut loss: impl SequenceLoss<F>) -> Result<F> {
        let mut total = F::zero();
        for (t, tape) in self.tapes[..self.steps].iter_mut().enumerate() {
            for o in 0..self.n_outputs {
                let (value, grad) = tape.output_and_grad_mut(o);
                total += loss(t, o, value, Some(grad))?;
            }
        }
        Ok(total)
    }

    /// Evaluates `loss` on every step's outputs without touching gradients.
    pub fn loss_value(&self, mut loss: impl SequenceLoss<F>) -> Result<F> {
        let mut total = F::zero();
        for (t, tape) in self.tapes[..self.steps].iter().enumerate() {
            for o in 0..self.n_outputs {
                total += loss(t, o, tape.output(o), None)?;
            }
        }
        Ok(total)
    }

    /// Whether backward computes the gradients of the sequence inputs (on by
    /// default). Training on data does not need them: turning them off
    /// saves a matrix product per step for every layer a sequence input
    /// feeds. The states' gradients are always computed (BPTT needs them).
    pub fn set_sequence_grads(&mut self, on: bool) {
        self.sequence_grads = on;
        for tape in &mut self.tapes {
            for &i in &self.sequence_inputs {
                tape.set_input_grad(i, on);
            }
        }
    }

    /// Number of steps of the last forward.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Batch size of the last forward.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// The tape of step `t`.
    pub fn tape(&self, t: usize) -> &Tape<F> {
        &self.tapes[..self.steps][t]
    }

    /// Output `o` at step `t`.
    pub fn output(&self, t: usize, o: usize) -> ArrayView2<'_, F> {
        self.tape(t).output(o)
    }

    /// The gradient buffer of output `o` at step `t`: add a loss gradient here.
    pub fn output_grad_mut(&mut self, t: usize, o: usize) -> ArrayViewMut2<'_, F> {
        self.tapes[..self.steps][t].output_grad_mut(o)
    }

    /// The final value of the state of recurrent pair `k`.
    pub fn final_state(&self, k: usize) -> ArrayView2<'_, F> {
        self.carry[k].view()
    }

    /// Backpropagation through time: from the last step to the first, each
    /// step's state gradient flows into the previous step's state output;
    /// parameter gradients of every step accumulate in `graph`.
    ///
    /// Runs once per forward: a second call before the next forward is an
    /// error, since the state gradients of the first are already spent.
    pub fn backward(&mut self, graph: &mut G) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::NoForward {
                graph: graph.name().to_string(),
            });
        }
        if self.backward_done {
            return Err(Error::Sequence {
                graph: graph.name().to_string(),
                message: "backward already ran on this forward pass; run forward (and the loss) again"
                    .to_string(),
            });
        }
        self.backward_done = true;
        let checked = graph.is_checked();
        if checked {
            self.saved_grads.clear();
            self.saved_grads.extend_from_slice(graph.grads());
        }
        let result = self.backward_steps(graph);
        if checked && result.is_err() {
            // A failed check leaves the gradients as they were before the call.
            graph.grads_mut().copy_from_slice(&self.saved_grads);
        }
        result
    }

    fn backward_steps(&mut self, graph: &mut G) -> Result<()> {
        let pairs = graph.recurrent_pairs();
        for t in (0..self.steps).rev() {
            let (head, tail) = self.tapes.split_at_mut(t + 1);
            let tape = &mut head[t];
            if t + 1 < self.steps {
                for &(i, o) in pairs {
                    let mut state_grad = tape.output_grad_mut(o);
                    state_grad += &tail[0].input_grad(i);
                }
            }
            graph.backward_tape(tape).map_err(|e| e.at_step(t))?;
        }
        Ok(())
    }

    /// After [`backward`](Self::backward): the gradient for the initial
    /// state of recurrent pair `k`.
    pub fn initial_state_grad(&self, graph: &G, k: usize) -> ArrayView2<'_, F> {
        let (i, _) = graph.recurrent_pairs()[k];
        self.tape(0).input_grad(i)
    }

    /// After [`backward`](Self::backward): the gradient for sequence input
    /// `slot` (index among the non-state inputs) at step `t`.
    pub fn input_grad(&self, t: usize, slot: usize) -> ArrayView2<'_, F> {
        self.tape(t).input_grad(self.sequence_inputs[slot])
    }

    /// Declared indices of the inputs read from the sequence, in order.
    pub fn sequence_inputs(&self) -> &[usize] {
        &self.sequence_inputs
    }

    /// For each declared input, the recurrent pair it is the state of.
    pub fn state_of_input(&self) -> &[Option<usize>] {
        &self.state_of_input
    }
}
