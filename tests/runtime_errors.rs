//! Bad input at run time is a clear `Err` naming the graph, the input,
//! output or parameter, and both shapes; never a panic, never a changed model.

mod common;

use common::*;
use nngraph::prelude::*;

#[test]
fn wrong_input_width_names_the_input_and_both_widths() {
    let cell = SeedCell::<f64>::zeros();
    let mut tape = cell.tape();
    let err = cell.forward(&mut tape, &[1.0, 2.0, 3.0], &[0.0; 4]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SeedCell: input `x` has width 3, but the graph declares `x: [2]`"
    );
}

#[test]
fn mismatched_batch_sizes_name_both_inputs() {
    let cell = SeedCell::<f64>::zeros();
    let mut tape = cell.tape();
    let err = cell
        .forward(&mut tape, &Array2::zeros((3, 2)), &Array2::zeros((2, 4)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "SeedCell: input `h` has batch size 2, but `x` has batch size 3; \
         all inputs of one call must have the same number of rows"
    );
}

#[test]
fn wrong_output_gradient_shape_is_an_error_and_changes_nothing() {
    let mut rng = StdRng::seed_from_u64(0);
    let mut cell = SeedCell::<f64>::new(&mut rng);
    let mut tape = cell.tape();
    cell.forward(&mut tape, &Array2::zeros((2, 2)), &Array2::zeros((2, 4)))
        .unwrap();
    let err = cell
        .backward(&mut tape, &Array2::zeros((2, 1)), &Array2::zeros((1, 4)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "SeedCell: the gradient for output `new_h` has shape (1, 4), but `new_h` has shape (2, 4)"
    );
    assert!(
        cell.grads().iter().all(|&g| g == 0.0),
        "no gradient was accumulated"
    );
}

#[test]
fn backward_before_forward_is_an_error() {
    let mut cell = SeedCell::<f64>::zeros();
    let mut tape = cell.tape();
    let err = cell.backward(&mut tape, &[0.0], &[0.0; 4]).unwrap_err();
    assert!(err.to_string().contains("call forward first"), "{err}");
}

#[test]
fn unknown_parameter_names_suggest_the_closest() {
    let cell = SeedCell::<f64>::zeros();
    let err = cell.param("x2h.wieght").unwrap_err();
    assert_eq!(
        err.to_string(),
        "SeedCell: no parameter named `x2h.wieght`; did you mean `x2h.weight`?"
    );
    let err = cell.grad("zzz").unwrap_err();
    assert!(
        err.to_string()
            .contains("the parameters are x2h.weight, x2h.bias"),
        "{err}"
    );
}

#[test]
fn malformed_sequences_are_errors_naming_the_inputs() {
    let mut cell = SeedCell::<f64>::zeros();
    let mut tape = cell.tape();
    let h0 = Array2::<f64>::zeros((2, 4));
    let xs = Array3::<f64>::zeros((5, 3, 2));
    let err = cell.forward_seq(&mut tape, &xs, &h0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SeedCell: input `h` has batch size 2, but `x` has batch size 3; all inputs of one call must have the same number of rows"
    );
    let err = cell
        .forward_feeds(&mut tape, &[Feed::Seq(xs.view())])
        .unwrap_err();
    assert_eq!(err.to_string(), "SeedCell: expected 2 inputs, got 1");
    let bad = Array3::<f64>::zeros((5, 2, 7));
    let err = cell.forward_seq(&mut tape, &bad, &h0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SeedCell: input `x` has width 7, but the graph declares `x: [2]`"
    );
    let err = cell
        .forward_feeds(&mut tape, &[Feed::Seq(xs.view()), Feed::Seq(xs.view())])
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "SeedCell: input `h` takes its initial value, (batch, width) values, or Carry or Absent"
        ),
        "{err}"
    );
    let one_step = Array2::<f64>::zeros((3, 2));
    let err = cell
        .forward_feeds(&mut tape, &[Feed::Values(one_step.view()), Feed::Ids(&[1, 2, 3])])
        .unwrap_err();
    assert!(
        err.to_string().contains("input `h` takes its initial value"),
        "{err}"
    );
    let empty = Array3::<f64>::zeros((0, 3, 2));
    let err = cell.forward_seq(&mut tape, &empty, &Absent).unwrap_err();
    assert_eq!(err.to_string(), "SeedCell: the sequence has no steps");
    let err = cell.backward_seq(&mut tape, &Absent, &Absent).unwrap_err();
    assert!(err.to_string().contains("call forward first"), "{err}");
}

#[test]
fn params_are_laid_out_in_declaration_order_torch_style() {
    let cell = SeedCell::<f32>::zeros();
    let specs: Vec<(String, Vec<usize>, usize)> = cell
        .param_specs()
        .iter()
        .map(|s| (s.name.clone(), s.shape.clone(), s.offset))
        .collect();
    let want = [
        ("x2h.weight", vec![4, 2], 0),
        ("x2h.bias", vec![4], 8),
        ("h2h.weight", vec![4, 4], 12),
        ("h2h.bias", vec![4], 28),
        ("out.weight", vec![1, 4], 32),
        ("out.bias", vec![1], 36),
    ];
    assert_eq!(specs.len(), want.len());
    for ((name, shape, offset), (wn, ws, wo)) in specs.iter().zip(want) {
        assert_eq!((name.as_str(), shape, *offset), (wn, &ws, wo));
    }
    assert_eq!(SeedCell::<f32>::NUM_PARAMS, 37);
    assert_eq!(cell.params().len(), 37);
    assert_eq!(cell.grads().len(), 37);
    // A write through a named view lands in the flat buffer, row-major.
    let mut cell = cell;
    cell.param_mut("h2h.weight").unwrap()[[1, 2]] = 7.0;
    assert_eq!(cell.params()[12 + 4 + 2], 7.0);
}

#[test]
fn initialisation_is_torch_like() {
    let mut rng = StdRng::seed_from_u64(42);
    let cell = SeedCell::<f64>::new(&mut rng);
    for spec in cell.param_specs() {
        let fan_in = if spec.name.starts_with("x2h") { 2.0 } else { 4.0f64 };
        let bound = 1.0 / fan_in.sqrt();
        let p = cell.param(&spec.name).unwrap();
        assert!(
            p.iter().all(|v| v.abs() <= bound),
            "{} outside ±{bound}",
            spec.name
        );
        assert!(p.iter().any(|&v| v != 0.0));
    }
}

#[test]
fn describes_itself() {
    assert_eq!(SeedCell::<f32>::INPUTS, &["x", "h"]);
    assert_eq!(SeedCell::<f32>::INPUT_WIDTHS, &[2, 4]);
    assert_eq!(SeedCell::<f32>::OUTPUTS, &["y", "new_h"]);
    assert_eq!(SeedCell::<f32>::OUTPUT_WIDTHS, &[1, 4]);
    let spec = <SeedCell<f32> as Graph<f32>>::SPEC;
    assert_eq!(spec.recurrent, &[(1, 1)]);
    let nodes: Vec<&str> = spec.nodes.iter().map(|n| n.name).collect();
    assert_eq!(nodes, ["x2h", "h2h", "new_h_cadd", "new_h", "out", "y"]);
    let dot = SeedCell::<f32>::zeros().to_dot();
    assert!(dot.starts_with("digraph SeedCell {"));
    assert!(dot.contains("\"x2h\" -> \"new_h_cadd\" [label=\"4\"]"), "{dot}");
    assert!(dot.contains("\"y\" [shape=ellipse, peripheries=2"), "{dot}");
}

#[test]
fn evaluation_mode_is_a_switch() {
    let mut cell = SeedCell::<f32>::zeros();
    assert!(cell.is_training());
    cell.evaluate();
    assert!(!cell.is_training());
    cell.training();
    assert!(cell.is_training());
}

#[test]
fn summary_lists_every_node_with_widths_parameters_and_lines() {
    let cell = SeedCell::<f32>::zeros();
    let table = cell.summary();
    assert_eq!(table, cell.to_string(), "Display prints the summary");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "SeedCell(x: [2], h: [4]) -> (y: [1], new_h: [4])");
    let row = |node: &str| -> Vec<&str> {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(node))
            .unwrap();
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    };
    // node, layer, input widths, output width, parameters (4 x 2 + 4), line
    let x2h = row("x2h");
    assert_eq!(&x2h[..5], ["x2h", "Linear(2, 4)", "2", "4", "12"]);
    let spec = <SeedCell<f32> as Graph<f32>>::SPEC;
    assert_eq!(x2h[5], spec.nodes[0].line.to_string());
    assert_eq!(
        &row("new_h_cadd")[..5],
        ["new_h_cadd", "CAdd()", "4, 4", "4", "0"]
    );
    assert_eq!(
        *lines.last().unwrap(),
        format!("6 nodes, {} parameters", SeedCell::<f32>::NUM_PARAMS)
    );
}

#[test]
fn clip_grad_value_clamps_every_gradient_as_torch() {
    let mut cell = SeedCell::<f64>::zeros();
    let grads: Vec<f64> = (0..cell.num_params()).map(|i| (i as f64 - 18.0) * 0.1).collect();
    cell.grads_mut().copy_from_slice(&grads);
    clip_grad_value(cell.store_mut(), 0.55).unwrap();
    for (g, before) in cell.grads().iter().zip(&grads) {
        // torch: grad.clamp_(-clip_value, clip_value)
        assert_eq!(*g, before.clamp(-0.55, 0.55));
    }
}

#[test]
fn a_missing_checkpoint_is_an_io_error_with_its_path() {
    let mut cell = SeedCell::<f64>::zeros();
    let path = std::path::Path::new("no/such/checkpoint.safetensors");
    match cell.load(path).unwrap_err() {
        Error::Io { action, path: p, .. } => {
            assert_eq!(action, "read");
            assert_eq!(p, path);
        }
        other => panic!("unexpected error {other}"),
    }
}
