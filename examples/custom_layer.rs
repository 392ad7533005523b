//! A layer of your own in `graph!`: implement `nngraph::Layer` and call the
//! type like a built-in. `Gain(width)` below multiplies each column by a
//! learned factor; `Softplus()` is a parameter-free activation.
//!
//! Run: `cargo run --release --example custom_layer`

use nngraph::prelude::*;

/// `y_j = g_j · x_j`, with the gains `g` learned (initialised to 1).
#[derive(Debug, Clone)]
pub struct Gain {
    width: usize,
}

impl Gain {
    /// `graph!` builds a user layer with `Type::new(args)`.
    pub fn new(width: usize) -> Self {
        Gain { width }
    }
}

impl<F: Float> Layer<F> for Gain {
    fn kind(&self) -> &'static str {
        "Gain"
    }

    /// Each output row is the same input row times the gain, and nothing is
    /// kept for backward: a recurrent loop through this layer may run on
    /// several threads, each over its own samples.
    fn rows_independent(&self) -> bool {
        true
    }

    fn param_shapes(&self) -> Vec<ParamShape> {
        vec![ParamShape::new("gain", vec![self.width])]
    }

    fn init(&self, params: &mut [F], _rng: &mut dyn nngraph::rand::Rng) {
        params.fill(F::one());
    }

    /// Checked when the graph is built: an error here names the node.
    fn output_width(&self, inputs: &[usize]) -> LayerResult<usize> {
        match inputs {
            [w] if *w == self.width => Ok(self.width),
            [w] => Err(format!(
                "Gain({}) needs an input of width {}, got {w}",
                self.width, self.width
            )),
            _ => Err(format!("Gain takes one input, got {}", inputs.len())),
        }
    }

    /// `cx` holds the layer's parameters, its inputs (values, or ids for a
    /// `usize` input), the mode and per-node state; errors name the node.
    fn forward(&self, cx: Forward<F>, mut output: ArrayViewMut2<F>) -> LayerResult {
        let x = cx.inputs[0].values()?;
        for (mut out, x) in output.rows_mut().into_iter().zip(x.rows()) {
            for ((o, &x), &g) in out.iter_mut().zip(x).zip(cx.params) {
                *o = g * x;
            }
        }
        Ok(())
    }

    fn backward_params(&self, cx: &Backward<F>, grads: &mut [F]) -> LayerResult {
        let x = cx.inputs[0].values()?;
        for (x, d) in x.rows().into_iter().zip(cx.d_output.rows()) {
            for ((g, &x), &d) in grads.iter_mut().zip(x).zip(d) {
                *g += x * d;
            }
        }
        Ok(())
    }

    fn backward_input(&self, _index: usize, cx: &Backward<F>, mut d_input: ArrayViewMut2<F>) -> LayerResult {
        for (mut dx, d) in d_input.rows_mut().into_iter().zip(cx.d_output.rows()) {
            for ((dx, &d), &g) in dx.iter_mut().zip(d).zip(cx.params) {
                *dx += g * d;
            }
        }
        Ok(())
    }
}

/// `y = ln(1 + e^x)`, computed without overflow.
#[derive(Debug, Clone, Default)]
pub struct Softplus;

impl Softplus {
    pub fn new() -> Self {
        Softplus
    }
}

impl<F: Float> Layer<F> for Softplus {
    fn kind(&self) -> &'static str {
        "Softplus"
    }

    fn output_width(&self, inputs: &[usize]) -> LayerResult<usize> {
        inputs
            .first()
            .copied()
            .ok_or_else(|| "Softplus takes one input".to_string())
    }

    fn forward(&self, cx: Forward<F>, mut output: ArrayViewMut2<F>) -> LayerResult {
        output.zip_mut_with(&cx.inputs[0].values()?, |y, &x| {
            *y = x.max(F::zero()) + (-x.abs()).exp().ln_1p()
        });
        Ok(())
    }

    fn backward_input(&self, _: usize, cx: &Backward<F>, mut d_input: ArrayViewMut2<F>) -> LayerResult {
        // d/dx softplus = sigmoid(x)
        nngraph::ndarray::Zip::from(&mut d_input)
            .and(&cx.d_output)
            .and(&cx.inputs[0].values()?)
            .for_each(|dx, &d, &x| *dx += d / (F::one() + (-x).exp()));
        Ok(())
    }
}

graph! {
    /// A small regressor with the two layers above among the built-ins.
    pub Regressor(x: [3]) -> (y) {
        h = Softplus()(Gain(4)(Linear(3, 4)(x)));
        y = Linear(4, 1)(h);
    }
}

fn main() -> nngraph::Result<()> {
    let mut rng = StdRng::seed_from_u64(0);
    // A graph with a user layer checks shapes when it is built: `new` returns Result.
    let mut model = Regressor::<f64>::new(&mut rng)?;
    println!(
        "parameters: {:?}",
        model.param_specs().iter().map(|s| &s.name).collect::<Vec<_>>()
    );

    let x = Array2::from_shape_fn((8, 3), |(i, j)| ((i * 3 + j) as f64 * 0.37).sin());
    let target = x.map_axis(Axis(1), |r| r.sum().tanh()).insert_axis(Axis(1));
    let loss = |_t: usize, _o: usize, y: ArrayView2<'_, f64>, g: Option<ArrayViewMut2<'_, f64>>| {
        if let Some(g) = g {
            Mse::new().backward(&y, &target, g)?;
        }
        Mse::new().forward(&y, &target)
    };
    let report = GradCheck::new().check_graph(&mut model, &[Feed::Values(x.view())], loss)?;
    print!("{report}");
    assert!(report.passed());

    let mut sgd = Sgd::new(0.05).momentum(0.9);
    let mut tape = model.tape();
    for step in 0..=200 {
        let y = model.forward(&mut tape, &x)?.y.to_owned();
        let mut dy = Array2::zeros(y.dim());
        Mse::new().backward(&y, &target, dy.view_mut())?;
        model.zero_grad();
        model.backward(&mut tape, &dy)?;
        sgd.step(model.store_mut())?;
        if step % 50 == 0 {
            println!("step {step:3}: loss {:.5}", Mse::new().forward(&y, &target)?);
        }
    }
    println!("learned gains: {}", model.param("h_gain.gain")?);
    Ok(())
}
