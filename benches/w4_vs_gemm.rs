//! W4 against the crate's own GEMM, side by side: one W4 training iteration
//! (char_rnn's model, as the `iteration` bench declares it) and one
//! 1024³ `a · bᵀ`, alternated in one process on the same threads, and the
//! ratio of their throughputs taken pair by pair. The `iteration` bench
//! times the GEMM and W4 minutes apart, and on a virtual machine whose
//! speed drifts within minutes its ratio moves with the drift; a pair is
//! a few tens of milliseconds apart.
//!
//! `cargo bench -p nngraph-tests --bench w4_vs_gemm [-- --pairs N --threads T]`

use nngraph::ndarray::Array2;
use nngraph::prelude::*;
use nngraph::runtime::kernels::matmul_a_bt;
use nngraph::runtime::with_threads;
use std::hint::black_box;
use std::time::Instant;

graph! {
    /// W4: char_rnn's model as it was declared before stacks (the
    /// `iteration` bench's `CharLstm`).
    #[recurrent(h1 = h1_next, c1 = c1_next, h2 = h2_next, c2 = c2_next)]
    pub CharLstm[vocab, hidden](x: usize, h1: [hidden], c1: [hidden], h2: [hidden], c2: [hidden], target: usize)
        -> (loss, h1_next, c1_next, h2_next, c2_next)
    {
        (h1_next, c1_next) = nngraph::cells::LstmLayer[hidden, hidden](Embedding(vocab, hidden)(x), h1, c1);
        (h2_next, c2_next) = nngraph::cells::LstmLayer[hidden, hidden](Dropout(0.0)(h1_next), h2, c2);
        loss = CrossEntropy()(Linear(hidden, vocab)(Dropout(0.0)(h2_next)), target);
    }

    /// W4 as char_rnn declares it now (the `iteration` bench's `CharStack`).
    #[recurrent(h = h_n, c = c_n)]
    pub CharStack[vocab, hidden, layers](x: usize, h: [layers * hidden], c: [layers * hidden], target: usize)
        -> (loss, h_n, c_n)
    {
        (y, h_n, c_n) = nngraph::cells::Lstm[hidden, hidden, layers](Embedding(vocab, hidden)(x), h, c);
        loss = CrossEntropy()(Linear(hidden, vocab)(Dropout(0.0)(y)), target);
    }
}

/// W4's sizes: vocabulary, hidden units, steps, batch.
const W4: (usize, usize, usize, usize) = (65, 128, 50, 50);

/// The products' FLOPs of one W4 iteration: 6·B·T·(2·4H·2H + H·V).
fn w4_flops() -> f64 {
    let (vocab, hidden, steps, batch) = W4;
    (6 * batch * steps * (2 * 4 * hidden * 2 * hidden + hidden * vocab)) as f64
}

/// One W4 iteration as the `iteration` bench runs it: the sequence from
/// zero states, the mean cross-entropy, BPTT, gradients clipped to
/// [-5, 5], one Adam step, zero grads.
fn iteration<G: Graph<f32>>(
    model: &mut G,
    tape: &mut Tape<f32>,
    adam: &mut Adam<f32>,
    xs: &Array2<usize>,
    ys: &Array2<usize>,
) -> f32 {
    let spec = G::SPEC;
    let feeds: Vec<Feed<'_, f32>> = (0..spec.inputs.len())
        .map(|i| match spec.inputs[i].name {
            "x" => Feed::IdSeq(xs.view()),
            "target" => Feed::IdSeq(ys.view()),
            _ => Feed::Absent,
        })
        .collect();
    model.forward_feeds(tape, &feeds).unwrap();
    let loss = model.backward_loss(tape, Reduction::Mean).unwrap();
    clip_grad_value(model.store_mut(), 5.0).unwrap();
    adam.step(model.store_mut()).unwrap();
    model.zero_grad();
    loss
}

/// The median, first and third quartiles of `v`.
fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() / 4], v[3 * v.len() / 4])
}

/// Alternates `pairs` W4 iterations of `model` with as many GEMMs on
/// `threads` threads and prints both throughputs and their ratio.
fn pairs<G: Graph<f32>>(name: &str, mut model: G, pairs: usize, threads: usize) {
    let (vocab, _, steps, batch) = W4;
    let text = |t: usize, b: usize| (t * 31 + b * 17 + (t * b) % 7) % vocab;
    let xs = Array2::from_shape_fn((steps, batch), |(t, b)| text(t, b));
    let ys = Array2::from_shape_fn((steps, batch), |(t, b)| text(t + 1, b));
    let mut tape = model.tape();
    let mut adam = Adam::new(2e-3);
    let n = 1024;
    let a: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut c = vec![0.0f32; n * n];
    let gemm_flops = 2.0 * (n * n * n) as f64;
    let (mut w4, mut gemm, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    with_threads(threads, || {
        for _ in 0..3 {
            black_box(iteration(&mut model, &mut tape, &mut adam, &xs, &ys));
            matmul_a_bt(&a, &a, &mut c, n, n, n);
        }
        for _ in 0..pairs {
            let start = Instant::now();
            black_box(iteration(&mut model, &mut tape, &mut adam, &xs, &ys));
            let w = w4_flops() / start.elapsed().as_secs_f64() / 1e9;
            let start = Instant::now();
            matmul_a_bt(&a, &a, &mut c, n, n, n);
            black_box(&c);
            let g = gemm_flops / start.elapsed().as_secs_f64() / 1e9;
            w4.push(w);
            gemm.push(g);
            ratio.push(w / g);
        }
    });
    let (w, g, (r, r1, r3)) = (quartiles(w4).0, quartiles(gemm).0, quartiles(ratio));
    println!(
        "{name}, {threads} thread(s), {pairs} pairs: W4 {w:.1} GFLOP/s, GEMM 1024³ {g:.1} GFLOP/s; \
         W4 / GEMM per pair: median {r:.3} (quartiles {r1:.3}, {r3:.3})"
    );
}

fn main() {
    // `cargo bench` passes `--bench`; this takes `--pairs N` and `--threads T`.
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{flag} takes a whole number, not {v}"))
            })
    };
    let (count, threads) = (value("--pairs", 30), value("--threads", 2));
    let (vocab, hidden, _, _) = W4;
    let rng = &mut StdRng::seed_from_u64(4);
    pairs(
        "W4-charlstm/generated",
        CharLstm::<f32>::new(rng, vocab, hidden).unwrap(),
        count,
        threads,
    );
    pairs(
        "W4-charlstm/stack",
        CharStack::<f32>::new(rng, vocab, hidden, 2).unwrap(),
        count,
        threads,
    );
}
