//! What the runtime learns by walking a graph instance's layers through
//! [`Graph::node`]: its parameter layout, its initial values, the widths of
//! user layers, the records its tapes hold (one per nested graph), and
//! whether a tape was made for it.

use crate::engine::check::node_error;
use crate::error::{Error, Result};
use crate::graph::{Graph, Visit};
use crate::layer::{Layer, ParamShape};
use crate::spec::NodeKind;
use crate::tape::{Record, Tape};
use crate::Float;
use std::ops::Range;

/// The record of `graph` and of the graphs nested in it, empty.
pub(crate) fn record<F: Float, G: Graph<F>>(graph: &G) -> Record<F> {
    struct Nested<F> {
        records: Vec<Vec<Record<F>>>,
    }
    impl<F: Float> Visit<F> for Nested<F> {
        fn layer<L: Layer<F>, const N: usize>(&mut self, _: usize, _: &L) -> Result<()> {
            Ok(())
        }
        fn nested_at<G: Graph<F>>(&mut self, k: usize, _: usize, graph: &G) -> Result<()> {
            self.records[k].push(record(graph));
            Ok(())
        }
    }
    let spec = G::SPEC;
    let (layers, core) = graph.parts();
    let mut nested = Nested {
        records: (0..spec.nodes.len()).map(|_| Vec::new()).collect(),
    };
    for (k, node) in spec.nodes.iter().enumerate() {
        if is_host(node.kind) {
            // Collecting records cannot fail.
            let _ = G::node(layers, k, &mut nested);
        }
    }
    Record::new(spec, core.widths.clone(), nested.records)
}

/// Checks that `tape` was made by a graph of `graph`'s type with its widths,
/// nested graphs included.
pub(crate) fn check_owner<F: Float, G: Graph<F>>(graph: &G, tape: &Tape<F>) -> Result<()> {
    struct Owner<'a, F> {
        record: &'a Record<F>,
        ok: bool,
    }
    impl<F: Float> Visit<F> for Owner<'_, F> {
        fn layer<L: Layer<F>, const N: usize>(&mut self, _: usize, _: &L) -> Result<()> {
            Ok(())
        }
        fn nested_at<G: Graph<F>>(&mut self, k: usize, index: usize, graph: &G) -> Result<()> {
            self.ok &= match self.record.nested[k].get(index) {
                Some(inner) => same(graph, inner),
                None => false,
            };
            Ok(())
        }
    }
    fn same<F: Float, G: Graph<F>>(graph: &G, record: &Record<F>) -> bool {
        let spec = G::SPEC;
        let (layers, core) = graph.parts();
        if !record.same_graph(spec, &core.widths) {
            return false;
        }
        let mut owner = Owner { record, ok: true };
        for &k in &record.hosts {
            let _ = G::node(layers, k, &mut owner);
        }
        // A stack of another depth has another number of records.
        let depths = (0..spec.nodes.len()).all(|k| record.nested[k].len() == nested_count::<F, G>(layers, k));
        owner.ok && depths
    }
    if same(graph, &tape.root) {
        return Ok(());
    }
    Err(Error::InvalidInput {
        graph: G::SPEC.name.to_string(),
        message: format!(
            "this tape was made by a graph `{}` with slot widths {:?}, not by this one (widths {:?}); \
             make one with `tape()`",
            tape.root.spec.name,
            tape.root.widths,
            graph.parts().1.widths
        ),
    })
}

/// The parameter layout of a graph: each node's tensors under their full
/// names (`node.tensor`, the name given by `#[params]`, or for a nested
/// graph `node.` and the nested graph's own full name).
pub fn param_layout<F: Float, G: Graph<F>>(layers: &G::Layers) -> Vec<Vec<ParamShape>> {
    struct Layout(Vec<Vec<ParamShape>>, Vec<bool>);
    impl<F: Float> Visit<F> for Layout {
        fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
            self.0[k] = layer.param_shapes();
            Ok(())
        }
        fn nested_at<G: Graph<F>>(&mut self, k: usize, index: usize, graph: &G) -> Result<()> {
            let shapes = graph.store().param_shapes();
            // A stack's layer `l` names its tensors as torch's nn.LSTM does:
            // `weight_ih_l0`.
            if self.1[k] {
                self.0[k].extend(shapes.into_iter().map(|p| ParamShape {
                    name: format!("{}_l{index}", p.name).into(),
                    shape: p.shape,
                }));
            } else {
                self.0[k] = shapes;
            }
            Ok(())
        }
    }
    let spec = G::SPEC;
    let stacks = spec.nodes.iter().map(|n| n.kind == NodeKind::Stack).collect();
    let mut layout = Layout(vec![Vec::new(); spec.nodes.len()], stacks);
    for k in 0..spec.nodes.len() {
        // Layout and initialisation visitors cannot fail.
        let _ = G::node(layers, k, &mut layout);
    }
    spec.nodes
        .iter()
        .zip(layout.0)
        .map(|(node, shapes)| {
            shapes
                .into_iter()
                .map(|p| {
                    let renamed = node.params.iter().find(|(tensor, _)| *tensor == p.name);
                    // `("*", prefix)`: a nested graph's tensors under `prefix`
                    // instead of `node.` (`#[params(inline)]`: none).
                    let prefix = node.params.iter().find(|(tensor, _)| *tensor == "*");
                    let name = match (renamed, prefix) {
                        (Some((_, name)), _) => (*name).into(),
                        (None, Some((_, prefix))) => format!("{prefix}{}", p.name).into(),
                        (None, None) => format!("{}.{}", node.name, p.name).into(),
                    };
                    ParamShape { name, shape: p.shape }
                })
                .collect()
        })
        .collect()
}

/// Initialises a graph's parameters torch-like and draws its Dropout seed,
/// both from `rng`.
pub fn init_graph<F: Float, G: Graph<F>>(graph: &mut G, rng: &mut dyn rand::Rng) {
    let (layers, core) = graph.parts_mut();
    let (ranges, params) = core.store.ranges_and_values_mut();
    init_params::<F, G>(layers, ranges, params, rng);
    core.seed = rng.next_u64();
}

/// Initialises `params` (laid out by `ranges`) node by node, torch-like.
pub fn init_params<F: Float, G: Graph<F>>(
    layers: &G::Layers,
    ranges: &[Range<usize>],
    params: &mut [F],
    rng: &mut dyn rand::Rng,
) {
    struct Init<'a, F> {
        ranges: &'a [Range<usize>],
        params: &'a mut [F],
        rng: &'a mut dyn rand::Rng,
        offset: usize,
    }
    impl<F: Float> Visit<F> for Init<'_, F> {
        fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
            layer.init(&mut self.params[self.ranges[k].clone()], self.rng);
            Ok(())
        }
        fn nested_at<G: Graph<F>>(&mut self, k: usize, index: usize, graph: &G) -> Result<()> {
            let (layers, core) = graph.parts();
            // A stack's layers lie one after another in its range.
            if index == 0 {
                self.offset = self.ranges[k].start;
            }
            let end = self.offset + core.store.len();
            init_params::<F, G>(
                layers,
                core.store.node_ranges(),
                &mut self.params[self.offset..end],
                self.rng,
            );
            self.offset = end;
            Ok(())
        }
    }
    let mut init = Init {
        ranges,
        params,
        rng,
        offset: 0,
    };
    for k in 0..G::SPEC.nodes.len() {
        let _ = G::node(layers, k, &mut init);
    }
}

/// The output width of the user layer at node `k` for these input widths:
/// its shape rule, run when the graph is built. (Through `Graph::node`, so
/// that a type that is not a `Layer` is reported at one place.)
pub fn layer_output_width<F: Float, G: Graph<F>>(
    layers: &G::Layers,
    k: usize,
    widths: &[usize],
) -> Result<usize> {
    struct Width<'a> {
        widths: &'a [usize],
        result: Option<std::result::Result<usize, String>>,
    }
    impl<F: Float> Visit<F> for Width<'_> {
        fn layer<L: Layer<F>, const N: usize>(&mut self, _: usize, layer: &L) -> Result<()> {
            self.result = Some(layer.output_width(self.widths));
            Ok(())
        }
        fn nested_at<G: Graph<F>>(&mut self, _: usize, _: usize, _: &G) -> Result<()> {
            Ok(())
        }
    }
    let mut visit = Width { widths, result: None };
    G::node(layers, k, &mut visit)?;
    match visit.result {
        Some(Ok(width)) => Ok(width),
        Some(Err(message)) => Err(node_error(G::SPEC, k, message)),
        None => Err(node_error(G::SPEC, k, "holds no layer".into())),
    }
}

/// Whether a node of this kind holds nested graphs.
pub(crate) fn is_host(kind: NodeKind) -> bool {
    matches!(kind, NodeKind::Nested { .. } | NodeKind::Stack)
}

/// How many nested graphs node `k` holds: one for a nested graph, the depth
/// for a stack, none for a layer.
pub(crate) fn nested_count<F: Float, G: Graph<F>>(layers: &G::Layers, k: usize) -> usize {
    struct Count(usize);
    impl<F: Float> Visit<F> for Count {
        fn layer<L: Layer<F>, const N: usize>(&mut self, _: usize, _: &L) -> Result<()> {
            Ok(())
        }
        fn nested_at<G: Graph<F>>(&mut self, _: usize, _: usize, _: &G) -> Result<()> {
            self.0 += 1;
            Ok(())
        }
    }
    let mut count = Count(0);
    if is_host(G::SPEC.nodes[k].kind) {
        let _ = G::node(layers, k, &mut count);
    }
    count.0
}
