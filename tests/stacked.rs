//! A stacked LSTM, char_rnn's model (W4, smaller): one loop per layer in
//! the plan, with the upper layer's input projection over all rows between
//! them; the same bits on 1, 2 and 3 threads; gradients equal to finite
//! differences.

mod common;

use common::assert_close;
use nngraph::prelude::*;

#[path = "common/lstm_layer.rs"]
mod lstm_layer;
use lstm_layer::Layer;

graph! {
    /// An embedding, two LSTM layers with dropout between them, the scores
    /// and the loss.
    #[recurrent(h1 = h1_next, c1 = c1_next, h2 = h2_next, c2 = c2_next)]
    pub Stacked[vocab, hidden](x: usize, h1: [hidden], c1: [hidden], h2: [hidden], c2: [hidden], target: usize)
        -> (loss, h1_next, c1_next, h2_next, c2_next)
    {
        (h1_next, c1_next) = Layer[hidden, hidden](Embedding(vocab, hidden)(x), h1, c1);
        (h2_next, c2_next) = Layer[hidden, hidden](Dropout(0.25)(h1_next), h2, c2);
        loss = CrossEntropy()(Linear(hidden, vocab)(h2_next), target);
    }
}

fn ids(steps: usize, batch: usize, vocab: usize, seed: usize) -> Array2<usize> {
    Array2::from_shape_fn((steps, batch), |(t, b)| (t * 7 + b * 3 + seed) % vocab)
}

#[test]
fn each_layer_gets_a_loop_and_the_upper_input_projection_runs_between_them() {
    let g = Stacked::<f32>::zeros(20, 8).unwrap();
    let plan = g.plan();
    let segment = |name: &str| {
        plan.segment_of(name)
            .unwrap_or_else(|| panic!("{name} in\n{plan}"))
    };
    let (lower_ih, lower_hh) = (segment("h1_next_layer.ih"), segment("h1_next_layer.hh"));
    let (upper_ih, upper_hh) = (segment("h2_next_layer.ih"), segment("h2_next_layer.hh"));
    assert!(!plan.is_loop(lower_ih) && plan.is_loop(lower_hh), "{plan}");
    assert!(!plan.is_loop(upper_ih) && plan.is_loop(upper_hh), "{plan}");
    assert!(lower_hh < upper_ih && upper_ih < upper_hh, "{plan}");
    assert_ne!(lower_hh, upper_hh, "one loop per layer\n{plan}");
    assert!(!plan.is_loop(segment("loss")));
    // The gate arithmetic of both layers is fused.
    assert!(plan.is_fused("h1_next_layer.c_next") && plan.is_fused("h2_next_layer.h_next"));
}

/// Three training iterations (dropout on, Adam, clipping) on `threads`
/// threads, from the same start: the parameters after them.
fn train(threads: usize) -> Vec<f32> {
    train_with(threads, false, 5)
}

/// [`train`], in checked mode or not, over `steps` steps of 32 samples.
fn train_with(threads: usize, checked: bool, steps: usize) -> Vec<f32> {
    nngraph::runtime::with_threads(threads, || {
        let mut model = Stacked::<f32>::new(&mut StdRng::seed_from_u64(3), 24, 64).unwrap();
        model.set_checked(checked);
        let (xs, ys) = (ids(steps, 32, 24, 0), ids(steps, 32, 24, 1));
        let mut tape = model.tape();
        let mut adam = Adam::new(2e-3f32);
        for _ in 0..3 {
            model.forward_seq_carry(&mut tape, &xs, &ys).unwrap();
            model.backward_loss(&mut tape, Reduction::Mean).unwrap();
            clip_grad_value(model.store_mut(), 5.0).unwrap();
            adam.step(model.store_mut()).unwrap();
            model.zero_grad();
        }
        model.params().to_vec()
    })
}

/// Also over 32 steps, whose 1024 rows the first layer's input projection
/// takes as 24 distinct embedding rows, each computed once (`Linear`).
#[test]
fn the_same_bits_on_one_two_and_three_threads() {
    for steps in [5, 32] {
        let one = train_with(1, false, steps);
        for threads in [2, 3] {
            let many = train_with(threads, false, steps);
            assert!(
                one.iter().zip(&many).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{threads} threads, {steps} steps"
            );
        }
    }
}

/// An unchecked backward pass runs the weight gradients of each layer's
/// two projections, which share the gates' gradient, as one product
/// (`kernels::grouped`); checked mode runs each as its layer makes it:
/// the same bits, on one thread and on two.
#[test]
fn the_same_bits_checked_and_unchecked() {
    for threads in [1, 2] {
        let (unchecked, checked) = (train_with(threads, false, 5), train_with(threads, true, 5));
        assert!(
            unchecked
                .iter()
                .zip(&checked)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{threads} thread(s)"
        );
    }
}

/// The kernels for AVX-512 (products, activations, the fused gate passes)
/// compute what the AVX2 ones do, bit for bit: a checkpoint does not depend
/// on which the CPU has. (On a CPU without AVX-512 both runs take AVX2.)
#[test]
fn the_same_bits_with_avx512_and_with_avx2_kernels() {
    use nngraph::runtime::kernels::{with_level, Level};
    let (best, avx2) = (
        with_level(Level::Best, || train(1)),
        with_level(Level::Avx2, || train(1)),
    );
    assert!(best.iter().zip(&avx2).all(|(a, b)| a.to_bits() == b.to_bits()));
}

/// The stacked model's mean loss as an objective for the gradient checker.
struct MeanLoss<'a> {
    g: &'a mut Stacked<f64>,
    tape: Tape<f64>,
    xs: Array2<usize>,
    ys: Array2<usize>,
}

impl nngraph::runtime::Objective<f64> for MeanLoss<'_> {
    fn variables(&self) -> Vec<(String, Vec<usize>)> {
        self.g
            .param_specs()
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect()
    }
    fn values_mut(&mut self, v: usize) -> &mut [f64] {
        let range = self.g.param_specs()[v].range();
        &mut self.g.params_mut()[range]
    }
    fn loss(&mut self) -> nngraph::Result<f64> {
        let out = self.g.forward_seq(
            &mut self.tape,
            &self.xs,
            &Absent,
            &Absent,
            &Absent,
            &Absent,
            &self.ys,
        )?;
        Ok(out.loss.mean().unwrap())
    }
    fn gradient(&mut self) -> nngraph::Result<Vec<Vec<f64>>> {
        self.g.zero_grad();
        self.loss()?;
        self.g.backward_loss(&mut self.tape, Reduction::Mean)?;
        let grads = self.g.grads().to_vec();
        Ok(self
            .g
            .param_specs()
            .iter()
            .map(|s| grads[s.range()].to_vec())
            .collect())
    }
}

#[test]
fn gradients_through_the_stack_equal_finite_differences() {
    let mut g = Stacked::<f64>::new(&mut StdRng::seed_from_u64(5), 7, 4).unwrap();
    // Dropout is drawn per pass: the checker's passes must see one mask.
    g.evaluate();
    let tape = g.tape();
    let mut objective = MeanLoss {
        g: &mut g,
        tape,
        xs: ids(5, 3, 7, 0),
        ys: ids(5, 3, 7, 2),
    };
    let report = GradCheck::new().run(&mut objective).unwrap();
    assert!(report.passed(), "{report}");
    assert_close(
        "checked every parameter",
        [report.count() as f64],
        [objective.g.num_params() as f64],
        0.0,
    );
}
