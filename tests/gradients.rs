//! Whole generated graphs against finite differences: a single pass with
//! fan-out, BPTT over 1, 5 and 50 steps, truncated BPTT, and a deliberately
//! wrong backward that the checker must catch.

mod common;

use common::*;
use nngraph::prelude::*;

graph! {
    /// `h` feeds three nodes, once twice over (`CMul(h, h)`).
    pub FanOut(a: [3], b: [3]) -> (y, z) {
        h = Tanh()(Linear(3, 4)(a));
        g = CMul()(h, h);
        k = Linear(4, 4)(h);
        y = CAdd()(g, k, Linear(3, 4)(b));
        z = Sigmoid()(CSub()(k, ReLU()(h)));
    }
}

fn filled(shape: (usize, usize), seed: f64) -> Array2<f64> {
    Array2::from_shape_fn(shape, |(i, j)| (seed + 1.3 * i as f64 + 0.7 * j as f64).sin())
}

fn mse_on_every_output(
    _t: usize,
    o: usize,
    y: ArrayView2<f64>,
    grad: Option<ArrayViewMut2<f64>>,
) -> nngraph::Result<f64> {
    let target = Array2::from_shape_fn(y.dim(), |(i, j)| 0.2 * (i + j + o) as f64 - 0.3);
    if let Some(g) = grad {
        Mse::new().backward(&y, &target, g)?;
    }
    Mse::new().forward(&y, &target)
}

#[test]
fn whole_graph_with_fan_out_matches_finite_differences() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut g = FanOut::<f64>::new(&mut rng);
    let inputs = [filled((3, 3), 0.1), filled((3, 3), 2.0)];
    let report = GradCheck::new()
        .check_graph(
            &mut g,
            &inputs.each_ref().map(|x| Feed::Values(x.view())),
            mse_on_every_output,
        )
        .unwrap();
    assert!(report.passed(), "{report}");
    // Every parameter tensor and both inputs were checked.
    assert_eq!(report.variables.len(), g.param_specs().len() + 2);
    assert_eq!(report.count(), FanOut::<f64>::NUM_PARAMS + 18);
}

#[test]
fn backward_accumulates_until_zero_grad() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut g = FanOut::<f64>::new(&mut rng);
    let mut tape = g.tape();
    let (a, b) = (filled((2, 3), 0.3), filled((2, 3), 0.9));
    let dy = filled((2, 4), 1.0);
    let dz = filled((2, 4), 3.0);
    g.forward(&mut tape, &a, &b).unwrap();
    g.backward(&mut tape, &dy, &dz).unwrap();
    let once = g.grads().to_vec();
    g.backward(&mut tape, &dy, &dz).unwrap();
    for (twice, once) in g.grads().iter().zip(&once) {
        assert!((twice - 2.0 * once).abs() < 1e-12);
    }
    assert!(once.iter().any(|&v| v != 0.0));
    g.zero_grad();
    assert!(g.grads().iter().all(|&v| v == 0.0));
}

fn bptt_check(steps: usize) {
    let mut rng = StdRng::seed_from_u64(steps as u64);
    let mut cell = SeedCell::<f64>::new(&mut rng);
    let h0 = filled((2, 4), 0.5) * 0.5;
    let xs = Array3::from_shape_fn((steps, 2, 2), |(t, b, j)| {
        (0.3 * t as f64 + b as f64 + 2.0 * j as f64).cos()
    });
    let report = GradCheck::new()
        .check_graph(
            &mut cell,
            &[Feed::Seq(xs.view()), Feed::Values(h0.view())],
            seed_loss,
        )
        .unwrap();
    assert!(report.passed(), "T = {steps}\n{report}");
    assert_eq!(
        report.count(),
        SeedCell::<f64>::NUM_PARAMS + 2 * 4 + steps * 2 * 2
    );
}

#[test]
fn bptt_matches_finite_differences_for_1_step() {
    bptt_check(1);
}

#[test]
fn bptt_matches_finite_differences_for_5_steps() {
    bptt_check(5);
}

#[test]
fn bptt_matches_finite_differences_for_50_steps() {
    bptt_check(50);
}

#[test]
fn loss_on_the_last_step_only() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut cell = SeedCell::<f64>::new(&mut rng);
    let h0 = filled((1, 4), 0.2) * 0.3;
    let xs = Array3::from_shape_fn((6, 1, 2), |(t, _, j)| (t as f64 - j as f64) * 0.2);
    let last = |t: usize, o: usize, y: ArrayView2<'_, f64>, g: Option<ArrayViewMut2<'_, f64>>| {
        if t == 5 {
            seed_loss(t, o, y, g)
        } else {
            Ok(0.0)
        }
    };
    let report = GradCheck::new()
        .check_graph(&mut cell, &[Feed::Seq(xs.view()), Feed::Values(h0.view())], last)
        .unwrap();
    assert!(report.passed(), "{report}");
    // The loss reaches back to the initial state through all six steps.
    assert!(
        report
            .variable("h (initial)")
            .unwrap()
            .worst
            .as_ref()
            .unwrap()
            .numeric
            != 0.0
    );
}

#[test]
fn truncated_bptt_equals_the_gradient_with_the_state_detached() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut cell = SeedCell::<f64>::new(&mut rng);
    let xs = Array3::from_shape_fn((8, 2, 2), |(t, b, j)| {
        (0.4 * t as f64 - b as f64 + j as f64).sin()
    });
    let (first, second) = (
        xs.slice(nngraph::ndarray::s![..4, .., ..]),
        xs.slice(nngraph::ndarray::s![4.., .., ..]),
    );

    // Truncated: chunk 1, then chunk 2 carrying the state; backward on chunk 2.
    let mut tape = cell.tape();
    cell.forward_seq_carry(&mut tape, &first).unwrap();
    let boundary = tape.final_state("h").unwrap().to_owned();
    let ys = cell.forward_seq_carry(&mut tape, &second).unwrap().y.to_owned();
    cell.zero_grad();
    let mut dy = Array3::zeros(ys.dim());
    sum_over_steps(ys.view(), Some(&mut dy), seed_loss);
    cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
    let truncated = cell.grads().to_vec();

    // Reference: finite differences of chunk 2's loss with its initial state
    // held fixed at the boundary value (detached), parameters perturbed.
    let mut reference = cell.tape();
    let eps = 1e-6;
    for (j, &analytic) in truncated.iter().enumerate() {
        let mut loss_at = |cell: &mut SeedCell<f64>, delta: f64| {
            cell.params_mut()[j] += delta;
            let ys = cell
                .forward_seq(&mut reference, &second, &boundary)
                .unwrap()
                .y
                .to_owned();
            cell.params_mut()[j] -= delta;
            sum_over_steps(ys.view(), None, seed_loss)
        };
        let numeric = (loss_at(&mut cell, eps) - loss_at(&mut cell, -eps)) / (2.0 * eps);
        assert!(
            (analytic - numeric).abs() < 1e-7,
            "param {j}: {analytic} vs {numeric}"
        );
    }

    // And it is not the full gradient over all 8 steps: the cut is real.
    let mut full = cell.tape();
    cell.zero_grad();
    let ys = cell.forward_seq(&mut full, &xs, &Absent).unwrap().y.to_owned();
    let mut dy = Array3::zeros(ys.dim());
    sum_over_steps(ys.view(), Some(&mut dy), |t, o, y, g| {
        if t >= 4 {
            seed_loss(t, o, y, g)
        } else {
            Ok(0.0)
        }
    });
    cell.backward_seq(&mut full, &dy, &Absent).unwrap();
    let x2h_weight = 0..8;
    let differs = cell.grads()[x2h_weight.clone()]
        .iter()
        .zip(&truncated[x2h_weight])
        .any(|(a, b)| (a - b).abs() > 1e-9);
    assert!(differs, "full BPTT should differ from truncated BPTT");
}

#[test]
fn weights_are_shared_by_every_step() {
    // The seed's demonstration: a write to the weights shows in every step.
    let mut rng = StdRng::seed_from_u64(5);
    let mut cell = SeedCell::<f64>::new(&mut rng);
    let (h0, xs) = seed_inputs(5);
    let mut seq = cell.tape();
    let before = cell.forward_seq(&mut seq, &xs, &h0).unwrap().y.to_owned();

    cell.param_mut("x2h.weight").unwrap()[[0, 1]] = -1.0;
    let after = cell.forward_seq(&mut seq, &xs, &h0).unwrap().y.to_owned();

    // Recompute every step by hand with the same cell: identical numbers.
    let mut tape = cell.tape();
    let mut h = h0.clone();
    for t in 0..5 {
        let out = cell.forward(&mut tape, &xs.index_axis(Axis(0), t), &h).unwrap();
        assert_eq!(out.y, after.index_axis(Axis(0), t), "step {t}");
        assert_ne!(out.y[[0, 0]], before[[t, 0, 0]], "step {t} did not see the write");
        h = out.new_h.to_owned();
    }
}

#[test]
fn sequences_of_different_lengths_reuse_the_tape() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut cell = SeedCell::<f64>::new(&mut rng);
    let mut tape = cell.tape();
    for steps in [7, 3, 12, 3] {
        let (h0, xs) = seed_inputs(steps);
        let ys = cell.forward_seq(&mut tape, &xs, &h0).unwrap().y.to_owned();
        assert_eq!(tape.steps(), steps);
        let mut dy = Array3::zeros(ys.dim());
        sum_over_steps(ys.view(), Some(&mut dy), seed_loss);
        let grads = cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
        assert_eq!(grads.x.dim(), (steps, 1, 2));
    }
}

#[test]
fn sequence_gradients_can_be_skipped_without_changing_parameter_gradients() {
    let mut rng = StdRng::seed_from_u64(21);
    let mut cell = SeedCell::<f64>::new(&mut rng);
    let (h0, xs) = seed_inputs(6);
    let mut tape = cell.tape();
    let ys = cell.forward_seq(&mut tape, &xs, &h0).unwrap().y.to_owned();
    let mut dy = Array3::zeros(ys.dim());
    sum_over_steps(ys.view(), Some(&mut dy), seed_loss);
    let grads = cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
    assert!(grads.x.index_axis(Axis(0), 3).iter().any(|&v| v != 0.0));
    let with = (cell.grads().to_vec(), grads.h.to_owned());

    cell.zero_grad();
    tape.set_input_grad("x", false).unwrap();
    cell.forward_seq(&mut tape, &xs, &h0).unwrap();
    let grads = cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
    assert_eq!(cell.grads(), &with.0[..]);
    assert_eq!(grads.h, with.1);
    assert!(grads.x.iter().all(|&v| v == 0.0));
    // A name that is no input is an error naming the graph's inputs.
    let err = tape.set_input_grad("xs", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SeedCell: no input is named `xs`; the inputs are x, h"
    );
}

#[test]
fn grad_check_settings_that_cannot_be_right_are_errors_and_values_are_restored() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut g = FanOut::<f64>::new(&mut rng);
    let (a, b) = (filled((2, 3), 0.1), filled((2, 3), 0.7));
    let feeds = [Feed::Values(a.view()), Feed::Values(b.view())];
    let before = g.params().to_vec();
    for (check, want) in [
        (
            GradCheck::new().eps(0.0),
            "GradCheck: eps must be finite and above 0, not 0.0",
        ),
        (
            GradCheck::new().eps(f64::NAN),
            "GradCheck: eps must be finite and above 0, not NaN",
        ),
        (
            GradCheck::new().atol(-1e-5),
            "GradCheck: atol must be at least 0, not -1e-5",
        ),
        (
            GradCheck::new().rtol(f64::NAN),
            "GradCheck: rtol must be at least 0, not NaN",
        ),
    ] {
        let err = check
            .check_graph(&mut g, &feeds, mse_on_every_output)
            .unwrap_err();
        assert_eq!(err.to_string(), want);
    }
    // A step too small for f32 moves nothing: an error, not a report of zeros.
    let mut g32 = FanOut::<f32>::new(&mut rng);
    let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
    let feeds32 = [Feed::Values(a32.view()), Feed::Values(b32.view())];
    let loss32 =
        |_t: usize, _o: usize, y: ArrayView2<f32>, g: Option<ArrayViewMut2<f32>>| -> nngraph::Result<f32> {
            if let Some(mut g) = g {
                g.fill(1.0);
            }
            Ok(y.sum())
        };
    let err = GradCheck::f32()
        .eps(1e-12)
        .check_graph(&mut g32, &feeds32, loss32)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("GradCheck: a step of eps = 1e-12 does not move `"),
        "{err}"
    );
    assert!(err.ends_with("in f32: choose a larger eps"), "{err}");
    // A loss that fails mid-probe: the error, and the parameters as they were.
    let mut calls = 0;
    let failing = |_t: usize, o: usize, y: ArrayView2<f64>, g: Option<ArrayViewMut2<f64>>| {
        calls += 1;
        if calls > 20 {
            return Err(nngraph::Error::InvalidInput {
                graph: "loss".into(),
                message: "gave up".into(),
            });
        }
        mse_on_every_output(0, o, y, g)
    };
    let err = GradCheck::new().check_graph(&mut g, &feeds, failing).unwrap_err();
    assert_eq!(err.to_string(), "loss: gave up");
    assert_eq!(g.params(), &before[..]);
}
