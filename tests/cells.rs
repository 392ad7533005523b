//! The shipped LSTM and GRU cells: PyTorch float64 reference numbers
//! (`tests/oracle/cells_oracle.json`) to 1e-12, and finite differences over
//! 10 unrolled steps.

mod common;

use common::{assert_close, oracle, vec1};
use nngraph::cells::{GruCell, LstmCell};
use nngraph::ndarray::Dimension;
use nngraph::prelude::*;
use serde_json::Value;

const TOL: f64 = 1e-12;

/// `weight_ih[i][j] = 0.1 sin(1 + 0.7 i + 0.3 j)`, `weight_hh` with 2,
/// `bias_ih[i] = 0.05 cos(1 + 0.5 i)`, `bias_hh` with 2.
fn set_oracle_weights(store: &mut ParamStore<f64>) {
    for (name, k) in [("ih", 1.0), ("hh", 2.0)] {
        store
            .param_mut(&format!("weight_{name}"))
            .unwrap()
            .indexed_iter_mut()
            .for_each(|(ix, v)| *v = 0.1 * (k + 0.7 * ix[0] as f64 + 0.3 * ix[1] as f64).sin());
        store
            .param_mut(&format!("bias_{name}"))
            .unwrap()
            .indexed_iter_mut()
            .for_each(|(ix, v)| *v = 0.05 * (k + 0.5 * ix[0] as f64).cos());
    }
}

fn oracle_inputs(steps: usize, i: usize, h: usize) -> (Array3<f64>, Array2<f64>, Array2<f64>) {
    let xs = Array3::from_shape_fn((steps, 2, i), |(t, b, j)| {
        0.1 * (t + 1) as f64 - 0.2 * j as f64 + 0.01 * b as f64
    });
    let h0 = Array2::from_shape_fn((2, h), |(b, j)| 0.1 * j as f64 - 0.15 + 0.01 * b as f64);
    let c0 = Array2::from_shape_fn((2, h), |(_, j)| 0.05 * j as f64 - 0.1);
    (xs, h0, c0)
}

/// Sum over steps of the mean over (batch, H) of `(h_t - 0.5)²`, on output 0.
fn h_loss(_t: usize, o: usize, h: ArrayView2<f64>, grad: Option<ArrayViewMut2<f64>>) -> nngraph::Result<f64> {
    if o != 0 {
        return Ok(0.0);
    }
    let target = Array2::from_elem(h.dim(), 0.5);
    if let Some(g) = grad {
        Mse::new().backward(&h, &target, g)?;
    }
    Mse::new().forward(&h, &target)
}

fn flat(v: &Value) -> Vec<f64> {
    match v.as_array().unwrap().first() {
        Some(Value::Array(_)) => v.as_array().unwrap().iter().flat_map(flat).collect(),
        _ => vec1(v),
    }
}

fn check_param_grads(store: &ParamStore<f64>, case: &Value) {
    // Our names are torch's.
    for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
        assert_close(
            name,
            store.grad(name).unwrap().iter().copied(),
            flat(&case["grads"][name]),
            TOL,
        );
    }
}

/// Runs `cell` over the oracle's inputs and compares everything the oracle
/// holds: per step each state output (`states`: output index and oracle
/// key, e.g. `(0, "h")`), the loss, the parameter gradients, the initial
/// states' gradients (`grad_h0`, `grad_c0`) and each input's gradient.
fn check_against_oracle<G: Graph<f64>>(
    cell: &mut G,
    case: &Value,
    initial: &[Array2<f64>],
    xs: &Array3<f64>,
    states: &[(usize, &str)],
) {
    let mut tape = cell.tape();
    // Twice on one tape: the second pass reuses the first's buffers, so
    // that a gradient not cleared (or not overwritten) between passes shows.
    for _ in 0..2 {
        cell.zero_grad();
        one_pass(cell, &mut tape, case, initial, xs, states);
    }
}

fn one_pass<G: Graph<f64>>(
    cell: &mut G,
    tape: &mut Tape<f64>,
    case: &Value,
    initial: &[Array2<f64>],
    xs: &Array3<f64>,
    states: &[(usize, &str)],
) {
    let steps = case["T"].as_u64().unwrap() as usize;
    let spec = G::SPEC;
    // Declaration order: x, then the states.
    let mut feeds = vec![Feed::Seq(xs.view())];
    feeds.extend(initial.iter().map(|a| Feed::Values(a.view())));
    cell.forward_feeds(tape, &feeds).unwrap();
    for t in 0..steps {
        for &(o, key) in states {
            assert_close(
                &format!("{key}[{t}]"),
                tape.value_seq(spec.outputs[o].name)
                    .unwrap()
                    .index_axis(Axis(0), t)
                    .iter()
                    .copied(),
                flat(&case[key][t]),
                TOL,
            );
        }
    }
    // The loss, per step and output, and its gradient.
    let mut loss = 0.0;
    let grads: Vec<Array3<f64>> = spec
        .outputs
        .iter()
        .enumerate()
        .map(|(o, out)| {
            let ys = tape.value_seq(out.name).unwrap();
            let mut d = Array3::zeros(ys.dim());
            for t in 0..steps {
                let g = d.index_axis_mut(Axis(0), t);
                loss += h_loss(t, o, ys.index_axis(Axis(0), t), Some(g)).unwrap();
            }
            d
        })
        .collect();
    assert!((loss - case["loss"].as_f64().unwrap()).abs() < TOL, "loss {loss}");
    let grads: Vec<Feed<f64>> = grads.iter().map(|d| Feed::Seq(d.view())).collect();
    cell.backward_feeds(tape, &grads).unwrap();
    check_param_grads(cell.store(), case);
    for &(i, _) in spec.recurrent {
        let input = spec.inputs[i].name;
        let name = format!("grad_{input}0");
        assert_close(
            &name,
            tape.grad_seq(input)
                .unwrap()
                .index_axis(Axis(0), 0)
                .iter()
                .copied(),
            flat(&case[&name]),
            TOL,
        );
    }
    for t in 0..steps {
        assert_close(
            &format!("grad_x[{t}]"),
            tape.grad_seq("x").unwrap().index_axis(Axis(0), t).iter().copied(),
            flat(&case["grad_xs"][t]),
            TOL,
        );
    }
}

#[test]
fn lstm_matches_torch_lstm_cell() {
    let o = oracle("cells_oracle.json");
    let case = &o["lstm"];
    let mut cell = LstmCell::<3, 4, f64>::zeros();
    set_oracle_weights(cell.store_mut());
    let (xs, h0, c0) = oracle_inputs(case["T"].as_u64().unwrap() as usize, 3, 4);
    check_against_oracle(&mut cell, case, &[h0, c0], &xs, &[(0, "h"), (1, "c")]);
}

#[test]
fn gru_matches_torch_gru_cell() {
    let o = oracle("cells_oracle.json");
    let case = &o["gru"];
    let mut cell = GruCell::<3, 4, f64>::zeros();
    set_oracle_weights(cell.store_mut());
    let (xs, h0, _) = oracle_inputs(case["T"].as_u64().unwrap() as usize, 3, 4);
    check_against_oracle(&mut cell, case, &[h0], &xs, &[(0, "h")]);
}

fn sequence(steps: usize, width: usize) -> Array3<f64> {
    Array3::from_shape_fn((steps, 2, width), |(t, b, j)| {
        (0.7 * t as f64 + 1.3 * b as f64 + 0.4 * j as f64).sin()
    })
}

#[test]
fn lstm_unrolled_over_10_steps_matches_finite_differences() {
    let mut cell = LstmCell::<3, 5, f64>::new(&mut StdRng::seed_from_u64(10));
    let h0 = Array2::from_shape_fn((2, 5), |(b, j)| 0.1 * (b + j) as f64 - 0.2);
    let c0 = Array2::from_shape_fn((2, 5), |(b, j)| 0.05 * (b * j) as f64 - 0.1);
    let report = GradCheck::new()
        .check_graph(
            &mut cell,
            &[
                Feed::Seq(sequence(10, 3).view()),
                Feed::Values(h0.view()),
                Feed::Values(c0.view()),
            ],
            h_loss,
        )
        .unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(
        report.count(),
        LstmCell::<3, 5, f64>::NUM_PARAMS + 2 * 2 * 5 + 10 * 2 * 3
    );
}

#[test]
fn gru_unrolled_over_10_steps_matches_finite_differences() {
    let mut cell = GruCell::<3, 5, f64>::new(&mut StdRng::seed_from_u64(11));
    let h0 = Array2::from_shape_fn((2, 5), |(b, j)| 0.1 * (b + j) as f64 - 0.2);
    let report = GradCheck::new()
        .check_graph(
            &mut cell,
            &[Feed::Seq(sequence(10, 3).view()), Feed::Values(h0.view())],
            h_loss,
        )
        .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn cells_have_torch_parameter_layout() {
    let lstm = LstmCell::<3, 4, f32>::zeros();
    let names: Vec<(&str, &[usize])> = lstm
        .param_specs()
        .iter()
        .map(|s| (s.name.as_str(), s.shape.as_slice()))
        .collect();
    assert_eq!(
        names,
        [
            ("weight_ih", &[16, 3][..]),
            ("bias_ih", &[16][..]),
            ("weight_hh", &[16, 4][..]),
            ("bias_hh", &[16][..])
        ]
    );
    assert_eq!(LstmCell::<3, 4, f32>::NUM_PARAMS, 4 * 4 * (3 + 4 + 2));
    assert_eq!(GruCell::<3, 4, f32>::NUM_PARAMS, 3 * 4 * (3 + 4 + 2));
    assert_eq!(LstmCell::<3, 4, f32>::INPUT_WIDTHS, &[3, 4, 4]);
}

/// The tensor names in a safetensors file, sorted.
fn safetensors_names(path: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(str::to_string).collect();
    names.sort();
    names
}

/// The oracle's formula for tensor `name` at `[i, j]` (`[i]` for a bias).
fn formula(name: &str, i: usize, j: usize) -> f64 {
    let k = if name.ends_with("_ih") { 1.0 } else { 2.0 };
    if name.starts_with("weight") {
        0.1 * (k + 0.7 * i as f64 + 0.3 * j as f64).sin()
    } else {
        0.05 * (k + 0.5 * i as f64).cos()
    }
}

#[test]
fn state_dicts_saved_by_torch_load_unchanged() {
    // Written by tests/oracle/make_state_dicts.py with torch (float32).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oracle");
    let mut lstm = LstmCell::<3, 4, f64>::zeros();
    lstm.load(dir.join("lstm_cell_3_4.safetensors")).unwrap();
    let mut gru = GruCell::<3, 4, f64>::zeros();
    gru.load(dir.join("gru_cell_3_4.safetensors")).unwrap();
    for store in [lstm.store(), gru.store()] {
        for name in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
            for (ix, &v) in store.param(name).unwrap().indexed_iter() {
                // torch stored the formula rounded to f32.
                assert_eq!(
                    v,
                    formula(name, ix[0], if ix.ndim() > 1 { ix[1] } else { 0 }) as f32 as f64,
                    "{name}{ix:?}"
                );
            }
        }
    }
}

#[test]
fn checkpoints_have_the_names_of_torch_state_dicts() {
    let dir = std::env::temp_dir().join(format!("nngraph-cells-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let torch_names = ["bias_hh", "bias_ih", "weight_hh", "weight_ih"];
    let lstm = LstmCell::<3, 4, f32>::new(&mut StdRng::seed_from_u64(1));
    lstm.save(dir.join("lstm.safetensors")).unwrap();
    assert_eq!(safetensors_names(&dir.join("lstm.safetensors")), torch_names);
    let gru = GruCell::<3, 4, f64>::new(&mut StdRng::seed_from_u64(1));
    gru.save(dir.join("gru.safetensors")).unwrap();
    assert_eq!(safetensors_names(&dir.join("gru.safetensors")), torch_names);
    // The file torch wrote has the same names.
    let oracle = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oracle/lstm_cell_3_4.safetensors");
    assert_eq!(safetensors_names(&oracle), torch_names);
    std::fs::remove_dir_all(&dir).unwrap();
}
