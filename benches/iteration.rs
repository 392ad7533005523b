//! The brief's workloads: one training iteration of the seed's RNN cell
//! (forward over T steps carrying h, summed MSE, BPTT into one shared
//! parameter set, SGD, zero grads), by the generated code (`generated`: the
//! whole sequence by the plan, `forward_seq`/`backward_seq`; `step`: the
//! typed single-step `forward`/`backward`, one tape per step, the state
//! carried by hand) and
//! by hand-written ndarray implementations of the same iteration
//! (`ndarray-hoisted`: input and output projections and every weight
//! gradient over all T·B rows, only the recurrence per step, as cuDNN-style
//! RNNs do; `ndarray-reference`: step by step; `ndarray-hoisted-2t`: the
//! hoisted one with matrixmultiply on two threads, run in a child process);
//! and the machine's GEMM throughput.
//!
//! `cargo bench -p nngraph-tests --bench iteration`

use criterion::{criterion_group, Criterion, Throughput};
use nngraph::ndarray::{linalg::general_mat_mul, s, Array1, Array2, Array3, Axis};
use nngraph::prelude::*;
use nngraph::runtime::with_threads;
use std::hint::black_box;

mod w4;
use w4::{CharIteration, CharLstm, CharStack, W4};

graph! {
    /// The seed's cell: new_h = tanh(W_xh x + b + W_hh h + b), y = sigmoid(W_hy new_h + b).
    #[recurrent(h = new_h)]
    pub Cell[ni, nh, no](x: [ni], h: [nh]) -> (y, new_h) {
        new_h = Tanh()(CAdd()(Linear(ni, nh)(x), Linear(nh, nh)(h)));
        y     = Sigmoid()(Linear(nh, no)(new_h));
    }
}

fn char_lstm(c: &mut Criterion) {
    if reference_child() {
        return;
    }
    let (vocab, hidden, _, _) = W4;
    let rng = &mut StdRng::seed_from_u64(4);
    let mut w4 = CharIteration::new(CharLstm::<f32>::new(rng, vocab, hidden).unwrap());
    let mut stack = CharIteration::new(CharStack::<f32>::new(rng, vocab, hidden, 2).unwrap());
    for first in [w4.iteration(), stack.iteration()] {
        assert!(
            first.is_finite() && (first - (W4.0 as f32).ln()).abs() < 0.5,
            "W4 loss {first}"
        );
    }
    let mut group = c.benchmark_group("W4-charlstm");
    group.sample_size(20);
    group.throughput(Throughput::Elements(w4.flops()));
    group.bench_function("generated", |bench| {
        bench.iter(|| with_threads(1, || black_box(w4.iteration())))
    });
    group.bench_function("generated-2t", |bench| {
        bench.iter(|| with_threads(2, || black_box(w4.iteration())))
    });
    group.bench_function("stack", |bench| {
        bench.iter(|| with_threads(1, || black_box(stack.iteration())))
    });
    group.bench_function("stack-2t", |bench| {
        bench.iter(|| with_threads(2, || black_box(stack.iteration())))
    });
    group.finish();
}

/// A workload: sizes, steps, batch.
#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    i: usize,
    h: usize,
    o: usize,
    t: usize,
    b: usize,
}

const W1: Workload = Workload {
    name: "W1-seed",
    i: 2,
    h: 4,
    o: 1,
    t: 5,
    b: 1,
};
const W2: Workload = Workload {
    name: "W2-char",
    i: 65,
    h: 128,
    o: 65,
    t: 50,
    b: 32,
};
const W3: Workload = Workload {
    name: "W3-large",
    i: 512,
    h: 1024,
    o: 512,
    t: 16,
    b: 64,
};

impl Workload {
    /// Multiply-adds x 2 of the iteration's matrix products: forward, and in
    /// backward the weight and the input gradients.
    fn flops(&self) -> u64 {
        let per_step = 2 * self.b * (self.i * self.h + self.h * self.h + self.h * self.o);
        (3 * per_step * self.t) as u64
    }

    fn data<F: Float>(&self) -> (Array2<F>, Array3<F>, Array2<F>) {
        let h0 = Array2::from_shape_fn((self.b, self.h), |(b, j)| {
            F::from_f64(0.01 * ((b + j) % 7) as f64)
        });
        let xs = Array3::from_shape_fn((self.t, self.b, self.i), |(t, b, j)| {
            F::from_f64((((t * 31 + b * 17 + j) % 13) as f64 - 6.0) * 0.05)
        });
        let target = Array2::from_elem((self.b, self.o), F::from_f64(1.0));
        (h0, xs, target)
    }
}

/// The generated graph over the whole sequence, by the macro's plan.
struct Sequence<F: Float> {
    cell: Cell<F>,
    tape: Tape<F>,
    sgd: Sgd<F>,
    h0: Array2<F>,
    xs: Array3<F>,
    /// The output gradient, filled in place at every iteration.
    dy: Array3<F>,
}

impl<F: Float> Sequence<F> {
    fn new(w: Workload) -> Self {
        let cell = Cell::<F>::new(&mut StdRng::seed_from_u64(1), w.i, w.h, w.o).unwrap();
        let mut tape = cell.tape();
        // Like the reference, no gradient for the data.
        tape.set_input_grad("x", false).unwrap();
        let (h0, xs, _) = w.data();
        Sequence {
            cell,
            tape,
            sgd: Sgd::new(F::from_f64(0.01)),
            h0,
            xs,
            dy: Array3::zeros((w.t, w.b, w.o)),
        }
    }

    fn iteration(&mut self) -> F {
        let Sequence {
            cell,
            tape,
            sgd,
            h0,
            xs,
            dy,
        } = self;
        let out = cell.forward_seq(tape, &*xs, &*h0).unwrap();
        // Σ_t MSE(y_t, 1), each step's mean over its B·O values.
        let n = F::from_f64((dy.len_of(Axis(1)) * dy.len_of(Axis(2))) as f64);
        let two = F::from_f64(2.0);
        let mut loss = F::zero();
        dy.zip_mut_with(&out.y, |d, &y| {
            let e = y - F::one();
            loss += e * e / n;
            *d = two * e / n;
        });
        cell.backward_seq(tape, &*dy, &Absent).unwrap();
        sgd.step(cell.store_mut()).unwrap();
        cell.zero_grad();
        loss
    }
}

/// The generated graph one step at a time through its typed single-step
/// API: one tape per step, the state carried by hand, backward from the
/// last step to the first with the state's gradient handed back.
struct Step<F: Float> {
    cell: Cell<F>,
    tapes: Vec<Tape<F>>,
    sgd: Sgd<F>,
    h0: Array2<F>,
    xs: Array3<F>,
    target: Array2<F>,
    /// Per step: the state entering it; the output and state gradients.
    hs: Vec<Array2<F>>,
    dy: Array2<F>,
    dh: Array2<F>,
}

impl<F: Float> Step<F> {
    fn new(w: Workload) -> Self {
        let cell = Cell::<F>::new(&mut StdRng::seed_from_u64(1), w.i, w.h, w.o).unwrap();
        let tapes = (0..w.t)
            .map(|_| {
                let mut tape = cell.tape();
                // Like the reference, no gradient for the data.
                tape.set_input_grad("x", false).unwrap();
                tape
            })
            .collect();
        let (h0, xs, target) = w.data();
        Step {
            cell,
            tapes,
            sgd: Sgd::new(F::from_f64(0.01)),
            hs: vec![Array2::zeros((w.b, w.h)); w.t + 1],
            dy: Array2::zeros((w.b, w.o)),
            dh: Array2::zeros((w.b, w.h)),
            h0,
            xs,
            target,
        }
    }

    fn iteration(&mut self) -> F {
        let Step {
            cell,
            tapes,
            sgd,
            h0,
            xs,
            target,
            hs,
            dy,
            dh,
        } = self;
        hs[0].assign(h0);
        let mut loss = F::zero();
        for (t, tape) in tapes.iter_mut().enumerate() {
            let out = cell.forward(tape, &xs.index_axis(Axis(0), t), &hs[t]).unwrap();
            loss += Mse::new().forward(&out.y, &*target).unwrap();
            let next = out.new_h;
            hs[t + 1].assign(&next);
        }
        dh.fill(F::zero());
        for tape in tapes.iter_mut().rev() {
            dy.fill(F::zero());
            Mse::new()
                .backward(&tape.value("y").unwrap(), &*target, dy.view_mut())
                .unwrap();
            let grads = cell.backward(tape, &*dy, &*dh).unwrap();
            dh.assign(&grads.h);
        }
        sgd.step(cell.store_mut()).unwrap();
        cell.zero_grad();
        loss
    }
}

/// The same iteration written by hand with ndarray (`dot`, broadcasting).
struct Reference<F: Float> {
    w_xh: Array2<F>,
    b_xh: Array1<F>,
    w_hh: Array2<F>,
    b_hh: Array1<F>,
    w_hy: Array2<F>,
    b_hy: Array1<F>,
    hs: Vec<Array2<F>>,
    ys: Vec<Array2<F>>,
    h0: Array2<F>,
    xs: Array3<F>,
    target: Array2<F>,
    lr: F,
}

impl<F: Float> Reference<F> {
    fn new(w: Workload, from: &Cell<F>) -> Self {
        let p = |name: &str| from.param(name).unwrap().to_owned();
        let mat = |name: &str| p(name).into_dimensionality().unwrap();
        let vec = |name: &str| p(name).into_dimensionality().unwrap();
        let (h0, xs, target) = w.data();
        Reference {
            w_xh: mat("new_h_linear.weight"),
            b_xh: vec("new_h_linear.bias"),
            w_hh: mat("new_h_linear_2.weight"),
            b_hh: vec("new_h_linear_2.bias"),
            w_hy: mat("y_linear.weight"),
            b_hy: vec("y_linear.bias"),
            hs: Vec::new(),
            ys: Vec::new(),
            h0,
            xs,
            target,
            lr: F::from_f64(0.01),
        }
    }

    fn iteration(&mut self) -> F {
        let steps = self.xs.len_of(Axis(0));
        self.hs.clear();
        self.ys.clear();
        self.hs.push(self.h0.clone());
        let mut loss = F::zero();
        for t in 0..steps {
            let x = self.xs.index_axis(Axis(0), t);
            let a = x.dot(&self.w_xh.t()) + &self.b_xh + self.hs[t].dot(&self.w_hh.t()) + &self.b_hh;
            let h = a.mapv(F::tanh);
            let y = (h.dot(&self.w_hy.t()) + &self.b_hy).mapv(|v| F::one() / (F::one() + (-v).exp()));
            loss += (&y - &self.target).mapv(|d| d * d).sum() / F::from_f64(y.len() as f64);
            self.hs.push(h);
            self.ys.push(y);
        }
        let n = F::from_f64(self.target.len() as f64);
        let (mut g_xh, mut g_hh, mut g_hy) = (
            Array2::zeros(self.w_xh.dim()),
            Array2::zeros(self.w_hh.dim()),
            Array2::zeros(self.w_hy.dim()),
        );
        let (mut gb_xh, mut gb_hh, mut gb_hy) = (
            Array1::zeros(self.b_xh.dim()),
            Array1::zeros(self.b_hh.dim()),
            Array1::zeros(self.b_hy.dim()),
        );
        let mut dh_next = Array2::<F>::zeros(self.h0.dim());
        for t in (0..steps).rev() {
            let (y, h, h_prev) = (&self.ys[t], &self.hs[t + 1], &self.hs[t]);
            let dy = (y - &self.target).mapv(|d| d * F::from_f64(2.0) / n) * y.mapv(|v| v * (F::one() - v));
            general_mat_mul(F::one(), &dy.t(), h, F::one(), &mut g_hy);
            gb_hy += &dy.sum_axis(Axis(0));
            let dh = dy.dot(&self.w_hy) + &dh_next;
            let da = dh * h.mapv(|v| F::one() - v * v);
            general_mat_mul(
                F::one(),
                &da.t(),
                &self.xs.index_axis(Axis(0), t),
                F::one(),
                &mut g_xh,
            );
            general_mat_mul(F::one(), &da.t(), h_prev, F::one(), &mut g_hh);
            let db = da.sum_axis(Axis(0));
            gb_xh += &db;
            gb_hh += &db;
            dh_next = da.dot(&self.w_hh);
        }
        let lr = self.lr;
        self.w_xh.scaled_add(-lr, &g_xh);
        self.w_hh.scaled_add(-lr, &g_hh);
        self.w_hy.scaled_add(-lr, &g_hy);
        self.b_xh.scaled_add(-lr, &gb_xh);
        self.b_hh.scaled_add(-lr, &gb_hh);
        self.b_hy.scaled_add(-lr, &gb_hy);
        loss
    }
}

/// The same iteration by hand, hoisting what a careful person would: the
/// input and output projections and every weight gradient over all T·B
/// rows at once; only the recurrence runs step by step. Every buffer is
/// made once and reused, products write into them (`general_mat_mul`),
/// element-wise work runs in place: no allocation per iteration, as a
/// careful person would write it.
struct Hoisted<F: Float> {
    r: Reference<F>,
    /// `x · W_xhᵀ + b_xh + b_hh`, then each step's pre-activation, then `h`.
    hs: Array2<F>,
    /// The state entering each step: `h0`, then `hs` shifted by one step.
    prev: Array2<F>,
    /// The outputs, then their gradients.
    y: Array2<F>,
    /// The gradient reaching `h` from the outputs, then the pre-activations'.
    da: Array2<F>,
    dh_next: Array2<F>,
    g_xh: Array2<F>,
    g_hh: Array2<F>,
    g_hy: Array2<F>,
    gb: Array1<F>,
    gb_hy: Array1<F>,
}

impl<F: Float> Hoisted<F> {
    fn new(r: Reference<F>) -> Self {
        let (steps, batch, _) = r.xs.dim();
        let (rows, nh, no) = (steps * batch, r.w_hh.nrows(), r.w_hy.nrows());
        Hoisted {
            hs: Array2::zeros((rows, nh)),
            prev: Array2::zeros((rows, nh)),
            y: Array2::zeros((rows, no)),
            da: Array2::zeros((rows, nh)),
            dh_next: Array2::zeros((batch, nh)),
            g_xh: Array2::zeros(r.w_xh.dim()),
            g_hh: Array2::zeros(r.w_hh.dim()),
            g_hy: Array2::zeros(r.w_hy.dim()),
            gb: Array1::zeros(nh),
            gb_hy: Array1::zeros(no),
            r,
        }
    }

    fn iteration(&mut self) -> F {
        let r = &mut self.r;
        let (steps, batch, ni) = r.xs.dim();
        let rows = steps * batch;
        let (one, zero) = (F::one(), F::zero());
        let x = r.xs.view().into_shape_with_order((rows, ni)).unwrap();
        // Forward: the input projection once, the recurrence per step.
        general_mat_mul(one, &x, &r.w_xh.t(), zero, &mut self.hs);
        for mut row in self.hs.rows_mut() {
            row.zip_mut_with(&r.b_xh, |a, &b| *a += b);
            row.zip_mut_with(&r.b_hh, |a, &b| *a += b);
        }
        self.prev.slice_mut(s![..batch, ..]).assign(&r.h0);
        for t in 0..steps {
            let block = s![t * batch..(t + 1) * batch, ..];
            let prev = self.prev.slice(block);
            let mut a = self.hs.slice_mut(block);
            general_mat_mul(one, &prev, &r.w_hh.t(), one, &mut a);
            a.mapv_inplace(F::tanh);
            if t + 1 < steps {
                let (h, next) = (self.hs.slice(block), s![(t + 1) * batch..(t + 2) * batch, ..]);
                self.prev.slice_mut(next).assign(&h);
            }
        }
        // The output layer once; `y` becomes the gradient at the sigmoid's input.
        general_mat_mul(one, &self.hs, &r.w_hy.t(), zero, &mut self.y);
        let n = F::from_f64((batch * r.w_hy.nrows()) as f64);
        let two = F::from_f64(2.0);
        let mut loss = zero;
        for mut row in self.y.rows_mut() {
            row.zip_mut_with(&r.b_hy, |v, &b| {
                let p = one / (one + (-(*v + b)).exp());
                loss += (p - one) * (p - one);
                *v = two * (p - one) / n * p * (one - p);
            });
        }
        let loss = loss / n;
        general_mat_mul(one, &self.y.t(), &self.hs, zero, &mut self.g_hy);
        self.gb_hy.fill(zero);
        for row in self.y.rows() {
            self.gb_hy += &row;
        }
        general_mat_mul(one, &self.y, &r.w_hy, zero, &mut self.da);
        // Backward: the recurrence per step, the weight gradients once.
        self.dh_next.fill(zero);
        for t in (0..steps).rev() {
            let block = s![t * batch..(t + 1) * batch, ..];
            let mut d = self.da.slice_mut(block);
            d += &self.dh_next;
            d.zip_mut_with(&self.hs.slice(block), |d, &h| *d *= one - h * h);
            general_mat_mul(one, &d, &r.w_hh, zero, &mut self.dh_next);
        }
        general_mat_mul(one, &self.da.t(), &x, zero, &mut self.g_xh);
        general_mat_mul(one, &self.da.t(), &self.prev, zero, &mut self.g_hh);
        self.gb.fill(zero);
        for row in self.da.rows() {
            self.gb += &row;
        }
        let lr = r.lr;
        r.w_xh.scaled_add(-lr, &self.g_xh);
        r.w_hh.scaled_add(-lr, &self.g_hh);
        r.w_hy.scaled_add(-lr, &self.g_hy);
        r.b_xh.scaled_add(-lr, &self.gb);
        r.b_hh.scaled_add(-lr, &self.gb);
        r.b_hy.scaled_add(-lr, &self.gb_hy);
        loss
    }
}

fn workload<F: Float>(c: &mut Criterion, w: Workload, samples: usize) {
    let mut sequence = Sequence::<F>::new(w);
    let mut step = Step::<F>::new(w);
    let mut reference = Reference::<F>::new(w, &step.cell);
    let mut hoisted = Hoisted::new(Reference::<F>::new(w, &step.cell));
    // All compute the same iteration: same loss on the first one.
    let losses = [
        sequence.iteration().to_f64(),
        step.iteration().to_f64(),
        reference.iteration().to_f64(),
        hoisted.iteration().to_f64(),
    ];
    for l in losses {
        assert!(
            (l - losses[2]).abs() <= 1e-4 * losses[2].abs().max(1.0),
            "{}: losses {losses:?}",
            w.name
        );
    }

    let mut group = c.benchmark_group(w.name);
    group.sample_size(samples);
    group.throughput(Throughput::Elements(w.flops()));
    if reference_child() {
        // The child process of `main`: matrixmultiply on two threads.
        if w.name != W1.name {
            group.bench_function("ndarray-hoisted-2t", |bench| {
                bench.iter(|| black_box(hoisted.iteration()))
            });
        }
        group.finish();
        return;
    }
    // The generated code on one thread, and on two where products are large.
    group.bench_function("generated", |bench| {
        bench.iter(|| with_threads(1, || black_box(sequence.iteration())))
    });
    if w.name != W1.name {
        group.bench_function("generated-2t", |bench| {
            bench.iter(|| with_threads(2, || black_box(sequence.iteration())))
        });
    }
    group.bench_function("step", |bench| {
        bench.iter(|| with_threads(1, || black_box(step.iteration())))
    });
    group.bench_function("ndarray-hoisted", |bench| {
        bench.iter(|| black_box(hoisted.iteration()))
    });
    group.bench_function("ndarray-reference", |bench| {
        bench.iter(|| black_box(reference.iteration()))
    });
    group.finish();
}

fn workloads(c: &mut Criterion) {
    workload::<f64>(c, W1, 100);
    workload::<f32>(c, W2, 30);
    workload::<f32>(c, W3, 10);
}

/// Single-thread GEMM throughput at W3's largest product, (64 x 1024) ·
/// (1024 x 1024): matrixmultiply (ndarray's `dot`) and ours.
fn gemm(c: &mut Criterion) {
    if reference_child() {
        return;
    }
    let (m, k, n) = (W3.b, W3.h, W3.h);
    let a = Array2::<f32>::from_shape_fn((m, k), |(i, j)| ((i * 7 + j) % 13) as f32 * 0.01);
    let w = Array2::<f32>::from_shape_fn((n, k), |(i, j)| ((i * 3 + j) % 11) as f32 * 0.01);
    let mut out = Array2::<f32>::zeros((m, n));
    let mut group = c.benchmark_group("gemm-64x1024x1024");
    group.sample_size(50);
    group.throughput(Throughput::Elements((2 * m * k * n) as u64));
    group.bench_function("matrixmultiply", |bench| {
        bench.iter(|| general_mat_mul(1.0, &a, &w.t(), 0.0, &mut out))
    });
    group.bench_function("nngraph-kernel", |bench| {
        bench.iter(|| {
            with_threads(1, || {
                nngraph::runtime::kernels::matmul_a_bt(
                    a.as_slice().unwrap(),
                    w.as_slice().unwrap(),
                    out.as_slice_mut().unwrap(),
                    m,
                    k,
                    n,
                )
            })
        })
    });
    group.finish();
    black_box(out.slice(s![0, 0]).to_owned());

    // The machine's GEMM throughput at 1024³ with our kernel, on one and
    // two threads: what W3 on two threads is measured against.
    let size = 1024;
    let a = Array2::<f32>::from_shape_fn((size, size), |(i, j)| ((i * 7 + j) % 13) as f32 * 0.01);
    let b = Array2::<f32>::from_shape_fn((size, size), |(i, j)| ((i * 3 + j) % 11) as f32 * 0.01);
    let mut c2 = Array2::<f32>::zeros((size, size));
    let mut group = c.benchmark_group("gemm-1024x1024x1024");
    group.sample_size(10);
    group.throughput(Throughput::Elements((2 * size * size * size) as u64));
    for threads in [1, 2] {
        group.bench_function(format!("nngraph-kernel-{threads}t"), |bench| {
            bench.iter(|| {
                with_threads(threads, || {
                    nngraph::runtime::kernels::matmul_a_bt(
                        a.as_slice().unwrap(),
                        b.as_slice().unwrap(),
                        c2.as_slice_mut().unwrap(),
                        size,
                        size,
                        size,
                    )
                })
            })
        });
    }
    group.finish();
}

/// Backward through time over 1k, 10k and 100k steps of the seed cell (W1's
/// sizes): the time per step (criterion's throughput, in elements = steps)
/// must stay flat as the sequence grows.
fn long_sequences(c: &mut Criterion) {
    if reference_child() {
        return;
    }
    let mut group = c.benchmark_group("W1-seed-backward");
    group.sample_size(10);
    for steps in [1_000, 10_000, 100_000] {
        let w = Workload { t: steps, ..W1 };
        let mut cell = Cell::<f64>::new(&mut StdRng::seed_from_u64(1), w.i, w.h, w.o).unwrap();
        let mut tape = cell.tape();
        let (h0, xs, _) = w.data::<f64>();
        let dy = Array3::from_elem((w.t, w.b, w.o), 1e-3);
        cell.forward_seq(&mut tape, &xs, &h0).unwrap();
        group.throughput(Throughput::Elements(steps as u64));
        group.bench_function(format!("{steps}-steps"), |bench| {
            bench.iter(|| {
                cell.backward_seq(&mut tape, &dy, &Absent).unwrap();
                cell.zero_grad();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, gemm, workloads, char_lstm, long_sequences);

/// Set in the child process that runs the ndarray references on two
/// threads.
const CHILD: &str = "NNGRAPH_BENCH_REFERENCE_2T";

fn reference_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// matrixmultiply (ndarray's `dot`, built here with its `threading`
/// feature) reads its thread count once per process: this process runs
/// everything with it on one thread, then runs itself again, with the same
/// arguments and filters, for the references on two (`ndarray-hoisted-2t`).
fn main() {
    if !reference_child() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    benches();
    if !reference_child() {
        let status = std::env::current_exe().and_then(|exe| {
            std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env(CHILD, "1")
                .env("MATMUL_NUM_THREADS", "2")
                .status()
        });
        match status {
            Ok(s) if s.success() => {}
            other => eprintln!("the two-thread reference run failed: {other:?}"),
        }
    }
    Criterion::default().configure_from_args().final_summary();
}
