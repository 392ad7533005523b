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
    let mut unroll = Unroll::new(&g);
    let mut xs = Array3::<f64>::ones((4, 1, 2));
    xs[[2, 0, 1]] = 1e200;
    let err = unroll
        .forward(&g, &[Array2::zeros((1, 2)).view()], &[xs.view()])
        .unwrap_err();
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
