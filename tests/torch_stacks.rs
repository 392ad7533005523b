//! The shipped stacks against torch: `Lstm`, `Gru` and `Rnn` load a state
//! dict of `torch.nn.LSTM(4, 5, num_layers=3)`, `nn.GRU(4, 5, 2)` and
//! `nn.RNN(4, 5, 2)` saved by torch, unchanged, and give torch's outputs,
//! final states and gradients (f64 to 1e-12, f32 to 1e-5) on the sequence
//! torch ran (`tests/oracle/make_stacks.py` wrote both files).

mod common;

use common::assert_close;
use nngraph::cells::{Gru, Lstm, Rnn};
use nngraph::ndarray::{ArrayD, Axis, IxDyn};
use nngraph::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;

const T: usize = 6;
const B: usize = 3;
const H: usize = 5;

fn oracle(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("oracle")
        .join(name)
}

/// Every tensor of a torch-saved file, as f64 arrays.
fn tensors(name: &str) -> HashMap<String, ArrayD<f64>> {
    let bytes = std::fs::read(oracle(name)).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(k, v)| {
            let data: Vec<f64> = v
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (k, ArrayD::from_shape_vec(IxDyn(v.shape()), data).unwrap())
        })
        .collect()
}

/// torch's `(layers, B, H)` state as this crate's group `(B, layers·H)`:
/// layer `l` is columns `l·H..(l+1)·H`.
fn group(state: &ArrayD<f64>) -> Array2<f64> {
    let layers = state.shape()[0];
    Array2::from_shape_fn((B, layers * H), |(b, j)| state[[j / H, b, j % H]])
}

/// The other way: `(B, layers·H)` to torch's `(layers, B, H)`, flattened.
fn ungroup(g: ArrayView2<f64>) -> Vec<f64> {
    let layers = g.ncols() / H;
    let mut out = Vec::with_capacity(layers * B * H);
    for l in 0..layers {
        for b in 0..B {
            out.extend((0..H).map(|j| g[[b, l * H + j]]));
        }
    }
    out
}

fn seq(a: &ArrayD<f64>) -> Array3<f64> {
    a.clone().into_dimensionality().unwrap()
}

/// The gradient of a final state given to `backward_seq`: zero but at the
/// last step, where it is `r` grouped.
fn last_step(r: &ArrayD<f64>) -> Array3<f64> {
    let g = group(r);
    let mut d = Array3::zeros((T, B, g.ncols()));
    d.index_axis_mut(Axis(0), T - 1).assign(&g);
    d
}

fn compare_params<G: Graph<f64>>(g: &G, io: &HashMap<String, ArrayD<f64>>, tol: f64) {
    for spec in g.param_specs() {
        let want = &io[&format!("grad.{}", spec.name)];
        let got = g.grad(&spec.name).unwrap();
        assert_close(&spec.name, got.iter().copied(), want.iter().copied(), tol);
    }
}

#[test]
fn lstm_equals_torch_nn_lstm_with_three_layers() {
    let mut g = Lstm::<f64>::zeros(4, H, 3).unwrap();
    g.load(oracle("lstm3_state.safetensors")).unwrap();
    let io = tensors("lstm3_io.safetensors");
    let mut tape = g.tape();
    let out = g
        .forward_seq(&mut tape, &seq(&io["x"]), &group(&io["h0"]), &group(&io["c0"]))
        .unwrap();
    assert_close("y", out.y.iter().copied(), io["y"].iter().copied(), 1e-12);
    let (h_n, c_n) = (
        out.h_n.index_axis(Axis(0), T - 1),
        out.c_n.index_axis(Axis(0), T - 1),
    );
    assert_close("h_n", ungroup(h_n), io["h_n"].iter().copied(), 1e-12);
    assert_close("c_n", ungroup(c_n), io["c_n"].iter().copied(), 1e-12);
    let (dh, dc) = (last_step(&io["rh"]), last_step(&io["rc"]));
    g.backward_seq(&mut tape, &seq(&io["ry"]), &dh, &dc).unwrap();
    compare_params(&g, &io, 1e-12);
    let dx = tape.grad("x").unwrap();
    assert_close("dx", dx.iter().copied(), io["dx"].iter().copied(), 1e-12);
    let first = |name: &str| {
        tape.grad(name)
            .unwrap()
            .slice(nngraph::ndarray::s![..B, ..])
            .to_owned()
    };
    assert_close(
        "dh0",
        ungroup(first("h").view()),
        io["dh0"].iter().copied(),
        1e-12,
    );
    assert_close(
        "dc0",
        ungroup(first("c").view()),
        io["dc0"].iter().copied(),
        1e-12,
    );
}

#[test]
fn gru_equals_torch_nn_gru_with_two_layers() {
    let mut g = Gru::<f64>::zeros(4, H, 2).unwrap();
    g.load(oracle("gru2_state.safetensors")).unwrap();
    let io = tensors("gru2_io.safetensors");
    let mut tape = g.tape();
    let out = g
        .forward_seq(&mut tape, &seq(&io["x"]), &group(&io["h0"]))
        .unwrap();
    assert_close("y", out.y.iter().copied(), io["y"].iter().copied(), 1e-12);
    let h_n = out.h_n.index_axis(Axis(0), T - 1);
    assert_close("h_n", ungroup(h_n), io["h_n"].iter().copied(), 1e-12);
    g.backward_seq(&mut tape, &seq(&io["ry"]), &last_step(&io["rh"]))
        .unwrap();
    compare_params(&g, &io, 1e-12);
    let dx = tape.grad("x").unwrap();
    assert_close("dx", dx.iter().copied(), io["dx"].iter().copied(), 1e-12);
}

#[test]
fn rnn_equals_torch_nn_rnn_with_two_layers() {
    let mut g = Rnn::<f64>::zeros(4, H, 2).unwrap();
    g.load(oracle("rnn2_state.safetensors")).unwrap();
    let io = tensors("rnn2_io.safetensors");
    let mut tape = g.tape();
    let out = g
        .forward_seq(&mut tape, &seq(&io["x"]), &group(&io["h0"]))
        .unwrap();
    assert_close("y", out.y.iter().copied(), io["y"].iter().copied(), 1e-12);
    g.backward_seq(&mut tape, &seq(&io["ry"]), &last_step(&io["rh"]))
        .unwrap();
    compare_params(&g, &io, 1e-12);
}

#[test]
fn lstm_in_f32_is_within_1e_5_of_torch() {
    let mut g = Lstm::<f32>::zeros(4, H, 3).unwrap();
    for (name, value) in tensors("lstm3_state.safetensors") {
        g.param_mut(&name).unwrap().assign(&value.mapv(|v| v as f32));
    }
    let io = tensors("lstm3_io.safetensors");
    let f32s = |a: &ArrayD<f64>| a.mapv(|v| v as f32);
    let x: Array3<f32> = f32s(&io["x"]).into_dimensionality().unwrap();
    let (h0, c0) = (
        group(&io["h0"]).mapv(|v| v as f32),
        group(&io["c0"]).mapv(|v| v as f32),
    );
    let mut tape = g.tape();
    let out = g.forward_seq(&mut tape, &x, &h0, &c0).unwrap();
    assert_close(
        "y",
        out.y.iter().map(|&v| v as f64),
        io["y"].iter().copied(),
        1e-5,
    );
}

#[test]
fn the_stacks_name_their_tensors_as_torch() {
    let g = Lstm::<f32>::zeros(4, H, 3).unwrap();
    let mut names: Vec<&str> = g.param_specs().iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    let mut torch: Vec<String> = tensors("lstm3_state.safetensors").into_keys().collect();
    torch.sort_unstable();
    assert_eq!(names, torch);
}

#[test]
fn gru_in_f32_is_within_1e_5_of_torch() {
    let mut g = Gru::<f32>::zeros(4, H, 2).unwrap();
    for (name, value) in tensors("gru2_state.safetensors") {
        g.param_mut(&name).unwrap().assign(&value.mapv(|v| v as f32));
    }
    let io = tensors("gru2_io.safetensors");
    let x: Array3<f32> = io["x"].mapv(|v| v as f32).into_dimensionality().unwrap();
    let h0 = group(&io["h0"]).mapv(|v| v as f32);
    let mut tape = g.tape();
    let out = g.forward_seq(&mut tape, &x, &h0).unwrap();
    assert_close(
        "y",
        out.y.iter().map(|&v| v as f64),
        io["y"].iter().copied(),
        1e-5,
    );
    let h_n = out.h_n.index_axis(Axis(0), T - 1).mapv(|v| v as f64);
    assert_close("h_n", ungroup(h_n.view()), io["h_n"].iter().copied(), 1e-5);
}

#[test]
fn gradients_through_the_shipped_lstm_stack_equal_finite_differences() {
    let mut g = Lstm::<f64>::new(&mut StdRng::seed_from_u64(4), 3, 4, 3).unwrap();
    let xs = Array3::from_shape_fn((4, 2, 3), |(t, b, j)| ((t * 5 + b * 3 + j) as f64 * 0.29).sin());
    let h0 = Array2::from_shape_fn((2, 12), |(b, j)| ((b * 7 + j) as f64 * 0.13).cos() * 0.5);
    let c0 = Array2::from_shape_fn((2, 12), |(b, j)| ((b * 3 + j) as f64 * 0.17).sin() * 0.5);
    // Σ w·(every output at every step).
    let loss = common::weighted_sum(|t, o, j| 0.2 + 0.1 * ((o * 5 + t * 3 + j) % 7) as f64);
    let report = GradCheck::new()
        .check_graph(
            &mut g,
            &[
                Feed::Seq(xs.view()),
                Feed::Values(h0.view()),
                Feed::Values(c0.view()),
            ],
            loss,
        )
        .unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.count(), g.num_params() + 2 * 2 * 12 + 4 * 2 * 3);
}
