//! Every way of reading a width known only when a graph is built, crossed
//! with every layer that takes its sizes from its input: hosts (run-time
//! sized nested graphs with sizes as expressions, one and two levels deep,
//! literal sizes, an Identity in between) times readers (Split, Narrow,
//! Concat, Split of a Concat). Each pair is a graph that must build, run
//! and equal finite differences for several sizes, and whose output width
//! must be the one the sizes give.

use nngraph::prelude::*;

mod inner {
    use nngraph::prelude::*;

    graph! {
        /// Sizes from the caller.
        pub Inner[n, m](x: [n]) -> (y) {
            y = Tanh()(Linear(n, m)(x));
        }

        /// Const-generic sizes.
        pub Fixed<const N: usize>(x: [N]) -> (y) {
            y = Sigmoid()(Linear(N, 2 * N)(x));
        }

        /// Two levels, sizes as expressions.
        pub Outer[n](x: [n]) -> (y) {
            y = Identity()(Inner[2 * n, 4 * n](Inner[n, 2 * n](x).y).y);
        }
    }
}

/// `Σ outputs · weights`: the loss the checker differentiates.
fn weighted(_t: usize, o: usize, y: ArrayView2<f64>, g: Option<ArrayViewMut2<f64>>) -> nngraph::Result<f64> {
    let w = |i: usize, j: usize| ((i * 7 + j * 3 + o) as f64 * 0.41).cos();
    if let Some(mut g) = g {
        g.indexed_iter_mut().for_each(|((i, j), d)| *d += w(i, j));
    }
    Ok(y.indexed_iter().map(|((i, j), &v)| v * w(i, j)).sum())
}

/// Builds a `G` for size `n`, checks it against finite differences on a
/// batch of 3 and returns the width of its output `y`.
fn check<G: Graph<f64>>(build: impl Fn(&mut StdRng) -> nngraph::Result<G>, n: usize) -> usize {
    let mut g = build(&mut StdRng::seed_from_u64(n as u64)).unwrap();
    let x = Array2::from_shape_fn((3, n), |(i, j)| (0.9 * i as f64 - 0.4 * j as f64).sin());
    let report = GradCheck::new()
        .check_graph(&mut g, &[Feed::Values(x.view())], weighted)
        .unwrap();
    assert!(report.passed(), "{} with n = {n}\n{report}", G::SPEC.name);
    g.output_width("y").unwrap()
}

/// One module per host: `[host expression] [its width in terms of n]`.
macro_rules! grid {
    ($n:ident; $($module:ident: [$($host:tt)*] [$($width:tt)*];)*) => {$(
        mod $module {
            use super::*;
            #[allow(unused_imports)]
            use crate::inner;

            graph! {
                pub SplitOf[$n](x: [$n]) -> (y) {
                    (p, q) = Split(2)($($host)*);
                    y = CMul()(p, Tanh()(q));
                }

                pub NarrowOf[$n](x: [$n]) -> (y) {
                    y = Narrow(1, $n)($($host)*);
                }

                pub ConcatOf[$n](x: [$n]) -> (y) {
                    y = Linear($($width)* + $n, 2)(Concat()(x, $($host)*));
                }

                pub SplitOfConcat[$n](x: [$n]) -> (y) {
                    (a, b) = Split(2)(Concat()($($host)*, Sigmoid()($($host)*)));
                    y = CAdd()(a, b);
                }
            }

            #[test]
            fn every_reader_builds_runs_and_equals_finite_differences() {
                for $n in [1, 2, 3] {
                    let width = $($width)*;
                    assert_eq!(check(|r| SplitOf::new(r, $n), $n), width / 2);
                    assert_eq!(check(|r| NarrowOf::new(r, $n), $n), $n);
                    assert_eq!(check(|r| ConcatOf::new(r, $n), $n), 2);
                    assert_eq!(check(|r| SplitOfConcat::new(r, $n), $n), width);
                }
            }
        }
    )*};
}

grid! {
    n;
    run_time: [inner::Inner[n, 2 * n](x).y] [2 * n];
    expression: [inner::Inner[n, n * 2 + 2](x).y] [2 * n + 2];
    literal: [inner::Inner[n, 6](x).y] [6];
    two_levels: [inner::Outer[n](x).y] [4 * n];
    through_identity: [Identity()(inner::Inner[n, 2 * n](x).y)] [2 * n];
    of_a_nested_input: [inner::Inner[2 * n, 4 * n](inner::Inner[n, 2 * n](x).y).y] [4 * n];
}

graph! {
    /// Three parts of a width written as an expression.
    pub SplitThree[n](x: [n]) -> (a, b, c) {
        (a, b, c) = Split(3)(inner::Inner[n, 3 * n + 3](x).y);
    }

    /// A Split of a const-generic nested output.
    pub SplitConst<const N: usize>(x: [N]) -> (p, q) {
        (p, q) = Split(2)(inner::Fixed<N>(x).y);
    }
}

/// Builds a `G`, checks every output against finite differences on a batch
/// of 2, returns the output widths.
fn check_all<G: Graph<f64>>(g: &mut G, n: usize) -> Vec<usize> {
    let x = Array2::from_shape_fn((2, n), |(i, j)| (i as f64 - 0.3 * j as f64).cos());
    let report = GradCheck::new()
        .check_graph(g, &[Feed::Values(x.view())], weighted)
        .unwrap();
    assert!(report.passed(), "{}\n{report}", G::SPEC.name);
    G::SPEC
        .outputs
        .iter()
        .map(|o| g.output_width(o.name).unwrap())
        .collect()
}

#[test]
fn the_parts_of_a_split_are_the_nested_output_cut_in_order() {
    for n in [1, 3, 4] {
        let g = run_time::SplitOf::<f64>::new(&mut StdRng::seed_from_u64(1), n).unwrap();
        let mut tape = g.tape();
        g.forward(&mut tape, &Array2::from_elem((1, n), 0.5)).unwrap();
        let (p, q) = (
            tape.value("p").unwrap().to_owned(),
            tape.value("q").unwrap().to_owned(),
        );
        let whole = tape.value("p_inner_y").unwrap();
        assert_eq!(p, whole.slice(nngraph::ndarray::s![.., ..n]));
        assert_eq!(q, whole.slice(nngraph::ndarray::s![.., n..]));
    }
}

#[test]
fn three_parts_and_const_generic_sizes() {
    let rng = &mut StdRng::seed_from_u64(2);
    assert_eq!(
        check_all(&mut SplitThree::<f64>::new(rng, 2).unwrap(), 2),
        [3, 3, 3]
    );
    assert_eq!(check_all(&mut SplitConst::<3, f64>::new(rng).unwrap(), 3), [3, 3]);
}
