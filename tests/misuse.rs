//! Misuse at run time is an error, never a panic and never a silently wrong
//! number: tapes used with another graph or other sizes, backward after a
//! failed forward, backward twice, sizes whose arithmetic underflows, values
//! outside a criterion's domain. Dropout is reproducible. A fuzzer mixes
//! misuse with normal calls and counts panics.

mod common;

use common::SeedCell;
use nngraph::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

graph! {
    /// Sizes known at run time, one of them shrunk: `Linear(hidden - 2, ..)`.
    #[recurrent(h = new_h)]
    pub Sized[vocab, hidden](x: [vocab], h: [hidden], tag: usize) -> (loss, new_h) {
        new_h = Tanh()(CAdd()(Linear(vocab, hidden)(x), Linear(hidden, hidden)(h)));
        head  = Narrow(0, hidden - 2)(new_h);
        loss  = CrossEntropy()(Linear(hidden - 2, vocab)(Dropout(0.5)(head)), tag);
    }

    /// Widths that are products of a run-time size.
    pub Cubed[n](x: [n]) -> (y) {
        y = Linear(n * n * n, 2)(Linear(n, n * n * n)(x));
    }

    /// A weight of n² parameters.
    pub Square[n](x: [n]) -> (y) {
        y = Linear(n, n)(x);
    }

    /// Probabilities into a binary cross-entropy node.
    pub Probabilities(p: [3], t: [3]) -> (loss) {
        loss = Bce()(Identity()(p), t);
    }
}

fn sized(vocab: usize, hidden: usize) -> Sized<f64> {
    Sized::<f64>::new(&mut StdRng::seed_from_u64(7), vocab, hidden).unwrap()
}

#[test]
fn a_tape_of_another_instance_with_other_sizes_is_an_error_naming_both() {
    let (small, large) = (sized(3, 4), sized(3, 6));
    let mut tape = small.tape();
    let err = large
        .forward(
            &mut tape,
            &Array2::zeros((2, 3)),
            &Array2::zeros((2, 6)),
            &[0usize, 1],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("this tape was made by a graph `Sized`"), "{err}");
    assert!(
        err.contains("[3, 4,") && err.contains("[3, 6,"),
        "both widths: {err}"
    );
    // Nothing was written: the tape still works with its own graph.
    small
        .forward(
            &mut tape,
            &Array2::zeros((2, 3)),
            &Array2::zeros((2, 4)),
            &[0usize, 1],
        )
        .unwrap();
    let mut large = large;
    let err = large
        .backward(&mut tape, &Array2::zeros((2, 1)), &Array2::zeros((2, 6)))
        .unwrap_err();
    assert!(err.to_string().contains("this tape was made by"), "{err}");
}

#[test]
fn a_sequence_tape_reused_with_other_sizes_is_an_error() {
    let (small, large) = (sized(3, 4), sized(3, 6));
    let mut tape = small.tape();
    let xs = Array3::zeros((4, 2, 3));
    let tags = Array2::<usize>::zeros((4, 2));
    small.forward_seq(&mut tape, &xs, &Absent, &tags).unwrap();
    let err = large.forward_seq(&mut tape, &xs, &Absent, &tags).unwrap_err();
    assert!(
        err.to_string()
            .contains("was made by a graph `Sized` with slot widths"),
        "{err}"
    );
}

#[test]
fn unknown_names_and_feeds_that_do_not_fit_are_errors_naming_the_graph() {
    let g = sized(3, 4);
    let mut tape = g.tape();
    let err = tape.set_input_grad("y", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sized: no input is named `y`; the inputs are x, h, tag"
    );
    let err = tape.value("hidden").unwrap_err().to_string();
    assert!(
        err.starts_with("Sized: no input or node is named `hidden`"),
        "{err}"
    );
    let err = tape.final_state("x").unwrap_err();
    assert_eq!(err.to_string(), "Sized: input `x` is not a recurrent state");
    let err = g.input_width("z").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sized: no input is named `z`; the inputs are x, h, tag"
    );
    let err = g.output_width("h").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sized: no output is named `h`; the outputs are loss, new_h"
    );
    let err = g.forward_feeds(&mut tape, &[Feed::Absent; 5]).unwrap_err();
    assert_eq!(err.to_string(), "Sized: expected 3 inputs, got 5");
    let err = g.forward_feeds(&mut tape, &[Feed::Absent; 3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sized: no input gives the batch size: every input is Absent or Carry"
    );
    // An absent input that a state depends on cannot be left out.
    let tags = Array2::<usize>::zeros((4, 2));
    let err = g
        .forward_feeds(&mut tape, &[Feed::Absent, Feed::Absent, Feed::IdSeq(tags.view())])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sized: the state `h` depends on `x`, which is Absent: give it"
    );
}

#[test]
fn a_graph_with_a_loss_node_runs_without_its_targets() {
    let mut g = sized(3, 4);
    g.evaluate();
    let mut tape = g.tape();
    let xs = Array3::from_shape_fn((5, 2, 3), |(t, b, j)| (t + b + j) as f64 * 0.1);
    let tags = Array2::<usize>::zeros((5, 2));
    let with = g
        .forward_seq(&mut tape, &xs, &Absent, &tags)
        .unwrap()
        .new_h
        .to_owned();
    let out = g.forward_seq(&mut tape, &xs, &Absent, &Absent).unwrap();
    // The states are computed as with targets; the loss is not (NaN).
    assert_eq!(out.new_h, with.view());
    assert!(out.loss.iter().all(|l| l.is_nan()));
    // There is no loss to propagate, and no gradient for it.
    let err = g.backward_loss(&mut tape, Reduction::Mean).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sized: output `loss` was not computed: it depends on `tag`, which the forward pass was given as Absent"
    );
    let err = g
        .backward_seq(&mut tape, &Array3::ones((5, 2, 1)), &Absent)
        .unwrap_err();
    assert!(
        err.to_string().contains("output `loss` was not computed"),
        "{err}"
    );
    // A gradient on the state output alone flows back.
    let grads = g
        .backward_seq(&mut tape, &Absent, &Array3::ones((5, 2, 4)))
        .unwrap();
    assert!(grads.x.iter().any(|&v| v != 0.0));
    // One step, as a sampler runs it.
    let out = g
        .forward(&mut tape, &Array2::zeros((1, 3)), &Array2::zeros((1, 4)), &Absent)
        .unwrap();
    assert_eq!(out.new_h.dim(), (1, 4));
}

#[test]
fn backward_after_a_failed_forward_is_an_error() {
    let mut g = sized(3, 4);
    let mut tape = g.tape();
    let (x, h) = (Array2::zeros((2, 3)), Array2::zeros((2, 4)));
    g.forward(&mut tape, &x, &h, &[0usize, 1]).unwrap();
    // Class 5 of 3: the loss node fails half-way through the pass.
    let err = g
        .forward(&mut tape, &x, &h, &[0usize, 5])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("node `loss`") && err.contains("target id 5"),
        "{err}"
    );
    assert!(!tape.is_valid());
    let err = g
        .backward(&mut tape, &Array2::ones((2, 1)), &Array2::zeros((2, 4)))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the last forward pass on this tape failed"),
        "{err}"
    );
    assert!(g.grads().iter().all(|&v| v == 0.0), "no gradient was accumulated");
}

#[test]
fn backward_after_the_weights_changed_is_an_error_until_forward_runs_again() {
    let mut cell = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(3));
    let mut tape = cell.tape();
    let (x, h) = (Array2::from_elem((2, 2), 0.5), Array2::zeros((2, 4)));
    let (dy, dh) = (Array2::ones((2, 1)), Array2::zeros((2, 4)));
    let saved = std::env::temp_dir().join(format!("nngraph-stale-{}.safetensors", std::process::id()));
    cell.save(&saved).unwrap();
    // Each way the weights change between forward and backward.
    type Change<'a> = &'a dyn Fn(&mut SeedCell<f64>);
    let changes: [Change; 4] = [
        &|c| Sgd::new(0.1).step(c.store_mut()).unwrap(),
        &|c| c.params_mut()[0] += 1.0,
        &|c| c.load(&saved).unwrap(),
        &|c| {
            c.param_mut("out.bias").unwrap()[[0]] = 2.0;
        },
    ];
    for change in changes {
        cell.forward(&mut tape, &x, &h).unwrap();
        change(&mut cell);
        cell.zero_grad();
        let err = cell.backward(&mut tape, &dy, &dh).unwrap_err().to_string();
        assert!(
            err.starts_with("SeedCell: the parameters changed after the forward pass on this tape"),
            "{err}"
        );
        assert!(
            cell.grads().iter().all(|&g| g == 0.0),
            "no gradient was accumulated"
        );
        cell.forward(&mut tape, &x, &h).unwrap();
        cell.backward(&mut tape, &dy, &dh).unwrap();
    }
    // Reading the weights, clearing or clipping gradients change nothing.
    cell.forward(&mut tape, &x, &h).unwrap();
    let _ = cell.params().len();
    cell.zero_grad();
    clip_grad_value(cell.store_mut(), 1.0).unwrap();
    cell.backward(&mut tape, &dy, &dh).unwrap();
    std::fs::remove_file(saved).unwrap();
}

#[test]
fn backward_twice_after_one_forward_accumulates_exactly_twice() {
    let mut cell = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(1));
    let mut tape = cell.tape();
    cell.forward(&mut tape, &[0.5, -1.0], &[0.1, 0.2, 0.3, 0.4])
        .unwrap();
    cell.backward(&mut tape, &[1.0], &[0.5; 4]).unwrap();
    let once = cell.grads().to_vec();
    let dx_once = tape.grad("x").unwrap().to_owned();
    cell.backward(&mut tape, &[1.0], &[0.5; 4]).unwrap();
    for (twice, once) in cell.grads().iter().zip(&once) {
        assert_eq!(*twice, 2.0 * once);
    }
    // Input gradients are those of the last call, not a sum.
    assert_eq!(tape.grad("x").unwrap(), dx_once);
}

#[test]
fn backward_seq_twice_accumulates_twice_and_a_failed_forward_leaves_nothing_to_run_backward_on() {
    let mut cell = SeedCell::<f64>::new(&mut StdRng::seed_from_u64(2));
    let mut tape = cell.tape();
    let xs = Array3::from_elem((3, 1, 2), 0.5);
    let h0 = Array2::zeros((1, 4));
    cell.forward_seq(&mut tape, &xs, &h0).unwrap();
    let mut dy = Array3::zeros((3, 1, 1));
    dy[[2, 0, 0]] = 1.0;
    cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
    let once = cell.grads().to_vec();
    cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
    // The same increment again (added row by row into the running sum, so
    // equal up to the rounding of that sum).
    for (twice, once) in cell.grads().iter().zip(&once) {
        assert!(
            (twice - 2.0 * once).abs() <= 1e-15 * once.abs().max(1e-300) * 4.0,
            "{twice} vs {once}"
        );
    }
    // A forward that fails at step 2 (checked mode, an infinite input).
    cell.set_checked(true);
    let mut bad = xs.clone();
    bad[[2, 0, 0]] = f64::INFINITY;
    let err = cell.forward_seq(&mut tape, &bad, &h0).unwrap_err();
    assert!(err.to_string().contains("at step 2"), "{err}");
    let err = cell.backward_seq(&mut tape, &dy, &Absent).unwrap_err();
    assert!(
        err.to_string()
            .contains("the last forward pass on this tape failed"),
        "{err}"
    );
}

#[test]
fn run_time_sizes_whose_arithmetic_underflows_are_an_error_naming_the_node() {
    let err = Sized::<f32>::zeros(3, 1).unwrap_err().to_string();
    let line = 1 + include_str!("misuse.rs")
        .lines()
        .position(|l| l.trim().starts_with("head  = Narrow(0, hidden - 2)"))
        .unwrap();
    assert_eq!(
        err,
        format!(
            "Sized: node `head` (tests/misuse.rs:{line}): argument `length` of `Narrow` \
             `hidden - 2` is -1 with vocab = 3, hidden = 1; it must be at least 1"
        )
    );
    let err = Sized::<f32>::zeros(3, 2).unwrap_err().to_string();
    assert!(err.contains("`hidden - 2` is 0"), "{err}");
    assert!(Sized::<f32>::zeros(3, 3).is_ok());
}

#[test]
fn sizes_whose_products_overflow_or_cannot_be_allocated_are_errors_naming_what() {
    let line = 1 + include_str!("misuse.rs")
        .lines()
        .position(|l| l.trim().starts_with("y = Linear(n * n * n, 2)"))
        .unwrap();
    for n in [1usize << 22, 1 << 40, 1 << 62] {
        let err = Cubed::<f32>::zeros(n).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "Cubed: node `y_linear` (tests/misuse.rs:{line}): argument `out` of `Linear` `n * n * n` \
                 is more than {} with n = {n}; it must be at most {}",
                usize::MAX,
                isize::MAX
            )
        );
    }
    // 2^20 cubed fits: the count of parameters is what is too large then.
    let err = Cubed::<f32>::zeros(1 << 20).unwrap_err().to_string();
    assert!(
        err.starts_with("Cubed: tensor `y_linear.weight` of shape"),
        "{err}"
    );
    let err = Square::<f32>::zeros(1 << 33).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "Square: tensor `y.weight` of shape [8589934592, 8589934592] takes the parameter count past {}",
            usize::MAX
        )
    );
    // Countable, but more memory than any machine has: an error, not an abort.
    let err = Square::<f32>::zeros(1 << 24).unwrap_err().to_string();
    assert_eq!(
        err,
        "Square: 281474993487872 parameters (and as many gradients) cannot be allocated"
    );
    assert!(Square::<f32>::zeros(8).is_ok());
}

#[test]
fn bce_outside_its_domain_is_an_error_naming_the_node() {
    let g = Probabilities::<f64>::zeros();
    let mut tape = g.tape();
    let t = [0.0, 1.0, 0.5];
    assert!(g.forward(&mut tape, &[0.2, 0.9, 0.5], &t).is_ok());
    for (p, what) in [
        ([0.2, 1.5, 0.5], "the prediction 1.5 is not a probability"),
        ([0.2, f64::NAN, 0.5], "the prediction NaN is not a probability"),
        ([-0.1, 0.5, 0.5], "the prediction -0.1 is not a probability"),
    ] {
        let err = g.forward(&mut tape, &p, &t).unwrap_err().to_string();
        assert!(err.contains("node `loss`") && err.contains(what), "{err}");
    }
    let err = g
        .forward(&mut tape, &[0.2, 0.5, 0.5], &[0.0, 2.0, 1.0])
        .unwrap_err();
    assert!(err.to_string().contains("the target 2 is not in [0, 1]"), "{err}");
    // Alone, as torch's BCELoss.
    let err = Bce::new().forward(&array![[1.5]], &array![[1.0]]).unwrap_err();
    assert!(err.to_string().contains("not a probability"), "{err}");
}

/// The losses of `steps` forward passes of a fresh graph with `seed`, in
/// training mode (Dropout active).
fn dropout_run(seed: u64, steps: usize) -> Vec<f64> {
    let mut g = sized(3, 6);
    g.set_seed(seed);
    let mut tape = g.tape();
    let x = Array2::from_shape_fn((4, 3), |(i, j)| (i + j) as f64 * 0.3);
    let h = Array2::from_shape_fn((4, 6), |(i, j)| (i as f64 - j as f64) * 0.1);
    (0..steps)
        .map(|_| {
            g.forward(&mut tape, &x, &h, &[0usize, 1, 2, 0])
                .unwrap()
                .loss
                .sum()
        })
        .collect()
}

#[test]
fn dropout_masks_depend_only_on_the_seed_the_tape_and_its_calls() {
    let here = dropout_run(11, 4);
    // Each call on a tape draws a new mask.
    assert!(here.windows(2).all(|w| w[0] != w[1]), "{here:?}");
    // The same seed and calls give the same masks, on another thread and
    // while other graphs draw masks of their own.
    let noise = std::thread::spawn(|| dropout_run(99, 50));
    let there = std::thread::spawn(|| dropout_run(11, 4)).join().unwrap();
    noise.join().unwrap();
    assert_eq!(here, there);
    assert_ne!(here, dropout_run(12, 4), "another seed, other masks");
}

/// A feed of a random kind and shape for input `i` (or an output
/// gradient), chosen by `pick`.
fn random_feed<'a>(
    pick: u64,
    values: &'a Array3<f64>,
    ids: &'a Array2<usize>,
    flat: &'a Array2<f64>,
) -> Feed<'a, f64> {
    match pick % 6 {
        0 => Feed::Values(flat.view()),
        1 => Feed::Ids(ids.as_slice().unwrap()),
        2 => Feed::Seq(values.view()),
        3 => Feed::IdSeq(ids.view()),
        4 => Feed::Carry,
        _ => Feed::Absent,
    }
}

/// One misuse or normal call, chosen by `pick`; whether it succeeded.
fn misuse_step(pick: u64, graphs: &mut [Sized<f64>; 2], tapes: &mut [Tape<f64>; 3]) -> bool {
    let (g, t) = ((pick % 2) as usize, ((pick / 2) % 3) as usize);
    let batch = 1 + (pick / 6 % 3) as usize;
    let hidden = graphs[g].sizes().hidden;
    // Sometimes the wrong hidden width, sometimes an id outside the classes.
    let h_width = if pick.is_multiple_of(7) {
        hidden + 1
    } else {
        hidden
    };
    let tag = (pick / 18 % 4) as usize;
    let x = Array2::from_elem((batch, 3), 0.25);
    let h = Array2::from_elem((batch, h_width), -0.5);
    let tags = vec![tag; batch];
    let steps = 1 + (pick / 5 % 3) as usize;
    let xs = Array3::from_elem((steps, batch, 3), 0.1);
    let ids = Array2::from_elem((steps, batch), tag);
    let result = match pick / 72 % 8 {
        0 | 1 => graphs[g].forward(&mut tapes[t], &x, &h, &tags).map(|_| ()),
        2 => graphs[g]
            .backward(
                &mut tapes[t],
                &Array2::ones((batch, 1)),
                &Array2::zeros((batch, hidden)),
            )
            .map(|_| ()),
        3 => graphs[g].forward_seq(&mut tapes[t], &xs, &h, &ids).map(|_| ()),
        4 => graphs[g]
            .backward_loss(&mut tapes[t], Reduction::Mean)
            .map(|_| ()),
        5 => {
            // Feeds of any kind for any input.
            let widths = [3, h_width, 1];
            let arrays: Vec<(Array3<f64>, Array2<f64>)> = widths
                .iter()
                .map(|&w| {
                    (
                        Array3::from_elem((steps, batch, w), 0.2),
                        Array2::from_elem((batch, w), 0.3),
                    )
                })
                .collect();
            let feeds: Vec<Feed<f64>> = (0..3)
                .map(|i| random_feed(pick >> (8 + 3 * i), &arrays[i].0, &ids, &arrays[i].1))
                .collect();
            graphs[g].forward_feeds(&mut tapes[t], &feeds)
        }
        6 => {
            // Output gradients of any kind.
            let arrays = [
                (
                    Array3::from_elem((steps, batch, 1), 1.0),
                    Array2::from_elem((batch, 1), 1.0),
                ),
                (
                    Array3::from_elem((steps, batch, hidden), 0.1),
                    Array2::from_elem((batch * steps, hidden), 0.1),
                ),
            ];
            let grads: Vec<Feed<f64>> = (0..2)
                .map(|o| random_feed(pick >> (8 + 3 * o), &arrays[o].0, &ids, &arrays[o].1))
                .collect();
            graphs[g].backward_feeds(&mut tapes[t], &grads)
        }
        _ => {
            graphs[g].set_checked(pick.is_multiple_of(5));
            graphs[g].zero_grad();
            Ok(())
        }
    };
    result.is_ok()
}

/// `(panics, calls that succeeded, calls that were errors)`.
fn fuzz(iterations: u64) -> (usize, usize, usize) {
    let mut graphs = [sized(3, 4), sized(3, 5)];
    let mut tapes = [graphs[0].tape(), graphs[1].tape(), graphs[0].tape()];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let (mut panics, mut ok, mut errors) = (0, 0, 0);
    for _ in 0..iterations {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let pick = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 16;
        match catch_unwind(AssertUnwindSafe(|| misuse_step(pick, &mut graphs, &mut tapes))) {
            Err(_) => panics += 1,
            Ok(true) => ok += 1,
            Ok(false) => errors += 1,
        }
    }
    (panics, ok, errors)
}

fn assert_fuzz(iterations: u64) {
    let (panics, ok, errors) = fuzz(iterations);
    eprintln!("{iterations} calls: {panics} panics, {ok} succeeded, {errors} errors");
    assert_eq!(panics, 0);
    // The mix exercises both sides.
    let n = iterations as usize;
    assert!(ok > n / 5 && errors > n / 5, "{ok} succeeded, {errors} errors");
}

#[test]
fn mixed_misuse_never_panics() {
    assert_fuzz(3_000);
}

/// `cargo test --release --test misuse -- --ignored`: the long run.
#[test]
#[ignore]
fn mixed_misuse_never_panics_long() {
    assert_fuzz(100_000);
}
