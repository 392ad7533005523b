//! How a unit reaches its layer: the generated [`Graph::node`] hands node
//! `k` to a visitor, which runs the layer over the unit's rows, or, for a
//! host node on the unit's path, descends into the nested graph (its layers,
//! its slice of the parameters, its record) and asks it for the next node.
//! Forward and backward each have one visitor, for every row range and plan
//! segment.

use super::check::{check_finite, nested_error, node_error};
use super::plan::Hop;
use super::Mode;
use crate::error::{Pass, Result};
use crate::graph::{Graph, Visit};
use crate::layer::{Backward, Forward, Input, Layer};
use crate::spec::{GraphSpec, NodeSpec};
use crate::stack::Stack;
use crate::tape::{row_range, row_range_mut, Held, Record, Within};
use crate::Float;
use ndarray::{Array2, ArrayView2};
use std::ops::Range;

/// Mixes seeds for one node's randomness (SplitMix64 finaliser).
pub(crate) fn mix_seed(a: u64, b: u64, c: u64, d: u64) -> u64 {
    let mut z = a ^ b.rotate_left(17) ^ c.rotate_left(34) ^ d.rotate_left(51);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The value of `slot` of `record` over `rows`, as a layer input.
#[inline]
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
        Input::Values(row_range(&values[slot], rows))
    }
}

#[inline]
fn node_inputs<'t, F: Float, const N: usize>(
    spec: &GraphSpec,
    values: &'t [Array2<F>],
    ids: &'t [Vec<usize>],
    node: &NodeSpec,
    rows: &Range<usize>,
) -> [Input<'t, F>; N] {
    std::array::from_fn(|i| input_rows(spec, values, ids, node.inputs[i], rows.clone()))
}

/// `slots` split around slot `at`: the slots before it, `at` itself and the
/// slots after it, all writable. A node never reads its own slot (the
/// graph is acyclic), so its output and its inputs can be borrowed at once
/// without moving either out.
struct Around<'t, T> {
    at: &'t mut T,
    others: Others<'t, T>,
}

/// The slots other than the split one.
struct Others<'t, T> {
    before: &'t mut [T],
    after: &'t mut [T],
}

impl<'t, T> Around<'t, T> {
    #[inline]
    fn split(slots: &'t mut [T], at: usize) -> Self {
        let (before, rest) = slots.split_at_mut(at);
        let (at, after) = rest.split_first_mut().expect("a node's slot exists");
        Around {
            at,
            others: Others { before, after },
        }
    }
}

impl<T> Others<'_, T> {
    /// Slot `s`, which is not the split one.
    #[inline]
    fn get(&self, s: usize) -> &T {
        let at = self.before.len();
        if s < at {
            &self.before[s]
        } else {
            &self.after[s - at - 1]
        }
    }

    /// Slot `s`, writable; not the split one.
    #[inline]
    fn get_mut(&mut self, s: usize) -> &mut T {
        let at = self.before.len();
        if s < at {
            &mut self.before[s]
        } else {
            &mut self.after[s - at - 1]
        }
    }
}

/// The `N` inputs of `node` over `rows`, from the values of the slots
/// other than the node's own.
#[inline]
fn inputs_around<'t, F: Float, const N: usize>(
    spec: &GraphSpec,
    values: &'t Others<'_, Array2<F>>,
    ids: &'t [Vec<usize>],
    node: &NodeSpec,
    rows: &Range<usize>,
) -> [Input<'t, F>; N] {
    std::array::from_fn(|i| {
        let s = node.inputs[i];
        if s < spec.inputs.len() && spec.inputs[s].ids {
            Input::Ids(&ids[s][rows.clone()])
        } else {
            Input::Values(row_range(values.get(s), rows.clone()))
        }
    })
}

/// Columns `w` of a view: out of line, for the few slots that lie in
/// another's buffer, so that every layer's call stays small.
#[inline(never)]
fn columns_of<F>(view: ArrayView2<'_, F>, w: Within) -> ArrayView2<'_, F> {
    view.slice_move(ndarray::s![.., w.cols()])
}

/// Whether backward computes the gradient of `slot`: every node's; an
/// input's unless it holds ids or its gradient was turned off.
#[inline]
pub(crate) fn grad_wanted(spec: &GraphSpec, input_grads: &[bool], slot: usize) -> bool {
    match spec.inputs.get(slot) {
        Some(input) => !input.ids && input_grads[slot],
        None => true,
    }
}

/// Where a unit runs: which node (of the graph at the end of `path`), over
/// which rows, and which run of a loop (its step; 0 outside loops).
#[derive(Clone)]
pub(crate) struct Place<'p> {
    /// Nested graphs still to descend through.
    pub path: &'p [Hop],
    pub node: usize,
    pub rows: Range<usize>,
    pub run: usize,
}

impl Place<'_> {
    /// The node to ask the current graph for: the next host, or the unit's node.
    #[inline]
    pub fn next(&self) -> usize {
        self.path.first().map_or(self.node, |h| h.node)
    }

    /// The layer of the stack at the next host on the path.
    pub(super) fn layer(&self) -> usize {
        self.path.first().map_or(0, |h| h.layer)
    }

    /// Descends into nested graph `index` of host `k`, which must be the
    /// next on the path.
    pub(super) fn inside(&self, spec: &GraphSpec, k: usize, index: usize) -> Result<Place<'_>> {
        match self.path.split_first() {
            Some((&h, rest))
                if h == Hop {
                    node: k,
                    layer: index,
                } =>
            {
                Ok(Place {
                    path: rest,
                    node: self.node,
                    rows: self.rows.clone(),
                    run: self.run,
                })
            }
            _ => Err(node_error(spec, k, "is a nested graph, not a layer".into())),
        }
    }
}

/// `Visit::nested_at` and `Visit::stack` of a visitor with `spec`,
/// `ranges` and `place` fields: both descend into the nested graph the
/// unit's path leads to ([`Descend`]).
macro_rules! descend_to_nested {
    () => {
        fn nested_at<G: Graph<F>>(&mut self, k: usize, index: usize, graph: &G) -> Result<()> {
            let range = self.ranges[k].clone();
            self.descend(k, index, range, graph)
        }

        fn stack<A: Graph<F>, B: Graph<F>>(&mut self, k: usize, stack: &Stack<A, B>) -> Result<()> {
            let (l, start) = (self.place.layer(), self.ranges[k].start);
            visit_layer(self, self.spec, k, l, stack, start)
        }
    };
}
pub(super) use descend_to_nested;

/// Runs node `next` of nested graph `G` (number `index` of host node `k`
/// of a graph of `spec`) with `child`, a visitor of that graph, naming the
/// host in an error.
pub(super) fn node_of_nested<F: Float, G: Graph<F>, V: Visit<F>>(
    spec: &GraphSpec,
    k: usize,
    index: usize,
    layers: &G::Layers,
    next: usize,
    child: &mut V,
) -> Result<()> {
    G::node(layers, next, child).map_err(|e| {
        nested_error(
            spec,
            Hop {
                node: k,
                layer: index,
            },
            e,
        )
    })
}

/// The seed of nested graph `index` of host node `k`, from its host's.
pub(super) fn nested_seed(seed: u64, k: usize, index: usize) -> u64 {
    mix_seed(seed, k as u64, 0x6e65_7374 ^ index as u64, 1)
}

/// Runs the forward of one unit's layer.
pub(crate) struct ForwardVisit<'a, 'p, F> {
    pub spec: &'static GraphSpec,
    pub ranges: &'a [Range<usize>],
    pub params: &'a [F],
    pub mode: Mode,
    pub record: &'a mut Record<F>,
    pub place: Place<'p>,
    /// Mixed from the graph's seed, the pass and the graph's place in the
    /// tree; each node mixes in its index and run.
    pub seed: u64,
}

impl<F: Float> Visit<F> for ForwardVisit<'_, '_, F> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
        let (spec, record) = (self.spec, &mut *self.record);
        let (rows, run) = (self.place.rows.clone(), self.place.run);
        let node = &spec.nodes[k];
        let values = Around::split(&mut record.values, spec.node_slot(k));
        let inputs: [Input<'_, F>; N] = inputs_around(spec, &values.others, &record.ids, node, &rows);
        let states = &mut record.states[k];
        if states.len() <= run {
            states.resize_with(run + 1, || Array2::zeros((0, 0)));
        }
        let cx = Forward {
            params: &self.params[self.ranges[k].clone()],
            inputs: &inputs,
            training: self.mode.training,
            dropout: self.mode.dropout,
            seed: mix_seed(self.seed, k as u64, run as u64, 0),
            state: &mut states[run],
        };
        let result = layer.forward(cx, row_range_mut(values.at, rows));
        record.stateful[k] = !record.states[k][run].is_empty();
        result.map_err(|m| node_error(spec, k, m))
    }

    descend_to_nested!();
}

/// A pass's visitor that descends into nested graphs.
pub(super) trait Descend<F: Float> {
    /// Runs the unit in nested graph `index` of host `k`, whose parameters
    /// are `range` of this graph's.
    fn descend<G: Graph<F>>(&mut self, k: usize, index: usize, range: Range<usize>, graph: &G) -> Result<()>;
}

/// Descends into layer `l` of the stack at node `k` of `spec`, whose
/// parameters start at `start`.
pub(super) fn visit_layer<F: Float, V: Descend<F>, A: Graph<F>, B: Graph<F>>(
    visit: &mut V,
    spec: &GraphSpec,
    k: usize,
    l: usize,
    stack: &Stack<A, B>,
    start: usize,
) -> Result<()> {
    let range = layer_params(stack, l, start);
    match l {
        0 => visit.descend(k, 0, range, stack.first()),
        l => match stack.rest().get(l - 1) {
            Some(layer) => visit.descend(k, l, range, layer),
            None => Err(node_error(spec, k, format!("has no layer {l}"))),
        },
    }
}

/// The parameters of layer `l` of `stack`, whose own start at `start`.
fn layer_params<F: Float, A: Graph<F>, B: Graph<F>>(
    stack: &Stack<A, B>,
    l: usize,
    start: usize,
) -> Range<usize> {
    let first = stack.first().store().len();
    let upper = stack.upper().store().len();
    match l {
        0 => start..start + first,
        l => {
            let begin = start + first + (l - 1) * upper;
            begin..begin + upper
        }
    }
}

impl<F: Float> Descend<F> for ForwardVisit<'_, '_, F> {
    fn descend<G: Graph<F>>(&mut self, k: usize, index: usize, range: Range<usize>, graph: &G) -> Result<()> {
        let spec = self.spec;
        let place = self.place.inside(spec, k, index)?;
        let Some(inner) = self.record.nested[k].get_mut(index) else {
            return Err(node_error(spec, k, "has no record of its graph".into()));
        };
        let (layers, core) = graph.parts();
        let next = place.next();
        let mut child = ForwardVisit {
            spec: G::SPEC,
            ranges: core.store.node_ranges(),
            params: &self.params[range],
            mode: self.mode,
            record: inner,
            place,
            seed: nested_seed(self.seed, k, index),
        };
        node_of_nested::<F, G, _>(spec, k, index, layers, next, &mut child)
    }
}

/// What a backward visit computes for a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Parameter and input gradients (outside loops).
    Both,
    /// Input gradients, step by step in a loop (and the parameter gradients
    /// of a layer that keeps a state per step).
    Inputs,
    /// Parameter gradients of a loop's layers, once over all rows.
    Params,
}

/// Runs the backward of one unit's layer.
pub(crate) struct BackwardVisit<'a, 'p, F> {
    pub spec: &'static GraphSpec,
    pub ranges: &'a [Range<usize>],
    pub params: &'a [F],
    pub grads: &'a mut [F],
    pub checked: bool,
    pub record: &'a mut Record<F>,
    pub place: Place<'p>,
    pub part: Part,
}

impl<F: Float> Visit<F> for BackwardVisit<'_, '_, F> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
        let (spec, record) = (self.spec, &mut *self.record);
        let (rows, run) = (self.place.rows.clone(), self.place.run);
        // A layer that keeps a state per step (a Dropout mask) has its
        // parameter gradients taken step by step, with each step's state.
        let stateful = record.stateful[k];
        let (params_now, inputs_now) = match self.part {
            Part::Both => (true, true),
            Part::Inputs => (stateful, true),
            Part::Params => (!stateful, false),
        };
        if !params_now && !inputs_now {
            return Ok(());
        }
        let node = &spec.nodes[k];
        let slot = spec.node_slot(k);
        let range = self.ranges[k].clone();
        let wanted: [bool; N] =
            std::array::from_fn(|i| grad_wanted(spec, &record.input_grads, node.inputs[i]));
        let inputs: [Input<'_, F>; N] = node_inputs(spec, &record.values, &record.ids, node, &rows);
        // The output's gradient is read while the inputs' are written; it
        // may lie in another slot's buffer (`Record::hold`: one the node
        // feeds, so none of its inputs).
        let within = match &record.grads_held[slot] {
            Held::In(w) => Some(*w),
            _ => None,
        };
        let Around {
            at: d_output,
            others: mut grads,
        } = Around::split(&mut record.grads, within.map_or(slot, |w| w.slot));
        let mut d_output = row_range(d_output, rows.clone());
        if let Some(w) = within {
            d_output = columns_of(d_output, w);
        }
        let states = &record.states[k];
        let state = if self.part == Part::Params { 0 } else { run };
        let state = states.get(state).unwrap_or(&states[0]).view();
        let cx = Backward {
            params: &self.params[range.clone()],
            inputs: &inputs,
            output: row_range(&record.values[slot], rows.clone()),
            d_output,
            state,
        };
        let mut result = if params_now {
            layer.backward_params(&cx, &mut self.grads[range.clone()])
        } else {
            Ok(())
        };
        if inputs_now {
            for (i, &from) in node.inputs.iter().enumerate() {
                if result.is_ok() && wanted[i] {
                    result = layer.backward_input(i, &cx, row_range_mut(grads.get_mut(from), rows.clone()));
                }
            }
        }
        result.map_err(|m| node_error(spec, k, m))?;
        if self.checked && params_now {
            let grads = ArrayView2::from_shape((1, range.len()), &self.grads[range])
                .map_err(|e| node_error(spec, k, e.to_string()))?;
            check_finite(spec, k, Pass::Parameters, grads)?;
        }
        Ok(())
    }

    descend_to_nested!();
}

impl<F: Float> Descend<F> for BackwardVisit<'_, '_, F> {
    fn descend<G: Graph<F>>(&mut self, k: usize, index: usize, range: Range<usize>, graph: &G) -> Result<()> {
        let spec = self.spec;
        let place = self.place.inside(spec, k, index)?;
        let Some(inner) = self.record.nested[k].get_mut(index) else {
            return Err(node_error(spec, k, "has no record of its graph".into()));
        };
        let (layers, core) = graph.parts();
        let next = place.next();
        let mut child = BackwardVisit {
            spec: G::SPEC,
            ranges: core.store.node_ranges(),
            params: &self.params[range.clone()],
            grads: &mut self.grads[range],
            checked: self.checked,
            record: inner,
            place,
            part: self.part,
        };
        node_of_nested::<F, G, _>(spec, k, index, layers, next, &mut child)
    }
}
