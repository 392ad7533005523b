//! f32 Sigmoid, SoftMax and LogSoftMax against the same formulas in f64,
//! over a sweep that includes the tails, ties, rows of mixed magnitudes up
//! to ±100, and infinities and NaN. The CI sweep takes seconds; the dense
//! one (9.3M sigmoid inputs, 9.6M rows of four for the softmaxes) is
//! `--ignored`:
//!
//! `cargo test --release -p graph-runtime --test f32_edges -- --ignored`

use graph_runtime::layers::{LogSoftMax, Sigmoid, SoftMax};
use graph_runtime::{Forward, Input, Layer};
use ndarray::{Array2, ArrayView2};

/// Runs `layer` on `x` (f32), returns its output.
fn run(layer: &dyn Layer<f32>, x: ArrayView2<f32>) -> Array2<f32> {
    let mut state = Array2::zeros((0, 0));
    let inputs = [Input::Values(x.view())];
    let cx = Forward {
        params: &[],
        inputs: &inputs,
        training: false,
        dropout: None,
        seed: 0,
        state: &mut state,
    };
    let mut out = Array2::zeros(x.dim());
    layer.forward(cx, out.view_mut()).expect("the layer runs");
    out
}

/// Distance in units in the last place between two f32 (0 between +0 and -0).
fn ulps(a: f32, b: f32) -> u64 {
    let ordered = |x: f32| {
        let bits = x.to_bits() as i32;
        (if bits < 0 { i32::MIN - bits } else { bits }) as i64
    };
    (ordered(a) - ordered(b)).unsigned_abs()
}

/// The worst error of `got` against `want` (f64): in ulps where `want` is
/// a normal f32, and, where it is not, whether `got` is within four of the
/// smallest subnormal steps of it (about 5.6e-45). Returns (worst ulps, its index).
fn worst(got: &[f32], want: &[f64]) -> (u64, usize) {
    let mut worst = (0, 0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_nan() == w.is_nan(), "element {i}: {g} against {w}");
        if w.is_nan() || (g.is_infinite() && g as f64 == w) {
            continue;
        }
        let u = if (w.abs() as f32) < f32::MIN_POSITIVE {
            let within = (g as f64 - w).abs() <= 4.0 * f32::from_bits(1) as f64;
            assert!(within, "element {i}: {g:e} against {w:e}, below the normal range");
            0
        } else {
            ulps(g, w as f32)
        };
        if u > worst.0 {
            worst = (u, i);
        }
    }
    worst
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `(softmax, log softmax)` of a row in f64.
fn reference(row: &[f32]) -> (Vec<f64>, Vec<f64>) {
    if row.iter().any(|v| v.is_nan())
        || row.contains(&f32::INFINITY)
        || row.iter().all(|&v| v == f32::NEG_INFINITY)
    {
        return (vec![f64::NAN; row.len()], vec![f64::NAN; row.len()]);
    }
    let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    // The sum is 1 (the maximum's term) plus the rest: ln_1p keeps a rest
    // far below f64's epsilon (e^-80 beside 1).
    let at = row.iter().position(|&v| v as f64 == m).unwrap();
    let rest: f64 = row
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != at)
        .map(|(_, &v)| (v as f64 - m).exp())
        .sum();
    let soft = row.iter().map(|&v| (v as f64 - m).exp() / (1.0 + rest)).collect();
    let log = row.iter().map(|&v| (v as f64 - m) - rest.ln_1p()).collect();
    (soft, log)
}

/// Rows `[x, context...]` for `x` every `step` over [-100, 100]: other
/// entries near zero, of mixed signs up to ±80 (where `x - max` is large),
/// ties, and a row of near-equal large values.
fn rows(step: f32) -> Array2<f32> {
    const CONTEXTS: [[f32; 3]; 6] = [
        [0.0, 0.0, 0.0],
        [80.0, -80.0, 0.0],
        [-80.0, 79.9, 3.0],
        [1e-3, -1e-3, 0.5],
        [30.0, 30.0, -30.0],
        [69.95, 69.96, -100.0],
    ];
    let n = (200.0 / step) as usize + 1;
    let mut out = Array2::zeros((n * CONTEXTS.len(), 4));
    for (i, mut row) in out.rows_mut().into_iter().enumerate() {
        let x = -100.0 + (i / CONTEXTS.len()) as f32 * step;
        let c = CONTEXTS[i % CONTEXTS.len()];
        row.assign(&ndarray::arr1(&[x, c[0], c[1], c[2]]));
    }
    out
}

/// The worst ulps of (SoftMax, LogSoftMax) over `x`, each with its row.
fn softmax_sweep(x: &Array2<f32>) -> [(u64, Vec<f32>); 2] {
    let (soft, log) = (run(&SoftMax, x.view()), run(&LogSoftMax, x.view()));
    let (mut want_soft, mut want_log) = (Vec::new(), Vec::new());
    for row in x.rows() {
        let (s, l) = reference(row.as_slice().unwrap());
        want_soft.extend(s);
        want_log.extend(l);
    }
    let row_of = |i: usize| x.row(i / x.ncols()).to_vec();
    let s = worst(soft.as_slice().unwrap(), &want_soft);
    let l = worst(log.as_slice().unwrap(), &want_log);
    [(s.0, row_of(s.1)), (l.0, row_of(l.1))]
}

/// Sigmoid over every `step` in [-110, 30] and the magnitudes 1e-30 to 1.
fn sigmoid_sweep(step: f64) -> (u64, f32) {
    let mut xs: Vec<f32> = (0..=(140.0 / step) as usize)
        .map(|i| (-110.0 + i as f64 * step) as f32)
        .collect();
    for i in 0..=3000 {
        let m = 10f32.powf(-30.0 + i as f32 * 0.01);
        xs.extend([m, -m]);
    }
    let x = Array2::from_shape_vec((xs.len(), 1), xs.clone()).unwrap();
    let y = run(&Sigmoid, x.view());
    let want: Vec<f64> = xs
        .iter()
        .map(|&v| {
            // torch's f32 formula: 0 where e^{-x} overflows f32.
            if (-(v as f64)).exp() > f32::MAX as f64 {
                0.0
            } else {
                logistic(v as f64)
            }
        })
        .collect();
    let (u, i) = worst(y.as_slice().unwrap(), &want);
    (u, xs[i])
}

/// The bounds the README quotes.
const SIGMOID_ULPS: u64 = 3;
const SOFTMAX_ULPS: u64 = 3;
const LOG_SOFTMAX_ULPS: u64 = 3;

#[test]
fn sigmoid_is_within_its_bound_and_zero_in_the_far_tail() {
    let (u, at) = sigmoid_sweep(1e-3);
    eprintln!("sigmoid: {u} ulp at {at}");
    assert!(u <= SIGMOID_ULPS, "sigmoid: {u} ulp at {at}");
    let x = ndarray::arr2(&[
        [f32::NEG_INFINITY],
        [-1e30],
        [-100.0],
        [-88.73],
        [f32::INFINITY],
        [f32::NAN],
    ]);
    let y = run(&Sigmoid, x.view());
    assert_eq!(
        y.column(0).iter().take(5).copied().collect::<Vec<_>>(),
        [0.0, 0.0, 0.0, 0.0, 1.0]
    );
    assert!(y[[5, 0]].is_nan());
}

#[test]
fn softmax_and_log_softmax_are_within_their_bounds() {
    let [(s, s_row), (l, l_row)] = softmax_sweep(&rows(1e-2));
    eprintln!("softmax: {s} ulp in {s_row:?}; log softmax: {l} ulp in {l_row:?}");
    assert!(s <= SOFTMAX_ULPS, "softmax: {s} ulp in row {s_row:?}");
    assert!(l <= LOG_SOFTMAX_ULPS, "log softmax: {l} ulp in row {l_row:?}");
}

#[test]
fn a_row_with_an_infinity_or_nan_is_as_torchs() {
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let x = ndarray::arr2(&[
        [inf, 1.0, 2.0],
        [1.0, inf, inf],
        [nan, 1.0, 2.0],
        [-inf, -inf, -inf],
        [-inf, 0.0, 0.0],
    ]);
    let (soft, log) = (run(&SoftMax, x.view()), run(&LogSoftMax, x.view()));
    for r in 0..4 {
        assert!(
            soft.row(r).iter().all(|v| v.is_nan()),
            "softmax of {}: {}",
            x.row(r),
            soft.row(r)
        );
        assert!(
            log.row(r).iter().all(|v| v.is_nan()),
            "log softmax of {}: {}",
            x.row(r),
            log.row(r)
        );
    }
    assert_eq!(soft.row(4).to_vec(), [0.0, 0.5, 0.5]);
    assert_eq!(
        log.row(4).to_vec(),
        [-inf, -std::f32::consts::LN_2, -std::f32::consts::LN_2]
    );
}

#[test]
#[ignore = "the dense sweep: seconds in release, minutes in debug"]
fn dense_sweep() {
    let (u, at) = sigmoid_sweep(1.5e-5);
    eprintln!("sigmoid: {u} ulp at {at}");
    assert!(u <= SIGMOID_ULPS, "sigmoid: {u} ulp at {at}");
    let [(s, s_row), (l, l_row)] = softmax_sweep(&rows(1.25e-4));
    eprintln!("softmax: {s} ulp in {s_row:?}; log softmax: {l} ulp in {l_row:?}");
    assert!(s <= SOFTMAX_ULPS, "softmax: {s} ulp in row {s_row:?}");
    assert!(l <= LOG_SOFTMAX_ULPS, "log softmax: {l} ulp in row {l_row:?}");
}
