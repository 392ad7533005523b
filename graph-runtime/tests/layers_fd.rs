//! Every built-in layer and criterion against central finite differences
//! (f64): the analytic backward of each layer must agree with the numbers.

use graph_runtime::criteria::{Bce, ClassNll, CrossEntropy, Mse, Reduction};
use graph_runtime::layers::*;
use graph_runtime::{Backward, Forward, GradCheck, Input, Layer, Objective, Result};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

fn as_inputs<'a>(inputs: &'a [ArrayView2<'a, f64>]) -> Vec<Input<'a, f64>> {
    inputs.iter().map(|x| Input::Values(x.view())).collect()
}

/// Runs `layer` alone on value inputs (training mode, seed 0, fresh state).
fn forward(layer: &dyn Layer<f64>, params: &[f64], inputs: &[ArrayView2<f64>], out: ArrayViewMut2<f64>) {
    let mut state = Array2::zeros((0, 0));
    let cx = Forward {
        params,
        inputs: &as_inputs(inputs),
        training: true,
        dropout: None,
        seed: 0,
        state: &mut state,
    };
    layer.forward(cx, out).expect("the layer runs");
}

/// A layer with fixed inputs and loss `sum(output * weights)`: the variables
/// are the layer's parameters and every input.
struct LayerObjective<L> {
    layer: L,
    params: Vec<f64>,
    inputs: Vec<Array2<f64>>,
    loss_weights: Array2<f64>,
}

impl<L: Layer<f64>> LayerObjective<L> {
    fn new(layer: L, widths: &[usize], batch: usize) -> Self {
        let out_w = layer.output_width(widths).expect("widths fit the layer");
        let params = (0..layer.num_params())
            .map(|i| 0.3 * ((i as f64) * 0.7 + 0.2).sin())
            .collect();
        let inputs = widths
            .iter()
            .enumerate()
            .map(|(k, &w)| {
                Array2::from_shape_fn((batch, w), |(b, j)| {
                    // Away from zero, so ReLU's kink is not probed.
                    let v = 0.8 * ((b * 7 + j * 3 + k * 11) as f64 * 0.9 + 0.4).sin();
                    if v.abs() < 0.05 {
                        0.3
                    } else {
                        v
                    }
                })
            })
            .collect();
        let loss_weights =
            Array2::from_shape_fn((batch, out_w), |(b, j)| ((b * 5 + j) as f64 * 0.61 + 0.3).cos());
        LayerObjective {
            layer,
            params,
            inputs,
            loss_weights,
        }
    }

    fn output(&self) -> Array2<f64> {
        let views: Vec<ArrayView2<f64>> = self.inputs.iter().map(|a| a.view()).collect();
        let mut out = Array2::zeros(self.loss_weights.dim());
        forward(&self.layer, &self.params, &views, out.view_mut());
        out
    }
}

impl<L: Layer<f64>> Objective<f64> for LayerObjective<L> {
    fn variables(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = vec![("params".to_string(), vec![self.params.len()])];
        for (i, x) in self.inputs.iter().enumerate() {
            v.push((format!("input {i}"), x.shape().to_vec()));
        }
        v
    }

    fn values_mut(&mut self, v: usize) -> &mut [f64] {
        if v == 0 {
            &mut self.params
        } else {
            self.inputs[v - 1].as_slice_mut().unwrap()
        }
    }

    fn loss(&mut self) -> Result<f64> {
        Ok((&self.output() * &self.loss_weights).sum())
    }

    fn gradient(&mut self) -> Result<Vec<Vec<f64>>> {
        let out = self.output();
        let views: Vec<ArrayView2<f64>> = self.inputs.iter().map(|a| a.view()).collect();
        let inputs = as_inputs(&views);
        let state = Array2::zeros((0, 0));
        let cx = Backward {
            params: &self.params,
            inputs: &inputs,
            output: out.view(),
            d_output: self.loss_weights.view(),
            state: state.view(),
        };
        let mut grads = vec![0.0; self.params.len()];
        self.layer.backward_params(&cx, &mut grads).unwrap();
        let mut all = vec![grads];
        for (i, x) in views.iter().enumerate() {
            // Start from a non-zero buffer: backward must ADD into it.
            let mut d = Array2::from_elem(x.dim(), 1.0);
            self.layer.backward_input(i, &cx, d.view_mut()).unwrap();
            all.push(d.iter().map(|v| v - 1.0).collect());
        }
        Ok(all)
    }
}

fn check<L: Layer<f64>>(layer: L, widths: &[usize]) {
    check_with(layer, widths, |_, _| {});
}

/// Like `check`, after `adjust(input index, values)` moves the inputs into
/// the layer's domain (probabilities, non-zero divisors, ...).
fn check_with<L: Layer<f64>>(layer: L, widths: &[usize], adjust: impl Fn(usize, &mut Array2<f64>)) {
    let name = layer.kind();
    let mut objective = LayerObjective::new(layer, widths, 3);
    for (i, x) in objective.inputs.iter_mut().enumerate() {
        adjust(i, x);
    }
    let report = GradCheck::new().run(&mut objective).unwrap();
    assert!(report.passed(), "{name}:\n{report}");
    assert!(report.count() > 0, "{name}: nothing was checked");
}

#[test]
fn linear() {
    check(Linear::new(5, 3), &[5]);
}

#[test]
fn linear_wide_input_uses_the_blocked_kernel() {
    // Batch 3 is below the 4-row block; this one exercises both paths.
    let mut objective = LayerObjective::new(Linear::new(19, 6), &[19], 9);
    let report = GradCheck::new().run(&mut objective).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn identity() {
    check(Identity, &[4]);
}

#[test]
fn tanh() {
    check(Tanh, &[4]);
}

#[test]
fn sigmoid() {
    check(Sigmoid, &[4]);
}

#[test]
fn relu() {
    check(ReLU, &[6]);
}

#[test]
fn cadd_two_and_three_inputs() {
    check(CAdd, &[4, 4]);
    check(CAdd, &[4, 4, 4]);
}

#[test]
fn csub() {
    check(CSub, &[4, 4]);
}

#[test]
fn cmul_two_and_three_inputs() {
    check(CMul, &[4, 4]);
    check(CMul, &[4, 4, 4]);
}

#[test]
fn layer_values_match_their_definitions() {
    let x = ndarray::array![[0.5, -2.0, 0.0]];
    let run = |layer: &dyn Layer<f64>, params: &[f64], inputs: &[ArrayView2<f64>]| {
        let mut out = Array2::zeros((1, 3));
        forward(layer, params, inputs, out.view_mut());
        out
    };
    assert_eq!(run(&Tanh, &[], &[x.view()])[[0, 1]], (-2.0f64).tanh());
    assert_eq!(run(&ReLU, &[], &[x.view()]), ndarray::array![[0.5, 0.0, 0.0]]);
    let s = run(&Sigmoid, &[], &[x.view()]);
    assert!((s[[0, 0]] - 1.0 / (1.0 + (-0.5f64).exp())).abs() < 1e-15);
    // Sigmoid must not overflow for large negative inputs.
    let big = ndarray::array![[-1000.0, 1000.0, 0.0]];
    let s = run(&Sigmoid, &[], &[big.view()]);
    assert!(s.iter().all(|v| v.is_finite()));
    assert_eq!(
        run(&CSub, &[], &[x.view(), x.view()]),
        Array2::<f64>::zeros((1, 3))
    );
    assert_eq!(
        run(&CMul, &[], &[x.view(), x.view()]),
        ndarray::array![[0.25, 4.0, 0.0]]
    );
    // Linear(3, 1): weight [1, 2, 3], bias 0.5.
    let mut out = Array2::zeros((1, 1));
    forward(
        &Linear::new(3, 1),
        &[1.0, 2.0, 3.0, 0.5],
        &[x.view()],
        out.view_mut(),
    );
    assert_eq!(out[[0, 0]], 0.5 - 4.0 + 0.5);
}

#[test]
fn shape_rules_reject_mismatches() {
    assert!(Layer::<f64>::output_width(&Linear::new(3, 2), &[4]).is_err());
    assert_eq!(Layer::<f64>::output_width(&Linear::new(3, 2), &[3]), Ok(2));
    assert!(Layer::<f64>::output_width(&CAdd, &[3, 4]).is_err());
    assert!(Layer::<f64>::output_width(&CAdd, &[3]).is_err());
    assert!(Layer::<f64>::output_width(&CSub, &[3, 3, 3]).is_err());
    assert_eq!(Layer::<f64>::output_width(&CMul, &[3, 3, 3]), Ok(3));
}

/// MSE as an objective over its prediction.
struct MseObjective {
    input: Array2<f64>,
    target: Array2<f64>,
}

impl Objective<f64> for MseObjective {
    fn variables(&self) -> Vec<(String, Vec<usize>)> {
        vec![("input".into(), self.input.shape().to_vec())]
    }
    fn values_mut(&mut self, _: usize) -> &mut [f64] {
        self.input.as_slice_mut().unwrap()
    }
    fn loss(&mut self) -> Result<f64> {
        Mse::new().forward(&self.input, &self.target)
    }
    fn gradient(&mut self) -> Result<Vec<Vec<f64>>> {
        let mut g = Array2::zeros(self.input.dim());
        Mse::new().backward(&self.input, &self.target, g.view_mut())?;
        Ok(vec![g.into_raw_vec_and_offset().0])
    }
}

#[test]
fn mse_gradient_and_value() {
    let input = Array2::from_shape_fn((3, 4), |(i, j)| (i as f64 - j as f64) * 0.3);
    let target = Array2::from_shape_fn((3, 4), |(i, j)| ((i * j) as f64).cos());
    let expected = (&input - &target).mapv(|d| d * d).mean().unwrap();
    assert!((Mse::new().forward(&input, &target).unwrap() - expected).abs() < 1e-15);
    let report = GradCheck::new().run(&mut MseObjective { input, target }).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn mse_rejects_mismatched_shapes() {
    let err = Mse::new()
        .forward(&Array2::<f64>::zeros((2, 3)), &Array2::zeros((3, 2)))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("(2, 3)") && msg.contains("(3, 2)"), "{msg}");
}

#[test]
fn softmax_and_log_softmax() {
    check(SoftMax, &[5]);
    check(LogSoftMax, &[5]);
}

#[test]
fn cdiv() {
    // Divisors kept away from zero.
    check_with(CDiv, &[4, 4], |i, x| {
        if i == 1 {
            x.mapv_inplace(|v| 1.5 + v);
        }
    });
}

#[test]
fn constants() {
    check(MulConstant::new(-2.5), &[4]);
    check(AddConstant::new(0.75), &[4]);
}

#[test]
fn concat_and_narrow() {
    check(Concat, &[2, 3, 1]);
    check(Narrow::new(1, 3), &[5]);
    check(Narrow::new(0, 5), &[5]);
}

#[test]
fn mse_and_bce_as_nodes() {
    check(Mse::new(), &[4, 4]);
    // Probabilities and targets in (0, 1).
    check_with(Bce::new(), &[4, 4], |_, x| x.mapv_inplace(|v| 0.5 + 0.45 * v));
}

#[test]
fn softmax_is_stable_and_normalised() {
    let x = ndarray::array![[1000.0, 999.0, -1000.0]];
    let mut y = Array2::zeros((1, 3));
    forward(&SoftMax, &[], &[x.view()], y.view_mut());
    // Inputs near 1000 carry absolute rounding of about 1e-13 (an ulp of 1000).
    assert!((y.sum() - 1.0).abs() < 1e-12, "{y}");
    assert!((y[[0, 0]] - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12);
    forward(&LogSoftMax, &[], &[x.view()], y.view_mut());
    assert!(y.iter().all(|v| v.is_finite()));
}

#[test]
fn narrow_and_concat_shape_rules() {
    assert!(Layer::<f64>::output_width(&Narrow::new(3, 3), &[5]).is_err());
    assert_eq!(Layer::<f64>::output_width(&Concat, &[2, 3]), Ok(5));
}

/// Dropout with a fixed seed is a fixed linear map, so its backward can be
/// checked like any other; in evaluation mode it is exactly the identity.
#[test]
fn dropout() {
    let d = Dropout::new(0.4);
    let x = Array2::from_shape_fn((6, 50), |(i, j)| (i as f64 - j as f64) * 0.1 + 0.05);
    let run = |training: bool, seed: u64, mask: &mut Array2<f64>| {
        let mut y = Array2::zeros(x.dim());
        let cx = Forward {
            params: &[],
            inputs: &[Input::Values(x.view())],
            training,
            dropout: None,
            seed,
            state: mask,
        };
        Layer::<f64>::forward(&d, cx, y.view_mut()).unwrap();
        y
    };
    let mut mask = Array2::zeros((0, 0));
    let y = run(true, 7, &mut mask);
    let dropped = mask.iter().filter(|&&m| m == 0.0).count() as f64 / mask.len() as f64;
    assert!((dropped - 0.4).abs() < 0.08, "dropped {dropped}");
    assert!(mask.iter().all(|&m| m == 0.0 || (m - 1.0 / 0.6).abs() < 1e-12));
    // Same seed, same mask; another seed, another; the gradient is the mask.
    let mut mask2 = Array2::zeros((0, 0));
    run(true, 7, &mut mask2);
    assert_eq!(mask, mask2);
    run(true, 8, &mut mask2);
    assert_ne!(mask, mask2);
    let dy = Array2::from_elem(x.dim(), 2.0);
    let mut dx = Array2::zeros(x.dim());
    let cx = Backward {
        params: &[],
        inputs: &[Input::Values(x.view())],
        output: y.view(),
        d_output: dy.view(),
        state: mask.view(),
    };
    d.backward_input(0, &cx, dx.view_mut()).unwrap();
    assert_eq!(dx, &mask * 2.0);
    assert_eq!(y, &x * &mask);
    // Evaluation mode: the identity, exactly.
    assert_eq!(run(false, 7, &mut mask), x);
}

/// Embedding: the output is a row of the table; its gradient, finite differences.
struct EmbeddingObjective {
    table: Embedding,
    params: Vec<f64>,
    ids: Vec<usize>,
    weights: Array2<f64>,
}

impl Objective<f64> for EmbeddingObjective {
    fn variables(&self) -> Vec<(String, Vec<usize>)> {
        vec![("weight".into(), vec![self.table.vocab, self.table.dim])]
    }
    fn values_mut(&mut self, _: usize) -> &mut [f64] {
        &mut self.params
    }
    fn loss(&mut self) -> Result<f64> {
        let out = embed(&self.table, &self.params, &self.ids).expect("ids in range");
        Ok((&out * &self.weights).sum())
    }
    fn gradient(&mut self) -> Result<Vec<Vec<f64>>> {
        let mut g = vec![0.0; self.params.len()];
        let (out, state) = (Array2::zeros((0, 0)), Array2::zeros((0, 0)));
        let cx = Backward {
            params: &self.params,
            inputs: &[Input::Ids(&self.ids)],
            output: out.view(),
            d_output: self.weights.view(),
            state: state.view(),
        };
        self.table.backward_params(&cx, &mut g).unwrap();
        Ok(vec![g])
    }
}

fn embed(table: &Embedding, params: &[f64], ids: &[usize]) -> std::result::Result<Array2<f64>, String> {
    let mut out = Array2::zeros((ids.len(), table.dim));
    let mut state = Array2::zeros((0, 0));
    let cx = Forward {
        params,
        inputs: &[Input::Ids(ids)],
        training: true,
        dropout: None,
        seed: 0,
        state: &mut state,
    };
    table.forward(cx, out.view_mut()).map(|()| out)
}

#[test]
fn embedding() {
    let table = Embedding::new(5, 3);
    let mut objective = EmbeddingObjective {
        table,
        params: (0..15).map(|i| (i as f64 * 0.3).sin()).collect(),
        ids: vec![4, 0, 4, 2],
        weights: Array2::from_shape_fn((4, 3), |(i, j)| (i + 2 * j) as f64 - 1.5),
    };
    let report = GradCheck::new().run(&mut objective).unwrap();
    assert!(report.passed(), "{report}");
    let err = embed(&table, &objective.params, &[5]).unwrap_err();
    assert_eq!(
        err,
        "id 5 at row 0 is outside the table of 5 ids (Embedding(5, 3))"
    );
}

/// Many rows (a sequence's) are gathered by the pool's threads: each row is
/// its id's row of the table, on one thread or two; the first bad id is
/// the one named, wherever it is.
#[test]
fn embedding_over_many_rows() {
    let (vocab, dim) = (70, 64);
    let table = Embedding::new(vocab, dim);
    let params: Vec<f64> = (0..vocab * dim).map(|i| (i as f64 * 0.17).cos()).collect();
    let ids: Vec<usize> = (0..3000).map(|b| (b * 31 + 7) % vocab).collect();
    for threads in [1, 2] {
        let out =
            graph_runtime::kernels::pool::with_threads(threads, || embed(&table, &params, &ids)).unwrap();
        for (b, &id) in ids.iter().enumerate() {
            assert_eq!(
                out.row(b).as_slice().unwrap(),
                &params[id * dim..(id + 1) * dim],
                "row {b}"
            );
        }
    }
    let mut bad = ids.clone();
    (bad[2500], bad[2900]) = (vocab, vocab + 1);
    let err = graph_runtime::kernels::pool::with_threads(2, || embed(&table, &params, &bad)).unwrap_err();
    assert_eq!(
        err,
        "id 70 at row 2500 is outside the table of 70 ids (Embedding(70, 64))"
    );
}

/// A class criterion on logits, as an objective over the logits.
struct ClassObjective<C> {
    criterion: C,
    logits: Array2<f64>,
    ids: Vec<usize>,
}

macro_rules! class_objective {
    ($ty:ty) => {
        impl Objective<f64> for ClassObjective<$ty> {
            fn variables(&self) -> Vec<(String, Vec<usize>)> {
                vec![("logits".into(), self.logits.shape().to_vec())]
            }
            fn values_mut(&mut self, _: usize) -> &mut [f64] {
                self.logits.as_slice_mut().unwrap()
            }
            fn loss(&mut self) -> Result<f64> {
                self.criterion.forward(&self.logits, &self.ids)
            }
            fn gradient(&mut self) -> Result<Vec<Vec<f64>>> {
                let mut g = Array2::zeros(self.logits.dim());
                self.criterion
                    .backward(&self.logits, &self.ids, g.view_mut())?;
                Ok(vec![g.into_raw_vec_and_offset().0])
            }
        }
    };
}
class_objective!(ClassNll);
class_objective!(CrossEntropy);

fn logits() -> Array2<f64> {
    Array2::from_shape_fn((4, 5), |(i, j)| ((i * 5 + j) as f64 * 0.77).sin() * 2.0)
}

#[test]
fn class_nll_and_cross_entropy_with_both_reductions() {
    for reduction in [Reduction::Mean, Reduction::Sum] {
        let mut nll = ClassObjective {
            criterion: ClassNll::with(reduction),
            logits: logits(),
            ids: vec![0, 4, 2, 2],
        };
        let report = GradCheck::new().run(&mut nll).unwrap();
        assert!(report.passed(), "{report}");
        let mut ce = ClassObjective {
            criterion: CrossEntropy::with(reduction),
            logits: logits(),
            ids: vec![0, 4, 2, 2],
        };
        let report = GradCheck::new().run(&mut ce).unwrap();
        assert!(report.passed(), "{report}");
    }
}

#[test]
fn cross_entropy_is_log_softmax_then_nll() {
    let x = logits();
    let ids = [1, 3, 0, 4];
    let mut log_p = Array2::zeros(x.dim());
    forward(&LogSoftMax, &[], &[x.view()], log_p.view_mut());
    let fused = CrossEntropy::new().forward(&x, &ids).unwrap();
    let composed = ClassNll::new().forward(&log_p, &ids).unwrap();
    assert!((fused - composed).abs() < 1e-14, "{fused} vs {composed}");
    let sum = CrossEntropy::with(Reduction::Sum).forward(&x, &ids).unwrap();
    assert!((sum - 4.0 * fused).abs() < 1e-12);
}

#[test]
fn cross_entropy_is_finite_for_logits_of_magnitude_1000() {
    let x: Array2<f64> = ndarray::array![[1000.0, -1000.0, 999.0], [-1000.0, -1000.0, 1000.0]];
    let ids = [1, 0];
    let loss = CrossEntropy::new().forward(&x, &ids).unwrap();
    assert!(loss.is_finite());
    // Row 0: log(e^1000 + e^-1000 + e^999) + 1000 = 2000 + log(1 + e^-1); row 1: 2000.
    let want = (2000.0 + (1.0 + (-1.0f64).exp()).ln() + 2000.0) / 2.0;
    assert!((loss - want).abs() < 1e-9, "{loss} vs {want}");
    let mut g = Array2::zeros(x.dim());
    CrossEntropy::new().backward(&x, &ids, g.view_mut()).unwrap();
    assert!(g.iter().all(|v| v.is_finite()));
    // Each row of softmax - onehot sums to zero.
    for row in g.rows() {
        assert!(row.sum().abs() < 1e-12);
    }
}

#[test]
fn bce_value_and_gradient() {
    let p = Array2::from_shape_fn((3, 4), |(i, j)| 0.1 + 0.2 * i as f64 + 0.05 * j as f64);
    let t = Array2::from_shape_fn((3, 4), |(i, j)| ((i + j) % 2) as f64);
    let want = p
        .iter()
        .zip(t.iter())
        .map(|(&p, &t)| -(t * p.ln() + (1.0 - t) * (1.0 - p).ln()))
        .sum::<f64>()
        / 12.0;
    assert!((Bce::new().forward(&p, &t).unwrap() - want).abs() < 1e-14);
    // p = 0 and 1 give a finite loss (torch clamps the logs at -100).
    let edge: Array2<f64> = ndarray::array![[0.0, 1.0]];
    let loss = Bce::new().forward(&edge, &ndarray::array![[1.0, 0.0]]).unwrap();
    assert!((loss - 100.0).abs() < 1e-12, "{loss}");
}

#[test]
fn class_criteria_reject_bad_ids() {
    let err = CrossEntropy::new().forward(&logits(), &[0, 1, 2, 9]).unwrap_err();
    assert!(err.to_string().contains("target id 9 at row 3"), "{err}");
    let err = ClassNll::new().forward(&logits(), &[0, 1]).unwrap_err();
    assert!(err.to_string().contains("one target id per row"), "{err}");
}

/// NaN in, NaN out, as torch: no layer turns a NaN into a number (ReLU used to).
#[test]
fn nan_propagates_through_every_layer() {
    let layers: Vec<(Box<dyn Layer<f64>>, usize)> = vec![
        (Box::new(Linear::new(3, 2)), 1),
        (Box::new(Identity), 1),
        (Box::new(Tanh), 1),
        (Box::new(Sigmoid), 1),
        (Box::new(ReLU), 1),
        (Box::new(SoftMax), 1),
        (Box::new(LogSoftMax), 1),
        (Box::new(CAdd), 2),
        (Box::new(CSub), 2),
        (Box::new(CMul), 2),
        (Box::new(CDiv), 2),
        (Box::new(MulConstant::new(0.0)), 1),
        (Box::new(AddConstant::new(1.0)), 1),
        (Box::new(Concat), 2),
        (Box::new(Narrow::new(0, 1)), 1),
        (Box::new(Dropout::new(0.5)), 1),
        (Box::new(Mse::new()), 2),
    ];
    let x = ndarray::array![[f64::NAN, -1.0, 0.5]];
    for (layer, n) in layers {
        let widths = vec![3; n];
        let width = layer.output_width(&widths).unwrap();
        let params = vec![0.5; layer.num_params()];
        let inputs = vec![x.view(); n];
        let mut out = Array2::zeros((1, width));
        forward(layer.as_ref(), &params, &inputs, out.view_mut());
        assert!(out.iter().any(|v| v.is_nan()), "{}: {out}", layer.kind());
    }
}

/// `Linear` over rows that repeat (an embedding's output: 2048 rows holding
/// 30 distinct ones) computes each distinct row's product once. Its output
/// has the bits of the product over all rows; its weight gradient (each
/// distinct row times the sum of its rows' output gradients) matches the
/// sum over all rows in f64, with the same bits on 1, 2 and 3 threads. Rows
/// that do not repeat take the product over all rows, bit for bit.
#[test]
fn linear_over_repeating_rows() {
    use graph_runtime::kernels::pool::with_threads;
    use graph_runtime::kernels::{matmul_a_bt, matmul_at_b_acc};
    let (n_in, n_out, rows, distinct) = (40, 70, 2048, 30);
    let layer = Linear::new(n_in, n_out);
    let params: Vec<f32> = (0..Layer::<f32>::num_params(&layer))
        .map(|i| (i as f32 * 0.37).sin() * 0.2)
        .collect();
    let (w, bias) = params.split_at(n_in * n_out);
    let table: Vec<f32> = (0..distinct * n_in).map(|i| (i as f32 * 0.11).cos()).collect();
    let id = |r: usize| (r * 7 + r / 13) % distinct;
    let x = Array2::from_shape_fn((rows, n_in), |(r, j)| table[id(r) * n_in + j]);
    let dy = Array2::from_shape_fn((rows, n_out), |(r, j)| ((r * n_out + j) as f32 * 0.013).sin());
    let run = |x: &Array2<f32>, threads: usize| -> (Array2<f32>, Vec<f32>) {
        with_threads(threads, || {
            let (mut y, mut state) = (Array2::zeros((rows, n_out)), Array2::zeros((0, 0)));
            let inputs = [Input::Values(x.view())];
            let cx = Forward {
                params: &params,
                inputs: &inputs,
                training: true,
                dropout: None,
                seed: 0,
                state: &mut state,
            };
            layer.forward(cx, y.view_mut()).expect("the layer runs");
            let state = Array2::zeros((0, 0));
            let mut grads = vec![0.0; params.len()];
            let cx = Backward {
                params: &params,
                inputs: &inputs,
                output: y.view(),
                d_output: dy.view(),
                state: state.view(),
            };
            layer.backward_params(&cx, &mut grads).expect("the layer runs");
            (y, grads)
        })
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (y, grads) = run(&x, 1);
    let mut want = vec![0.0; rows * n_out];
    matmul_a_bt(x.as_slice().unwrap(), w, &mut want, rows, n_in, n_out);
    for row in want.chunks_exact_mut(n_out) {
        row.iter_mut().zip(bias).for_each(|(y, &b)| *y += b);
    }
    assert_eq!(bits(y.as_slice().unwrap()), bits(&want), "the output");
    for o in 0..n_out {
        for i in 0..n_in {
            let sum: f64 = (0..rows).map(|r| dy[[r, o]] as f64 * x[[r, i]] as f64).sum();
            let got = grads[o * n_in + i] as f64;
            assert!(
                (got - sum).abs() <= 1e-4 * (1.0 + sum.abs()),
                "dW[{o}, {i}]: {got} against {sum}"
            );
        }
    }
    for threads in [2, 3] {
        let (y2, grads2) = run(&x, threads);
        assert_eq!(
            bits(y2.as_slice().unwrap()),
            bits(y.as_slice().unwrap()),
            "{threads} threads"
        );
        assert_eq!(bits(&grads2), bits(&grads), "{threads} threads");
    }
    // Every row its own: the products over all rows.
    let unique = Array2::from_shape_fn((rows, n_in), |(r, j)| x[[r, j]] + (r * n_in + j) as f32 * 1e-3);
    let (_, grads) = run(&unique, 2);
    let mut dw = vec![0.0; n_in * n_out];
    matmul_at_b_acc(
        dy.as_slice().unwrap(),
        unique.as_slice().unwrap(),
        &mut dw,
        rows,
        n_out,
        n_in,
    );
    assert_eq!(bits(&grads[..n_in * n_out]), bits(&dw), "rows that do not repeat");
    // No columns at all: every row is the bias.
    let empty = Linear::new(0, 3);
    let (x, mut y, mut state) = (
        Array2::<f32>::zeros((rows, 0)),
        Array2::zeros((rows, 3)),
        Array2::zeros((0, 0)),
    );
    let cx = Forward {
        params: &[0.5, -1.0, 2.0],
        inputs: &[Input::Values(x.view())],
        training: true,
        dropout: None,
        seed: 0,
        state: &mut state,
    };
    empty.forward(cx, y.view_mut()).expect("the layer runs");
    assert!(y.rows().into_iter().all(|r| r.to_vec() == [0.5, -1.0, 2.0]));
}
