//! User layers in `graph!`: built with `Type::new(args)`, shape rule run
//! when the graph is built, gradients checked like any other node.

use nngraph::prelude::*;
use nngraph::runtime::gradcheck::GradCheck;

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
    let report = GradCheck::new().check_graph(&mut g, &[x], loss).unwrap();
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
