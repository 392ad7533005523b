//! A reference for passes over sequences: a recurrent graph run one step at
//! a time, one tape per step through the single-step API (`forward_feeds`
//! with one step's values, `backward_feeds`), the state carried and the
//! state gradient of step t + 1 added into step t's state output by hand.
//! The engine plans a sequence differently (hoisted nodes over all rows,
//! loops per recurrence), so agreeing with this means something.

use nngraph::ndarray::{Array2, Array3, ArrayView2, Axis};
use nngraph::prelude::*;

pub struct StepByStep<F: Float> {
    tapes: Vec<Tape<F>>,
    spec: &'static nngraph::runtime::GraphSpec,
}

impl<F: Float> StepByStep<F> {
    /// Runs `graph` on `feeds` (as a sequence pass takes them: `Seq` and
    /// `IdSeq` for the inputs that are not states, `Values` for each
    /// state's initial value) one step at a time.
    pub fn forward<G: Graph<F>>(graph: &G, feeds: &[Feed<'_, F>]) -> Self {
        let spec = G::SPEC;
        let steps = feeds
            .iter()
            .find_map(|f| match f {
                Feed::Seq(v) => Some(v.dim().0),
                Feed::IdSeq(x) => Some(x.dim().0),
                _ => None,
            })
            .expect("a sequence");
        let state_of = |i: usize| spec.recurrent.iter().position(|&(s, _)| s == i);
        let mut previous: Vec<Option<Array2<F>>> = spec.recurrent.iter().map(|_| None).collect();
        let mut tapes = Vec::new();
        for t in 0..steps {
            let ids: Vec<Vec<usize>> = feeds
                .iter()
                .map(|f| match f {
                    Feed::IdSeq(x) => x.index_axis(Axis(0), t).to_vec(),
                    _ => Vec::new(),
                })
                .collect();
            let step: Vec<Feed<'_, F>> = feeds
                .iter()
                .enumerate()
                .map(|(i, f)| match (f, state_of(i)) {
                    (_, Some(k)) if t > 0 => Feed::Values(previous[k].as_ref().expect("carried").view()),
                    (Feed::Seq(v), _) => Feed::Values(v.index_axis(Axis(0), t)),
                    (Feed::IdSeq(_), _) => Feed::Ids(&ids[i]),
                    (other, _) => other.reborrow(),
                })
                .collect();
            let mut tape = graph.tape();
            graph.forward_feeds(&mut tape, &step).unwrap();
            for (k, &(_, o)) in spec.recurrent.iter().enumerate() {
                previous[k] = Some(tape.value(spec.outputs[o].name).unwrap().to_owned());
            }
            tapes.push(tape);
        }
        StepByStep { tapes, spec }
    }

    /// Output `name` at step `t`.
    pub fn output(&self, t: usize, name: &str) -> ArrayView2<'_, F> {
        self.tapes[t].value(name).unwrap()
    }

    /// BPTT from one `(T, B, width)` gradient per output, from the last step
    /// to the first.
    pub fn backward<G: Graph<F>>(&mut self, graph: &mut G, d_outputs: &[Array3<F>]) {
        let spec = self.spec;
        for t in (0..self.tapes.len()).rev() {
            let mut grads: Vec<Array2<F>> = d_outputs
                .iter()
                .map(|d| d.index_axis(Axis(0), t).to_owned())
                .collect();
            if let Some(next) = self.tapes.get(t + 1) {
                for &(i, o) in spec.recurrent {
                    grads[o] += &next.grad(spec.inputs[i].name).unwrap();
                }
            }
            let feeds: Vec<Feed<'_, F>> = grads.iter().map(|g| Feed::Values(g.view())).collect();
            graph.backward_feeds(&mut self.tapes[t], &feeds).unwrap();
        }
    }

    /// The gradient of input `name` at step `t` (at step 0 for a state: its
    /// initial value's).
    pub fn input_grad(&self, t: usize, name: &str) -> ArrayView2<'_, F> {
        self.tapes[t].grad(name).unwrap()
    }

    pub fn steps(&self) -> usize {
        self.tapes.len()
    }
}
