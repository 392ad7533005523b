//! Graph-level behaviour of sizes, ids inputs, losses as nodes, Dropout,
//! Split/Narrow/Concat: against finite differences or definitions.

use nngraph::prelude::*;

graph! {
    /// Sizes known only at run time (char-rnn's vocabulary).
    #[recurrent(h = new_h)]
    pub CharRnn[vocab, hidden](x: [vocab], h: [hidden]) -> (logits, new_h) {
        new_h  = Tanh()(CAdd()(Linear(vocab, hidden)(x), Linear(hidden, hidden)(h)));
        logits = Linear(hidden, vocab)(new_h);
    }

    /// A width the macro cannot check: `b` must equal `a`.
    pub Mismatch[a, b](x: [a]) -> (y) {
        y = Linear(b, 2)(x);
    }

    /// Split, Narrow, Concat and the constant layers, on const-generic sizes.
    pub Mixer<const H: usize>(x: [2 * H], g: [H]) -> (y) {
        (left, right) = Split(2)(x);
        mid = Narrow(1, H - 1)(CDiv()(left, AddConstant(2.0)(MulConstant(0.5)(g))));
        y = Concat()(LogSoftMax()(mid), SoftMax()(CMul()(right, g)), Identity()(left));
    }

    /// A whole training step as one graph: the loss is a node.
    pub Classifier(x: [4], label: usize) -> (loss, probs) {
        logits = Linear(4, 3)(x);
        probs  = SoftMax()(logits);
        loss   = CrossEntropy()(logits, label);
    }

    /// Integer ids in, rows of a table out.
    pub Lookup(ids: usize) -> (y) {
        y = Tanh()(Embedding(5, 3)(ids));
    }

    /// A recurrent graph over ids, for unrolling.
    #[recurrent(h = h1)]
    pub IdRnn(x: usize, h: [3], target: usize) -> (loss, h1) {
        h1 = Tanh()(CAdd()(Embedding(4, 3)(x), Linear(3, 3)(h)));
        loss = CrossEntropy()(Linear(3, 4)(h1), target);
    }

    pub Dropper(x: [40]) -> (y) {
        y = Dropout(0.5)(x);
    }

    /// Cross-entropy of scores given as an input: many rows are split
    /// across threads.
    pub Scores(x: [65], label: usize) -> (loss) {
        loss = CrossEntropy()(x, label);
    }
}

fn mse_loss(_t: usize, _o: usize, y: ArrayView2<f64>, g: Option<ArrayViewMut2<f64>>) -> nngraph::Result<f64> {
    let target = Array2::from_shape_fn(y.dim(), |(i, j)| 0.1 * (i + j) as f64);
    if let Some(g) = g {
        Mse::new().backward(&y, &target, g)?;
    }
    Mse::new().forward(&y, &target)
}

#[test]
fn run_time_sizes_build_and_check_gradients() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut rnn = CharRnn::<f64>::new(&mut rng, 6, 5).unwrap();
    assert_eq!(rnn.sizes(), CharRnnSizes { vocab: 6, hidden: 5 });
    assert_eq!(rnn.num_params(), 6 * 5 + 5 + 5 * 5 + 5 + 5 * 6 + 6);
    assert_eq!(rnn.input_width("x").unwrap(), 6);
    let h0 = Array2::from_elem((2, 5), 0.1);
    let xs = Array3::from_shape_fn((4, 2, 6), |(t, b, j)| ((t + b + j) % 6 == 0) as u8 as f64);
    let report = GradCheck::new()
        .check_graph(
            &mut rnn,
            &[Feed::Seq(xs.view()), Feed::Values(h0.view())],
            mse_loss,
        )
        .unwrap();
    assert!(report.passed(), "{report}");
    let err = CharRnn::<f32>::zeros(0, 5).unwrap_err();
    assert_eq!(err.to_string(), "CharRnn: size `vocab` must be at least 1, got 0");
}

#[test]
fn run_time_size_mismatch_is_an_error_naming_the_node() {
    assert!(Mismatch::<f64>::zeros(3, 3).is_ok());
    let err = Mismatch::<f64>::zeros(3, 4).unwrap_err();
    let line = 1 + include_str!("features.rs")
        .lines()
        .position(|l| l.trim() == "y = Linear(b, 2)(x);")
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "Mismatch: node `y`: `Linear(b, 2)` expects an input of width b, but `x` has width a \
             (with a = 3, b = 4), at tests/features.rs:{line}"
        )
    );
}

#[test]
fn split_narrow_concat_and_constants_match_finite_differences() {
    let mut g = Mixer::<3, f64>::zeros();
    assert_eq!(Mixer::<3, f64>::OUTPUT_WIDTHS, &[2 + 3 + 3]);
    let x = Array2::from_shape_fn((2, 6), |(i, j)| (i as f64 + 0.3 * j as f64).sin());
    let gate = Array2::from_shape_fn((2, 3), |(i, j)| 0.5 + 0.2 * (i + j) as f64);
    let report = GradCheck::new()
        .check_graph(
            &mut g,
            &[Feed::Values(x.view()), Feed::Values(gate.view())],
            mse_loss,
        )
        .unwrap();
    assert!(report.passed(), "{report}");
    // `left` is the first half of x, copied through Identity to the last columns.
    let mut tape = g.tape();
    let y = g.forward(&mut tape, &x, &gate).unwrap().y.to_owned();
    assert_eq!(
        y.slice(nngraph::ndarray::s![.., 5..]),
        x.slice(nngraph::ndarray::s![.., ..3])
    );
}

#[test]
fn a_loss_node_gives_one_loss_per_sample_and_its_gradient() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut g = Classifier::<f64>::new(&mut rng);
    let x = Array2::from_shape_fn((3, 4), |(i, j)| (i as f64 - j as f64) * 0.4);
    let labels = [2usize, 0, 1];
    let mut tape = g.tape();
    let out = g.forward(&mut tape, &x, &labels).unwrap();
    // Per-sample losses agree with the criterion used on its own.
    let mean = out.loss.mean().unwrap();
    let logits = tape.value("logits").unwrap().to_owned();
    assert!((mean - CrossEntropy::new().forward(&logits, &labels).unwrap()).abs() < 1e-14);
    // Seeding 1/batch gives the gradient of the mean loss; check it against
    // finite differences over every parameter.
    let seed = Array2::from_elem((3, 1), 1.0 / 3.0);
    g.zero_grad();
    g.backward(&mut tape, &seed, &Array2::zeros((3, 3))).unwrap();
    let analytic = g.grads().to_vec();
    let eps = 1e-6;
    for (j, a) in analytic.iter().enumerate() {
        let mut at = |d: f64| {
            g.params_mut()[j] += d;
            let l = g.forward(&mut tape, &x, &labels).unwrap().loss.mean().unwrap();
            g.params_mut()[j] -= d;
            l
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!((a - numeric).abs() < 1e-8, "param {j}: {a} vs {numeric}");
    }
    // A label outside the classes is an error naming the node.
    let err = g.forward(&mut tape, &x, &[0usize, 3, 1]).unwrap_err();
    let line = 1 + include_str!("features.rs")
        .lines()
        .position(|l| l.trim() == "loss   = CrossEntropy()(logits, label);")
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "Classifier: node `loss` (tests/features.rs:{line}): CrossEntropy: target id 3 at row 1 \
             is not a class of a prediction with 3 classes (0..3)"
        )
    );
}

#[test]
fn embedding_rows_and_their_gradients() {
    let mut g = Lookup::<f64>::new(&mut StdRng::seed_from_u64(2));
    let mut tape = g.tape();
    let y = g.forward(&mut tape, &[3usize, 1, 3]).unwrap().y.to_owned();
    let table = g.param("y_embedding.weight").unwrap().to_owned();
    for (b, &id) in [3usize, 1, 3].iter().enumerate() {
        for j in 0..3 {
            assert_eq!(y[[b, j]], table[[id, j]].tanh());
        }
    }
    let dy = Array2::from_elem((3, 2 + 1), 1.0);
    g.backward(&mut tape, &dy).unwrap();
    let grad = g.grad("y_embedding.weight").unwrap();
    // Row 3 was used twice, row 1 once, the others never.
    for j in 0..3 {
        assert!((grad[[3, j]] - 2.0 * (1.0 - y[[0, j]] * y[[0, j]])).abs() < 1e-15);
        assert!((grad[[1, j]] - (1.0 - y[[1, j]] * y[[1, j]])).abs() < 1e-15);
        assert_eq!(grad[[0, j]], 0.0);
    }
    // Finite differences through a graph whose inputs are ids: the table
    // is probed, the ids are not (they have no gradient).
    let report = GradCheck::new()
        .check_graph(&mut g, &[Feed::Ids(&[3usize, 1, 3])], mse_loss)
        .unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.to_string().contains("y_embedding.weight"), "{report}");
    let mut rnn = IdRnn::<f64>::new(&mut StdRng::seed_from_u64(4));
    let (xs, ys) = (
        nngraph::ndarray::arr2(&[[0usize, 3], [2, 1], [1, 1]]),
        nngraph::ndarray::arr2(&[[1usize, 2], [3, 0], [0, 2]]),
    );
    let h0 = Array2::from_elem((2, 3), 0.1);
    let feeds = [
        Feed::IdSeq(xs.view()),
        Feed::Values(h0.view()),
        Feed::IdSeq(ys.view()),
    ];
    let report = GradCheck::new().check_graph(&mut rnn, &feeds, mse_loss).unwrap();
    assert!(report.passed(), "{report}");
    // Any 1-D array of ids, contiguous or not.
    let strided = nngraph::ndarray::array![3usize, 9, 1, 9, 3].slice_move(nngraph::ndarray::s![..;2]);
    assert_eq!(g.forward(&mut tape, &strided).unwrap().y, y);
    let err = g.forward(&mut tape, &[7usize]).unwrap_err();
    assert!(
        err.to_string()
            .contains("id 7 at row 0 is outside the table of 5 ids"),
        "{err}"
    );
}

#[test]
fn dropout_drops_in_training_and_is_the_identity_in_evaluation() {
    let mut g = Dropper::<f64>::new(&mut StdRng::seed_from_u64(3));
    let x = Array2::from_elem((5, 40), 1.0);
    let mut tape = g.tape();
    let y = g.forward(&mut tape, &x).unwrap().y.to_owned();
    let zeros = y.iter().filter(|&&v| v == 0.0).count();
    assert!((60..140).contains(&zeros), "{zeros} of 200 dropped");
    assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
    // The gradient flows exactly where values were kept.
    let grads = g.backward(&mut tape, &Array2::from_elem((5, 40), 1.0)).unwrap();
    assert_eq!(grads.x.to_owned(), y);
    // A second pass draws a new mask.
    let y2 = g.forward(&mut tape, &x).unwrap().y.to_owned();
    assert_ne!(y, y2);
    g.evaluate();
    assert_eq!(g.forward(&mut tape, &x).unwrap().y, x);
}

#[test]
fn a_sequence_over_ids_matches_step_by_step() {
    let mut g = IdRnn::<f64>::new(&mut StdRng::seed_from_u64(8));
    let xs = nngraph::ndarray::array![[0usize, 3], [2, 2], [1, 0]];
    let ys = nngraph::ndarray::array![[2usize, 2], [1, 0], [3, 3]];
    let h0 = Array2::from_elem((2, 3), 0.1);
    let mut seq = g.tape();
    let total = g.forward_seq(&mut seq, &xs, &h0, &ys).unwrap().loss.sum();
    g.backward_loss(&mut seq, Reduction::Sum).unwrap();
    let whole = g.grads().to_vec();

    // Step by step, by hand.
    g.zero_grad();
    let mut tapes: Vec<_> = (0..3).map(|_| g.tape()).collect();
    let (mut h, mut by_hand) = (h0.clone(), 0.0);
    for (t, tape) in tapes.iter_mut().enumerate() {
        let x: Vec<usize> = xs.row(t).to_vec();
        let y: Vec<usize> = ys.row(t).to_vec();
        let out = g.forward(tape, &x, &h, &y).unwrap();
        by_hand += out.loss.sum();
        h = out.h1.to_owned();
    }
    assert!((total - by_hand).abs() < 1e-12);
    let mut dh = Array2::zeros((2, 3));
    for tape in tapes.iter_mut().rev() {
        dh = g.backward(tape, &Array2::ones((2, 1)), &dh).unwrap().h.to_owned();
    }
    for (a, b) in whole.iter().zip(g.grads()) {
        assert!((a - b).abs() < 1e-12);
    }
    // Ids where values are declared, and the other way round, are errors
    // naming the input.
    let values = Array3::<f64>::zeros((3, 2, 1));
    let err = g
        .forward_feeds(
            &mut seq,
            &[
                Feed::Seq(values.view()),
                Feed::Values(h0.view()),
                Feed::IdSeq(ys.view()),
            ],
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("input `x` takes integer ids: one per sample for a step, (steps, batch) for a sequence, or Absent, not Seq"),
        "{err}"
    );
}

graph! {
    pub Overridden(x: [400]) -> (y) {
        y = Dropout(0.1)(x);
    }
}

/// The fraction of values `g` zeroes in one training forward pass.
fn dropped_fraction(g: &Overridden<f64>) -> f64 {
    let mut tape = g.tape();
    let x = Array2::<f64>::ones((25, 400));
    let y = g.forward(&mut tape, &x).unwrap().y.to_owned();
    y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64
}

#[test]
fn set_dropout_overrides_every_dropout_node_and_rejects_a_bad_probability() {
    let mut g = Overridden::<f64>::new(&mut StdRng::seed_from_u64(3));
    // 10 000 values: the fraction is within 0.02 of p with a wide margin.
    assert!((dropped_fraction(&g) - 0.1).abs() < 0.02);
    g.set_dropout(Some(0.6)).unwrap();
    assert_eq!(g.dropout(), Some(0.6));
    assert!((dropped_fraction(&g) - 0.6).abs() < 0.02);
    assert!(g.set_dropout(Some(1.0)).is_err());
    assert!(g.set_dropout(Some(-0.1)).is_err());
    assert_eq!(g.dropout(), Some(0.6), "a rejected probability changes nothing");
    g.set_dropout(Some(0.0)).unwrap();
    assert_eq!(dropped_fraction(&g), 0.0);
    g.set_dropout(None).unwrap();
    assert!((dropped_fraction(&g) - 0.1).abs() < 0.02);
}

/// The cross-entropy over many rows (split across threads) is the same,
/// bit for bit, on 1, 2 and 3 threads, and each row's loss and gradient
/// are those of its definition, `ln Σ e^x - x[t]` and `softmax(x) - onehot(t)`.
#[test]
fn cross_entropy_over_many_rows_follows_its_definition_on_any_thread_count() {
    let (rows, classes) = (1000, 65);
    let x = Array2::from_shape_fn((rows, classes), |(i, j)| {
        ((i * 31 + j * 7) % 23) as f64 * 0.4 - 4.0
    });
    let labels: Vec<usize> = (0..rows).map(|i| (i * 13) % classes).collect();
    let mut g = Scores::<f64>::new(&mut StdRng::seed_from_u64(5));
    let seed = Array2::from_elem((rows, 1), 1.0 / rows as f64);
    let run = |g: &mut Scores<f64>, threads: usize| {
        nngraph::runtime::with_threads(threads, || {
            let mut tape = g.tape();
            let loss = g.forward(&mut tape, &x, &labels).unwrap().loss.to_owned();
            g.backward(&mut tape, &seed).unwrap();
            (loss, tape.grad("x").unwrap().to_owned())
        })
    };
    let (loss, grad) = run(&mut g, 1);
    for r in 0..rows {
        let row = x.row(r);
        let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let sum: f64 = row.iter().map(|&v| (v - max).exp()).sum();
        let want = max + sum.ln() - row[labels[r]];
        assert!(
            (loss[[r, 0]] - want).abs() < 1e-12,
            "row {r}: {} vs {want}",
            loss[[r, 0]]
        );
        for j in 0..classes {
            let p = (row[j] - max).exp() / sum - if j == labels[r] { 1.0 } else { 0.0 };
            assert!(
                (grad[[r, j]] - p / rows as f64).abs() < 1e-15,
                "row {r}, class {j}"
            );
        }
    }
    for threads in [2, 3] {
        let (l, d) = run(&mut g, threads);
        assert!(
            l.iter().zip(&loss).all(|(a, b)| a.to_bits() == b.to_bits()),
            "losses on {threads} threads"
        );
        assert!(
            d.iter().zip(&grad).all(|(a, b)| a.to_bits() == b.to_bits()),
            "gradients on {threads} threads"
        );
    }
}
