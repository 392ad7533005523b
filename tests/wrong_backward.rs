//! The gradient checker must catch a wrong backward. This graph is written
//! by hand against the `Graph` trait, with a layer whose derivative has the
//! wrong sign.

use nngraph::prelude::*;
use nngraph::runtime::{GraphCore, GraphSpec, InputSpec, NodeKind, NodeSpec, OutputSpec, Visit};

/// `tanh`, with the sign of its derivative flipped.
#[derive(Debug)]
struct WrongTanh;

impl Layer<f64> for WrongTanh {
    fn kind(&self) -> &'static str {
        "WrongTanh"
    }
    fn output_width(&self, w: &[usize]) -> LayerResult<usize> {
        Ok(w[0])
    }
    fn forward(&self, cx: Forward<f64>, mut output: ArrayViewMut2<f64>) -> LayerResult {
        output.zip_mut_with(&cx.inputs[0].values()?, |o, &x| *o = x.tanh());
        Ok(())
    }
    fn backward_input(&self, _: usize, cx: &Backward<f64>, mut d_input: ArrayViewMut2<f64>) -> LayerResult {
        nngraph::ndarray::Zip::from(&mut d_input)
            .and(&cx.d_output)
            .and(&cx.output)
            .for_each(|di, &d, &y| *di -= d * (1.0 - y * y));
        Ok(())
    }
}

/// `y = WrongTanh(Linear(3, 2)(x))`, written by hand against the `Graph`
/// trait: a spec, a layers struct and the dispatch of node `k`.
struct Hand {
    layers: (Linear, WrongTanh),
    core: GraphCore<f64>,
}

impl Graph<f64> for Hand {
    const SPEC: &'static GraphSpec = &GraphSpec {
        name: "Hand",
        file: file!(),
        inputs: &[InputSpec {
            name: "x",
            ids: false,
        }],
        outputs: &[OutputSpec { name: "y", node: 1 }],
        nodes: &[
            NodeSpec {
                name: "l",
                layer: "Linear(3, 2)",
                line: 0,
                inputs: &[0],
                kind: NodeKind::Layer,
                loss: false,
                params: &[],
            },
            NodeSpec {
                name: "y",
                layer: "WrongTanh",
                line: 0,
                inputs: &[1],
                kind: NodeKind::Layer,
                loss: false,
                params: &[],
            },
        ],
        order: &[0, 1],
        recurrent: &[],
        dot: "",
        python: "",
        sizes: &[],
        fusions: &[],
    };
    type Layers = (Linear, WrongTanh);

    fn parts(&self) -> (&Self::Layers, &GraphCore<f64>) {
        (&self.layers, &self.core)
    }
    fn parts_mut(&mut self) -> (&Self::Layers, &mut GraphCore<f64>) {
        (&self.layers, &mut self.core)
    }
    fn node<V: Visit<f64>>(layers: &Self::Layers, k: usize, visit: &mut V) -> nngraph::Result<()> {
        match k {
            0 => visit.layer::<_, 1>(0, &layers.0),
            _ => visit.layer::<_, 1>(1, &layers.1),
        }
    }
}

#[test]
fn the_checker_fails_on_a_sign_error_and_names_the_culprits() {
    let linear = Linear::new(3, 2);
    let mut store = ParamStore::of_layers("Hand", &[("l", &linear as &dyn Layer<f64>), ("y", &WrongTanh)]);
    Layer::<f64>::init(&linear, store.node_values_mut(0), &mut StdRng::seed_from_u64(2));
    let core = GraphCore::new(store, vec![3, 2, 2]);
    let mut g = Hand {
        layers: (linear, WrongTanh),
        core,
    };
    let x = Array2::from_shape_fn((2, 3), |(i, j)| (i as f64 + 0.5 * j as f64).sin());
    let loss = |_t, _o, y: ArrayView2<f64>, grad: Option<ArrayViewMut2<f64>>| {
        let target = Array2::from_elem(y.dim(), 0.25);
        if let Some(g) = grad {
            Mse::new().backward(&y, &target, g)?;
        }
        Mse::new().forward(&y, &target)
    };
    let report = GradCheck::new()
        .check_graph(&mut g, &[Feed::Values(x.view())], loss)
        .unwrap();
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
