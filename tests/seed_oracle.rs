//! The seed notebook's computations against PyTorch float64 reference
//! numbers (`tests/oracle/seed_oracle.json`), to 1e-12.

mod common;

use common::*;
use nngraph::prelude::*;

const TOL: f64 = 1e-12;

#[test]
fn two_inputs_matches_the_oracle() {
    let o = oracle("seed_oracle.json");
    let case = &o["two_inputs"];
    let mut g = TwoInputs::<f64>::zeros();
    set_seed_oracle_weights(g.store_mut());
    let mut tape = g.tape();
    let out = g
        .forward(&mut tape, &vec1(&case["x1"]), &vec1(&case["x2"]))
        .unwrap();
    assert_close("out", out.out.iter().copied(), vec1(&case["out"]), TOL);
    assert_close("add", out.add.iter().copied(), vec1(&case["add"]), TOL);
}

/// The notebook's way: one forward per step by hand, then backward per step
/// from the last, carrying the state gradient.
#[test]
fn rnn_cell_bptt_by_hand_matches_the_oracle() {
    let o = oracle("seed_oracle.json");
    let case = &o["rnn_cell_bptt"];
    let steps = case["T"].as_u64().unwrap() as usize;
    let mut cell = SeedCell::<f64>::zeros();
    set_seed_oracle_weights(cell.store_mut());
    let (h0, xs) = seed_inputs(steps);
    let target = array![[1.0]];

    let mut tapes: Vec<_> = (0..steps).map(|_| cell.tape()).collect();
    let mut h = h0.clone();
    let mut loss = 0.0;
    for (t, tape) in tapes.iter_mut().enumerate() {
        let out = cell.forward(tape, &xs.index_axis(Axis(0), t), &h).unwrap();
        loss += Mse::new().forward(&out.y, &target).unwrap();
        h = out.new_h.to_owned();
    }
    assert!((loss - case["loss"].as_f64().unwrap()).abs() < TOL, "loss {loss}");

    let mut dh = Array2::zeros((1, 4));
    let mut grad_xs = vec![Array2::zeros((1, 2)); steps];
    for t in (0..steps).rev() {
        let mut dy = Array2::zeros((1, 1));
        Mse::new()
            .backward(&tapes[t].value("y").unwrap(), &target, dy.view_mut())
            .unwrap();
        let grads = cell.backward(&mut tapes[t], &dy, &dh).unwrap();
        grad_xs[t] = grads.x.to_owned();
        dh = grads.h.to_owned();
    }
    assert_oracle_grads(cell.store(), case, TOL);
    assert_close("grad_h0", dh.iter().copied(), vec1(&case["grad_h0"]), TOL);
    for (t, want) in case["grad_xs"].as_array().unwrap().iter().enumerate() {
        assert_close(
            &format!("grad_xs[{t}]"),
            grad_xs[t].iter().copied(),
            vec1(want),
            TOL,
        );
    }
}

/// Σ_t MSE(y_t, 1), each step's term by the criterion as the seed
/// notebook writes it, and its gradient when `dy` is given.
fn seed_sequence_loss(ys: ArrayView3<f64>, dy: Option<&mut Array3<f64>>) -> f64 {
    sum_over_steps(ys, dy, seed_loss)
}

#[test]
fn rnn_cell_bptt_over_a_sequence_matches_the_oracle() {
    let o = oracle("seed_oracle.json");
    let case = &o["rnn_cell_bptt"];
    let steps = case["T"].as_u64().unwrap() as usize;
    let mut cell = SeedCell::<f64>::zeros();
    set_seed_oracle_weights(cell.store_mut());
    let (h0, xs) = seed_inputs(steps);

    let mut tape = cell.tape();
    let ys = cell.forward_seq(&mut tape, &xs, &h0).unwrap().y.to_owned();
    let mut dy = Array3::zeros(ys.dim());
    let loss = seed_sequence_loss(ys.view(), Some(&mut dy));
    assert!((loss - case["loss"].as_f64().unwrap()).abs() < TOL, "loss {loss}");
    for (t, want) in case["ys"].as_array().unwrap().iter().enumerate() {
        assert_close(
            &format!("y[{t}]"),
            ys.index_axis(Axis(0), t).iter().copied(),
            vec1(want),
            TOL,
        );
    }
    let grads = cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
    assert_close("grad_h0", grads.h.iter().copied(), vec1(&case["grad_h0"]), TOL);
    for (t, want) in case["grad_xs"].as_array().unwrap().iter().enumerate() {
        assert_close(
            &format!("grad_xs[{t}]"),
            grads.x.index_axis(Axis(0), t).iter().copied(),
            vec1(want),
            TOL,
        );
    }
    assert_oracle_grads(cell.store(), case, TOL);

    // One SGD step with lr 0.01, then the loss again.
    Sgd::new(0.01).step(cell.store_mut()).unwrap();
    let ys = cell.forward_seq(&mut tape, &xs, &h0).unwrap().y;
    let after = seed_sequence_loss(ys, None);
    let want = case["loss_after_one_sgd_step_lr0.01"].as_f64().unwrap();
    assert!((after - want).abs() < TOL, "loss after SGD {after} vs {want}");
}

#[test]
fn finite_difference_entry_matches_the_oracle() {
    let o = oracle("seed_oracle.json");
    let case = &o["rnn_cell_bptt"];
    let fd = &case["fd_check_x2h.weight[0][0]"];
    let mut cell = SeedCell::<f64>::zeros();
    set_seed_oracle_weights(cell.store_mut());
    let (h0, xs) = seed_inputs(5);
    let mut tape = cell.tape();
    let mut loss_at = |cell: &mut SeedCell<f64>, delta: f64| {
        cell.param_mut("x2h.weight").unwrap()[[0, 0]] += delta;
        let ys = cell.forward_seq(&mut tape, &xs, &h0).unwrap().y;
        let l = seed_sequence_loss(ys, None);
        cell.param_mut("x2h.weight").unwrap()[[0, 0]] -= delta;
        l
    };
    let eps = 1e-4;
    let numeric = (loss_at(&mut cell, eps) - loss_at(&mut cell, -eps)) / (2.0 * eps);
    let want = fd["central_fd"]["0.0001"].as_f64().unwrap();
    assert!((numeric - want).abs() < 1e-9, "{numeric} vs {want}");
}
