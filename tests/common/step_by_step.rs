//! A reference for the sequence path: a recurrent graph run one step at a
//! time through its single-step API (one `Tape` per step, `forward_tape` and
//! `backward_tape`), the state gradient of step t + 1 added by hand into
//! step t's state output. Written apart from the runtime's sequence code so
//! that comparing the two means something.

use nngraph::ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut2, Axis};
use nngraph::prelude::*;
use nngraph::runtime::Tape;

pub struct StepByStep<F: Float> {
    tapes: Vec<Tape<F>>,
    outputs: usize,
    pairs: &'static [(usize, usize)],
    /// Declared indices of the value inputs that are not states.
    values: Vec<usize>,
    /// Declared indices of the ids inputs.
    ids: Vec<usize>,
}

impl<F: Float> StepByStep<F> {
    pub fn new<G: Graph<F>>(graph: &G) -> Self {
        let pairs = graph.recurrent_pairs();
        let is_state = |i: usize| pairs.iter().any(|&(s, _)| s == i);
        let n = graph.num_inputs();
        StepByStep {
            tapes: Vec::new(),
            outputs: graph.num_outputs(),
            pairs,
            values: (0..n)
                .filter(|&i| !is_state(i) && !graph.input_is_ids(i))
                .collect(),
            ids: (0..n).filter(|&i| graph.input_is_ids(i)).collect(),
        }
    }

    pub fn forward<G: Graph<F>>(
        &mut self,
        graph: &G,
        initial: &[ArrayView2<'_, F>],
        values: &[ArrayView3<'_, F>],
    ) {
        self.forward_with_ids(graph, initial, values, &[]);
    }

    pub fn forward_with_ids<G: Graph<F>>(
        &mut self,
        graph: &G,
        initial: &[ArrayView2<'_, F>],
        values: &[ArrayView3<'_, F>],
        ids: &[ArrayView2<'_, usize>],
    ) {
        let (steps, batch) = match (values.first(), ids.first()) {
            (Some(v), _) => (v.dim().0, v.dim().1),
            (None, Some(i)) => i.dim(),
            (None, None) => panic!("no sequence"),
        };
        self.tapes = (0..steps)
            .map(|t| {
                let mut tape = graph.new_tape();
                // Each step its own Dropout masks.
                tape.set_stream(t as u64);
                tape
            })
            .collect();
        let mut previous: Vec<Array2<F>> = initial.iter().map(|s| s.to_owned()).collect();
        for t in 0..steps {
            let tape = &mut self.tapes[t];
            tape.resize(batch);
            for (k, &i) in self.values.iter().enumerate() {
                tape.input_mut(i).assign(&values[k].index_axis(Axis(0), t));
            }
            for (k, &i) in self.ids.iter().enumerate() {
                let row = ids[k].index_axis(Axis(0), t).to_vec();
                tape.set_ids(i, &row);
            }
            for (k, &(i, _)) in self.pairs.iter().enumerate() {
                tape.input_mut(i).assign(&previous[k]);
            }
            graph.forward_tape(tape).unwrap();
            tape.clear_grads();
            for (k, &(_, o)) in self.pairs.iter().enumerate() {
                previous[k] = tape.output(o).to_owned();
            }
        }
    }

    pub fn output(&self, t: usize, o: usize) -> ArrayView2<'_, F> {
        self.tapes[t].output(o)
    }

    pub fn output_grad_mut(&mut self, t: usize, o: usize) -> ArrayViewMut2<'_, F> {
        self.tapes[t].output_grad_mut(o)
    }

    /// Calls `loss(t, o, value, grad)` on every step's outputs, as a
    /// closure over each output would; returns the total.
    pub fn loss(
        &mut self,
        mut loss: impl FnMut(usize, usize, ArrayView2<'_, F>, Option<ArrayViewMut2<'_, F>>) -> F,
    ) -> F {
        let mut total = F::zero();
        for (t, tape) in self.tapes.iter_mut().enumerate() {
            for o in 0..self.outputs {
                let (value, grad) = tape.output_and_grad_mut(o);
                total += loss(t, o, value, Some(grad));
            }
        }
        total
    }

    /// BPTT from the last step to the first.
    pub fn backward<G: Graph<F>>(&mut self, graph: &mut G) {
        for t in (0..self.tapes.len()).rev() {
            let (head, tail) = self.tapes.split_at_mut(t + 1);
            if let Some(next) = tail.first() {
                for &(i, o) in self.pairs {
                    let mut d = head[t].output_grad_mut(o);
                    d += &next.input_grad(i);
                }
            }
            graph.backward_tape(&mut head[t]).unwrap();
        }
    }

    pub fn initial_state_grad(&self, k: usize) -> ArrayView2<'_, F> {
        self.tapes[0].input_grad(self.pairs[k].0)
    }

    /// The gradient of value input `slot` (among the non-state value
    /// inputs) at step `t`.
    pub fn input_grad(&self, t: usize, slot: usize) -> ArrayView2<'_, F> {
        self.tapes[t].input_grad(self.values[slot])
    }

    /// Declared indices of the non-state value inputs.
    pub fn sequence_inputs(&self) -> &[usize] {
        &self.values
    }
}
