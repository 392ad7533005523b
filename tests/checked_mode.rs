//! Checked mode: the first node whose value or gradient is NaN or infinite
//! is named, with its source line, the step and the value.

use nngraph::prelude::*;

graph! {
    #[recurrent(h = new_h)]
    pub Blowup(x: [2], h: [2]) -> (y, new_h) {
        a     = Linear(2, 2)(x);
        sq    = CMul()(a, a);
        new_h = Tanh()(CAdd()(sq, h));
        y     = Identity()(new_h);
    }
}

const SQ_LINE: u32 = 10; // the line of `sq = CMul()(a, a);` above

fn graph() -> Blowup<f64> {
    let mut g = Blowup::<f64>::zeros();
    g.params_mut().iter_mut().for_each(|p| *p = 0.5);
    g
}

#[test]
fn unchecked_a_huge_input_hides_behind_tanh() {
    let g = graph();
    let mut tape = g.tape();
    let out = g.forward(&mut tape, &[1e200, 1e200], &[0.0, 0.0]).unwrap();
    // tanh(inf) = 1: the overflow is invisible in the output.
    assert!(out.y.iter().all(|v| v.is_finite()));
    assert!(tape.value("sq").unwrap().iter().all(|v| v.is_infinite()));
}

#[test]
fn checked_mode_names_the_node_that_overflowed() {
    let mut g = graph();
    g.set_checked(true);
    let mut tape = g.tape();
    let err = g.forward(&mut tape, &[1e200, 1e200], &[0.0, 0.0]).unwrap_err();
    match &err {
        Error::NonFinite {
            node,
            line,
            step,
            value,
            ..
        } => {
            assert_eq!(node, "sq");
            assert_eq!(*line, SQ_LINE);
            assert_eq!(*step, None);
            assert!(value.is_infinite());
        }
        other => panic!("unexpected error {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.starts_with("Blowup: the output of node `sq` (tests/checked_mode.rs:10) holds inf at [0, 0]"),
        "{msg}"
    );
    // Fine inputs pass in checked mode.
    assert!(g.forward(&mut tape, &[1.0, 2.0], &[0.0, 0.0]).is_ok());
}

#[test]
fn checked_mode_names_the_step_of_a_sequence() {
    let mut g = graph();
    g.set_checked(true);
    let mut tape = g.tape();
    let mut xs = Array3::<f64>::ones((4, 1, 2));
    xs[[2, 0, 1]] = 1e200;
    let err = g.forward_seq(&mut tape, &xs, &Absent).unwrap_err();
    assert!(
        err.to_string().ends_with("holds inf at [0, 0] at step 2"),
        "{err}"
    );
}

#[test]
fn checked_mode_catches_a_non_finite_gradient() {
    let mut g = graph();
    g.set_checked(true);
    let mut tape = g.tape();
    g.forward(&mut tape, &[1.0, 1.0], &[0.0, 0.0]).unwrap();
    let err = g.backward(&mut tape, &[f64::NAN, 0.0], &[0.0, 0.0]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Blowup: the gradient arriving at node `y`"),
        "{err}"
    );
}

graph! {
    /// A layer whose parameter gradient overflows while every node's value
    /// and gradient stays finite.
    pub WideInput(x: [2]) -> (y) {
        y = Linear(2, 1)(x);
    }

    /// An LSTM cell nested in a graph.
    #[recurrent(h = h1, c = c1)]
    pub Host(x: [3], h: [2], c: [2]) -> (h1, c1) {
        (h1, c1) = nngraph::cells::LstmCell<3, 2>(x, h, c);
    }
}

#[test]
fn checked_mode_checks_parameter_gradients_and_a_failed_check_changes_none() {
    let mut g = WideInput::<f64>::zeros();
    g.params_mut().copy_from_slice(&[1e-300, 1e-300, 0.0]);
    g.set_checked(true);
    let mut tape = g.tape();
    // A good pass first, so that there are gradients to keep.
    g.forward(&mut tape, &[1.0, 2.0]).unwrap();
    g.backward(&mut tape, &[1.0]).unwrap();
    let before = g.grads().to_vec();
    assert_eq!(before, [1.0, 2.0, 1.0]);
    // y = 1e-300 * (1e300 + 1e300) = 2 and dy = 1e10 are finite, dx = dy * w
    // too, but dW = dy * x = 1e310 is not.
    g.forward(&mut tape, &[1e300, 1e300]).unwrap();
    let err = g.backward(&mut tape, &[1e10]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("WideInput: the parameter gradient of node `y`"),
        "{err}"
    );
    assert!(matches!(
        err,
        Error::NonFinite {
            pass: nngraph::runtime::Pass::Parameters,
            ..
        }
    ));
    assert_eq!(g.grads(), before.as_slice(), "the failed pass added nothing");
    // Unchecked, the same pass adds the infinity.
    g.set_checked(false);
    g.backward(&mut tape, &[1e10]).unwrap();
    assert!(g.grads()[0].is_infinite());
    // A clean checked pass does not take the old infinity for its own: it
    // says where it is and that it came before, and adds nothing.
    g.set_checked(true);
    g.forward(&mut tape, &[1.0, 2.0]).unwrap();
    let left = g.grads().to_vec();
    let err = g.backward(&mut tape, &[1.0]).unwrap_err().to_string();
    assert_eq!(
        err,
        "WideInput: the gradient of `y.weight` (element 0) is already inf before this backward pass: \
         an earlier pass left it there (zero_grad() clears the gradients); nothing was added"
    );
    assert_eq!(g.grads()[1..], left[1..]);
    g.zero_grad();
    g.backward(&mut tape, &[1.0]).unwrap();
    assert_eq!(g.grads(), [1.0, 2.0, 1.0]);
}

#[test]
fn checked_mode_names_a_node_inside_a_nested_graph_by_its_path_and_the_outer_line() {
    let mut g = Host::<f64>::zeros().unwrap();
    g.set_checked(true);
    let mut tape = g.tape();
    let err = g
        .forward(&mut tape, &[f64::NAN, 0.0, 0.0], &[0.0; 2], &[0.0; 2])
        .unwrap_err();
    let line = 1 + include_str!("checked_mode.rs")
        .lines()
        .position(|l| l.trim().starts_with("(h1, c1) = nngraph::cells::LstmCell"))
        .unwrap();
    match &err {
        Error::NonFinite {
            graph,
            node,
            file,
            line: l,
            ..
        } => {
            assert_eq!(graph, "Host");
            // The first node of the cell to see x: its input projection.
            assert_eq!(node, "h1_lstmcell.ih");
            assert_eq!(file, "tests/checked_mode.rs");
            assert_eq!(*l as usize, line);
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn checked_mode_names_a_fused_lstm_node_the_pass_does_not_keep() {
    // ih = hh = 1e308 in every gate: finite, but their sum (a node of the
    // fused gate group whose value the pass computes and does not keep) is
    // not; backward, σ(f)'s gradient dc·c overflows where c_next's does not.
    let mut g = Host::<f64>::zeros().unwrap();
    let p = g.params_mut();
    p.fill(0.0);
    for r in 0..8 {
        p[r * 3] = 1.0; // weight_ih[r][0]
        p[32 + r * 2] = 1.0; // weight_hh[r][0]
    }
    g.set_checked(true);
    let mut tape = g.tape();
    let err = g
        .forward(&mut tape, &[1e308, 0.0, 0.0], &[1e308, 0.0], &[0.0; 2])
        .unwrap_err();
    match &err {
        Error::NonFinite { node, pass, .. } => {
            assert_eq!(node, "h1_lstmcell.i_cadd", "{err}");
            assert_eq!(*pass, nngraph::runtime::Pass::Forward);
        }
        other => panic!("{other}"),
    }
    // Unchecked, the sum is read by name as it was computed.
    g.set_checked(false);
    g.forward(&mut tape, &[1e308, 0.0, 0.0], &[1e308, 0.0], &[0.0; 2])
        .unwrap();
    assert!(tape
        .value("h1_lstmcell.i_cadd")
        .unwrap()
        .iter()
        .all(|v| *v == f64::INFINITY));
    // Backward: c = 1e300 and dc_next = 1e10 are finite, dσ(f) = 1e310 is not.
    g.params_mut().fill(0.0);
    g.set_checked(true);
    g.forward(&mut tape, &[0.0; 3], &[0.0; 2], &[1e300, 1e300])
        .unwrap();
    let err = g.backward(&mut tape, &[0.0; 2], &[1e10, 1e10]).unwrap_err();
    match &err {
        Error::NonFinite { node, pass, .. } => {
            assert_eq!(node, "h1_lstmcell.c_next_sigmoid", "{err}");
            assert_eq!(*pass, nngraph::runtime::Pass::Backward);
        }
        other => panic!("{other}"),
    }
}
