//! A warmed-up training iteration allocates nothing, on any thread:
//! counted with a global allocator that tallies every allocation of the
//! process, the pool's worker threads included. The scenarios run one after
//! the other in a single test, so that nothing else of the process (another
//! test, the harness printing a result) allocates while one is measured.

mod common;

use common::*;
use nngraph::prelude::*;

#[path = "common/lstm_layer.rs"]
mod lstm_layer;
use lstm_layer::Layer;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static COUNT: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        COUNT.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        COUNT.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by the whole process while `f` runs.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = COUNT.load(Ordering::SeqCst);
    f();
    COUNT.load(Ordering::SeqCst) - before
}

#[test]
fn warm_iterations_allocate_nothing_on_any_thread() {
    a_second_iteration_with_a_loss_on_the_outputs_allocates_nothing();
    a_nested_lstm_with_dropout_and_a_loss_node_allocates_nothing_when_warm();
    a_second_forward_and_backward_allocate_nothing();
    a_second_iteration_over_a_sequence_allocates_nothing();
    a_second_iteration_of_a_nested_lstm_with_dropout_over_a_sequence_allocates_nothing();
    a_warm_iteration_allocates_nothing_and_gives_the_same_bits_on_one_and_two_threads();
    a_warm_stacked_lstm_iteration_allocates_nothing_on_one_and_two_threads();
    a_warm_stack_iteration_allocates_nothing_and_gives_the_same_bits_on_1_2_and_3_threads();
}

graph! {
    /// Wide enough that the blocked matrix kernels run.
    #[recurrent(h = new_h)]
    pub WideCell(x: [33], h: [40]) -> (y, new_h) {
        new_h = Tanh()(CAdd()(Linear(33, 40)(x), Linear(40, 40)(h)));
        y     = Sigmoid()(Linear(40, 9)(new_h));
    }
}

fn a_second_iteration_with_a_loss_on_the_outputs_allocates_nothing() {
    let mut rng = StdRng::seed_from_u64(0);
    let mut cell = WideCell::<f32>::new(&mut rng);
    let h0 = Array2::<f32>::zeros((8, 40));
    let xs = Array3::<f32>::from_shape_fn((12, 8, 33), |(t, b, j)| ((t + b + j) as f32 * 0.1).sin());
    let target = Array3::<f32>::from_elem((12, 8, 9), 0.5);
    let mut dy = Array3::<f32>::zeros((12, 8, 9));
    let mut tape = cell.tape();
    let mut sgd = Sgd::new(0.1f32).momentum(0.9);
    let mut iteration = |cell: &mut WideCell<f32>| {
        let out = cell.forward_seq(&mut tape, &xs, &h0).unwrap();
        // Σ_t MSE(y_t, 0.5), and its gradient, written in place.
        let n = (8 * 9) as f32;
        let mut loss = 0.0;
        dy.zip_mut_with(&out.y, |d, &y| *d = 2.0 * (y - 0.5) / n);
        out.y
            .iter()
            .zip(&target)
            .for_each(|(y, t)| loss += (y - t) * (y - t) / n);
        cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
        clip_grad_norm(cell.store_mut(), 5.0).unwrap();
        sgd.step(cell.store_mut()).unwrap();
        cell.zero_grad();
        loss
    };
    let first = allocations_in(|| {
        iteration(&mut cell);
    });
    assert!(first > 0, "the first iteration sizes the tape");
    let second = allocations_in(|| {
        iteration(&mut cell);
    });
    assert_eq!(second, 0, "second iteration allocated {second} times");
}

graph! {
    /// An LSTM nested in a graph with Dropout and a loss node.
    #[recurrent(h = h1, c = c1)]
    pub Tagger(x: [12], h: [16], c: [16], tag: usize) -> (loss, h1, c1) {
        (h1, c1) = nngraph::cells::LstmCell<12, 16>(x, h, c);
        loss = CrossEntropy()(Linear(16, 5)(Dropout(0.3)(h1)), tag);
    }
}

fn a_nested_lstm_with_dropout_and_a_loss_node_allocates_nothing_when_warm() {
    let mut g = Tagger::<f32>::new(&mut StdRng::seed_from_u64(1)).unwrap();
    let mut tape = g.tape();
    let x = Array2::<f32>::from_elem((6, 12), 0.5);
    let (h, c) = (Array2::<f32>::zeros((6, 16)), Array2::<f32>::zeros((6, 16)));
    let tags = [0usize, 1, 2, 3, 4, 0];
    let seed = Array2::<f32>::from_elem((6, 1), 1.0 / 6.0);
    let mut sgd = Sgd::new(0.05f32);
    let mut step = |g: &mut Tagger<f32>| {
        g.forward(&mut tape, &x, &h, &c, &tags).unwrap();
        g.backward(&mut tape, &seed, &Absent, &Absent).unwrap();
        sgd.step(g.store_mut()).unwrap();
        g.zero_grad();
    };
    step(&mut g);
    assert_eq!(allocations_in(|| step(&mut g)), 0);
}

fn a_second_forward_and_backward_allocate_nothing() {
    let mut cell = SeedCell::<f64>::zeros();
    set_seed_oracle_weights(cell.store_mut());
    let mut tape = cell.tape();
    let x = Array2::<f64>::ones((4, 2));
    let h = Array2::<f64>::ones((4, 4));
    let dy = Array2::<f64>::ones((4, 1));
    let dh = Array2::<f64>::zeros((4, 4));
    let mut step = |cell: &mut SeedCell<f64>| {
        cell.forward(&mut tape, &x, &h).unwrap();
        cell.backward(&mut tape, &dy, &dh).unwrap();
    };
    step(&mut cell);
    assert_eq!(allocations_in(|| step(&mut cell)), 0);
}

fn a_second_iteration_over_a_sequence_allocates_nothing() {
    let mut cell = WideCell::<f32>::new(&mut StdRng::seed_from_u64(0));
    let h0 = Array2::<f32>::zeros((8, 40));
    let xs = Array3::<f32>::from_shape_fn((12, 8, 33), |(t, b, j)| ((t + b + j) as f32 * 0.1).sin());
    let dy = Array3::<f32>::from_elem((12, 8, 9), 0.01);
    let dh = Array3::<f32>::zeros((12, 8, 40));
    let mut tape = cell.tape();
    let mut sgd = Sgd::new(0.1f32).momentum(0.9);
    let mut iteration = |cell: &mut WideCell<f32>| {
        cell.forward_seq(&mut tape, &xs, &h0).unwrap();
        cell.backward_seq(&mut tape, &dy, &dh).unwrap();
        clip_grad_norm(cell.store_mut(), 5.0).unwrap();
        sgd.step(cell.store_mut()).unwrap();
        cell.zero_grad();
    };
    assert!(
        allocations_in(|| iteration(&mut cell)) > 0,
        "the first iteration sizes the tape"
    );
    assert_eq!(allocations_in(|| iteration(&mut cell)), 0);
}

fn a_second_iteration_of_a_nested_lstm_with_dropout_over_a_sequence_allocates_nothing() {
    let mut g = Tagger::<f32>::new(&mut StdRng::seed_from_u64(1)).unwrap();
    let xs = Array3::<f32>::from_elem((5, 6, 12), 0.5);
    let tags = Array2::<usize>::from_shape_fn((5, 6), |(t, b)| (t + b) % 5);
    let (h, c) = (Array2::<f32>::zeros((6, 16)), Array2::<f32>::zeros((6, 16)));
    let mut tape = g.tape();
    let mut sgd = Sgd::new(0.05f32);
    let mut step = |g: &mut Tagger<f32>| {
        g.forward_seq(&mut tape, &xs, &h, &c, &tags).unwrap();
        g.backward_loss(&mut tape, Reduction::Mean).unwrap();
        sgd.step(g.store_mut()).unwrap();
        g.zero_grad();
    };
    step(&mut g);
    assert_eq!(allocations_in(|| step(&mut g)), 0);
}

graph! {
    /// Large enough that its products are split across threads.
    #[recurrent(h = new_h)]
    pub BigCell(x: [256], h: [256]) -> (y, new_h) {
        new_h = Tanh()(CAdd()(Linear(256, 256)(x), Linear(256, 256)(h)));
        y     = Sigmoid()(Linear(256, 64)(new_h));
    }
}

/// Two training iterations over a sequence with `threads` threads: the
/// parameters after them, and the allocations of the second.
fn big_iterations(threads: usize) -> (Vec<f32>, usize) {
    nngraph::runtime::with_threads(threads, || {
        let mut cell = BigCell::<f32>::new(&mut StdRng::seed_from_u64(3));
        // The input projection and its weight gradient (384 x 256 x 256) are split.
        let h0 = Array2::<f32>::zeros((96, 256));
        let xs = Array3::<f32>::from_shape_fn((4, 96, 256), |(t, b, j)| {
            ((t * 5 + b + 3 * j) as f32 * 0.01).sin()
        });
        let dy = Array3::<f32>::from_elem((4, 96, 64), 0.01);
        let dh = Array3::<f32>::zeros((4, 96, 256));
        let mut tape = cell.tape();
        let mut sgd = Sgd::new(0.1f32);
        let mut iteration = |cell: &mut BigCell<f32>| {
            cell.forward_seq(&mut tape, &xs, &h0).unwrap();
            cell.backward_seq(&mut tape, &dy, &dh).unwrap();
            sgd.step(cell.store_mut()).unwrap();
            cell.zero_grad();
        };
        iteration(&mut cell);
        let second = allocations_in(|| iteration(&mut cell));
        (cell.params().to_vec(), second)
    })
}

fn a_warm_iteration_allocates_nothing_and_gives_the_same_bits_on_one_and_two_threads() {
    let (one, allocated_one) = big_iterations(1);
    let (two, allocated_two) = big_iterations(2);
    assert_eq!(allocated_one, 0);
    assert_eq!(allocated_two, 0);
    assert!(
        one.iter().zip(&two).all(|(a, b)| a.to_bits() == b.to_bits()),
        "bit-identical parameters for any thread count"
    );
}

graph! {
    /// W4's model, smaller: an embedding, two LSTM layers, the scores and
    /// the loss; a step's products large enough to be split across threads.
    #[recurrent(h1 = h1_next, c1 = c1_next, h2 = h2_next, c2 = c2_next)]
    pub Stacked[vocab, hidden](x: usize, h1: [hidden], c1: [hidden], h2: [hidden], c2: [hidden], target: usize)
        -> (loss, h1_next, c1_next, h2_next, c2_next)
    {
        (h1_next, c1_next) = Layer[hidden, hidden](Embedding(vocab, hidden)(x), h1, c1);
        (h2_next, c2_next) = Layer[hidden, hidden](Dropout(0.0)(h1_next), h2, c2);
        loss = CrossEntropy()(Linear(hidden, vocab)(Dropout(0.0)(h2_next)), target);
    }

    /// The same model on the shipped stack, three layers deep.
    #[recurrent(h = h_n, c = c_n)]
    pub Deep[vocab, hidden, layers](x: usize, h: [layers * hidden], c: [layers * hidden], target: usize)
        -> (loss, h_n, c_n)
    {
        (y, h_n, c_n) = nngraph::cells::Lstm[hidden, hidden, layers](Embedding(vocab, hidden)(x), h, c);
        loss = CrossEntropy()(Linear(hidden, vocab)(Dropout(0.0)(y)), target);
    }
}

/// Two training iterations of `Deep` (3 layers, dropout 0.1 between them)
/// on `threads` threads: the parameters after them, and the allocations of
/// the second, counted on every thread.
fn deep_iterations(threads: usize) -> (Vec<f32>, usize) {
    nngraph::runtime::with_threads(threads, || {
        let mut model = Deep::<f32>::new(&mut StdRng::seed_from_u64(9), 20, 64, 3).unwrap();
        model.set_dropout(Some(0.1)).unwrap();
        let (steps, batch) = (4, 32);
        let xs = Array2::from_shape_fn((steps, batch), |(t, b)| (t * 7 + b * 3) % 20);
        let ys = Array2::from_shape_fn((steps, batch), |(t, b)| (t * 5 + b + 1) % 20);
        let mut tape = model.tape();
        let mut adam = Adam::new(2e-3f32);
        let mut iteration = |model: &mut Deep<f32>| {
            model.forward_seq(&mut tape, &xs, &Absent, &Absent, &ys).unwrap();
            model.backward_loss(&mut tape, Reduction::Mean).unwrap();
            clip_grad_value(model.store_mut(), 5.0).unwrap();
            adam.step(model.store_mut()).unwrap();
            model.zero_grad();
        };
        iteration(&mut model);
        let second = allocations_in(|| iteration(&mut model));
        (model.params().to_vec(), second)
    })
}

fn a_warm_stack_iteration_allocates_nothing_and_gives_the_same_bits_on_1_2_and_3_threads() {
    let (one, allocated_one) = deep_iterations(1);
    let (two, allocated_two) = deep_iterations(2);
    let (three, _) = deep_iterations(3);
    assert_eq!(allocated_one, 0, "shipped stack, one thread");
    assert_eq!(allocated_two, 0, "shipped stack, two threads");
    assert!(one.iter().zip(&two).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(one.iter().zip(&three).all(|(a, b)| a.to_bits() == b.to_bits()));
}

/// Two training iterations of `Stacked` (Adam, gradients clipped) on
/// `threads` threads: the parameters after them, and the allocations of the
/// second, counted on every thread.
fn stacked_iterations(threads: usize) -> (Vec<f32>, usize) {
    nngraph::runtime::with_threads(threads, || {
        let mut model = Stacked::<f32>::new(&mut StdRng::seed_from_u64(9), 20, 64).unwrap();
        let (steps, batch) = (4, 32);
        let xs = Array2::from_shape_fn((steps, batch), |(t, b)| (t * 7 + b * 3) % 20);
        let ys = Array2::from_shape_fn((steps, batch), |(t, b)| (t * 5 + b + 1) % 20);
        let mut tape = model.tape();
        let mut adam = Adam::new(2e-3f32);
        let mut iteration = |model: &mut Stacked<f32>| {
            model
                .forward_seq(&mut tape, &xs, &Absent, &Absent, &Absent, &Absent, &ys)
                .unwrap();
            model.backward_loss(&mut tape, Reduction::Mean).unwrap();
            clip_grad_value(model.store_mut(), 5.0).unwrap();
            adam.step(model.store_mut()).unwrap();
            model.zero_grad();
        };
        iteration(&mut model);
        let second = allocations_in(|| iteration(&mut model));
        (model.params().to_vec(), second)
    })
}

fn a_warm_stacked_lstm_iteration_allocates_nothing_on_one_and_two_threads() {
    let (one, allocated_one) = stacked_iterations(1);
    let (two, allocated_two) = stacked_iterations(2);
    assert_eq!(allocated_one, 0, "stacked LSTM, one thread");
    assert_eq!(allocated_two, 0, "stacked LSTM, two threads");
    assert!(one.iter().zip(&two).all(|(a, b)| a.to_bits() == b.to_bits()));
}
