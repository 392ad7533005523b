//! Running a recurrent graph over a sequence with ONE parameter set, and
//! backpropagation through time, with the loss written as a closure over
//! each step's outputs.
//!
//! torch7 cloned a cell T times and tied the clones' weights. Here there is
//! nothing to tie: every step runs the same graph, so a write to the
//! parameters is seen by every step by construction, and every step's
//! parameter gradients add up in the one gradient buffer. The graph's
//! `#[recurrent(input = output)]` pairs say which output feeds which input
//! at the next step.
//!
//! An [`Unroll`] is the sequence path ([`SeqTape`], the macro's plan) with
//! an index-addressed calling form: states and sequences as slices, a loss
//! closure called per step and output. Generated graphs also have the typed
//! form, `g.forward_seq(&mut seq, ..)` with names. Both run the same code.
//!
//! Buffers are kept between calls: a second call with the same length and
//! batch size allocates nothing.

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::seq::{self, SeqTape, Sequences, Start};
use crate::Float;
use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2};

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

/// A recurrent graph unrolled over a sequence: shared parameters, BPTT.
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
    seq: SeqTape<F>,
    /// Steps and batch size of the last completed forward (0 steps: none).
    steps: usize,
    batch: usize,
    /// Whether backward already ran on the last forward.
    backward_done: bool,
    /// For each declared input: `Some(k)` if it is the state of pair `k`.
    state_of_input: Vec<Option<usize>>,
    /// Declared indices of the value inputs that come from the sequence.
    sequence_inputs: Vec<usize>,
    n_outputs: usize,
    _graph: std::marker::PhantomData<fn(&G)>,
}

impl<F: Float, G: Graph<F>> Unroll<F, G> {
    /// An unroll for `graph`; buffers are sized by the first sequence.
    pub fn new(graph: &G) -> Self {
        let pairs = graph.recurrent_pairs();
        let n_inputs = graph.num_inputs();
        let state_of_input: Vec<Option<usize>> = (0..n_inputs)
            .map(|i| pairs.iter().position(|&(input, _)| input == i))
            .collect();
        let sequence_inputs = (0..n_inputs)
            .filter(|&i| state_of_input[i].is_none() && !graph.input_is_ids(i))
            .collect();
        Unroll {
            seq: graph.new_seq(),
            steps: 0,
            batch: 0,
            backward_done: false,
            state_of_input,
            sequence_inputs,
            n_outputs: graph.num_outputs(),
            _graph: std::marker::PhantomData,
        }
    }

    /// Runs the graph over `sequence`, starting from `initial`.
    ///
    /// - `initial`: one `(batch, width)` state per recurrent pair, in the
    ///   order of `#[recurrent(...)]`.
    /// - `sequence`: one `(steps, batch, width)` array per input that is not
    ///   a state, in declaration order.
    ///
    /// Clears the output gradients, ready for [`loss`](Self::loss) or
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
        values: &[ArrayView3<'_, F>],
        ids: &[ArrayView2<'_, usize>],
    ) -> Result<()> {
        // Until this pass completes there is nothing to run backward on.
        self.steps = 0;
        self.backward_done = false;
        seq::forward(graph, &mut self.seq, start, Sequences::Apart { values, ids })?;
        self.seq.clear_grads();
        self.steps = self.seq.steps();
        self.batch = self.seq.batch_size();
        Ok(())
    }

    /// Evaluates `loss` on every step's outputs, adds its gradient into the
    /// output gradients, and returns the total.
    pub fn loss(&mut self, mut loss: impl SequenceLoss<F>) -> Result<F> {
        let mut total = F::zero();
        for t in 0..self.steps {
            for o in 0..self.n_outputs {
                let (value, grad) = self.seq.output_and_grad_at(o, t);
                total += loss(t, o, value, Some(grad))?;
            }
        }
        Ok(total)
    }

    /// Evaluates `loss` on every step's outputs without touching gradients.
    pub fn loss_value(&self, mut loss: impl SequenceLoss<F>) -> Result<F> {
        let mut total = F::zero();
        for t in 0..self.steps {
            for o in 0..self.n_outputs {
                total += loss(t, o, self.seq.output_at(o, t), None)?;
            }
        }
        Ok(total)
    }

    /// Whether backward computes the gradients of the sequence inputs (on by
    /// default). Training on data does not need them: turning them off
    /// saves a matrix product for every layer a sequence input feeds. The
    /// states' gradients are always computed (BPTT needs them).
    pub fn set_sequence_grads(&mut self, on: bool) {
        for &i in &self.sequence_inputs {
            self.seq.set_input_grad(i, on);
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

    /// The sequence tape the passes run on: every node's values and
    /// gradients over all steps, by name.
    pub fn seq(&self) -> &SeqTape<F> {
        &self.seq
    }

    /// Output `o` at step `t`.
    pub fn output(&self, t: usize, o: usize) -> ArrayView2<'_, F> {
        assert!(t < self.steps, "step {t} of a sequence of {}", self.steps);
        self.seq.output_at(o, t)
    }

    /// The gradient buffer of output `o` at step `t`: add a loss gradient here.
    pub fn output_grad_mut(&mut self, t: usize, o: usize) -> ArrayViewMut2<'_, F> {
        assert!(t < self.steps, "step {t} of a sequence of {}", self.steps);
        self.seq.output_and_grad_at(o, t).1
    }

    /// The final value of the state of recurrent pair `k`.
    pub fn final_state(&self, k: usize) -> ArrayView2<'_, F> {
        self.seq.final_state(k)
    }

    /// Backpropagation through time, by the macro's plan: the nodes after
    /// the loop once over all steps, the loop from the last step to the
    /// first, then every parameter gradient once; they accumulate in
    /// `graph`.
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
        seq::backward(graph, &mut self.seq)
    }

    /// After [`backward`](Self::backward): the gradient for the initial
    /// state of recurrent pair `k`.
    pub fn initial_state_grad(&self, _graph: &G, k: usize) -> ArrayView2<'_, F> {
        self.seq.initial_state_grad(k)
    }

    /// After [`backward`](Self::backward): the gradient for sequence input
    /// `slot` (index among the non-state inputs) at step `t`.
    pub fn input_grad(&self, t: usize, slot: usize) -> ArrayView2<'_, F> {
        assert!(t < self.steps, "step {t} of a sequence of {}", self.steps);
        self.seq.input_grad_at(self.sequence_inputs[slot], t)
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
