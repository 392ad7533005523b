//! Whole sequences by the macro's plan (pre-loop nodes over all T·B rows,
//! the loop step by step, post-loop nodes over all rows, parameter gradients
//! once) against a step-by-step reference (`common::step_by_step`: one
//! tape per step through the single-step API), the PyTorch oracle and
//! finite differences.

mod common;

use common::step_by_step::StepByStep;
use common::*;
use nngraph::cells::{GruCell, LstmCell};
use nngraph::ndarray::s;
use nngraph::prelude::*;
use nngraph::runtime::{Objective, Phase, SeqInput};

const TOL: f64 = 1e-12;

graph! {
    /// A char model: embedding (pre), LSTM step (loop), output layer and
    /// loss (post).
    #[recurrent(h = h1, c = c1)]
    pub CharModel(x: usize, h: [6], c: [6], target: usize) -> (loss, h1, c1) {
        (h1, c1) = LstmCell<4, 6>(Embedding(7, 4)(x), h, c);
        loss = CrossEntropy()(Linear(6, 7)(h1), target);
    }

    /// A recurrent cell nested in a graph, with a post-loop output.
    #[recurrent(h = h1)]
    pub Wrapped(x: [3], h: [4]) -> (y, h1) {
        (out, h1) = SeedCell(Tanh()(Linear(3, 2)(x)), h);
        y = Sigmoid()(Linear(1, 2)(out));
    }
}

/// Deterministic values in about [-1, 1].
fn wave(shape: (usize, usize, usize), seed: f64) -> Array3<f64> {
    Array3::from_shape_fn(shape, |(t, b, j)| {
        ((t * 7 + b * 3 + j) as f64 * 0.37 + seed).sin()
    })
}

/// Runs `graph` both ways on the same inputs and output gradients, and
/// compares outputs, parameter gradients, initial-state and input gradients.
fn same_as_step_by_step<G: Graph<f64>>(graph: &mut G, initial: &[Array2<f64>], sequences: &[Array3<f64>]) {
    let spec = G::SPEC;
    let (steps, batch) = (sequences[0].dim().0, sequences[0].dim().1);
    let d_outputs: Vec<Array3<f64>> = (0..spec.outputs.len())
        .map(|o| wave((steps, batch, graph.output_width(o)), o as f64))
        .collect();

    // Step by step.
    graph.zero_grad();
    let mut unroll = StepByStep::new(graph);
    let views: Vec<_> = initial.iter().map(|a| a.view()).collect();
    let seqs: Vec<_> = sequences.iter().map(|a| a.view()).collect();
    unroll.forward(graph, &views, &seqs);
    for t in 0..steps {
        for (o, d) in d_outputs.iter().enumerate() {
            unroll.output_grad_mut(t, o).assign(&d.index_axis(Axis(0), t));
        }
    }
    unroll.backward(graph);
    let step_grads = graph.grads().to_vec();

    // Whole sequence.
    graph.zero_grad();
    let mut seq = graph.new_seq();
    let inputs: Vec<SeqInput<f64>> = sequences.iter().map(|a| SeqInput::Values(a.view())).collect();
    graph.forward_seq_inputs(&mut seq, &views, &inputs).unwrap();
    for t in 0..steps {
        for o in 0..spec.outputs.len() {
            assert_close(
                &format!("output {o} at step {t}"),
                seq.output(o).index_axis(Axis(0), t).iter().copied(),
                unroll.output(t, o).iter().copied(),
                TOL,
            );
        }
    }
    let ds: Vec<_> = d_outputs.iter().map(|a| a.view()).collect();
    graph.backward_seq_views(&mut seq, &ds).unwrap();
    assert_close(
        "parameter gradients",
        graph.grads().iter().copied(),
        step_grads,
        TOL,
    );
    for k in 0..spec.recurrent.len() {
        assert_close(
            &format!("initial state {k}"),
            seq.initial_state_grad(k).iter().copied(),
            unroll.initial_state_grad(k).iter().copied(),
            TOL,
        );
    }
    for (slot, &i) in unroll.sequence_inputs().iter().enumerate() {
        for t in 0..steps {
            assert_close(
                &format!("input {i} at step {t}"),
                seq.input_grad(i).index_axis(Axis(0), t).iter().copied(),
                unroll.input_grad(t, slot).iter().copied(),
                TOL,
            );
        }
    }
}

#[test]
fn the_seed_cell_plans_x2h_before_the_loop_and_the_output_layer_after() {
    let spec = <SeedCell<f64> as Graph<f64>>::SPEC;
    let phase = |name: &str| spec.nodes.iter().find(|n| n.name == name).unwrap().phase;
    assert_eq!(phase("x2h"), Phase::Pre);
    assert_eq!(phase("h2h"), Phase::Loop);
    assert_eq!(phase("new_h"), Phase::Loop);
    assert_eq!(phase("out"), Phase::Post);
    assert_eq!(phase("y"), Phase::Post);
}

#[test]
fn the_seed_cell_over_a_sequence_equals_step_by_step() {
    let mut cell = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(1));
    let h0 = Array2::from_shape_fn((3, 4), |(b, j)| 0.1 * (b + j) as f64);
    same_as_step_by_step(&mut cell, &[h0], &[wave((7, 3, 2), 0.5)]);
}

#[test]
fn lstm_and_gru_over_a_sequence_equal_step_by_step() {
    let mut lstm = LstmCell::<3, 5, f64>::new(&mut StdRng::seed_from_u64(2));
    let (h0, c0) = (Array2::from_elem((2, 5), 0.1), Array2::from_elem((2, 5), -0.2));
    same_as_step_by_step(&mut lstm, &[h0, c0], &[wave((6, 2, 3), 1.0)]);
    let mut gru = GruCell::<3, 5, f64>::new(&mut StdRng::seed_from_u64(3));
    same_as_step_by_step(
        &mut gru,
        &[Array2::from_elem((2, 5), 0.3)],
        &[wave((6, 2, 3), 2.0)],
    );
}

#[test]
fn a_nested_cell_over_a_sequence_equals_step_by_step() {
    let mut g = Wrapped::<f64>::new(&mut StdRng::seed_from_u64(4)).unwrap();
    same_as_step_by_step(
        &mut g,
        &[Array2::from_elem((2, 4), 0.05)],
        &[wave((5, 2, 3), 0.3)],
    );
}

#[test]
fn a_char_model_with_ids_and_a_loss_node_equals_step_by_step() {
    let mut g = CharModel::<f64>::new(&mut StdRng::seed_from_u64(5)).unwrap();
    let (steps, batch) = (6, 3);
    let x = Array2::from_shape_fn((steps, batch), |(t, b)| (t * 3 + b) % 7);
    let target = Array2::from_shape_fn((steps, batch), |(t, b)| (t + 2 * b + 1) % 7);
    let (h0, c0) = (Array2::zeros((batch, 6)), Array2::zeros((batch, 6)));
    // Step by step: the mean loss over T·B samples.
    let mut unroll = StepByStep::new(&g);
    unroll.forward_with_ids(&g, &[h0.view(), c0.view()], &[], &[x.view(), target.view()]);
    let scale = 1.0 / (steps * batch) as f64;
    let want = unroll.loss(|_, o, y, grad| {
        if o != 0 {
            return 0.0;
        }
        if let Some(mut g) = grad {
            g.fill(scale);
        }
        y.sum() * scale
    });
    unroll.backward(&mut g);
    let step_grads = g.grads().to_vec();
    g.zero_grad();
    // Whole sequence, seeded in one call.
    let mut seq = g.new_seq();
    g.forward_seq_inputs(
        &mut seq,
        &[h0.view(), c0.view()],
        &[SeqInput::Ids(x.view()), SeqInput::Ids(target.view())],
    )
    .unwrap();
    let loss = g.backward_seq_loss(&mut seq, Reduction::Mean).unwrap();
    assert!((loss - want).abs() < TOL, "{loss} vs {want}");
    assert_close("parameter gradients", g.grads().iter().copied(), step_grads, TOL);
}

#[test]
fn the_oracle_through_the_sequence_path() {
    let o = oracle("seed_oracle.json");
    let case = &o["rnn_cell_bptt"];
    let steps = case["T"].as_u64().unwrap() as usize;
    let mut cell = SeedCell::<f64>::zeros();
    set_seed_oracle_weights(cell.store_mut());
    let (h0, xs) = seed_inputs(steps);
    let mut seq = cell.new_seq();
    cell.forward_seq_inputs(&mut seq, &[h0.view()], &[SeqInput::Values(xs.view())])
        .unwrap();
    // Σ_t MSE(y_t, 1), and its gradient.
    let y = seq.output(0).to_owned();
    let loss: f64 = y.iter().map(|v| (v - 1.0) * (v - 1.0)).sum();
    assert!((loss - case["loss"].as_f64().unwrap()).abs() < TOL, "loss {loss}");
    let dy = y.mapv(|v| 2.0 * (v - 1.0));
    let dh = Array3::zeros((steps, 1, 4));
    cell.backward_seq_views(&mut seq, &[dy.view(), dh.view()])
        .unwrap();
    assert_oracle_grads(cell.store(), case, TOL);
    assert_close(
        "grad_h0",
        seq.initial_state_grad(0).iter().copied(),
        vec1(&case["grad_h0"]),
        TOL,
    );
    for (t, want) in case["grad_xs"].as_array().unwrap().iter().enumerate() {
        assert_close(
            &format!("grad_xs[{t}]"),
            seq.input_grad(0).index_axis(Axis(0), t).iter().copied(),
            vec1(want),
            TOL,
        );
    }
}

/// The sequence path as an objective for the gradient checker: the mean
/// loss of the char model, by every parameter.
struct SequenceLoss<'a> {
    g: &'a mut CharModel<f64>,
    seq: SeqTape<f64>,
    x: Array2<usize>,
    target: Array2<usize>,
}

impl Objective<f64> for SequenceLoss<'_> {
    fn variables(&self) -> Vec<(String, Vec<usize>)> {
        self.g
            .param_specs()
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect()
    }
    fn values_mut(&mut self, v: usize) -> &mut [f64] {
        let range = self.g.param_specs()[v].range();
        &mut self.g.params_mut()[range]
    }
    fn loss(&mut self) -> nngraph::Result<f64> {
        let (h0, c0) = (Array2::zeros((2, 6)), Array2::zeros((2, 6)));
        let ids = [SeqInput::Ids(self.x.view()), SeqInput::Ids(self.target.view())];
        self.g
            .forward_seq_inputs(&mut self.seq, &[h0.view(), c0.view()], &ids)?;
        Ok(self.seq.output(0).mean().unwrap())
    }
    fn gradient(&mut self) -> nngraph::Result<Vec<Vec<f64>>> {
        self.loss()?;
        self.g.zero_grad();
        self.g.backward_seq_loss(&mut self.seq, Reduction::Mean)?;
        let grads = self.g.grads().to_vec();
        Ok(self
            .g
            .param_specs()
            .iter()
            .map(|s| grads[s.range()].to_vec())
            .collect())
    }
}

#[test]
fn the_sequence_path_passes_finite_differences() {
    let mut g = CharModel::<f64>::new(&mut StdRng::seed_from_u64(6)).unwrap();
    let seq = g.new_seq();
    let mut objective = SequenceLoss {
        g: &mut g,
        seq,
        x: Array2::from_shape_fn((5, 2), |(t, b)| (t + b) % 7),
        target: Array2::from_shape_fn((5, 2), |(t, b)| (2 * t + b + 3) % 7),
    };
    let report = GradCheck::new().run(&mut objective).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn the_typed_sequence_api_names_states_sequences_and_outputs() {
    let mut cell = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(7));
    let (h0, xs) = (Array2::from_elem((2, 4), 0.1), wave((6, 2, 2), 0.2));
    let mut seq = cell.seq();
    let out = cell.forward_seq(&mut seq, &h0, &xs).unwrap();
    assert_eq!(out.y.dim(), (6, 2, 1));
    assert_eq!(out.new_h.dim(), (6, 2, 4));
    let (y, new_h) = (out.y.to_owned(), out.new_h.to_owned());
    // The same numbers as the untyped call.
    let mut untyped = cell.new_seq();
    cell.forward_seq_inputs(&mut untyped, &[h0.view()], &[SeqInput::Values(xs.view())])
        .unwrap();
    assert_eq!(untyped.output(0), y.view());
    let dy = wave((6, 2, 1), 1.0);
    let grads = cell
        .backward_seq(&mut seq, &dy, &Array3::zeros((6, 2, 4)))
        .unwrap();
    assert_eq!(grads.h.dim(), (2, 4));
    assert_eq!(grads.x.dim(), (6, 2, 2));
    // The carry form starts where the last pass ended: two halves give the
    // outputs of one whole pass.
    let mut halves = cell.seq();
    let first = cell
        .forward_seq(&mut halves, &h0, &xs.slice(s![0..3, .., ..]))
        .unwrap()
        .new_h
        .to_owned();
    let second = cell
        .forward_seq_carry(&mut halves, &xs.slice(s![3..6, .., ..]))
        .unwrap()
        .new_h
        .to_owned();
    assert_close(
        "first half",
        first.iter().copied(),
        new_h.slice(s![0..3, .., ..]).iter().copied(),
        TOL,
    );
    assert_close(
        "second half",
        second.iter().copied(),
        new_h.slice(s![3..6, .., ..]).iter().copied(),
        TOL,
    );
}
