//! Loops split across threads by samples: each thread runs every step of
//! a recurrence over its own rows of the batch when every layer in the
//! loop says its rows are independent (`Layer::rows_independent`), and the
//! loop runs on one thread otherwise. Either way the results are those of
//! one thread, bit for bit, and a failing layer is reported as on one
//! thread.

use nngraph::prelude::*;
use std::sync::Mutex;

/// `y = x + shift`, remembering how many rows each call was given; it
/// fails (forward or backward, as set) at the call where some value
/// exceeds `limit`.
#[derive(Debug)]
pub struct Probe {
    independent: bool,
    limit: f64,
    fail_backward: bool,
    calls: Mutex<Vec<usize>>,
}

impl Probe {
    pub fn new(independent: bool, limit: f64, fail_backward: bool) -> Self {
        Probe {
            independent,
            limit,
            fail_backward,
            calls: Mutex::new(Vec::new()),
        }
    }

    fn check<F: Float>(&self, x: &ArrayView2<'_, F>) -> LayerResult {
        match x.iter().find(|&&v| Float::to_f64(v) > self.limit) {
            Some(v) => Err(format!("a value above {}: {v:?}", self.limit)),
            None => Ok(()),
        }
    }
}

impl<F: Float> Layer<F> for Probe {
    fn kind(&self) -> &'static str {
        "Probe"
    }
    fn rows_independent(&self) -> bool {
        self.independent
    }
    fn output_width(&self, inputs: &[usize]) -> LayerResult<usize> {
        Ok(inputs[0])
    }
    fn forward(&self, cx: Forward<F>, mut output: ArrayViewMut2<F>) -> LayerResult {
        let x = cx.inputs[0].values()?;
        self.calls.lock().unwrap().push(x.nrows());
        if !self.fail_backward {
            self.check(&x)?;
        }
        output.zip_mut_with(&x, |y, &x| *y = x + F::from_f64(0.125));
        Ok(())
    }
    fn backward_input(&self, _: usize, cx: &Backward<F>, mut d_input: ArrayViewMut2<F>) -> LayerResult {
        if self.fail_backward {
            self.check(&cx.inputs[0].values()?)?;
        }
        d_input += &cx.d_output;
        Ok(())
    }
}

graph! {
    /// An Elman cell with the probe on its state, whose rows are independent.
    #[recurrent(h = h_next)]
    pub Split[width](x: [width], h: [width]) -> (h_next) {
        p = self::Probe(true, 1e9, false)(h);
        h_next = Tanh()(CAdd()(Linear(width, width)(x), Linear(width, width)(p)));
    }

    /// The same with a probe that does not say so.
    #[recurrent(h = h_next)]
    pub Serial[width](x: [width], h: [width]) -> (h_next) {
        p = self::Probe(false, 1e9, false)(h);
        h_next = Tanh()(CAdd()(Linear(width, width)(x), Linear(width, width)(p)));
    }

    /// A probe that fails forward once the state passes 0.9.
    #[recurrent(h = h_next)]
    pub FailsForward[width](x: [width], h: [width]) -> (h_next) {
        p = self::Probe(true, 0.9, false)(h);
        h_next = Tanh()(CAdd()(Linear(width, width)(x), Linear(width, width)(p)));
    }

    /// A probe that fails backward where the state passed 0.9.
    #[recurrent(h = h_next)]
    pub FailsBackward[width](x: [width], h: [width]) -> (h_next) {
        p = self::Probe(true, 0.9, true)(h);
        h_next = Tanh()(CAdd()(Linear(width, width)(x), Linear(width, width)(p)));
    }
}

const WIDTH: usize = 16;

/// Forward and backward over `steps` steps of `batch` samples on `threads`
/// threads with a fresh `$graph`: the outputs, the parameter gradients and
/// the row counts the probe was called with; or the error.
macro_rules! run {
    ($graph:ident, $threads:expr, $steps:expr, $batch:expr) => {{
        let (steps, batch): (usize, usize) = ($steps, $batch);
        let mut g = $graph::<f64>::new(&mut StdRng::seed_from_u64(5), WIDTH).unwrap();
        nngraph::runtime::with_threads(
            $threads,
            || -> nngraph::Result<(Vec<f64>, Vec<f64>, Vec<usize>)> {
                let xs = Array3::from_shape_fn((steps, batch, WIDTH), |(t, b, j)| {
                    ((t * 7 + b * 3 + j) as f64 * 0.37).sin() + 0.4
                });
                let h0 = Array2::from_shape_fn((batch, WIDTH), |(b, j)| 0.1 * ((b + j) % 5) as f64);
                let mut tape = g.tape();
                let out = g.forward_seq(&mut tape, &xs, &h0)?;
                let outputs = out.h_next.iter().copied().collect();
                let d = Array3::from_elem((steps, batch, WIDTH), 1.0);
                g.backward_seq(&mut tape, &d)?;
                let calls = std::mem::take(&mut *g.layers().p.calls.lock().unwrap());
                Ok((outputs, g.store().grads().to_vec(), calls))
            },
        )
    }};
}

#[test]
fn a_loop_of_independent_rows_runs_on_each_thread_over_its_samples_with_the_bits_of_one_thread() {
    let (steps, batch) = (6, 40);
    let (outputs, grads, calls) = run!(Split, 1, steps, batch).unwrap();
    assert_eq!(calls, vec![batch; steps], "one thread: every step's rows at once");
    for threads in [2, 3] {
        let (o, g, calls) = run!(Split, threads, steps, batch).unwrap();
        assert!(
            o == outputs && g == grads,
            "{threads} threads: not the bits of one"
        );
        // Each thread called the probe at every step with its own rows.
        let mut sizes = calls.clone();
        sizes.sort_unstable();
        sizes.dedup();
        assert!(
            sizes.iter().all(|&n| n < batch),
            "{threads} threads: not split: {calls:?}"
        );
        assert_eq!(calls.len(), steps * threads, "{calls:?}");
        assert_eq!(calls.iter().sum::<usize>(), steps * batch);
    }
}

#[test]
fn a_layer_that_does_not_say_its_rows_are_independent_keeps_its_loop_on_one_thread() {
    let (steps, batch) = (6, 40);
    let (outputs, grads, _) = run!(Serial, 1, steps, batch).unwrap();
    let (o, g, calls) = run!(Serial, 2, steps, batch).unwrap();
    assert!(o == outputs && g == grads);
    assert_eq!(calls, vec![batch; steps]);
}

#[test]
fn a_loop_whose_weights_outgrow_a_cache_is_not_split() {
    // 300 x 300 weights in the loop: 720 KB in f64, past the 512 KiB a
    // split loop's threads each read at every step; 360 KB in f32, within.
    let calls = |f32: bool| {
        let (steps, batch, width) = (3, 40, 300);
        nngraph::runtime::with_threads(2, || {
            let h0 = Array2::<f64>::zeros((batch, width));
            let xs = Array3::<f64>::zeros((steps, batch, width));
            if f32 {
                let g = Split::<f32>::new(&mut StdRng::seed_from_u64(5), width).unwrap();
                let mut tape = g.tape();
                g.forward_seq(&mut tape, &xs.mapv(|v| v as f32), &h0.mapv(|v| v as f32))
                    .unwrap();
                let calls = std::mem::take(&mut *g.layers().p.calls.lock().unwrap());
                calls
            } else {
                let g = Split::<f64>::new(&mut StdRng::seed_from_u64(5), width).unwrap();
                let mut tape = g.tape();
                g.forward_seq(&mut tape, &xs, &h0).unwrap();
                let calls = std::mem::take(&mut *g.layers().p.calls.lock().unwrap());
                calls
            }
        })
    };
    assert_eq!(calls(false), vec![40; 3]);
    assert_eq!(calls(true).len(), 6);
}

#[test]
fn a_small_batch_is_not_split() {
    let (_, _, calls) = run!(Split, 2, 4, 10).unwrap();
    assert_eq!(calls, vec![10; 4]);
}

#[test]
fn a_layer_failing_in_a_split_loop_is_reported_as_on_one_thread_with_its_step() {
    // The state grows step by step: the probe fails, for some samples only,
    // at the first step whose entering state passes 0.9 (forward), or the
    // last (backward, which runs from the last step down).
    let (steps, batch) = (8, 40);
    let (outputs, _, _) = run!(Split, 1, steps, batch).unwrap();
    let above: Vec<bool> = (0..steps)
        .map(|t| {
            t > 0
                && outputs[(t - 1) * batch * WIDTH..t * batch * WIDTH]
                    .iter()
                    .any(|&v| v > 0.9)
        })
        .collect();
    let first = above.iter().position(|&a| a).expect("a state above 0.9");
    let last = above.iter().rposition(|&a| a).unwrap();
    assert!(first < last, "the test wants two different steps: {above:?}");
    for (one, step) in [
        (
            run!(FailsForward, 1, steps, batch).unwrap_err().to_string(),
            first,
        ),
        (
            run!(FailsBackward, 1, steps, batch).unwrap_err().to_string(),
            last,
        ),
    ] {
        let want = "node `p` (tests/split_loops.rs:";
        assert!(
            one.contains(want) && one.contains(&format!("): at step {step}: a value above 0.9")),
            "{one}"
        );
    }
    for threads in [2, 3] {
        for (graph, one) in [
            ("forward", run!(FailsForward, 1, steps, batch)),
            ("backward", run!(FailsBackward, 1, steps, batch)),
        ] {
            let many = match graph {
                "forward" => run!(FailsForward, threads, steps, batch),
                _ => run!(FailsBackward, threads, steps, batch),
            };
            assert_eq!(
                many.unwrap_err().to_string(),
                one.unwrap_err().to_string(),
                "{graph}, {threads} threads"
            );
        }
    }
}

/// `y = x`, which keeps a state although it says its rows are independent.
#[derive(Debug, Clone, Default)]
pub struct Stateful;

impl Stateful {
    pub fn new() -> Self {
        Stateful
    }
}

impl<F: Float> Layer<F> for Stateful {
    fn kind(&self) -> &'static str {
        "Stateful"
    }
    fn rows_independent(&self) -> bool {
        true
    }
    fn output_width(&self, inputs: &[usize]) -> LayerResult<usize> {
        Ok(inputs[0])
    }
    fn forward(&self, cx: Forward<F>, mut output: ArrayViewMut2<F>) -> LayerResult {
        *cx.state = cx.inputs[0].values()?.to_owned();
        output.assign(&cx.inputs[0].values()?);
        Ok(())
    }
    fn backward_input(&self, _: usize, cx: &Backward<F>, mut d_input: ArrayViewMut2<F>) -> LayerResult {
        d_input += &cx.d_output;
        Ok(())
    }
}

graph! {
    #[recurrent(h = h_next)]
    pub Keeps[width](x: [width], h: [width]) -> (h_next) {
        h_next = Tanh()(CAdd()(Linear(width, width)(x), self::Stateful()(h)));
    }
}

/// Outputs and parameter gradients of `Keeps` on `threads` threads.
fn keeps(threads: usize) -> (Vec<f64>, Vec<f64>) {
    let mut g = Keeps::<f64>::new(&mut StdRng::seed_from_u64(5), 4).unwrap();
    let xs = Array3::from_shape_fn((3, 32, 4), |(t, b, j)| ((t + 2 * b + 3 * j) as f64).sin());
    let h0 = Array2::<f64>::zeros((32, 4));
    let mut tape = g.tape();
    nngraph::runtime::with_threads(threads, || {
        let mut outputs = Vec::new();
        // The second pass knows the layer keeps a state; the first finds out.
        for _ in 0..2 {
            let out = g.forward_seq(&mut tape, &xs, &h0).unwrap();
            outputs.extend(out.h_next.iter().copied());
            g.backward_seq(&mut tape, &Array3::from_elem((3, 32, 4), 1.0))
                .unwrap();
        }
        (outputs, g.store().grads().to_vec())
    })
}

#[test]
fn a_layer_that_keeps_a_state_though_it_says_its_rows_are_independent_runs_on_one_thread() {
    assert!(keeps(2) == keeps(1));
}

#[test]
fn tapes_and_graphs_may_be_sent_and_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Tape<f32>>();
    send_sync::<nngraph::cells::Lstm<f32>>();
    send_sync::<Split<f64>>();
    send_sync::<SplitLayers<f64>>();
}

/// The outputs, parameter gradients and input gradients of the shipped
/// stacks (LSTM, fused; GRU and RNN, node by node) over a sequence of 32
/// samples, on `threads` threads.
fn shipped_stacks(threads: usize) -> Vec<Vec<f64>> {
    use nngraph::cells::{Gru, Lstm, Rnn};
    let (steps, batch, input, hidden, layers) = (5, 32, 7, 12, 2);
    let xs = Array3::from_shape_fn((steps, batch, input), |(t, b, j)| {
        ((t * 5 + b * 3 + j) as f64 * 0.29).sin()
    });
    let rng = || StdRng::seed_from_u64(11);
    nngraph::runtime::with_threads(threads, || {
        let mut results = Vec::new();
        let mut keep = |y: &Array3<f64>, grads: &[f64], dx: ArrayView3<'_, f64>| {
            results.push(y.iter().copied().collect());
            results.push(grads.to_vec());
            results.push(dx.iter().copied().collect());
        };
        let mut lstm = Lstm::<f64>::new(&mut rng(), input, hidden, layers).unwrap();
        let mut tape = lstm.tape();
        let y = lstm
            .forward_seq(&mut tape, &xs, &Absent, &Absent)
            .unwrap()
            .y
            .to_owned();
        lstm.backward_seq(&mut tape, &y.mapv(|v| v - 0.25), &Absent, &Absent)
            .unwrap();
        keep(&y, lstm.store().grads(), tape.grad_seq("x").unwrap());
        let mut gru = Gru::<f64>::new(&mut rng(), input, hidden, layers).unwrap();
        let mut tape = gru.tape();
        let y = gru.forward_seq(&mut tape, &xs, &Absent).unwrap().y.to_owned();
        gru.backward_seq(&mut tape, &y.mapv(|v| v - 0.25), &Absent)
            .unwrap();
        keep(&y, gru.store().grads(), tape.grad_seq("x").unwrap());
        let mut rnn = Rnn::<f64>::new(&mut rng(), input, hidden, layers).unwrap();
        let mut tape = rnn.tape();
        let y = rnn.forward_seq(&mut tape, &xs, &Absent).unwrap().y.to_owned();
        rnn.backward_seq(&mut tape, &y.mapv(|v| v - 0.25), &Absent)
            .unwrap();
        keep(&y, rnn.store().grads(), tape.grad_seq("x").unwrap());
        results
    })
}

#[test]
fn the_shipped_stacks_give_the_bits_of_one_thread_with_their_loops_split() {
    let one = shipped_stacks(1);
    for threads in [2, 3] {
        let many = shipped_stacks(threads);
        for (k, (a, b)) in one.iter().zip(&many).enumerate() {
            let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "{threads} threads: result {k} (LSTM, GRU, RNN by three) differs"
            );
        }
    }
}

graph! {
    /// Every kind of built-in layer and criterion inside the recurrence
    /// (each feeds the next state), so that the loop holds them all.
    #[recurrent(h = h_next)]
    pub ZooCell(x: [8], h: [8], t: [4], class: usize) -> (h_next) {
        (u, v) = Split(2)(Linear(8, 8)(h));
        mixed = Concat()(CDiv()(ReLU()(u), AddConstant(2.5)(Sigmoid()(v))), CSub()(MulConstant(-0.5)(u), Identity()(v)));
        s = SoftMax()(Linear(8, 8)(Narrow(1, 8)(Concat()(h, mixed))));
        mse = Mse()(u, t);
        bce = Bce()(Sigmoid()(v), Sigmoid()(t));
        nll = ClassNll()(LogSoftMax()(u), class);
        ce = CrossEntropy()(v, class);
        losses = Concat()(Concat()(mse, bce), Concat()(nll, ce));
        h_next = Tanh()(CAdd()(CAdd()(Linear(8, 8)(mixed), CMul()(x, s)), Linear(4, 8)(losses)));
    }
}

/// `ZooCell`'s outputs, parameter gradients and input gradients over a
/// sequence of 32 samples on `threads` threads.
fn zoo(threads: usize) -> Vec<Vec<f64>> {
    let (steps, batch) = (4, 32);
    let xs = Array3::from_shape_fn((steps, batch, 8), |(t, b, j)| {
        ((t * 3 + b * 5 + j) as f64 * 0.41).sin()
    });
    let ts = Array3::from_shape_fn((steps, batch, 4), |(t, b, j)| {
        ((t + b * 7 + j * 3) as f64 * 0.23).cos()
    });
    let class = Array2::from_shape_fn((steps, batch), |(t, b)| (t + 3 * b) % 4);
    nngraph::runtime::with_threads(threads, || {
        let mut g = ZooCell::<f64>::new(&mut StdRng::seed_from_u64(13));
        let mut tape = g.tape();
        let y = g
            .forward_seq(&mut tape, &xs, &Absent, &ts, &class)
            .unwrap()
            .h_next
            .to_owned();
        g.backward_seq(&mut tape, &y.mapv(|v| v - 0.5)).unwrap();
        let dx = tape.grad_seq("x").unwrap().iter().copied().collect();
        vec![y.iter().copied().collect(), g.store().grads().to_vec(), dx]
    })
}

#[test]
fn every_built_in_layer_inside_a_split_loop_gives_the_bits_of_one_thread() {
    let g = ZooCell::<f64>::new(&mut StdRng::seed_from_u64(13));
    let plan = g.plan();
    for name in ["mixed", "s", "mse", "bce", "nll", "ce", "losses"] {
        let segment = plan
            .segment_of(name)
            .unwrap_or_else(|| panic!("{name} in\n{plan}"));
        assert!(plan.is_loop(segment), "{name} is in the loop\n{plan}");
    }
    let one = zoo(1);
    for threads in [2, 3] {
        let many = zoo(threads);
        for (k, (a, b)) in one.iter().zip(&many).enumerate() {
            let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "{threads} threads: result {k} (outputs, gradients, input gradients) differs"
            );
        }
    }
}
