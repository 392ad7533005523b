//! The gradient checker must catch a wrong backward. This graph is written
//! by hand against the `Graph` trait, with a layer whose derivative has the
//! wrong sign.

use nngraph::prelude::*;
use nngraph::runtime::gradcheck::GradCheck;
use nngraph::runtime::graph::ensure_shape;
use nngraph::ParamStore;

/// `tanh`, with the sign of its derivative flipped.
#[derive(Debug)]
struct WrongTanh;

impl Layer<f64> for WrongTanh {
    fn kind(&self) -> &'static str {
        "WrongTanh"
    }
    fn output_width(&self, w: &[usize]) -> Result<usize, String> {
        Ok(w[0])
    }
    fn forward(&self, _: &[f64], inputs: &[ArrayView2<f64>], mut output: ArrayViewMut2<f64>) {
        output.zip_mut_with(&inputs[0], |o, &x| *o = x.tanh());
    }
    fn backward_input(
        &self,
        _: usize,
        _: &[f64],
        _: &[ArrayView2<f64>],
        output: ArrayView2<f64>,
        d_output: ArrayView2<f64>,
        mut d_input: ArrayViewMut2<f64>,
    ) {
        nngraph::ndarray::Zip::from(&mut d_input)
            .and(&d_output)
            .and(&output)
            .for_each(|di, &d, &y| *di -= d * (1.0 - y * y));
    }
}

/// `y = WrongTanh(Linear(3, 2)(x))`, by hand.
struct Hand {
    linear: Linear,
    store: ParamStore<f64>,
}

#[derive(Debug, Clone, Default)]
struct HandTape {
    batch: Option<usize>,
    values: [Array2<f64>; 3],
    grads: [Array2<f64>; 3],
}

impl Tape<f64> for HandTape {
    fn batch_size(&self) -> Option<usize> {
        self.batch
    }
    fn resize(&mut self, batch: usize) {
        for (k, w) in [3, 2, 2].into_iter().enumerate() {
            ensure_shape(&mut self.values[k], batch, w);
            ensure_shape(&mut self.grads[k], batch, w);
        }
        self.batch = Some(batch);
    }
    fn input(&self, _: usize) -> ArrayView2<'_, f64> {
        self.values[0].view()
    }
    fn input_mut(&mut self, _: usize) -> ArrayViewMut2<'_, f64> {
        self.values[0].view_mut()
    }
    fn output(&self, _: usize) -> ArrayView2<'_, f64> {
        self.values[2].view()
    }
    fn output_grad_mut(&mut self, _: usize) -> ArrayViewMut2<'_, f64> {
        self.grads[2].view_mut()
    }
    fn output_and_grad_mut(&mut self, _: usize) -> (ArrayView2<'_, f64>, ArrayViewMut2<'_, f64>) {
        (self.values[2].view(), self.grads[2].view_mut())
    }
    fn input_grad(&self, _: usize) -> ArrayView2<'_, f64> {
        self.grads[0].view()
    }
    fn clear_grads(&mut self) {
        self.grads.iter_mut().for_each(|g| g.fill(0.0));
    }
    fn set_input_grad(&mut self, _: usize, _: bool) {}
}

impl Graph<f64> for Hand {
    type Tape = HandTape;
    fn name(&self) -> &'static str {
        "Hand"
    }
    fn input_names(&self) -> &'static [&'static str] {
        &["x"]
    }
    fn output_names(&self) -> &'static [&'static str] {
        &["y"]
    }
    fn input_width(&self, _: usize) -> usize {
        3
    }
    fn output_width(&self, _: usize) -> usize {
        2
    }
    fn new_tape(&self) -> HandTape {
        HandTape::default()
    }
    fn forward_tape(&self, tape: &mut HandTape) -> nngraph::Result<()> {
        let [x, l, y] = &mut tape.values;
        self.linear
            .forward(self.store.node_values(0), &[x.view()], l.view_mut());
        WrongTanh.forward(&[], &[l.view()], y.view_mut());
        Ok(())
    }
    fn backward_tape(&mut self, tape: &mut HandTape) -> nngraph::Result<()> {
        let [x, l, y] = &tape.values;
        let [dx, dl, dy] = &mut tape.grads;
        WrongTanh.backward_input(0, &[], &[l.view()], y.view(), dy.view(), dl.view_mut());
        let (p, g) = self.store.node_values_and_grads(0);
        self.linear
            .backward_params(p, g, &[x.view()], l.view(), dl.view());
        self.linear
            .backward_input(0, p, &[x.view()], l.view(), dl.view(), dx.view_mut());
        Ok(())
    }
    fn store(&self) -> &ParamStore<f64> {
        &self.store
    }
    fn store_mut(&mut self) -> &mut ParamStore<f64> {
        &mut self.store
    }
    fn is_training(&self) -> bool {
        true
    }
    fn set_training(&mut self, _: bool) {}
    fn is_checked(&self) -> bool {
        false
    }
    fn set_checked(&mut self, _: bool) {}
}

#[test]
fn the_checker_fails_on_a_sign_error_and_names_the_culprits() {
    let linear = Linear::new(3, 2);
    let mut store = ParamStore::of_layers("Hand", &[("l", &linear as &dyn Layer<f64>)]);
    linear.init(store.node_values_mut(0), &mut StdRng::seed_from_u64(2));
    let mut g = Hand { linear, store };
    let x = Array2::from_shape_fn((2, 3), |(i, j)| (i as f64 + 0.5 * j as f64).sin());
    let loss = |_t, _o, y: ArrayView2<f64>, grad: Option<ArrayViewMut2<f64>>| {
        let target = Array2::from_elem(y.dim(), 0.25);
        if let Some(g) = grad {
            Mse::new().backward(&y, &target, g)?;
        }
        Mse::new().forward(&y, &target)
    };
    let report = GradCheck::new().check_graph(&mut g, &[x], loss).unwrap();
    assert!(!report.passed(), "a sign error must fail:\n{report}");
    for name in ["l.weight", "l.bias", "x"] {
        let row = report.variable(name).unwrap();
        assert_eq!(row.failures, row.count, "{name}: every entry is wrong\n{report}");
        let worst = row.worst.as_ref().unwrap();
        assert!(
            (worst.analytic + worst.numeric).abs() < 1e-6,
            "{name}: analytic is -numeric"
        );
    }
    let table = report.to_string();
    assert!(
        table.contains("FAILED") && table.contains("l.weight") && table.contains("FAIL ("),
        "{table}"
    );
}
