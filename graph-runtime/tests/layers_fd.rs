//! Every built-in layer and criterion against central finite differences
//! (f64): the analytic backward of each layer must agree with the numbers.

use graph_runtime::criteria::Mse;
use graph_runtime::layers::*;
use graph_runtime::{GradCheck, Layer, Objective, Result};
use ndarray::{Array2, ArrayView2};

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
        self.layer.forward(&self.params, &views, out.view_mut());
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
        let mut grads = vec![0.0; self.params.len()];
        self.layer.backward_params(
            &self.params,
            &mut grads,
            &views,
            out.view(),
            self.loss_weights.view(),
        );
        let mut all = vec![grads];
        for i in 0..views.len() {
            // Start from a non-zero buffer: backward must ADD into it.
            let mut d = Array2::from_elem(views[i].dim(), 1.0);
            self.layer.backward_input(
                i,
                &self.params,
                &views,
                out.view(),
                self.loss_weights.view(),
                d.view_mut(),
            );
            all.push(d.iter().map(|v| v - 1.0).collect());
        }
        Ok(all)
    }
}

fn check<L: Layer<f64>>(layer: L, widths: &[usize]) {
    let name = layer.kind();
    let mut objective = LayerObjective::new(layer, widths, 3);
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
        layer.forward(params, inputs, out.view_mut());
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
    Layer::<f64>::forward(
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
