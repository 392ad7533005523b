//! W4 against the crate's own GEMM, side by side: one W4 training iteration
//! (char_rnn's model, as the `iteration` bench declares it) and one
//! 1024³ `a · bᵀ`, alternated in one process on the same threads, and the
//! ratio of their throughputs taken pair by pair. The `iteration` bench
//! times the GEMM and W4 minutes apart, and on a virtual machine whose
//! speed drifts within minutes its ratio moves with the drift; a pair is
//! a few tens of milliseconds apart.
//!
//! `cargo bench -p nngraph-tests --bench w4_vs_gemm [-- --pairs N --threads T]`

use nngraph::prelude::*;
use nngraph::runtime::kernels::matmul_a_bt;
use nngraph::runtime::with_threads;
use std::hint::black_box;
use std::time::Instant;

mod w4;
use w4::{CharIteration, CharLstm, CharStack, W4};

/// The median, first and third quartiles of `v`.
fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() / 4], v[3 * v.len() / 4])
}

/// Alternates `pairs` W4 iterations of `model` with as many GEMMs on
/// `threads` threads and prints both throughputs and their ratio.
fn pairs<G: Graph<f32>>(name: &str, model: G, pairs: usize, threads: usize) {
    let mut w4 = CharIteration::new(model);
    let w4_flops = w4.flops() as f64;
    let n = 1024;
    let a: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut c = vec![0.0f32; n * n];
    let gemm_flops = 2.0 * (n * n * n) as f64;
    let (mut w4s, mut gemms, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    with_threads(threads, || {
        for _ in 0..3 {
            black_box(w4.iteration());
            matmul_a_bt(&a, &a, &mut c, n, n, n);
        }
        for _ in 0..pairs {
            let start = Instant::now();
            black_box(w4.iteration());
            let w = w4_flops / start.elapsed().as_secs_f64() / 1e9;
            let start = Instant::now();
            matmul_a_bt(&a, &a, &mut c, n, n, n);
            black_box(&c);
            let g = gemm_flops / start.elapsed().as_secs_f64() / 1e9;
            w4s.push(w);
            gemms.push(g);
            ratios.push(w / g);
        }
    });
    let (w, g, (r, r1, r3)) = (quartiles(w4s).0, quartiles(gemms).0, quartiles(ratios));
    println!(
        "{name}, {threads} thread(s), {pairs} pairs: W4 {w:.1} GFLOP/s, GEMM 1024³ {g:.1} GFLOP/s; \
         W4 / GEMM per pair: median {r:.3} (quartiles {r1:.3}, {r3:.3})"
    );
}

fn main() {
    // `cargo bench` passes `--bench`; this takes `--pairs N` and `--threads T`.
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: usize| -> usize {
        let Some(i) = args.iter().position(|a| a == flag) else {
            return default;
        };
        match args.get(i + 1).map(|v| v.parse::<usize>()) {
            Some(Ok(n)) if n > 0 => n,
            _ => {
                eprintln!("w4_vs_gemm: {flag} takes a whole number from 1 up");
                std::process::exit(2);
            }
        }
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
