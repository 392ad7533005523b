//! Shared by the numerical tests: the seed notebook's graphs and the
//! reference numbers in `tests/oracle/` (PyTorch, float64).
#![allow(dead_code)]

pub mod step_by_step;

use nngraph::prelude::*;
use serde_json::Value;

graph! {
    /// The notebook's first graph: two inputs, outputs `out` and `add`.
    pub TwoInputs(x1: [3], x2: [2]) -> (out, add) {
        l1  = Linear(3, 2)(x1);
        l2  = Linear(2, 2)(x2);
        add = CAdd()(l1, l2);
        t   = Tanh()(add);
        out = Linear(2, 1)(t);
    }

    /// The notebook's RNN cell, named as the oracle names its parameters.
    #[recurrent(h = new_h)]
    pub SeedCell(x: [2], h: [4]) -> (y, new_h) {
        x2h   = Linear(2, 4)(x);
        h2h   = Linear(4, 4)(h);
        new_h = Tanh()(CAdd()(x2h, h2h));
        out   = Linear(4, 1)(new_h);
        y     = Sigmoid()(out);
    }
}

pub fn oracle(file: &str) -> Value {
    let path = format!("{}/oracle/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("oracle file")).expect("oracle json")
}

pub fn vec1(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

pub fn mat(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = v.as_array().expect("array").iter().map(vec1).collect();
    let (r, c) = (rows.len(), rows[0].len());
    Array2::from_shape_vec((r, c), rows.concat()).expect("rectangular")
}

/// The oracle's weights: the k-th Linear (from 1, declaration order) has
/// `weight[i][j] = 0.1 sin(k + 0.7 i + 0.3 j)`, `bias[i] = 0.05 cos(k + 0.5 i)`.
pub fn set_seed_oracle_weights(store: &mut ParamStore<f64>) {
    let specs = store.specs().to_vec();
    let mut k = 0.0;
    for spec in specs {
        let mut p = store.param_mut(&spec.name).unwrap();
        if spec.name.ends_with(".weight") {
            k += 1.0;
            p.indexed_iter_mut()
                .for_each(|(ix, v)| *v = 0.1 * (k + 0.7 * ix[0] as f64 + 0.3 * ix[1] as f64).sin());
        } else {
            p.indexed_iter_mut()
                .for_each(|(ix, v)| *v = 0.05 * (k + 0.5 * ix[0] as f64).cos());
        }
    }
}

/// The oracle's RNN inputs: `x_t[j] = 0.1 (t+1) - 0.2 j`, `h0[j] = 0.1 j - 0.15`.
pub fn seed_inputs(steps: usize) -> (Array2<f64>, Array3<f64>) {
    let h0 = Array2::from_shape_fn((1, 4), |(_, j)| 0.1 * j as f64 - 0.15);
    let xs = Array3::from_shape_fn((steps, 1, 2), |(t, _, j)| 0.1 * (t + 1) as f64 - 0.2 * j as f64);
    (h0, xs)
}

pub fn assert_close(
    what: &str,
    got: impl IntoIterator<Item = f64>,
    want: impl IntoIterator<Item = f64>,
    tol: f64,
) {
    let got: Vec<f64> = got.into_iter().collect();
    let want: Vec<f64> = want.into_iter().collect();
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g:e}, want {w:e} (diff {:e})",
            (g - w).abs()
        );
    }
}

/// The summed-MSE loss of the seed (target 1.0 on output `y` at every step).
pub fn seed_loss(
    _t: usize,
    output: usize,
    y: ArrayView2<f64>,
    grad: Option<ArrayViewMut2<f64>>,
) -> nngraph::Result<f64> {
    if output != 0 {
        return Ok(0.0);
    }
    let target = Array2::from_elem(y.dim(), 1.0);
    if let Some(g) = grad {
        Mse::new().backward(&y, &target, g)?;
    }
    Mse::new().forward(&y, &target)
}

/// Every parameter gradient in `store` equals the oracle case's `grads`, by name.
pub fn assert_oracle_grads(store: &ParamStore<f64>, case: &Value, tol: f64) {
    for spec in store.specs() {
        let want = &case["grads"][&spec.name];
        let want: Vec<f64> = if spec.shape.len() == 2 {
            mat(want).into_iter().collect()
        } else {
            vec1(want)
        };
        assert_close(
            &spec.name,
            store.grad(&spec.name).unwrap().iter().copied(),
            want,
            tol,
        );
    }
}

/// `loss(t, 0, y_t, grad_t)` summed over the steps of a `(T, B, width)`
/// output, each step's gradient written into `dy` when given: a per-step
/// loss on the output of a pass over a sequence.
pub fn sum_over_steps(
    ys: ArrayView3<f64>,
    mut dy: Option<&mut Array3<f64>>,
    mut loss: impl FnMut(usize, usize, ArrayView2<f64>, Option<ArrayViewMut2<f64>>) -> nngraph::Result<f64>,
) -> f64 {
    if let Some(d) = dy.as_deref_mut() {
        d.fill(0.0);
    }
    let mut total = 0.0;
    for t in 0..ys.dim().0 {
        let grad = dy.as_deref_mut().map(|d| d.index_axis_mut(Axis(0), t));
        total += loss(t, 0, ys.index_axis(Axis(0), t), grad).unwrap();
    }
    total
}

/// A loss for finite-difference checks that reads every output at every
/// step: `Σ w(t, o, j) · y[.., j]`, its gradient `w` added into `grad`.
pub fn weighted_sum(
    w: impl Fn(usize, usize, usize) -> f64,
) -> impl FnMut(usize, usize, ArrayView2<f64>, Option<ArrayViewMut2<f64>>) -> nngraph::Result<f64> {
    move |t, o, y, grad| {
        if let Some(mut g) = grad {
            g.indexed_iter_mut().for_each(|((_, j), v)| *v += w(t, o, j));
        }
        Ok(y.indexed_iter().map(|((_, j), v)| v * w(t, o, j)).sum())
    }
}
