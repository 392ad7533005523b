//! User layers in `graph!`: built with `Type::new(args)`, shape rule run
//! when the graph is built, gradients checked like any other node.

use nngraph::prelude::*;

/// `y = x · x` per element, with an optional constant offset.
#[derive(Debug, Clone)]
pub struct Square {
    offset: f64,
}

impl Square {
    pub fn new(offset: f64) -> Self {
        Square { offset }
    }
}

impl<F: Float> Layer<F> for Square {
    fn kind(&self) -> &'static str {
        "Square"
    }
    fn output_width(&self, inputs: &[usize]) -> LayerResult<usize> {
        match inputs {
            [w] if *w >= 2 => Ok(*w),
            [w] => Err(format!("Square wants at least 2 columns, got {w}")),
            _ => Err("Square takes one input".into()),
        }
    }
    fn forward(&self, cx: Forward<F>, mut output: ArrayViewMut2<F>) -> LayerResult {
        let c = F::from_f64(self.offset);
        output.zip_mut_with(&cx.inputs[0].values()?, |y, &x| *y = x * x + c);
        Ok(())
    }
    fn backward_input(&self, _: usize, cx: &Backward<F>, mut d_input: ArrayViewMut2<F>) -> LayerResult {
        nngraph::ndarray::Zip::from(&mut d_input)
            .and(&cx.d_output)
            .and(&cx.inputs[0].values()?)
            .for_each(|dx, &d, &x| *dx += d * (x + x));
        Ok(())
    }
}

mod layers {
    /// A user layer whose name is one edit from a built-in: reached by path.
    pub type Lineal = super::Square;
}

graph! {
    pub WithSquare[width](x: [width]) -> (y) {
        y = Linear(width, 1)(Square(0.5)(Tanh()(x)));
    }

    pub TooNarrow(x: [1]) -> (y) {
        y = Square(0.0)(x);
    }

    pub ByPath(x: [3]) -> (y) {
        y = self::layers::Lineal(1.0)(x);
    }
}

#[test]
fn a_user_layer_is_checked_against_finite_differences() {
    let mut g = WithSquare::<f64>::new(&mut StdRng::seed_from_u64(0), 4).unwrap();
    let x = Array2::from_shape_fn((3, 4), |(i, j)| (i as f64 - 0.5 * j as f64).sin());
    let loss = |_t: usize, _o: usize, y: ArrayView2<'_, f64>, g: Option<ArrayViewMut2<'_, f64>>| {
        let t = Array2::from_elem(y.dim(), 0.3);
        if let Some(g) = g {
            Mse::new().backward(&y, &t, g)?;
        }
        Mse::new().forward(&y, &t)
    };
    let report = GradCheck::new()
        .check_graph(&mut g, &[Feed::Values(x.view())], loss)
        .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn a_user_layer_shape_error_names_the_node_when_the_graph_is_built() {
    let err = TooNarrow::<f32>::zeros().unwrap_err();
    let line = 1 + include_str!("custom_layers.rs")
        .lines()
        .position(|l| l.trim() == "y = Square(0.0)(x);")
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "TooNarrow: node `y` (tests/custom_layers.rs:{line}): Square wants at least 2 columns, got 1"
        )
    );
}

#[test]
fn a_path_reaches_a_user_layer_named_like_a_built_in() {
    let g = ByPath::<f64>::zeros().unwrap();
    let mut tape = g.tape();
    let y = g.forward(&mut tape, &[1.0, 2.0, 3.0]).unwrap().y.to_owned();
    assert_eq!(y, array![[2.0, 5.0, 10.0]]);
}

/// Ids to one-hot rows: a user layer that takes ids.
#[derive(Debug, Clone)]
pub struct OneHot {
    classes: usize,
}

impl OneHot {
    pub fn new(classes: usize) -> Self {
        OneHot { classes }
    }
}

impl<F: Float> Layer<F> for OneHot {
    fn kind(&self) -> &'static str {
        "OneHot"
    }
    fn output_width(&self, inputs: &[usize]) -> LayerResult<usize> {
        match inputs {
            [1] => Ok(self.classes),
            _ => Err("OneHot takes one ids input".into()),
        }
    }
    fn forward(&self, cx: Forward<F>, mut output: ArrayViewMut2<F>) -> LayerResult {
        output.fill(F::zero());
        for (row, &id) in cx.inputs[0].ids()?.iter().enumerate() {
            if id >= self.classes {
                return Err(format!("id {id} is not one of {} classes", self.classes));
            }
            output[[row, id]] = F::one();
        }
        Ok(())
    }
    fn backward_input(&self, _: usize, _: &Backward<F>, _: ArrayViewMut2<F>) -> LayerResult {
        Ok(())
    }
}

/// `min(max(x, lo), hi)`: keeps where it passed its input through (1) or
/// clamped it (0) as node state, for backward.
#[derive(Debug, Clone)]
pub struct Clamp {
    lo: f64,
    hi: f64,
}

impl Clamp {
    pub fn new(lo: f64, hi: f64) -> Self {
        Clamp { lo, hi }
    }
}

impl<F: Float> Layer<F> for Clamp {
    fn kind(&self) -> &'static str {
        "Clamp"
    }
    fn output_width(&self, inputs: &[usize]) -> LayerResult<usize> {
        inputs
            .first()
            .copied()
            .ok_or_else(|| "Clamp takes one input".into())
    }
    fn forward(&self, cx: Forward<F>, mut output: ArrayViewMut2<F>) -> LayerResult {
        let x = cx.inputs[0].values()?;
        let (lo, hi) = (F::from_f64(self.lo), F::from_f64(self.hi));
        if cx.state.dim() != x.dim() {
            *cx.state = Array2::zeros(x.dim());
        }
        for ((o, m), &v) in output.iter_mut().zip(cx.state.iter_mut()).zip(x.iter()) {
            *o = v.max(lo).min(hi);
            *m = if v > lo && v < hi { F::one() } else { F::zero() };
        }
        Ok(())
    }
    fn backward_input(&self, _: usize, cx: &Backward<F>, mut d_input: ArrayViewMut2<F>) -> LayerResult {
        d_input.zip_mut_with(&(&cx.d_output * &cx.state), |d, &g| *d += g);
        Ok(())
    }
}

graph! {
    pub IdsAndState(x: [3], id: usize) -> (y) {
        h = Clamp(-0.4, 0.4)(Linear(7, 5)(Concat()(x, OneHot(4)(id))));
        y = Linear(5, 2)(h);
    }
}

#[test]
fn a_user_layer_takes_ids_and_keeps_state_and_its_gradients_match_finite_differences() {
    let mut g = IdsAndState::<f64>::new(&mut StdRng::seed_from_u64(3)).unwrap();
    let x = Array2::from_shape_fn((4, 3), |(i, j)| ((i * 3 + j) as f64 * 0.7).sin());
    let ids = [0usize, 3, 1, 3];
    let weights = array![[1.0, -0.5], [0.25, 2.0], [-1.5, 0.75], [0.5, 0.5]];
    let mut tape = g.tape();
    let loss = |g: &IdsAndState<f64>, tape: &mut Tape<f64>| {
        let y = g.forward(tape, &x, &ids).unwrap().y.to_owned();
        (&y * &weights).sum()
    };
    loss(&g, &mut tape);
    // The state is the clamp mask, and some entries are clamped.
    let mask = tape
        .value("h")
        .unwrap()
        .mapv(|h: f64| (h.abs() < 0.4) as u8 as f64);
    assert!(mask.sum() > 0.0 && mask.sum() < mask.len() as f64, "{mask}");
    g.backward(&mut tape, &weights).unwrap();
    let analytic = g.grads().to_vec();
    let eps = 1e-6;
    for (i, &want) in analytic.iter().enumerate() {
        let p = g.params()[i];
        g.params_mut()[i] = p + eps;
        let up = loss(&g, &mut tape);
        g.params_mut()[i] = p - eps;
        let down = loss(&g, &mut tape);
        g.params_mut()[i] = p;
        let numeric = (up - down) / (2.0 * eps);
        assert!(
            (numeric - want).abs() < 1e-6,
            "parameter {i}: numeric {numeric}, analytic {want}"
        );
    }
    // An id outside the classes is an error naming the node.
    let err = g
        .forward(&mut tape, &x, &[0usize, 9, 1, 1])
        .unwrap_err()
        .to_string();
    assert!(err.contains("id 9 is not one of 4 classes"), "{err}");
    assert!(err.contains("node `h_onehot`"), "{err}");
}

#[test]
fn the_pytorch_export_of_a_graph_with_a_user_layer_is_valid_python_with_a_class_to_fill_in() {
    let g = WithSquare::<f64>::new(&mut StdRng::seed_from_u64(0), 3).unwrap();
    let module = g.to_pytorch();
    // A class for the user layer, which raises until written in PyTorch,
    // and the call that uses it.
    assert!(module.contains("class Square(nn.Module):"), "{module}");
    assert!(module.contains("raise NotImplementedError"), "{module}");
    assert!(module.contains("self.y_square = Square(0.5)"), "{module}");
    let out = std::process::Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(sys.argv[1])", &module])
        .output()
        .expect("python3 (CPython 3) is needed by this test");
    assert!(
        out.status.success(),
        "{}\n{module}",
        String::from_utf8_lossy(&out.stderr)
    );
}
