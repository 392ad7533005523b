//! `Stack(depth, First, Rest)`: a stack of layers from one declaration, its
//! depth a run-time size. Checked against the same model written out layer
//! by layer (same weights, same outputs and gradients), against finite
//! differences, and for its plan (one loop per layer).

mod common;

use common::assert_close;
use nngraph::ndarray::s;
use nngraph::prelude::*;

#[path = "common/lstm_layer.rs"]
mod lstm_layer;
use lstm_layer::Layer;

graph! {
    /// An embedding, `layers` LSTM layers, the scores and the loss; the
    /// states of all layers in one group each (`layers * hidden` wide).
    #[recurrent(h = h_n, c = c_n)]
    pub Deep[vocab, hidden, layers](x: usize, h: [layers * hidden], c: [layers * hidden], target: usize)
        -> (loss, h_n, c_n)
    {
        (top, h_n, c_n) = Stack(layers, Layer[hidden, hidden])(Embedding(vocab, hidden)(x), h, c);
        loss = CrossEntropy()(Linear(hidden, vocab)(top), target);
    }

    /// The same model with two layers, written out.
    #[recurrent(h1 = h1_next, c1 = c1_next, h2 = h2_next, c2 = c2_next)]
    pub Two[vocab, hidden](x: usize, h1: [hidden], c1: [hidden], h2: [hidden], c2: [hidden], target: usize)
        -> (loss, h1_next, c1_next, h2_next, c2_next)
    {
        (h1_next, c1_next) = Layer[hidden, hidden](Embedding(vocab, hidden)(x), h1, c1);
        (h2_next, c2_next) = Layer[hidden, hidden](h1_next, h2, c2);
        loss = CrossEntropy()(Linear(hidden, vocab)(h2_next), target);
    }

    /// A first layer that differs from the rest: 3 wide in, then 5.
    #[recurrent(h = h_n)]
    pub Mixed[layers](x: [3], h: [layers * 5]) -> (y, h_n) {
        (y, h_n) = Stack(layers, Elman[3, 5], Elman[5, 5])(x, h);
    }

    /// A state group that fits no depth but one: `h` is 6 wide, the layers 5.
    #[recurrent(h = h_n)]
    pub BadGroup[layers](x: [3], h: [6]) -> (y, h_n) {
        (y, h_n) = Stack(layers, Elman[3, 5], Elman[5, 5])(x, h);
    }

    /// The model on the shipped stack: `Lstm` only passes its inputs and
    /// outputs on, so the plan copies none of them into it.
    #[recurrent(h = h_n, c = c_n)]
    pub Shipped[vocab, hidden, layers](x: usize, h: [layers * hidden], c: [layers * hidden], target: usize)
        -> (loss, h_n, c_n)
    {
        (y, h_n, c_n) = nngraph::cells::Lstm[hidden, hidden, layers](Embedding(vocab, hidden)(x), h, c);
        loss = CrossEntropy()(Linear(hidden, vocab)(y), target);
    }

    /// Two Elman layers as one layer of a bigger stack: a state group inside
    /// a state group.
    #[recurrent(h = h_n)]
    pub Pair[input](x: [input], h: [10]) -> (y, h_n) {
        #[params(inline)]
        (y, h_n) = Stack(2, Elman[input, 5], Elman[5, 5])(x, h);
    }

    /// A stack of three `Pair`s: six Elman layers, its state 3 blocks of 2.
    #[recurrent(h = h_n)]
    pub Nest(x: [3], h: [30]) -> (y, tops, h_n) {
        (y, tops, h_n) = Stack(3, Pair[3], Pair[5])(x, h);
    }

    /// The same six layers as one stack.
    #[recurrent(h = h_n)]
    pub Six(x: [3], h: [30]) -> (y, h_n) {
        (y, h_n) = Stack(6, Elman[3, 5], Elman[5, 5])(x, h);
    }

    /// One Elman layer.
    #[recurrent(h = h_next)]
    pub Elman[input, hidden](x: [input], h: [hidden]) -> (h_next) {
        h_next = Tanh()(CAdd()(Linear(input, hidden)(x), Linear(hidden, hidden)(h)));
    }
}

fn ids(steps: usize, batch: usize, vocab: usize, seed: usize) -> Array2<usize> {
    Array2::from_shape_fn((steps, batch), |(t, b)| (t * 7 + b * 3 + seed) % vocab)
}

#[test]
fn layers_are_named_as_torch_names_them() {
    let g = Deep::<f64>::zeros(11, 4, 3).unwrap();
    let names: Vec<&str> = g.param_specs().iter().map(|p| p.name.as_ref()).collect();
    for l in 0..3 {
        for t in ["ih.weight", "ih.bias", "hh.weight", "hh.bias"] {
            let name = format!("top_layer.{t}_l{l}");
            assert!(names.iter().any(|n| *n == name), "{name} in {names:?}");
        }
    }
    assert_eq!(g.num_params(), 11 * 4 + 3 * (2 * (16 * 4 + 16)) + (4 + 1) * 11);
}

#[test]
fn a_stack_of_two_equals_the_two_layers_written_out() {
    let (vocab, hidden, steps, batch) = (7, 5, 4, 3);
    let mut deep = Deep::<f64>::new(&mut StdRng::seed_from_u64(1), vocab, hidden, 2).unwrap();
    let mut two = Two::<f64>::zeros(vocab, hidden).unwrap();
    // The same weights, by name.
    for (from, to) in [
        ("top_layer.ih.weight_l0", "h1_next_layer.ih.weight"),
        ("top_layer.ih.bias_l0", "h1_next_layer.ih.bias"),
        ("top_layer.hh.weight_l0", "h1_next_layer.hh.weight"),
        ("top_layer.hh.bias_l0", "h1_next_layer.hh.bias"),
        ("top_layer.ih.weight_l1", "h2_next_layer.ih.weight"),
        ("top_layer.ih.bias_l1", "h2_next_layer.ih.bias"),
        ("top_layer.hh.weight_l1", "h2_next_layer.hh.weight"),
        ("top_layer.hh.bias_l1", "h2_next_layer.hh.bias"),
        ("top_embedding.weight", "h1_next_embedding.weight"),
        ("loss_linear.weight", "loss_linear.weight"),
        ("loss_linear.bias", "loss_linear.bias"),
    ] {
        let value = deep.param(from).unwrap().to_owned();
        two.param_mut(to).unwrap().assign(&value);
    }
    let (xs, ys) = (ids(steps, batch, vocab, 0), ids(steps, batch, vocab, 1));
    let h0 = Array2::from_shape_fn((batch, 2 * hidden), |(b, j)| ((b * 3 + j) as f64 * 0.37).sin());
    let c0 = Array2::from_shape_fn((batch, 2 * hidden), |(b, j)| ((b + j * 5) as f64 * 0.21).cos());
    let (h1, h2) = (h0.slice(s![.., ..hidden]), h0.slice(s![.., hidden..]));
    let (c1, c2) = (c0.slice(s![.., ..hidden]), c0.slice(s![.., hidden..]));

    let mut tape = deep.tape();
    let out = deep.forward_seq(&mut tape, &xs, &h0, &c0, &ys).unwrap();
    let (loss, h_n, c_n) = (out.loss.to_owned(), out.h_n.to_owned(), out.c_n.to_owned());
    deep.backward_loss(&mut tape, Reduction::Mean).unwrap();
    // The gradients of the initial states: the first step's rows.
    let first = |tape: &Tape<f64>, name: &str| tape.grad(name).unwrap().slice(s![..batch, ..]).to_owned();
    let (dh0, dc0) = (first(&tape, "h"), first(&tape, "c"));

    let mut tape2 = two.tape();
    let out2 = two
        .forward_seq(
            &mut tape2,
            &xs,
            &h1.to_owned(),
            &c1.to_owned(),
            &h2.to_owned(),
            &c2.to_owned(),
            &ys,
        )
        .unwrap();
    assert_close(
        "loss",
        loss.iter().copied(),
        out2.loss.to_owned().iter().copied(),
        1e-14,
    );
    assert_close(
        "h_n",
        h_n.slice(s![.., .., ..hidden]).to_owned().iter().copied(),
        out2.h1_next.to_owned().iter().copied(),
        1e-14,
    );
    assert_close(
        "h_n",
        h_n.slice(s![.., .., hidden..]).to_owned().iter().copied(),
        out2.h2_next.to_owned().iter().copied(),
        1e-14,
    );
    assert_close(
        "c_n",
        c_n.slice(s![.., .., hidden..]).to_owned().iter().copied(),
        out2.c2_next.to_owned().iter().copied(),
        1e-14,
    );
    two.backward_loss(&mut tape2, Reduction::Mean).unwrap();
    assert_close(
        "dh0",
        dh0.slice(s![.., ..hidden]).to_owned().iter().copied(),
        first(&tape2, "h1").iter().copied(),
        1e-14,
    );
    assert_close(
        "dh0",
        dh0.slice(s![.., hidden..]).to_owned().iter().copied(),
        first(&tape2, "h2").iter().copied(),
        1e-14,
    );
    assert_close(
        "dc0",
        dc0.slice(s![.., hidden..]).to_owned().iter().copied(),
        first(&tape2, "c2").iter().copied(),
        1e-14,
    );
    for l in 0..2 {
        for (t, other) in [("ih.weight", "ih.weight"), ("hh.bias", "hh.bias")] {
            let from = format!("top_layer.{t}_l{l}");
            let to = format!("h{}_next_layer.{other}", l + 1);
            assert_close(
                "deep",
                deep.grad(&from).unwrap().to_owned().iter().copied(),
                two.grad(&to).unwrap().to_owned().iter().copied(),
                1e-13,
            );
        }
    }
    // Each layer's nodes and inputs, by name, values and gradients: the
    // fused cells read their state `c` and write `c_next` and `h_next`
    // where the enclosing graph keeps them (the stack's group columns, the
    // written-out model's own slots), and both read back as the layer's.
    let layer = <Layer<f64> as Graph<f64>>::SPEC;
    let names = layer
        .inputs
        .iter()
        .map(|i| i.name)
        .chain(layer.nodes.iter().map(|n| n.name));
    for name in names {
        for l in 0..2 {
            let (a, b) = (
                format!("top_layer[{l}].{name}"),
                format!("h{}_next_layer.{name}", l + 1),
            );
            let values = (tape.value(&a).unwrap(), tape2.value(&b).unwrap());
            assert_close(&a, values.0.iter().copied(), values.1.iter().copied(), 1e-13);
            let grads = (tape.grad(&a).unwrap(), tape2.grad(&b).unwrap());
            assert_close(&a, grads.0.iter().copied(), grads.1.iter().copied(), 1e-13);
        }
    }
    // A layer's state is its block of the group, and so is its gradient.
    for l in 0..2 {
        let block = s![.., l * hidden..(l + 1) * hidden];
        let layer = |name: &str| format!("top_layer[{l}].{name}");
        assert_eq!(
            tape.value(&layer("c")).unwrap(),
            tape.value("c").unwrap().slice(block)
        );
        assert_eq!(
            tape.grad(&layer("c")).unwrap(),
            tape.grad("c").unwrap().slice(block)
        );
        assert_eq!(
            tape.value(&layer("c_next")).unwrap(),
            tape.value("c_n").unwrap().slice(block)
        );
        assert_eq!(
            tape.value(&layer("h_next")).unwrap(),
            tape.value("h_n").unwrap().slice(block)
        );
    }
    // The gradients of the outputs `h_n`, `c_n` are their readers' alone
    // (the next step's states), not what the layers add inside: nothing
    // reads the last step's.
    let last = s![(steps - 1) * batch.., ..];
    for name in ["h_n", "c_n"] {
        let grad = tape.grad(name).unwrap();
        assert!(grad.slice(last).iter().all(|&g| g == 0.0), "{name}: {grad}");
        assert!(grad.iter().any(|&g| g != 0.0), "{name}");
    }
}

#[test]
fn each_layer_of_a_stack_is_a_loop_of_its_own() {
    let g = Deep::<f32>::zeros(20, 8, 3).unwrap();
    let plan = g.plan();
    let segment = |name: &str| {
        plan.segment_of(name)
            .unwrap_or_else(|| panic!("{name} in\n{plan}"))
    };
    let loops: Vec<usize> = (0..3).map(|l| segment(&format!("top_layer[{l}].hh"))).collect();
    for l in 0..3 {
        assert!(plan.is_loop(loops[l]), "{plan}");
        // The input projection runs once over all rows, before the loop.
        let ih = segment(&format!("top_layer[{l}].ih"));
        assert!(!plan.is_loop(ih) && ih < loops[l], "{plan}");
        if l > 0 {
            assert!(loops[l - 1] < ih, "{plan}");
        }
    }
}

#[test]
fn gradients_through_a_stack_equal_finite_differences() {
    let mut g = Mixed::<f64>::new(&mut StdRng::seed_from_u64(5), 3).unwrap();
    let xs = Array3::from_shape_fn((4, 2, 3), |(t, b, j)| ((t * 5 + b * 3 + j) as f64 * 0.31).sin());
    let h0 = Array2::from_shape_fn((2, 15), |(b, j)| ((b * 7 + j) as f64 * 0.17).cos() * 0.5);
    // A loss that reads every output at every step: Σ w·y.
    let loss = common::weighted_sum(|t, o, j| 0.3 + 0.1 * ((o * 7 + t * 3 + j) % 11) as f64);
    let report = GradCheck::new()
        .check_graph(&mut g, &[Feed::Seq(xs.view()), Feed::Values(h0.view())], loss)
        .unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(
        report.count(),
        (3 * 5 + 5 + 5 * 5 + 5) + 2 * (2 * (5 * 5 + 5)) + 2 * 15 + 4 * 2 * 3
    );
}

#[test]
fn a_depth_of_zero_is_an_error_naming_the_size() {
    let e = Deep::<f32>::zeros(5, 4, 0).unwrap_err().to_string();
    assert!(e.contains("`layers`") && e.contains("at least 1"), "{e}");
}

#[test]
fn a_group_of_the_wrong_width_is_an_error_when_built_naming_node_and_widths() {
    let e = BadGroup::<f32>::zeros(2).unwrap_err().to_string();
    assert!(
        e.contains("node `y`: input 1 of the stack is a group, one block per layer (`layers` layers): it takes width 5 * layers, but `h` has width 6 (with layers = 2)"),
        "{e}"
    );
    assert!(e.contains("layers = 2"), "{e}");
}

#[test]
fn a_graph_that_only_passes_values_on_is_not_copied_into_and_says_where_they_are() {
    let (vocab, hidden, steps, batch) = (7, 5, 4, 3);
    let mut deep = Deep::<f64>::new(&mut StdRng::seed_from_u64(2), vocab, hidden, 2).unwrap();
    let mut shipped = Shipped::<f64>::zeros(vocab, hidden, 2).unwrap();
    // The same weights: `top_layer.*` is `y_lstm.*`.
    for spec in deep.param_specs().to_vec() {
        let to = spec.name.replace("top_layer.ih.weight", "y_lstm.weight_ih");
        let to = to
            .replace("top_layer.ih.bias", "y_lstm.bias_ih")
            .replace("top_layer.hh.weight", "y_lstm.weight_hh");
        let to = to
            .replace("top_layer.hh.bias", "y_lstm.bias_hh")
            .replace("top_embedding", "y_embedding");
        let value = deep.param(&spec.name).unwrap().to_owned();
        shipped.param_mut(&to).unwrap().assign(&value);
    }
    let (xs, ys) = (ids(steps, batch, vocab, 0), ids(steps, batch, vocab, 1));
    let mut tape = deep.tape();
    let a = deep
        .forward_seq(&mut tape, &xs, &Absent, &Absent, &ys)
        .unwrap()
        .h_n
        .to_owned();
    let mut tape2 = shipped.tape();
    let b = shipped
        .forward_seq(&mut tape2, &xs, &Absent, &Absent, &ys)
        .unwrap()
        .h_n
        .to_owned();
    assert_close("h_n", a.iter().copied(), b.iter().copied(), 1e-14);
    shipped.backward_loss(&mut tape2, Reduction::Mean).unwrap();
    deep.backward_loss(&mut tape, Reduction::Mean).unwrap();
    assert_close(
        "dh",
        tape.grad("h").unwrap().iter().copied(),
        tape2.grad("h").unwrap().iter().copied(),
        1e-14,
    );
    // The LSTM graph's own input and output are not on the tape.
    let e = tape2.value("y_lstm.h").unwrap_err().to_string();
    assert!(
        e.contains("`y_lstm.h` is not kept on the tape") && e.contains("read `h`"),
        "{e}"
    );
    let e = tape2.grad("y_lstm.h_n").unwrap_err().to_string();
    assert!(
        e.contains("y_lstm.y_lstmlayer[0].h_next") && e.contains("y_lstm.y_lstmlayer[1].h_next"),
        "{e}"
    );
    // What a layer computes is, where it is computed.
    assert_eq!(
        tape2.value("y_lstm.y_lstmlayer[0].h_next").unwrap().dim(),
        (steps * batch, hidden)
    );
    let e = tape2.value("y_lstm.y_lstmlayer[1].h").unwrap_err().to_string();
    assert!(e.contains("read `h`"), "{e}");
}

#[test]
fn the_shipped_stacks_upper_layers_project_their_input_before_their_loop() {
    let g = Shipped::<f32>::zeros(20, 8, 3).unwrap();
    let plan = g.plan();
    let segment = |name: &str| {
        plan.segment_of(name)
            .unwrap_or_else(|| panic!("{name} in\n{plan}"))
    };
    for l in 1..3 {
        let ih = segment(&format!("y_lstm.y_lstmlayer[{l}].h_next_lstmlayer.ih"));
        let hh = segment(&format!("y_lstm.y_lstmlayer[{l}].h_next_lstmlayer.hh"));
        assert!(!plan.is_loop(ih) && plan.is_loop(hh) && ih < hh, "{plan}");
    }
}

/// The shipped LSTM stack of every depth from 1 to 4 against its layers run
/// one after the other (each over the whole sequence, from its own block of
/// the initial states): the same outputs, final states and input
/// gradients.
#[test]
fn every_depth_equals_its_layers_run_one_after_the_other() {
    use nngraph::cells::{Lstm, LstmLayer};
    let (input, hidden, steps, batch) = (3, 4, 5, 2);
    for depth in 1..=4 {
        let mut stack =
            Lstm::<f64>::new(&mut StdRng::seed_from_u64(depth as u64), input, hidden, depth).unwrap();
        let xs = Array3::from_shape_fn((steps, batch, input), |(t, b, j)| {
            ((t * 3 + b * 5 + j) as f64 * 0.41).sin()
        });
        let h0 = Array2::from_shape_fn((batch, depth * hidden), |(b, j)| {
            ((b + 2 * j) as f64 * 0.23).cos() * 0.4
        });
        let c0 = Array2::from_shape_fn((batch, depth * hidden), |(b, j)| {
            ((3 * b + j) as f64 * 0.31).sin() * 0.4
        });
        let dy = Array3::from_shape_fn((steps, batch, hidden), |(t, b, j)| {
            ((t + b + j) as f64 * 0.7).cos()
        });
        let mut tape = stack.tape();
        let out = stack.forward_seq(&mut tape, &xs, &h0, &c0).unwrap();
        let (y, h_n) = (out.y.to_owned(), out.h_n.to_owned());
        stack.backward_seq(&mut tape, &dy, &Absent, &Absent).unwrap();
        let dx = tape.grad("x").unwrap().to_owned();

        // The layers one by one, with the stack's weights.
        let mut below = xs.clone();
        let mut grads_out: Vec<(LstmLayer<f64>, Tape<f64>)> = Vec::new();
        for l in 0..depth {
            let width = if l == 0 { input } else { hidden };
            let mut layer = LstmLayer::<f64>::zeros(width, hidden).unwrap();
            for t in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
                let value = stack.param(&format!("{t}_l{l}")).unwrap().to_owned();
                layer.param_mut(t).unwrap().assign(&value);
            }
            let block = |a: &Array2<f64>| a.slice(s![.., l * hidden..(l + 1) * hidden]).to_owned();
            let mut t = layer.tape();
            let o = layer
                .forward_seq(&mut t, &below, &block(&h0), &block(&c0))
                .unwrap();
            let last = o
                .h_next
                .index_axis(nngraph::ndarray::Axis(0), steps - 1)
                .to_owned();
            let want = h_n.index_axis(nngraph::ndarray::Axis(0), steps - 1);
            assert_close(
                &format!("depth {depth}, layer {l}: h_n"),
                want.slice(s![.., l * hidden..(l + 1) * hidden]).iter().copied(),
                last.iter().copied(),
                1e-14,
            );
            below = o.h_next.to_owned();
            grads_out.push((layer, t));
        }
        assert_close(
            &format!("depth {depth}: y"),
            y.iter().copied(),
            below.iter().copied(),
            1e-14,
        );
        // Backward from the top layer down: each layer's input gradient is
        // the gradient of the output of the layer below.
        let mut d = dy.clone();
        for (layer, t) in grads_out.iter_mut().rev() {
            layer.backward_seq(t, &d, &Absent).unwrap();
            d = t.grad_seq("x").unwrap().to_owned();
        }
        assert_close(
            &format!("depth {depth}: dx"),
            dx.iter().copied(),
            d.iter().copied(),
            1e-13,
        );
    }
}

/// A stack of stacks: blocks of blocks of the state, each layer's copies
/// reading through two graphs that only pass them on. Equal to the six
/// layers as one stack (same weights), and to finite differences.
#[test]
fn a_stack_of_stacks_equals_one_stack_of_its_layers() {
    let mut nest = Nest::<f64>::new(&mut StdRng::seed_from_u64(6)).unwrap();
    let mut six = Six::<f64>::zeros().unwrap();
    for l in 0..6 {
        let (outer, inner) = (l / 2, l % 2);
        for t in [
            "h_next_linear.weight",
            "h_next_linear.bias",
            "h_next_linear_2.weight",
            "h_next_linear_2.bias",
        ] {
            let from = format!("y_pair.{t}_l{inner}_l{outer}");
            let value = nest.param(&from).unwrap().to_owned();
            six.param_mut(&format!("y_elman.{t}_l{l}"))
                .unwrap()
                .assign(&value);
        }
    }
    let xs = Array3::from_shape_fn((4, 2, 3), |(t, b, j)| ((t * 5 + b * 3 + j) as f64 * 0.31).sin());
    let h0 = Array2::from_shape_fn((2, 30), |(b, j)| ((b * 7 + j) as f64 * 0.17).cos() * 0.5);
    let dy = Array3::from_shape_fn((4, 2, 5), |(t, b, j)| ((t + 2 * b + j) as f64 * 0.3).sin());
    let mut tape = nest.tape();
    let a = nest.forward_seq(&mut tape, &xs, &h0).unwrap().h_n.to_owned();
    nest.backward_seq(&mut tape, &dy, &Absent, &Absent).unwrap();
    let mut tape6 = six.tape();
    let b = six.forward_seq(&mut tape6, &xs, &h0).unwrap().h_n.to_owned();
    six.backward_seq(&mut tape6, &dy, &Absent).unwrap();
    assert_close("h_n", a.iter().copied(), b.iter().copied(), 1e-14);
    assert_close(
        "dh",
        tape.grad("h").unwrap().iter().copied(),
        tape6.grad("h").unwrap().iter().copied(),
        1e-14,
    );
    assert_close(
        "dx",
        tape.grad("x").unwrap().iter().copied(),
        tape6.grad("x").unwrap().iter().copied(),
        1e-14,
    );
    let loss = common::weighted_sum(|t, o, j| 0.3 + 0.1 * ((o * 7 + t * 3 + j) % 11) as f64);
    let report = GradCheck::new()
        .check_graph(&mut nest, &[Feed::Seq(xs.view()), Feed::Values(h0.view())], loss)
        .unwrap();
    assert!(report.passed(), "{report}");
}
