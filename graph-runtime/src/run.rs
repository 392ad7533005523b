//! The passes over a graph's nodes, written once for every graph: forward
//! (evaluation order), backward (reverse order), parameter layout and
//! initialisation. Each is a [`Visit`]or that [`Graph::node`] hands node
//! `k`'s layer or nested graph to.
//!
//! Nodes that take an output of a nested graph hold no layer: the loops copy
//! the value out of the nested tape (forward) and the gradient back in
//! (backward) themselves.

use crate::error::{Error, Pass, Result};
use crate::graph::{check_finite, Graph, Visit};
use crate::layer::{Backward, Forward, Input, Layer, ParamShape};
use crate::params::ParamStore;
use crate::spec::{GraphSpec, NodeKind, NodeSpec};
use crate::tape::Tape;
use crate::Float;
use ndarray::Array2;
use std::ops::Range;

/// What a forward pass needs to know besides the parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mode {
    /// Training mode (Dropout active).
    pub training: bool,
    /// Checked mode (NaN and infinity are errors).
    pub checked: bool,
    /// Seed of Dropout masks.
    pub seed: u64,
    /// The probability every Dropout node uses instead of its own.
    pub dropout: Option<f64>,
}

/// Mixes seeds for one node's randomness (SplitMix64 finaliser).
pub(crate) fn mix_seed(a: u64, b: u64, c: u64, d: u64) -> u64 {
    let mut z = a ^ b.rotate_left(17) ^ c.rotate_left(34) ^ d.rotate_left(51);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A layer's message as an error naming the graph, the node and its line.
pub(crate) fn node_error(spec: &GraphSpec, k: usize, message: String) -> Error {
    let node = &spec.nodes[k];
    Error::Node {
        graph: spec.name.to_string(),
        node: node.name.to_string(),
        file: spec.file.to_string(),
        line: node.line,
        message,
    }
}

/// An error from inside the nested graph at node `k`, as seen from the
/// outer graph: the path `host.inner` and the host's own source line.
pub(crate) fn nested_error(spec: &GraphSpec, k: usize, error: Error) -> Error {
    let host = &spec.nodes[k];
    let (graph, file, line) = (spec.name.to_string(), spec.file.to_string(), host.line);
    match error {
        Error::NonFinite {
            node,
            pass,
            step,
            index,
            value,
            ..
        } => Error::NonFinite {
            graph,
            node: format!("{}.{node}", host.name),
            file,
            line,
            pass,
            step,
            index,
            value,
        },
        Error::Node { node, message, .. } => Error::Node {
            graph,
            node: format!("{}.{node}", host.name),
            file,
            line,
            message,
        },
        other => other,
    }
}

/// The value of `slot` over `rows`, as a layer input (a tape's pass uses
/// all its rows, a sequence's one step's or all steps').
pub(crate) fn input_rows<'t, F>(
    spec: &GraphSpec,
    values: &'t [Array2<F>],
    ids: &'t [Vec<usize>],
    slot: usize,
    rows: Range<usize>,
) -> Input<'t, F> {
    if slot < spec.inputs.len() && spec.inputs[slot].ids {
        Input::Ids(&ids[slot][rows])
    } else {
        Input::Values(crate::tape::row_range(&values[slot], rows))
    }
}

/// The `N` inputs of `node` over `rows`, as layer inputs.
pub(crate) fn node_inputs<'t, F, const N: usize>(
    spec: &GraphSpec,
    values: &'t [Array2<F>],
    ids: &'t [Vec<usize>],
    node: &NodeSpec,
    rows: Range<usize>,
) -> [Input<'t, F>; N] {
    std::array::from_fn(|i| input_rows(spec, values, ids, node.inputs[i], rows.clone()))
}

/// Whether backward computes the gradient of `slot`: every node's; an
/// input's unless it holds ids or its gradient was turned off.
pub(crate) fn grad_wanted(spec: &GraphSpec, input_grads: &[bool], slot: usize) -> bool {
    match spec.inputs.get(slot) {
        Some(input) => !input.ids && input_grads[slot],
        None => true,
    }
}

/// Runs every node of `G` in evaluation order on the inputs in `tape`.
pub(crate) fn forward<F: Float, G: Graph<F>>(
    layers: &G::Layers,
    store: &ParamStore<F>,
    mode: Mode,
    tape: &mut Tape<F>,
) -> Result<()> {
    forward_with::<F, G>(layers, store.node_ranges(), store.values(), mode, tape)
}

pub(crate) fn forward_with<F: Float, G: Graph<F>>(
    layers: &G::Layers,
    ranges: &[Range<usize>],
    params: &[F],
    mode: Mode,
    tape: &mut Tape<F>,
) -> Result<()> {
    let spec = G::SPEC;
    tape.valid = false;
    tape.calls = tape.calls.wrapping_add(1);
    let mut visit = ForwardVisit {
        spec,
        ranges,
        params,
        mode,
        tape,
    };
    for &k in spec.order {
        match spec.nodes[k].kind {
            NodeKind::Output { host, output } => {
                let tape = &mut *visit.tape;
                let nested = tape.nested[host]
                    .as_ref()
                    .ok_or_else(|| node_error(spec, k, "its graph has not run".into()))?;
                let value = nested.output(output);
                let slot = spec.node_slot(k);
                crate::tape::ensure_shape(&mut tape.values[slot], value.nrows(), value.ncols());
                tape.values[slot].assign(&value);
            }
            _ => G::node(layers, k, &mut visit)?,
        }
        if mode.checked {
            check_finite(
                spec,
                k,
                Pass::Forward,
                visit.tape.values[spec.node_slot(k)].view(),
            )?;
        }
    }
    visit.tape.valid = true;
    Ok(())
}

struct ForwardVisit<'a, F> {
    spec: &'static GraphSpec,
    ranges: &'a [Range<usize>],
    params: &'a [F],
    mode: Mode,
    tape: &'a mut Tape<F>,
}

impl<F: Float> Visit<F> for ForwardVisit<'_, F> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
        let (spec, tape) = (self.spec, &mut *self.tape);
        let node = &spec.nodes[k];
        let slot = spec.node_slot(k);
        // The output is taken out of the tape while the inputs are read from it.
        let mut output = std::mem::take(&mut tape.values[slot]);
        let inputs: [Input<'_, F>; N] =
            node_inputs(spec, &tape.values, &tape.ids, node, 0..tape.batch.unwrap_or(0));
        let cx = Forward {
            params: &self.params[self.ranges[k].clone()],
            inputs: &inputs,
            training: self.mode.training,
            dropout: self.mode.dropout,
            seed: mix_seed(self.mode.seed, tape.stream, tape.calls, k as u64),
            state: &mut tape.states[k],
        };
        let result = layer.forward(cx, output.view_mut());
        tape.values[slot] = output;
        result.map_err(|m| node_error(spec, k, m))
    }

    fn nested<G: Graph<F>>(&mut self, k: usize, graph: &G) -> Result<()> {
        let (spec, tape) = (self.spec, &mut *self.tape);
        let node = &spec.nodes[k];
        let NodeKind::Nested { to } = node.kind else {
            return Err(node_error(spec, k, "is not a nested graph".into()));
        };
        let batch = tape.batch.unwrap_or(0);
        let mut inner = tape.nested[k].take().unwrap_or_else(|| graph.new_tape());
        inner.resize(batch);
        for (&from, &i) in node.inputs.iter().zip(to) {
            match input_rows(spec, &tape.values, &tape.ids, from, 0..tape.batch.unwrap_or(0)) {
                Input::Values(v) => inner.input_mut(i).assign(&v),
                Input::Ids(ids) => inner.set_ids(i, ids),
            }
        }
        inner.stream = mix_seed(tape.stream, tape.calls, k as u64, 0);
        let (layers, core) = graph.parts();
        let result = forward_with::<F, G>(
            layers,
            core.store.node_ranges(),
            &self.params[self.ranges[k].clone()],
            self.mode,
            &mut inner,
        );
        tape.nested[k] = Some(inner);
        result.map_err(|e| nested_error(spec, k, e))
    }
}

/// Propagates the gradients in `tape`'s output buffers back through every
/// node of `G`, in reverse evaluation order.
pub(crate) fn backward<F: Float, G: Graph<F>>(
    layers: &G::Layers,
    store: &mut ParamStore<F>,
    checked: bool,
    tape: &mut Tape<F>,
) -> Result<()> {
    let (ranges, params, grads) = store.split_mut();
    backward_with::<F, G>(layers, ranges, params, grads, checked, tape)
}

pub(crate) fn backward_with<F: Float, G: Graph<F>>(
    layers: &G::Layers,
    ranges: &[Range<usize>],
    params: &[F],
    grads: &mut [F],
    checked: bool,
    tape: &mut Tape<F>,
) -> Result<()> {
    let spec = G::SPEC;
    let mut visit = BackwardVisit {
        spec,
        ranges,
        params,
        grads,
        checked,
        tape,
    };
    for &k in spec.order.iter().rev() {
        let slot = spec.node_slot(k);
        if checked {
            check_finite(spec, k, Pass::Backward, visit.tape.grads[slot].view())?;
        }
        match spec.nodes[k].kind {
            NodeKind::Output { host, output } => {
                let tape = &mut *visit.tape;
                if let Some(nested) = tape.nested[host].as_mut() {
                    let mut seed = nested.output_grad_mut(output);
                    seed += &tape.grads[slot];
                }
            }
            _ => G::node(layers, k, &mut visit)?,
        }
    }
    Ok(())
}

struct BackwardVisit<'a, F> {
    spec: &'static GraphSpec,
    ranges: &'a [Range<usize>],
    params: &'a [F],
    grads: &'a mut [F],
    checked: bool,
    tape: &'a mut Tape<F>,
}

impl<F: Float> BackwardVisit<'_, F> {
    /// Whether the gradient of `slot` is wanted: every node's is; an input's
    /// unless it holds ids or the tape was told not to compute it.
    fn wanted(&self, slot: usize) -> bool {
        grad_wanted(self.spec, &self.tape.input_grads, slot)
    }
}

impl<F: Float> Visit<F> for BackwardVisit<'_, F> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
        let spec = self.spec;
        let node = &spec.nodes[k];
        let slot = spec.node_slot(k);
        let wanted: [bool; N] = std::array::from_fn(|i| self.wanted(node.inputs[i]));
        let range = self.ranges[k].clone();
        let tape = &mut *self.tape;
        // The output's gradient is taken out while the inputs' are written.
        let d_output = std::mem::take(&mut tape.grads[slot]);
        let inputs: [Input<'_, F>; N] =
            node_inputs(spec, &tape.values, &tape.ids, node, 0..tape.batch.unwrap_or(0));
        let cx = Backward {
            params: &self.params[range.clone()],
            inputs: &inputs,
            output: tape.values[slot].view(),
            d_output: d_output.view(),
            state: tape.states[k].view(),
        };
        let mut result = layer.backward_params(&cx, &mut self.grads[range.clone()]);
        for (i, &from) in node.inputs.iter().enumerate() {
            if result.is_ok() && wanted[i] {
                result = layer.backward_input(i, &cx, tape.grads[from].view_mut());
            }
        }
        tape.grads[slot] = d_output;
        result.map_err(|m| node_error(spec, k, m))?;
        if self.checked {
            let grads = ndarray::ArrayView2::from_shape((1, range.len()), &self.grads[range])
                .map_err(|e| node_error(spec, k, e.to_string()))?;
            check_finite(spec, k, Pass::Parameters, grads)?;
        }
        Ok(())
    }

    fn nested<G: Graph<F>>(&mut self, k: usize, graph: &G) -> Result<()> {
        let spec = self.spec;
        let node = &spec.nodes[k];
        let NodeKind::Nested { to } = node.kind else {
            return Err(node_error(spec, k, "is not a nested graph".into()));
        };
        let range = self.ranges[k].clone();
        let Some(mut inner) = self.tape.nested[k].take() else {
            return Err(node_error(spec, k, "its graph has not run forward".into()));
        };
        let (layers, core) = graph.parts();
        let result = backward_with::<F, G>(
            layers,
            core.store.node_ranges(),
            &self.params[range.clone()],
            &mut self.grads[range],
            self.checked,
            &mut inner,
        );
        if result.is_ok() {
            for (&from, &i) in node.inputs.iter().zip(to) {
                if self.wanted(from) {
                    let mut d = self.tape.grads[from].view_mut();
                    d += &inner.input_grad(i);
                }
            }
        }
        self.tape.nested[k] = Some(inner);
        result.map_err(|e| nested_error(spec, k, e))
    }
}

/// The parameter layout of a graph: each node's tensors under their full
/// names (`node.tensor`, the name given by `#[params]`, or for a nested
/// graph `node.` and the nested graph's own full name).
pub fn param_layout<F: Float, G: Graph<F>>(layers: &G::Layers) -> Vec<Vec<ParamShape>> {
    struct Layout(Vec<Vec<ParamShape>>);
    impl<F: Float> Visit<F> for Layout {
        fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
            self.0[k] = layer.param_shapes();
            Ok(())
        }
        fn nested<G: Graph<F>>(&mut self, k: usize, graph: &G) -> Result<()> {
            self.0[k] = graph.store().param_shapes();
            Ok(())
        }
    }
    let spec = G::SPEC;
    let mut layout = Layout(vec![Vec::new(); spec.nodes.len()]);
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
                    let name = match renamed {
                        Some((_, name)) => (*name).into(),
                        None => format!("{}.{}", node.name, p.name).into(),
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
    }
    impl<F: Float> Visit<F> for Init<'_, F> {
        fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
            layer.init(&mut self.params[self.ranges[k].clone()], self.rng);
            Ok(())
        }
        fn nested<G: Graph<F>>(&mut self, k: usize, graph: &G) -> Result<()> {
            let (layers, core) = graph.parts();
            init_params::<F, G>(
                layers,
                core.store.node_ranges(),
                &mut self.params[self.ranges[k].clone()],
                self.rng,
            );
            Ok(())
        }
    }
    let mut init = Init { ranges, params, rng };
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
        fn nested<G: Graph<F>>(&mut self, _: usize, _: &G) -> Result<()> {
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
