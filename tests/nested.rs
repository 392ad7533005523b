//! Graphs as nodes of other graphs (nngraph nests gModules): the inner graph
//! lives in another module, its parameters join the outer flat buffer under
//! prefixed names, and gradients flow through it.

use nngraph::cells::LstmCell;
use nngraph::prelude::*;

mod inner {
    use nngraph::prelude::*;

    graph! {
        /// The seed's cell.
        #[recurrent(h = new_h)]
        pub Cell(x: [2], h: [4]) -> (y, new_h) {
            new_h = Tanh()(CAdd()(Linear(2, 4)(x), Linear(4, 4)(h)));
            y     = Sigmoid()(Linear(4, 1)(new_h));
        }

        /// Sizes given at run time.
        pub Proj[a, b](x: [a]) -> (y) {
            y = Tanh()(Linear(a, b)(x));
        }
    }
}

graph! {
    /// Two steps of the inner cell, each with its own weights.
    pub TwoSteps(x1: [2], x2: [2], h0: [4]) -> (y2, h2) {
        (_y1, h1) = inner::Cell(x1, h0);
        (y2, h2)  = inner::Cell(x2, h1);
    }

    /// One output taken by name, the other dropped.
    pub Pick(x: [2], h: [4]) -> (out) {
        out = Identity()(inner::Cell(x, h).new_h);
    }

    /// Inputs given by name, in another order than declared.
    pub ByName(x: [2], h: [4]) -> (out) {
        out = Identity()(inner::Cell(h = h, x = x).new_h);
    }

    /// A shipped cell with const sizes, nested.
    pub LstmHead<const I: usize, const H: usize>(x: [I], h: [H], c: [H]) -> (y) {
        (h1, c1) = LstmCell<I, H>(x, h, c);
        y = Linear(H, 1)(CAdd()(h1, c1));
    }

    /// A run-time sized graph inside a run-time sized graph.
    pub Wrapper[n, m](x: [n]) -> (y) {
        y = MulConstant(2.0)(inner::Proj[n, m](x));
    }

    /// A recurrent graph around a nested one, for unrolling.
    #[recurrent(h = h1)]
    pub Around(x: [2], h: [4]) -> (y, h1) {
        (y, h1) = inner::Cell(x, h);
    }
}

fn mse(_t: usize, _o: usize, y: ArrayView2<f64>, g: Option<ArrayViewMut2<f64>>) -> nngraph::Result<f64> {
    let target = Array2::from_shape_fn(y.dim(), |(i, j)| 0.1 * (i + 2 * j) as f64 - 0.2);
    if let Some(g) = g {
        Mse::new().backward(&y, &target, g)?;
    }
    Mse::new().forward(&y, &target)
}

fn values(rows: usize, cols: usize, seed: f64) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        (seed + 0.9 * i as f64 + 0.4 * j as f64).sin()
    })
}

#[test]
fn parameters_join_the_outer_buffer_under_prefixed_names() {
    let g = TwoSteps::<f64>::new(&mut StdRng::seed_from_u64(0)).unwrap();
    let names: Vec<&str> = g.param_specs().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names[0], "_y1_cell.new_h_linear.weight");
    assert!(names.contains(&"y2_cell.y_linear.bias"), "{names:?}");
    assert_eq!(g.num_params(), 2 * inner::Cell::<f64>::NUM_PARAMS);
}

#[test]
fn a_nested_graph_computes_what_the_inner_graph_computes() {
    let g = TwoSteps::<f64>::new(&mut StdRng::seed_from_u64(1)).unwrap();
    let (x1, x2, h0) = (values(3, 2, 0.1), values(3, 2, 1.1), values(3, 4, 2.1));
    let mut tape = g.tape();
    let out = g.forward(&mut tape, &x1, &x2, &h0).unwrap();
    let (y2, h2) = (out.y2.to_owned(), out.h2.to_owned());

    // The same two steps by hand, with the inner graph and the outer slices.
    let half = inner::Cell::<f64>::NUM_PARAMS;
    let mut first = inner::Cell::<f64>::zeros();
    first.params_mut().copy_from_slice(&g.params()[..half]);
    let mut second = inner::Cell::<f64>::zeros();
    second.params_mut().copy_from_slice(&g.params()[half..]);
    let mut t1 = first.tape();
    let h1 = first.forward(&mut t1, &x1, &h0).unwrap().new_h.to_owned();
    let mut t2 = second.tape();
    let out = second.forward(&mut t2, &x2, &h1).unwrap();
    assert_eq!(out.y, y2);
    assert_eq!(out.new_h, h2);
}

#[test]
fn gradients_through_nested_graphs_match_finite_differences() {
    let mut g = TwoSteps::<f64>::new(&mut StdRng::seed_from_u64(2)).unwrap();
    let inputs = [values(2, 2, 0.3), values(2, 2, 0.7), values(2, 4, 1.3)];
    let feeds = inputs.each_ref().map(|x| Feed::Values(x.view()));
    let report = GradCheck::new().check_graph(&mut g, &feeds, mse).unwrap();
    assert!(report.passed(), "{report}");

    let mut lstm = LstmHead::<3, 4, f64>::new(&mut StdRng::seed_from_u64(3)).unwrap();
    let inputs = [values(2, 3, 0.2), values(2, 4, 0.5), values(2, 4, 0.9)];
    let feeds = inputs.each_ref().map(|x| Feed::Values(x.view()));
    let report = GradCheck::new().check_graph(&mut lstm, &feeds, mse).unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn an_output_taken_by_name() {
    let g = Pick::<f64>::new(&mut StdRng::seed_from_u64(4)).unwrap();
    let mut cell = inner::Cell::<f64>::zeros();
    cell.params_mut().copy_from_slice(g.params());
    let (x, h) = (values(2, 2, 0.0), values(2, 4, 1.0));
    let mut tape = g.tape();
    let out = g.forward(&mut tape, &x, &h).unwrap().out.to_owned();
    let mut t = cell.tape();
    assert_eq!(out, cell.forward(&mut t, &x, &h).unwrap().new_h);
}

#[test]
fn inputs_given_by_name() {
    let mut by_name = ByName::<f64>::new(&mut StdRng::seed_from_u64(7)).unwrap();
    let mut pick = Pick::<f64>::zeros().unwrap();
    pick.params_mut().copy_from_slice(by_name.params());
    let (x, h) = (values(2, 2, 0.5), values(2, 4, 1.5));
    let (mut t1, mut t2) = (by_name.tape(), pick.tape());
    assert_eq!(
        by_name.forward(&mut t1, &x, &h).unwrap().out,
        pick.forward(&mut t2, &x, &h).unwrap().out
    );
    let report = GradCheck::new()
        .check_graph(
            &mut by_name,
            &[Feed::Values(x.view()), Feed::Values(h.view())],
            mse,
        )
        .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn run_time_sizes_pass_through_to_the_nested_graph() {
    let mut g = Wrapper::<f64>::new(&mut StdRng::seed_from_u64(5), 3, 5).unwrap();
    assert_eq!(g.output_width("y").unwrap(), 5);
    let report = GradCheck::new()
        .check_graph(&mut g, &[Feed::Values(values(2, 3, 0.4).view())], mse)
        .unwrap();
    assert!(report.passed(), "{report}");
}

#[test]
fn a_graph_with_a_nested_graph_unrolls() {
    let mut g = Around::<f64>::new(&mut StdRng::seed_from_u64(6)).unwrap();
    let xs = Array3::from_shape_fn((5, 2, 2), |(t, b, j)| {
        (0.3 * t as f64 + b as f64 - 0.5 * j as f64).cos()
    });
    let report = GradCheck::new()
        .check_graph(
            &mut g,
            &[
                Feed::Seq(xs.view()),
                Feed::Values((values(2, 4, 0.2) * 0.5).view()),
            ],
            mse,
        )
        .unwrap();
    assert!(report.passed(), "{report}");
}

graph! {
    /// One output of a nested graph taken by a statement of its own.
    pub StatementForm(x: [2], h: [4]) -> (h1) {
        h1 = inner::Cell(x, h).new_h;
    }
}

#[test]
fn the_statement_form_takes_one_output_by_name() {
    let g = StatementForm::<f64>::new(&mut StdRng::seed_from_u64(5)).unwrap();
    let mut cell = inner::Cell::<f64>::zeros();
    assert_eq!(g.num_params(), cell.num_params());
    cell.params_mut().copy_from_slice(g.params());
    let (x, h) = ([0.3, -0.7], [0.1, 0.2, -0.3, 0.4]);
    let (mut t1, mut t2) = (g.tape(), cell.tape());
    let got = g.forward(&mut t1, &x, &h).unwrap().h1.to_owned();
    let want = cell.forward(&mut t2, &x, &h).unwrap().new_h.to_owned();
    assert_eq!(got, want);
}

mod pair {
    use nngraph::prelude::*;

    graph! {
        /// Two values side by side: its output is 6 wide.
        pub Both(a: [3], b: [3]) -> (u) {
            u = Concat()(Tanh()(a), Sigmoid()(b));
        }
    }
}

graph! {
    /// `Split` of a nested graph's output, whose width the macro cannot see.
    pub Halves(a: [3], b: [3]) -> (left, right) {
        u = Identity()(pair::Both(a, b).u);
        (left, right) = Split(2)(u);
    }
}

#[test]
fn split_of_a_nested_graphs_output_is_checked_when_built_and_cuts_it_in_equal_parts() {
    let g = Halves::<f64>::zeros().unwrap();
    let mut tape = g.tape();
    let (a, b) = ([0.1, 0.2, 0.3], [-1.0, 0.0, 1.0]);
    let out = g.forward(&mut tape, &a, &b).unwrap();
    let want_left: Vec<f64> = a.iter().map(|v| v.tanh()).collect();
    let want_right: Vec<f64> = b.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    assert_eq!(out.left.iter().copied().collect::<Vec<_>>(), want_left);
    assert_eq!(out.right.iter().copied().collect::<Vec<_>>(), want_right);
    assert_eq!(Halves::<f64>::OUTPUT_WIDTHS, &[3, 3]);
}

#[test]
fn summary_indents_a_nested_graph_under_its_node_when_expanded() {
    let g = TwoSteps::<f64>::zeros().unwrap();
    let table = g.summary_expanded();
    eprintln!("{table}");
    let inner = <inner::Cell<f64> as Graph<f64>>::SPEC;
    let host_rows: Vec<usize> = table
        .lines()
        .enumerate()
        .filter(|(_, l)| l.split_whitespace().nth(1) == Some("Cell"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(host_rows.len(), 2, "{table}");
    // Under each host, the nested graph's nodes, indented.
    for &h in &host_rows {
        let first = table.lines().nth(h + 1).unwrap();
        assert!(
            first.starts_with(&format!("  {} ", inner.nodes[0].name)),
            "{first}"
        );
    }
    assert!(table.ends_with(&format!("{} parameters", g.num_params())));
    // Rows from the nested graph name their file; the host's count is
    // theirs, so the rows add up to the total.
    assert!(
        table.contains(&format!("nested.rs:{}", inner.nodes[0].line)),
        "{table}"
    );
    let header = table.lines().nth(1).unwrap();
    let end = header.find("params").unwrap() + "params".len();
    let params: usize = table
        .lines()
        .skip(3)
        .take_while(|l| !l.starts_with('-'))
        .filter_map(|l| l.get(end - 8..end)?.trim().parse::<usize>().ok())
        .sum();
    assert_eq!(params, g.num_params(), "{table}");
    // Collapsed (the default), one row per host with all its parameters.
    let collapsed = g.summary();
    assert_eq!(
        collapsed
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("Cell"))
            .count(),
        2
    );
    assert!(!collapsed.contains("nested.rs:"), "{collapsed}");
}
