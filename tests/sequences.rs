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
use nngraph::runtime::Objective;

#[path = "common/lstm_layer.rs"]
mod lstm_layer;

const TOL: f64 = 1e-12;

graph! {
    /// A char model: embedding (pre), LSTM step (loop), output layer and
    /// loss (post).
    #[recurrent(h = h1, c = c1)]
    pub CharModel(x: usize, h: [6], c: [6], target: usize) -> (loss, h1, c1) {
        (h1, c1) = LstmCell<4, 6>(Embedding(7, 4)(x), h, c);
        loss = CrossEntropy()(Linear(6, 7)(h1), target);
    }

    /// `LstmCell`'s equations with an `Identity` on `f·c`, which keeps the
    /// runtime from fusing the gate arithmetic: the same numbers node by
    /// node.
    #[recurrent(h = h_next, c = c_next)]
    pub UnfusedLstm(x: [3], h: [5], c: [5]) -> (h_next, c_next) {
        #[params(weight = weight_ih, bias = bias_ih)]
        ih = Linear(3, 20)(x);
        #[params(weight = weight_hh, bias = bias_hh)]
        hh = Linear(5, 20)(h);
        (i, f, g, o) = Split(4)(CAdd()(ih, hh));
        c_next = CAdd()(Identity()(CMul()(Sigmoid()(f), c)), CMul()(Sigmoid()(i), Tanh()(g)));
        h_next = CMul()(Sigmoid()(o), Tanh()(c_next));
    }

    /// Two nested LSTM layers (a loop each) and a projection.
    #[recurrent(h1 = h1_next, c1 = c1_next, h2 = h2_next, c2 = c2_next)]
    pub TwoLayers(x: [3], h1: [5], c1: [5], h2: [5], c2: [5]) -> (y, h1_next, c1_next, h2_next, c2_next) {
        (h1_next, c1_next) = lstm_layer::Layer[3, 5](x, h1, c1);
        (h2_next, c2_next) = lstm_layer::Layer[5, 5](h1_next, h2, c2);
        y = Linear(5, 2)(h2_next);
    }

    /// The same two layers as a stack: each state one group of both layers'.
    #[recurrent(h = h_n, c = c_n)]
    pub TwoStacked(x: [3], h: [10], c: [10]) -> (y, h_n, c_n) {
        (top, h_n, c_n) = Stack(2, lstm_layer::Layer[3, 5], lstm_layer::Layer[5, 5])(x, h, c);
        y = Linear(5, 2)(top);
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

/// The gradient of input `name` at the first step (an initial state's).
fn first_step_grad(tape: &Tape<f64>, name: &str) -> Vec<f64> {
    tape.grad_seq(name)
        .unwrap()
        .index_axis(Axis(0), 0)
        .iter()
        .copied()
        .collect()
}

/// Runs `graph` both ways on the same inputs and output gradients, and
/// compares outputs, parameter gradients, initial-state and input gradients.
fn same_as_step_by_step<G: Graph<f64>>(graph: &mut G, feeds: &[Feed<f64>]) {
    let spec = G::SPEC;
    let (steps, batch) = feeds
        .iter()
        .find_map(|f| match f {
            Feed::Seq(v) => Some((v.dim().0, v.dim().1)),
            _ => None,
        })
        .unwrap();
    let d_outputs: Vec<Array3<f64>> = spec
        .outputs
        .iter()
        .enumerate()
        .map(|(o, out)| wave((steps, batch, graph.output_width(out.name).unwrap()), o as f64))
        .collect();

    // Step by step.
    graph.zero_grad();
    let mut reference = StepByStep::forward(graph, feeds);
    reference.backward(graph, &d_outputs);
    let step_grads = graph.grads().to_vec();

    // Whole sequence.
    graph.zero_grad();
    let mut tape = graph.tape();
    graph.forward_feeds(&mut tape, feeds).unwrap();
    for t in 0..steps {
        for out in spec.outputs {
            assert_close(
                &format!("output {} at step {t}", out.name),
                tape.value_seq(out.name)
                    .unwrap()
                    .index_axis(Axis(0), t)
                    .iter()
                    .copied(),
                reference.output(t, out.name).iter().copied(),
                TOL,
            );
        }
    }
    let ds: Vec<Feed<f64>> = d_outputs.iter().map(|a| Feed::Seq(a.view())).collect();
    graph.backward_feeds(&mut tape, &ds).unwrap();
    assert_close(
        "parameter gradients",
        graph.grads().iter().copied(),
        step_grads,
        TOL,
    );
    for &(i, _) in spec.recurrent {
        let name = spec.inputs[i].name;
        assert_close(
            &format!("initial state {name}"),
            first_step_grad(&tape, name),
            reference.input_grad(0, name).iter().copied(),
            TOL,
        );
    }
    for (i, input) in spec.inputs.iter().enumerate() {
        if input.ids || spec.recurrent.iter().any(|&(s, _)| s == i) {
            continue;
        }
        for t in 0..steps {
            assert_close(
                &format!("input {} at step {t}", input.name),
                tape.grad_seq(input.name)
                    .unwrap()
                    .index_axis(Axis(0), t)
                    .iter()
                    .copied(),
                reference.input_grad(t, input.name).iter().copied(),
                TOL,
            );
        }
    }
}

#[test]
fn the_seed_cell_plans_x2h_once_and_the_recurrence_in_a_loop() {
    let cell = SeedCell::<f64>::zeros();
    let plan = cell.plan();
    let segment = |name: &str| plan.segment_of(name).unwrap();
    assert!(!plan.is_loop(segment("x2h")));
    assert!(plan.is_loop(segment("h2h")));
    assert!(plan.is_loop(segment("new_h")));
    assert!(!plan.is_loop(segment("out")));
    assert!(!plan.is_loop(segment("y")));
    assert!(segment("x2h") < segment("h2h") && segment("h2h") < segment("out"));
}

#[test]
fn the_seed_cell_over_a_sequence_equals_step_by_step() {
    let mut cell = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(1));
    let h0 = Array2::from_shape_fn((3, 4), |(b, j)| 0.1 * (b + j) as f64);
    let xs = wave((7, 3, 2), 0.5);
    same_as_step_by_step(&mut cell, &[Feed::Seq(xs.view()), Feed::Values(h0.view())]);
}

#[test]
fn lstm_and_gru_over_a_sequence_equal_step_by_step() {
    let mut lstm = LstmCell::<3, 5, f64>::new(&mut StdRng::seed_from_u64(2));
    let (h0, c0) = (Array2::from_elem((2, 5), 0.1), Array2::from_elem((2, 5), -0.2));
    let xs = wave((6, 2, 3), 1.0);
    same_as_step_by_step(
        &mut lstm,
        &[
            Feed::Seq(xs.view()),
            Feed::Values(h0.view()),
            Feed::Values(c0.view()),
        ],
    );
    let mut gru = GruCell::<3, 5, f64>::new(&mut StdRng::seed_from_u64(3));
    let (xs, h0) = (wave((6, 2, 3), 2.0), Array2::from_elem((2, 5), 0.3));
    same_as_step_by_step(&mut gru, &[Feed::Seq(xs.view()), Feed::Values(h0.view())]);
}

#[test]
fn a_nested_cell_over_a_sequence_equals_step_by_step() {
    let mut g = Wrapped::<f64>::new(&mut StdRng::seed_from_u64(4)).unwrap();
    let (xs, h0) = (wave((5, 2, 3), 0.3), Array2::from_elem((2, 4), 0.05));
    same_as_step_by_step(&mut g, &[Feed::Seq(xs.view()), Feed::Values(h0.view())]);
}

#[test]
fn a_char_model_with_ids_and_a_loss_node_equals_step_by_step() {
    let mut g = CharModel::<f64>::new(&mut StdRng::seed_from_u64(5)).unwrap();
    let (steps, batch) = (6, 3);
    let x = Array2::from_shape_fn((steps, batch), |(t, b)| (t * 3 + b) % 7);
    let target = Array2::from_shape_fn((steps, batch), |(t, b)| (t + 2 * b + 1) % 7);
    let (h0, c0) = (Array2::zeros((batch, 6)), Array2::zeros((batch, 6)));
    let feeds = [
        Feed::IdSeq(x.view()),
        Feed::Values(h0.view()),
        Feed::Values(c0.view()),
        Feed::IdSeq(target.view()),
    ];
    // Step by step: the mean loss over T·B samples, seeded by hand.
    let mut reference = StepByStep::forward(&g, &feeds);
    let scale = 1.0 / (steps * batch) as f64;
    let want: f64 = (0..steps)
        .map(|t| reference.output(t, "loss").sum() * scale)
        .sum();
    let d_outputs = vec![
        Array3::from_elem((steps, batch, 1), scale),
        Array3::zeros((steps, batch, 6)),
        Array3::zeros((steps, batch, 6)),
    ];
    reference.backward(&mut g, &d_outputs);
    let step_grads = g.grads().to_vec();
    g.zero_grad();
    // Whole sequence, seeded in one call.
    let mut tape = g.tape();
    g.forward_feeds(&mut tape, &feeds).unwrap();
    let loss = g.backward_loss(&mut tape, Reduction::Mean).unwrap();
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
    let mut tape = cell.tape();
    let y = cell.forward_seq(&mut tape, &xs, &h0).unwrap().y.to_owned();
    // Σ_t MSE(y_t, 1), and its gradient; none for the state output.
    let loss: f64 = y.iter().map(|v| (v - 1.0) * (v - 1.0)).sum();
    assert!((loss - case["loss"].as_f64().unwrap()).abs() < TOL, "loss {loss}");
    let dy = y.mapv(|v| 2.0 * (v - 1.0));
    let grads = cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
    assert_oracle_grads(cell.store(), case, TOL);
    assert_close("grad_h0", grads.h.iter().copied(), vec1(&case["grad_h0"]), TOL);
    for (t, want) in case["grad_xs"].as_array().unwrap().iter().enumerate() {
        assert_close(
            &format!("grad_xs[{t}]"),
            grads.x.index_axis(Axis(0), t).iter().copied(),
            vec1(want),
            TOL,
        );
    }
}

/// The sequence path as an objective for the gradient checker: the mean
/// loss of the char model, by every parameter.
struct SequenceLoss<'a> {
    g: &'a mut CharModel<f64>,
    tape: Tape<f64>,
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
        let out = self
            .g
            .forward_seq(&mut self.tape, &self.x, &Absent, &Absent, &self.target)?;
        Ok(out.loss.mean().unwrap())
    }
    fn gradient(&mut self) -> nngraph::Result<Vec<Vec<f64>>> {
        self.loss()?;
        self.g.zero_grad();
        self.g.backward_loss(&mut self.tape, Reduction::Mean)?;
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
    let tape = g.tape();
    let mut objective = SequenceLoss {
        g: &mut g,
        tape,
        x: Array2::from_shape_fn((5, 2), |(t, b)| (t + b) % 7),
        target: Array2::from_shape_fn((5, 2), |(t, b)| (2 * t + b + 3) % 7),
    };
    let report = GradCheck::new().run(&mut objective).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn the_typed_sequence_api_takes_inputs_in_declaration_order_and_names_outputs() {
    let mut cell = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(7));
    let (h0, xs) = (Array2::from_elem((2, 4), 0.1), wave((6, 2, 2), 0.2));
    let mut tape = cell.tape();
    let out = cell.forward_seq(&mut tape, &xs, &h0).unwrap();
    assert_eq!(out.y.dim(), (6, 2, 1));
    assert_eq!(out.new_h.dim(), (6, 2, 4));
    let (y, new_h) = (out.y.to_owned(), out.new_h.to_owned());
    // The same numbers as the untyped call, and as the tape read by name.
    let mut untyped = cell.tape();
    cell.forward_feeds(&mut untyped, &[Feed::Seq(xs.view()), Feed::Values(h0.view())])
        .unwrap();
    assert_eq!(untyped.value_seq("y").unwrap(), y.view());
    let dy = wave((6, 2, 1), 1.0);
    let grads = cell
        .backward_seq(&mut tape, &dy, &Array3::zeros((6, 2, 4)))
        .unwrap();
    assert_eq!(grads.h.dim(), (2, 4));
    assert_eq!(grads.x.dim(), (6, 2, 2));
    // A gradient not given is zero.
    let (gh, gx) = (grads.h.to_owned(), grads.x.to_owned());
    let absent = cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
    assert_eq!(absent.h, gh.view());
    assert_eq!(absent.x, gx.view());
    // The carry form starts where the last pass ended: two halves give the
    // outputs of one whole pass.
    let mut halves = cell.tape();
    let first = cell
        .forward_seq(&mut halves, &xs.slice(s![0..3, .., ..]), &h0)
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
    assert_close(
        "final state",
        halves.final_state("h").unwrap().iter().copied(),
        new_h.index_axis(Axis(0), 5).iter().copied(),
        TOL,
    );
}

#[test]
fn absent_states_start_at_zero_and_a_reused_tape_gives_the_same_numbers() {
    let g = CharModel::<f64>::new(&mut StdRng::seed_from_u64(6)).unwrap();
    let x = Array2::from_shape_fn((5, 2), |(t, b)| (t + b) % 7);
    let target = Array2::from_shape_fn((5, 2), |(t, b)| (2 * t + b + 3) % 7);
    let zeros = Array2::<f64>::zeros((2, 6));
    let mut fresh = g.tape();
    let want = g
        .forward_seq(&mut fresh, &x, &zeros, &zeros, &target)
        .unwrap()
        .loss
        .to_owned();
    let mut reused = g.tape();
    for _ in 0..3 {
        let absent = g.forward_seq(&mut reused, &x, &Absent, &Absent, &target).unwrap();
        assert_eq!(absent.loss, want.view());
        let given = g.forward_seq(&mut reused, &x, &zeros, &zeros, &target).unwrap();
        assert_eq!(given.loss, want.view());
    }
}

#[test]
fn a_nested_cells_input_projection_runs_once_before_its_loop() {
    let g = CharModel::<f64>::zeros().unwrap();
    let plan = g.plan();
    let segment = |name: &str| plan.segment_of(name).unwrap();
    let (ih, hh) = (segment("h1_lstmcell.ih"), segment("h1_lstmcell.hh"));
    assert!(!plan.is_loop(ih), "{plan}");
    assert!(plan.is_loop(hh), "{plan}");
    assert!(ih < hh);
    assert!(!plan.is_loop(segment("loss")));
}

#[test]
fn an_lstm_cells_gate_arithmetic_runs_fused_and_every_node_stays_on_the_tape() {
    let spec = <LstmCell<3, 5, f64> as Graph<f64>>::SPEC;
    assert_eq!(spec.fusions.len(), 1, "one LSTM gate group");
    let mut lstm = LstmCell::<3, 5, f64>::new(&mut StdRng::seed_from_u64(8));
    let plan = lstm.plan();
    for name in ["c_next", "h_next", "f", "i"] {
        assert!(plan.is_fused(name), "{name}\n{plan}");
    }
    assert!(!plan.is_fused("ih") && !plan.is_fused("hh"));
    // The same equations, not fused, give the same bits: outputs, state
    // and input gradients, parameter gradients.
    let mut unfused = UnfusedLstm::<f64>::zeros();
    assert!(!unfused.plan().is_fused("c_next"));
    unfused.params_mut().copy_from_slice(lstm.params());
    let (xs, h0, c0) = (wave((6, 3, 3), 0.4), wave((1, 3, 5), 0.5), wave((1, 3, 5), 0.6));
    let (h0, c0) = (
        h0.index_axis(Axis(0), 0).to_owned(),
        c0.index_axis(Axis(0), 0).to_owned(),
    );
    let (dh, dc) = (wave((6, 3, 5), 0.8), wave((6, 3, 5), 0.9));
    let mut tapes = (lstm.tape(), unfused.tape());
    let a = lstm
        .forward_seq(&mut tapes.0, &xs, &h0, &c0)
        .unwrap()
        .h_next
        .to_owned();
    let b = unfused
        .forward_seq(&mut tapes.1, &xs, &h0, &c0)
        .unwrap()
        .h_next
        .to_owned();
    assert_eq!(a, b);
    let ga = lstm.backward_seq(&mut tapes.0, &dh, &dc).unwrap();
    let gb = unfused.backward_seq(&mut tapes.1, &dh, &dc).unwrap();
    assert_eq!((ga.x, ga.h, ga.c), (gb.x, gb.h, gb.c));
    assert_eq!(lstm.grads(), unfused.grads());
    // Node by node, by name, values and gradients step by step: the parts
    // too (columns of the sum's buffer when fused), the gradients of ih and
    // hh (the sum's, in its buffer) and of f·c and i·g (c_next's).
    let unfused_spec = <UnfusedLstm<f64> as Graph<f64>>::SPEC;
    let mut compared = Vec::new();
    for node in spec.nodes {
        if unfused_spec.nodes.iter().any(|n| n.name == node.name) {
            let name = node.name;
            let fused = (tapes.0.value_seq(name).unwrap(), tapes.0.grad_seq(name).unwrap());
            assert_eq!(fused.0, tapes.1.value_seq(name).unwrap(), "value of {name}");
            assert_eq!(fused.1, tapes.1.grad_seq(name).unwrap(), "gradient of {name}");
            assert_eq!(tapes.0.value(name).unwrap(), tapes.1.value(name).unwrap());
            assert_eq!(tapes.0.grad(name).unwrap(), tapes.1.grad(name).unwrap());
            compared.push(name);
        }
    }
    // Every node: the names are the same in both graphs.
    assert_eq!(compared.len(), spec.nodes.len(), "{compared:?}");
    // Nodes the fused pass does not keep are computed when read, from the
    // pass on the tape now: read after one pass, then after another.
    let (xs2, dh2) = (wave((6, 3, 3), -0.3), wave((6, 3, 5), 0.2));
    lstm.forward_seq(&mut tapes.0, &xs2, &h0, &c0).unwrap();
    lstm.backward_seq(&mut tapes.0, &dh2, &dc).unwrap();
    unfused.forward_seq(&mut tapes.1, &xs2, &h0, &c0).unwrap();
    unfused.backward_seq(&mut tapes.1, &dh2, &dc).unwrap();
    for name in compared.iter().copied() {
        assert_eq!(
            tapes.0.value(name).unwrap(),
            tapes.1.value(name).unwrap(),
            "{name}, 2nd pass"
        );
        assert_eq!(
            tapes.0.grad(name).unwrap(),
            tapes.1.grad(name).unwrap(),
            "{name}, 2nd pass"
        );
    }
    lstm.zero_grad();
    // Every node's value and gradient, by name, equals what the nodes
    // compute one by one: the sigmoid of the forget gate's part, and the
    // gradient the step-by-step reference finds for it.
    let (xs, h0, c0) = (
        wave((4, 2, 3), 0.1),
        Array2::from_elem((2, 5), 0.2),
        Array2::from_elem((2, 5), -0.1),
    );
    let mut tape = lstm.tape();
    lstm.forward_seq(&mut tape, &xs, &h0, &c0).unwrap();
    let f = tape.value("f").unwrap().to_owned();
    let sig_f = tape.value("c_next_sigmoid").unwrap().to_owned();
    assert!(f
        .iter()
        .zip(&sig_f)
        .all(|(&x, &y)| (1.0 / (1.0 + (-x).exp()) - y).abs() < 1e-15));
    let dh = wave((4, 2, 5), 0.7);
    lstm.backward_seq(&mut tape, &dh, &Absent).unwrap();
    let mut reference = StepByStep::forward(
        &lstm,
        &[
            Feed::Seq(xs.view()),
            Feed::Values(h0.view()),
            Feed::Values(c0.view()),
        ],
    );
    reference.backward(&mut lstm, &[dh.clone(), Array3::zeros((4, 2, 5))]);
    for t in 0..4 {
        assert_close(
            &format!("gradient of f at step {t}"),
            tape.grad_seq("f").unwrap().index_axis(Axis(0), t).iter().copied(),
            reference.input_grad(t, "f").iter().copied(),
            TOL,
        );
    }
}

/// Gradient buffers whose first contribution comes from a loop are cleared
/// step by step inside it, but those given gradients before backward: a reused tape, the states'
/// gradients given or not from pass to pass, on one thread and split
/// across two, gives the step-by-step numbers every time (a row not
/// cleared would add the last pass's gradient). Layers nested one by one,
/// and as a stack (whose state groups two loops write half each).
#[test]
fn gradients_cleared_in_loops_match_step_by_step_pass_after_pass() {
    // 256 rows: passes this long clear in the loops (`LOOP_CLEAR_ROWS`).
    let (steps, batch) = (4, 64);
    let xs = wave((steps, batch, 3), 0.2);
    let state = |width: usize, i: usize| {
        Array2::from_shape_fn((batch, width), |(b, j)| 0.05 * (b + j + i) as f64 - 0.3)
    };
    let mut layers = TwoLayers::<f64>::new(&mut StdRng::seed_from_u64(9)).unwrap();
    let states: Vec<Array2<f64>> = (0..4).map(|i| state(5, i)).collect();
    let mut feeds = vec![Feed::Seq(xs.view())];
    feeds.extend(states.iter().map(|s| Feed::Values(s.view())));
    cleared_in_loops(&mut layers, &feeds);
    let mut stacked = TwoStacked::<f64>::new(&mut StdRng::seed_from_u64(10)).unwrap();
    let states: Vec<Array2<f64>> = (0..2).map(|i| state(10, i)).collect();
    let mut feeds = vec![Feed::Seq(xs.view())];
    feeds.extend(states.iter().map(|s| Feed::Values(s.view())));
    cleared_in_loops(&mut stacked, &feeds);
}

/// See `gradients_cleared_in_loops_match_step_by_step_pass_after_pass`:
/// `g`'s output 0 gets a gradient in every pass, the others (its states)
/// in every other pass.
fn cleared_in_loops<G: Graph<f64>>(g: &mut G, feeds: &[Feed<f64>]) {
    let spec = G::SPEC;
    let Feed::Seq(xs) = &feeds[0] else { unreachable!() };
    let (steps, batch, _) = xs.dim();
    let d_outputs: Vec<Array3<f64>> = spec
        .outputs
        .iter()
        .enumerate()
        .map(|(o, out)| wave((steps, batch, g.output_width(out.name).unwrap()), 1.3 + o as f64))
        .collect();
    // Per "states' gradients given": the parameter gradients and the
    // initial states' gradients, step by step.
    let mut want = Vec::new();
    for given in [false, true] {
        g.zero_grad();
        let mut reference = StepByStep::forward(g, feeds);
        let d: Vec<Array3<f64>> = d_outputs
            .iter()
            .enumerate()
            .map(|(o, a)| {
                if o == 0 || given {
                    a.clone()
                } else {
                    Array3::zeros(a.dim())
                }
            })
            .collect();
        reference.backward(g, &d);
        let initial: Vec<Array2<f64>> = spec
            .recurrent
            .iter()
            .map(|&(i, _)| reference.input_grad(0, spec.inputs[i].name).to_owned())
            .collect();
        want.push((g.grads().to_vec(), initial));
    }
    for threads in [1, 2] {
        nngraph::runtime::with_threads(threads, || {
            let mut tape = g.tape();
            for given in [false, true, false, true] {
                g.zero_grad();
                g.forward_feeds(&mut tape, feeds).unwrap();
                let ds: Vec<Feed<f64>> = d_outputs
                    .iter()
                    .enumerate()
                    .map(|(o, a)| {
                        if o == 0 || given {
                            Feed::Seq(a.view())
                        } else {
                            Feed::Absent
                        }
                    })
                    .collect();
                g.backward_feeds(&mut tape, &ds).unwrap();
                let (params, initial) = &want[usize::from(given)];
                let case = format!(
                    "{}, {threads} threads, states' gradients given: {given}",
                    spec.name
                );
                assert_close(
                    &format!("parameter gradients ({case})"),
                    g.grads().iter().copied(),
                    params.iter().copied(),
                    TOL,
                );
                for (k, &(i, _)) in spec.recurrent.iter().enumerate() {
                    let name = spec.inputs[i].name;
                    assert_close(
                        &format!("initial {name} ({case})"),
                        first_step_grad(&tape, name),
                        initial[k].iter().copied(),
                        TOL,
                    );
                }
            }
        });
    }
}
