//! Loops split across threads by samples. A recurrence is sequential in
//! time but independent across the samples of a batch: when every unit of
//! a loop computes each row from the same rows (its layers say they are
//! [`rows_independent`](crate::Layer::rows_independent); copies and fused
//! groups are), each thread of the pool runs the whole loop, every step,
//! over its own run of the batch, and the threads meet once at the end of
//! the loop instead of at every product of every step.
//!
//! Each row is computed by the same operations in the same order as on one
//! thread (products compute every element alike whatever rows they are
//! given), so results are bit-identical for any thread count. Threads
//! write only their own rows, through the slot pointers taken at the start
//! of the pass (`tape.rs`, `SlotPtr`).

use super::check::{at_step, node_error};
use super::copies;
use super::fuse;
use super::plan::{Hop, UnitKind};
use super::visit::{
    descend_to_nested, grad_wanted, mix_seed, nested_seed, node_of_nested, visit_layer, Descend, Place,
};
use super::{Mode, Run};
use crate::error::{Error, Result};
use crate::graph::{Graph, GraphCore, Visit};
use crate::kernels::packed::PassScope;
use crate::kernels::pool;
use crate::layer::{Backward, Forward, Input, Layer};
use crate::spec::GraphSpec;
use crate::stack::Stack;
use crate::tape::Record;
use crate::Float;
use ndarray::Array2;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Samples per thread below which a loop is not split: fewer rows per
/// step leave the products too small to pay for a thread.
const MIN_ROWS: usize = 8;

/// The most bytes of parameters a split loop's layers read at each step.
/// Every thread reads all of them, where a step's products split by
/// columns read a part each: past about a core's L2 cache (a quarter of it
/// here, to leave room for the activations) splitting by samples was
/// slower (W3, a 1024-wide cell: 1.12x to 1.17x the time; W4, 64 Ki f32
/// per layer: 0.94x).
const MAX_WEIGHT_BYTES: usize = 512 << 10;

impl Run<'_> {
    /// Into how many parts the loop of `units` is split: 1 (not split) when
    /// there is one thread, too few samples, checked mode (which checks
    /// each node over the whole step), or a unit that may not be split.
    fn split_parts<F: Float, G: Graph<F>>(
        &self,
        layers: &G::Layers,
        ranges: &[Range<usize>],
        root: &Record<F>,
        units: Range<usize>,
        checked: bool,
    ) -> usize {
        let parts = pool::threads().min(self.batch / MIN_ROWS);
        if parts < 2 || checked || self.steps < 2 {
            return 1;
        }
        let mut weights = 0;
        for u in units {
            if self.skips(u) {
                continue;
            }
            let unit = &self.plan.units[u];
            let splits = match unit.kind {
                UnitKind::Node => {
                    let path = self.plan.path(u);
                    let mut probe = Probe {
                        spec: G::SPEC,
                        ranges,
                        path,
                        node: unit.node,
                        answer: None,
                    };
                    let next = path.first().map_or(unit.node, |h| h.node);
                    match (G::node(layers, next, &mut probe), probe.answer) {
                        (Ok(()), Some((true, params))) => {
                            weights += params;
                            !root.at(path).stateful[unit.node]
                        }
                        _ => false,
                    }
                }
                UnitKind::Enter { .. } => !copies::copies_ids(root, self.plan, u),
                UnitKind::Leave { .. }
                | UnitKind::Link { .. }
                | UnitKind::Carry { .. }
                | UnitKind::Fused { .. } => true,
            };
            if !splits {
                return 1;
            }
        }
        if weights * std::mem::size_of::<F>() > MAX_WEIGHT_BYTES {
            return 1;
        }
        parts
    }

    /// Runs the loop of `units` forward over every step, split across
    /// threads by samples if it may be; `false` if it may not, or a layer
    /// failed: the caller then runs the loop on one thread.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_split<F: Float, G: Graph<F>>(
        &self,
        layers: &G::Layers,
        core: &GraphCore<F>,
        mode: Mode,
        seed: u64,
        root: &Record<F>,
        units: Range<usize>,
    ) -> bool {
        let ranges = core.store.node_ranges();
        let parts = self.split_parts::<F, G>(layers, ranges, root, units.clone(), mode.checked);
        if parts < 2 {
            return false;
        }
        let failed = AtomicBool::new(false);
        let pass = PassScope::current();
        pool::run_rows(parts, self.batch, 1, &|p, samples| {
            let _pass = (p > 0).then(|| PassScope::join(pass));
            for t in 0..self.steps {
                let rows = t * self.batch + samples.start..t * self.batch + samples.end;
                if self
                    .forward_rows::<F, G>(layers, core, mode, seed, root, units.clone(), rows, t)
                    .is_err()
                {
                    failed.store(true, Ordering::Relaxed);
                    return;
                }
            }
        });
        // A failure is reported by running the loop again on one thread,
        // which names the node and step as it always does (a forward pass
        // only overwrites what it computes).
        !failed.into_inner()
    }

    /// Runs the loop of `units` backward (input gradients, from the last
    /// step to the first), split across threads by samples if it may be;
    /// `None` if it may not (nothing ran).
    pub(super) fn backward_split<F: Float, G: Graph<F>>(
        &self,
        layers: &G::Layers,
        ranges: &[Range<usize>],
        params: &[F],
        root: &Record<F>,
        units: Range<usize>,
        checked: bool,
    ) -> Option<Result<()>> {
        let parts = self.split_parts::<F, G>(layers, ranges, root, units.clone(), checked);
        if parts < 2 {
            return None;
        }
        // The first failure in the order one thread would meet it: the
        // latest step, then the last unit, then the first samples (a layer
        // over a whole step would meet those first).
        let first: Mutex<Option<(usize, usize, usize, Error)>> = Mutex::new(None);
        let pass = PassScope::current();
        pool::run_rows(parts, self.batch, 1, &|p, samples| {
            let _pass = (p > 0).then(|| PassScope::join(pass));
            for t in (0..self.steps).rev() {
                let rows = t * self.batch + samples.start..t * self.batch + samples.end;
                // SAFETY: pointers of this pass; this thread's rows.
                unsafe { self.clear_step(root, units.start, rows.clone()) };
                let mut u = 0;
                if let Err(e) =
                    self.backward_rows::<F, G>(layers, ranges, params, root, units.clone(), rows, t, &mut u)
                {
                    let mut first = first.lock().unwrap_or_else(|e| e.into_inner());
                    let earlier = |&(ft, fu, fp, _): &(usize, usize, usize, Error)| (t, u, fp) > (ft, fu, p);
                    if first.as_ref().is_none_or(earlier) {
                        *first = Some((t, u, p, e));
                    }
                    return;
                }
            }
        });
        let first = first.into_inner().unwrap_or_else(|e| e.into_inner());
        Some(first.map_or(Ok(()), |(_, _, _, e)| Err(e)))
    }

    /// The units `units` forward at step `t`, over `rows` (part of the step's).
    #[allow(clippy::too_many_arguments)]
    fn forward_rows<F: Float, G: Graph<F>>(
        &self,
        layers: &G::Layers,
        core: &GraphCore<F>,
        mode: Mode,
        seed: u64,
        root: &Record<F>,
        units: Range<usize>,
        rows: Range<usize>,
        t: usize,
    ) -> Result<()> {
        for u in units {
            if self.skips(u) {
                continue;
            }
            let unit = &self.plan.units[u];
            let path = self.plan.path(u);
            match unit.kind {
                UnitKind::Node => {
                    let mut visit = RowsForward {
                        spec: G::SPEC,
                        ranges: core.store.node_ranges(),
                        params: core.store.values(),
                        mode,
                        record: root,
                        place: Place {
                            path,
                            node: unit.node,
                            rows: rows.clone(),
                            run: t,
                        },
                        seed,
                    };
                    G::node(layers, visit.place.next(), &mut visit).map_err(|e| at_step(e, Some(t), 0))?;
                }
                UnitKind::Fused { fusion } => {
                    let record = root.at(path);
                    fuse::forward(record, &record.spec.fusions[fusion], rows.clone());
                }
                _ => {
                    if let Some(copy) = copies::resolve(root, self.plan, u, self.batch, false) {
                        // SAFETY: pointers of this pass; this thread's rows.
                        unsafe { copy.run(rows.clone()) };
                    }
                }
            }
        }
        Ok(())
    }

    /// The units `units` backward (input gradients) at step `t`, over
    /// `rows`; on a failure, `at` is the unit it happened in.
    #[allow(clippy::too_many_arguments)]
    fn backward_rows<F: Float, G: Graph<F>>(
        &self,
        layers: &G::Layers,
        ranges: &[Range<usize>],
        params: &[F],
        root: &Record<F>,
        units: Range<usize>,
        rows: Range<usize>,
        t: usize,
        at: &mut usize,
    ) -> Result<()> {
        for u in units.rev() {
            *at = u;
            if self.skips(u) {
                continue;
            }
            let unit = &self.plan.units[u];
            let path = self.plan.path(u);
            match unit.kind {
                UnitKind::Node => {
                    let mut visit = RowsBackward {
                        spec: G::SPEC,
                        ranges,
                        params,
                        record: root,
                        place: Place {
                            path,
                            node: unit.node,
                            rows: rows.clone(),
                            run: t,
                        },
                    };
                    G::node(layers, visit.place.next(), &mut visit).map_err(|e| at_step(e, Some(t), 0))?;
                }
                UnitKind::Fused { fusion } => {
                    let record = root.at(path);
                    fuse::backward(record, &record.spec.fusions[fusion], rows.clone());
                }
                _ => {
                    if let Some(copy) = copies::resolve(root, self.plan, u, self.batch, true) {
                        // SAFETY: pointers of this pass; this thread's rows.
                        unsafe { copy.run(rows.clone()) };
                    }
                }
            }
        }
        Ok(())
    }
}

/// Asks the layer of a unit (node `node` of the graph at the end of
/// `path`) whether its rows are independent, and how many parameters it
/// has (`ranges`: the parameters of the graph visited now, by node).
struct Probe<'p> {
    spec: &'static GraphSpec,
    ranges: &'p [Range<usize>],
    path: &'p [Hop],
    node: usize,
    answer: Option<(bool, usize)>,
}

impl<F: Float> Visit<F> for Probe<'_> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
        self.answer = Some((layer.rows_independent(), self.ranges.get(k).map_or(0, Range::len)));
        Ok(())
    }

    fn nested_at<G: Graph<F>>(&mut self, k: usize, index: usize, graph: &G) -> Result<()> {
        self.descend(k, index, 0..0, graph)
    }

    fn stack<A: Graph<F>, B: Graph<F>>(&mut self, k: usize, stack: &Stack<A, B>) -> Result<()> {
        let l = self.path.first().map_or(0, |h| h.layer);
        visit_layer(self, self.spec, k, l, stack, 0)
    }
}

impl<'p, F: Float> Descend<F> for Probe<'p> {
    fn descend<G: Graph<F>>(&mut self, k: usize, index: usize, _: Range<usize>, graph: &G) -> Result<()> {
        match self.path.split_first() {
            Some((h, rest)) if h.node == k && h.layer == index => {
                let next = rest.first().map_or(self.node, |h| h.node);
                let (layers, core) = graph.parts();
                let mut inner = Probe {
                    spec: G::SPEC,
                    ranges: core.store.node_ranges(),
                    path: rest,
                    node: self.node,
                    answer: None,
                };
                let result = G::node(layers, next, &mut inner);
                self.answer = inner.answer;
                result
            }
            _ => Err(node_error(self.spec, k, "is not on the unit's path".into())),
        }
    }
}

/// The place and the record of nested graph `index` of host node `k`, the
/// next on `place`'s path from `record` (of a graph of `spec`).
fn nested<'r, 'p, F>(
    spec: &GraphSpec,
    record: &'r Record<F>,
    place: &'p Place<'_>,
    k: usize,
    index: usize,
) -> Result<(Place<'p>, &'r Record<F>)> {
    let place = place.inside(spec, k, index)?;
    match record.nested[k].get(index) {
        Some(inner) => Ok((place, inner)),
        None => Err(node_error(spec, k, "has no record of its graph".into())),
    }
}

/// Runs the forward of one unit's layer over some of a step's rows, from
/// one of the threads a loop is split across.
struct RowsForward<'a, 'p, F> {
    spec: &'static GraphSpec,
    ranges: &'a [Range<usize>],
    params: &'a [F],
    mode: Mode,
    record: &'a Record<F>,
    place: Place<'p>,
    seed: u64,
}

/// The `N` inputs of node `k` of `record` over `rows`.
fn inputs_of<'t, F: Float, const N: usize>(
    record: &'t Record<F>,
    k: usize,
    rows: &Range<usize>,
) -> [Input<'t, F>; N] {
    let spec = record.spec;
    let node = &spec.nodes[k];
    std::array::from_fn(|i| {
        let s = node.inputs[i];
        if s < spec.inputs.len() && spec.inputs[s].ids {
            Input::Ids(&record.ids[s][rows.clone()])
        } else {
            let p = record.value_ptrs[s];
            // SAFETY: pointers of this pass; the rows are this thread's, and
            // an input is not written while its readers run.
            Input::Values(unsafe { p.view(rows.clone(), 0..p.width()) })
        }
    })
}

impl<F: Float> Visit<F> for RowsForward<'_, '_, F> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
        let (spec, record) = (self.spec, self.record);
        let (rows, run) = (self.place.rows.clone(), self.place.run);
        let inputs: [Input<'_, F>; N] = inputs_of(record, k, &rows);
        let out = record.value_ptrs[spec.node_slot(k)];
        // SAFETY: pointers of this pass; this thread's rows of the node's
        // own slot, which none of its inputs is.
        let output = unsafe { out.view_mut(rows, 0..out.width()) };
        // A layer whose rows are independent keeps no state. One that does
        // fails here, and the loop runs again on one thread, which keeps it
        // (and later passes see it is kept, and do not split).
        let mut state = Array2::zeros((0, 0));
        let cx = Forward {
            params: &self.params[self.ranges[k].clone()],
            inputs: &inputs,
            training: self.mode.training,
            dropout: self.mode.dropout,
            seed: mix_seed(self.seed, k as u64, run as u64, 0),
            state: &mut state,
        };
        layer.forward(cx, output).map_err(|m| node_error(spec, k, m))?;
        if !state.is_empty() {
            return Err(node_error(
                spec,
                k,
                "keeps a state: its loop runs on one thread".into(),
            ));
        }
        Ok(())
    }

    descend_to_nested!();
}

impl<F: Float> Descend<F> for RowsForward<'_, '_, F> {
    fn descend<G: Graph<F>>(&mut self, k: usize, index: usize, range: Range<usize>, graph: &G) -> Result<()> {
        let spec = self.spec;
        let (place, inner) = nested(spec, self.record, &self.place, k, index)?;
        let (layers, core) = graph.parts();
        let next = place.next();
        let mut child = RowsForward {
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

/// Runs the backward (input gradients) of one unit's layer over some of a
/// step's rows, from one of the threads a loop is split across.
struct RowsBackward<'a, 'p, F> {
    spec: &'static GraphSpec,
    ranges: &'a [Range<usize>],
    params: &'a [F],
    record: &'a Record<F>,
    place: Place<'p>,
}

impl<F: Float> Visit<F> for RowsBackward<'_, '_, F> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
        let (spec, record) = (self.spec, self.record);
        let rows = self.place.rows.clone();
        let node = &spec.nodes[k];
        let slot = spec.node_slot(k);
        let inputs: [Input<'_, F>; N] = inputs_of(record, k, &rows);
        let (out, d_out) = (record.value_ptrs[slot], record.grad_ptrs[slot]);
        // SAFETY: pointers of this pass; this thread's rows, only read here
        // (the inputs' gradients written below are other slots).
        let (output, d_output) = unsafe {
            (
                out.view(rows.clone(), 0..out.width()),
                d_out.view(rows.clone(), 0..d_out.width()),
            )
        };
        let cx = Backward {
            params: &self.params[self.ranges[k].clone()],
            inputs: &inputs,
            output,
            d_output,
            state: record.states[k][0].view(),
        };
        for (i, &from) in node.inputs.iter().enumerate() {
            if grad_wanted(spec, &record.input_grads, from) {
                let d = record.grad_ptrs[from];
                // SAFETY: pointers of this pass; this thread's rows of an
                // input's gradient, one view at a time.
                let d_input = unsafe { d.view_mut(rows.clone(), 0..d.width()) };
                layer
                    .backward_input(i, &cx, d_input)
                    .map_err(|m| node_error(spec, k, m))?;
            }
        }
        Ok(())
    }

    descend_to_nested!();
}

impl<F: Float> Descend<F> for RowsBackward<'_, '_, F> {
    fn descend<G: Graph<F>>(&mut self, k: usize, index: usize, range: Range<usize>, graph: &G) -> Result<()> {
        let spec = self.spec;
        let (place, inner) = nested(spec, self.record, &self.place, k, index)?;
        let (layers, core) = graph.parts();
        let next = place.next();
        let mut child = RowsBackward {
            spec: G::SPEC,
            ranges: core.store.node_ranges(),
            params: &self.params[range],
            record: inner,
            place,
        };
        node_of_nested::<F, G, _>(spec, k, index, layers, next, &mut child)
    }
}
