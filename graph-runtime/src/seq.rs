//! A recurrent graph over a whole sequence, compiled by the macro's plan
//! (each node's [`Phase`]): nodes that do not depend on the state run once
//! over all `T·B` rows before the loop, nodes that depend on it but do not
//! feed it once after; only the path from the state to the next state runs
//! step by step. In backward, the post-loop part runs once, the loop carries
//! the state gradient step by step computing input gradients only, and every
//! parameter gradient (the recurrent weights' included) is computed once
//! over all rows after the loop. A layer is the same call with `T·B` rows
//! instead of `B`: no layer needs code of its own for this.
//!
//! A [`SeqTape`] holds one `(T·B, width)` matrix per slot for values and one
//! for gradients; step `t` is rows `t·B .. (t+1)·B`. A state input's block
//! `t` holds the state entering step `t` (block 0 the initial state).

use crate::error::{Error, Pass, Result};
use crate::graph::{check_finite, Graph, Visit};
use crate::layer::{Backward, Forward, Input, Layer};
use crate::run::{grad_wanted, input_rows, mix_seed, nested_error, node_error, node_inputs, Mode};
use crate::spec::{GraphSpec, NodeKind, Phase};
use crate::tape::{ensure_shape, row_range, row_range_mut, zero, Tape};
use crate::{criteria::Reduction, Float};
use ndarray::{s, Array2, ArrayView2, ArrayView3, ArrayViewMut2};
use std::ops::Range;

/// The record of a recurrent graph's pass over a whole sequence: one
/// `(T·B, width)` matrix per input and node for values and one for
/// gradients, step `t` being rows `t·B .. (t+1)·B` (a state input's block
/// `t` is the state entering step `t`). Made by the graph (`seq()`), reused
/// across calls; it reallocates only when the length or batch size changes.
///
/// The pass follows the macro's plan (each node's [`Phase`]): what does not
/// depend on the state runs once over all rows before the loop, what depends
/// on it without feeding it once after, and only the rest step by step; all
/// parameter gradients are taken once over all rows.
#[derive(Debug, Clone)]
pub struct SeqTape<F> {
    spec: &'static GraphSpec,
    widths: Vec<usize>,
    steps: usize,
    batch: usize,
    valid: bool,
    values: Vec<Array2<F>>,
    grads: Vec<Array2<F>>,
    ids: Vec<Vec<usize>>,
    /// Per node, per run (one for pre/post nodes, one per step for loop
    /// nodes): layer state, and nested graphs' tapes.
    states: Vec<Vec<Array2<F>>>,
    nested: Vec<Vec<Tape<F>>>,
    /// The final state of the last pass, per recurrent pair: where the carry
    /// form starts.
    carry: Vec<Array2<F>>,
    input_grads: Vec<bool>,
    calls: u64,
}

/// One sequence input of a forward pass: `(T, B, width)` values or `(T, B)` ids.
#[derive(Debug, Clone)]
pub enum SeqInput<'a, F> {
    /// Values, step by step.
    Values(ArrayView3<'a, F>),
    /// Ids, step by step.
    Ids(ndarray::ArrayView2<'a, usize>),
}

impl<F: Float> SeqTape<F> {
    pub(crate) fn new(spec: &'static GraphSpec, widths: Vec<usize>) -> Self {
        let (slots, nodes, inputs) = (spec.slots(), spec.nodes.len(), spec.inputs.len());
        SeqTape {
            spec,
            carry: spec.recurrent.iter().map(|_| Array2::zeros((0, 0))).collect(),
            widths,
            steps: 0,
            batch: 0,
            valid: false,
            values: (0..slots).map(|_| Array2::zeros((0, 0))).collect(),
            grads: (0..slots).map(|_| Array2::zeros((0, 0))).collect(),
            ids: vec![Vec::new(); inputs],
            states: vec![Vec::new(); nodes],
            nested: vec![Vec::new(); nodes],
            input_grads: vec![true; inputs],
            calls: 0,
        }
    }

    /// Number of steps of the recorded pass.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Batch size of the recorded pass.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Whether backward computes the gradient of input `i` (on by default).
    /// Training on data does not need the sequence inputs' gradients:
    /// turning them off saves a matrix product per layer they feed.
    ///
    /// # Panics
    /// If `i` is not an input of the graph, as slice indexing does.
    pub fn set_input_grad(&mut self, i: usize, on: bool) {
        self.input_grads[i] = on;
    }

    /// Forward passes made on this tape. Dropout masks depend on it and on
    /// the graph's seed, so successive passes draw different masks.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// Sets the count of forward passes, so that the next pass draws the
    /// masks it would draw after that many: a resumed training run sets the
    /// count the interrupted run had reached, and continues exactly.
    pub fn set_calls(&mut self, calls: u64) {
        self.calls = calls;
    }

    /// The `(T, B, width)` values of the input or node named `name`.
    pub fn value(&self, name: &str) -> Result<ArrayView3<'_, F>> {
        let slot = self.slot(name)?;
        Ok(self.steps_view(&self.values[slot]))
    }

    /// The `(T, B, width)` gradients of the input or node named `name`.
    pub fn grad(&self, name: &str) -> Result<ArrayView3<'_, F>> {
        let slot = self.slot(name)?;
        Ok(self.steps_view(&self.grads[slot]))
    }

    /// The values of output `o`, `(T, B, width)`.
    ///
    /// # Panics
    /// If `o` is not an output, as slice indexing does.
    pub fn output(&self, o: usize) -> ArrayView3<'_, F> {
        self.steps_view(&self.values[self.spec.output_slot(o)])
    }

    /// Output `o` at step `t`, `(B, width)`.
    pub(crate) fn output_at(&self, o: usize, t: usize) -> ArrayView2<'_, F> {
        let rows = t * self.batch..(t + 1) * self.batch;
        row_range(&self.values[self.spec.output_slot(o)], rows)
    }

    /// Output `o` at step `t` and its gradient buffer.
    pub(crate) fn output_and_grad_at(
        &mut self,
        o: usize,
        t: usize,
    ) -> (ArrayView2<'_, F>, ArrayViewMut2<'_, F>) {
        let rows = t * self.batch..(t + 1) * self.batch;
        let slot = self.spec.output_slot(o);
        (
            row_range(&self.values[slot], rows.clone()),
            row_range_mut(&mut self.grads[slot], rows),
        )
    }

    /// Input `i`'s gradient at step `t`, `(B, width)`.
    pub(crate) fn input_grad_at(&self, i: usize, t: usize) -> ArrayView2<'_, F> {
        let rows = t * self.batch..(t + 1) * self.batch;
        row_range(&self.grads[i], rows)
    }

    /// Zeroes every gradient: output gradients are then added in place.
    pub(crate) fn clear_grads(&mut self) {
        self.grads.iter_mut().for_each(zero);
    }

    /// The final state of recurrent pair `k`, `(B, width)`.
    ///
    /// # Panics
    /// If `k` is not a recurrent pair, as slice indexing does.
    pub fn final_state(&self, k: usize) -> ArrayView2<'_, F> {
        self.carry[k].view()
    }

    /// After backward: the gradient for the initial state of pair `k`.
    ///
    /// # Panics
    /// If `k` is not a recurrent pair, as slice indexing does.
    pub fn initial_state_grad(&self, k: usize) -> ArrayView2<'_, F> {
        let (i, _) = self.spec.recurrent[k];
        row_range(&self.grads[i], 0..self.batch)
    }

    /// After backward: the gradient for input `i`, `(T, B, width)`.
    ///
    /// # Panics
    /// If `i` is not an input, as slice indexing does.
    pub fn input_grad(&self, i: usize) -> ArrayView3<'_, F> {
        self.steps_view(&self.grads[i])
    }

    fn steps_view<'a>(&self, m: &'a Array2<F>) -> ArrayView3<'a, F> {
        let (rows, cols) = m.dim();
        let steps = rows.checked_div(self.batch).unwrap_or(0);
        m.view()
            .into_shape_with_order((steps, self.batch, cols))
            .unwrap_or_else(|_| ArrayView3::from_shape((0, 0, cols), &[]).expect("an empty view"))
    }

    fn slot(&self, name: &str) -> Result<usize> {
        (0..self.spec.slots())
            .find(|&s| self.spec.slot_name(s) == name)
            .ok_or_else(|| Error::InvalidInput {
                graph: self.spec.name.to_string(),
                message: format!("no input or node is named `{name}`"),
            })
    }

    fn resize(&mut self, steps: usize, batch: usize) {
        let rows = steps * batch;
        for (slot, (v, g)) in self.values.iter_mut().zip(&mut self.grads).enumerate() {
            let ids = slot < self.spec.inputs.len() && self.spec.inputs[slot].ids;
            let width = if ids { 0 } else { self.widths[slot] };
            ensure_shape(v, rows, width);
            ensure_shape(g, rows, width);
        }
        for (k, node) in self.spec.nodes.iter().enumerate() {
            let runs = if node.phase == Phase::Loop { steps } else { 1 };
            self.states[k].resize_with(runs, || Array2::zeros((0, 0)));
        }
        self.steps = steps;
        self.batch = batch;
    }

    pub(crate) fn check_owner(&self, spec: &'static GraphSpec, widths: &[usize]) -> Result<()> {
        if (std::ptr::eq(self.spec, spec) || self.spec.name == spec.name) && self.widths == widths {
            return Ok(());
        }
        Err(Error::InvalidInput {
            graph: spec.name.to_string(),
            message: format!(
                "this sequence tape was made by a graph `{}` with slot widths {:?}, not by this one (widths {:?})",
                self.spec.name, self.widths, widths
            ),
        })
    }
}

/// The sequence inputs of a pass: together in declaration order (the
/// sequence API), or values and ids apart, each in declaration order
/// ([`Unroll`](crate::Unroll)'s calling form).
pub(crate) enum Sequences<'a, 'b, F> {
    Mixed(&'a [SeqInput<'b, F>]),
    Apart {
        values: &'a [ArrayView3<'b, F>],
        ids: &'a [ndarray::ArrayView2<'b, usize>],
    },
}

impl<'b, F: Float> Sequences<'_, 'b, F> {
    /// Checks there is one sequence per input that is not a state
    /// (`seq_inputs` lists them).
    fn check_count<I: Iterator<Item = usize>>(
        &self,
        spec: &GraphSpec,
        seq_inputs: impl Fn() -> I,
    ) -> Result<()> {
        let expect = |what: &str, wanted: &dyn Fn(usize) -> bool, got: usize| {
            if seq_inputs().filter(|&i| wanted(i)).count() == got {
                return Ok(());
            }
            let names: Vec<&str> = seq_inputs()
                .filter(|&i| wanted(i))
                .map(|i| spec.inputs[i].name)
                .collect();
            Err(seq_error(
                spec,
                format!("expected {} {what}({}), got {got}", names.len(), names.join(", ")),
            ))
        };
        match self {
            Sequences::Mixed(all) => expect("sequence(s) ", &|_| true, all.len()),
            Sequences::Apart { values, ids } => {
                expect("sequence(s) ", &|i| !spec.inputs[i].ids, values.len())?;
                expect("ids sequence(s) ", &|i| spec.inputs[i].ids, ids.len())
            }
        }
    }

    /// The sequence of declared input `i` (not a state); the count is
    /// checked first.
    fn get(&self, spec: &GraphSpec, i: usize) -> SeqInput<'b, F> {
        let not_state = |j: usize| !spec.recurrent.iter().any(|&(si, _)| si == j);
        match self {
            Sequences::Mixed(all) => all[(0..i).filter(|&j| not_state(j)).count()].clone(),
            Sequences::Apart { values, ids } => {
                let is_ids = spec.inputs[i].ids;
                let n = (0..i)
                    .filter(|&j| not_state(j) && spec.inputs[j].ids == is_ids)
                    .count();
                if is_ids {
                    SeqInput::Ids(ids[n])
                } else {
                    SeqInput::Values(values[n])
                }
            }
        }
    }
}

/// Where the state comes from at step 0.
pub(crate) enum Start<'a, 'b, F> {
    Given(&'a [ArrayView2<'b, F>]),
    Carry,
}

fn seq_error(spec: &GraphSpec, message: String) -> Error {
    Error::Sequence {
        graph: spec.name.to_string(),
        message,
    }
}

/// Checks and records the inputs, then runs the plan.
pub(crate) fn forward<F: Float, G: Graph<F>>(
    graph: &G,
    seq: &mut SeqTape<F>,
    start: Start<'_, '_, F>,
    sequences: Sequences<'_, '_, F>,
) -> Result<()> {
    let spec = G::SPEC;
    let (layers, core) = graph.parts();
    seq.check_owner(spec, &core.widths)?;
    seq.valid = false;
    // The inputs that come from the sequences (not states), in order; an
    // iterator, not a Vec: a warmed-up pass allocates nothing.
    let seq_inputs = || (0..spec.inputs.len()).filter(|&i| !spec.recurrent.iter().any(|&(si, _)| si == i));
    sequences.check_count(spec, seq_inputs)?;
    let mut dims: Option<(usize, usize)> = None;
    for i in seq_inputs() {
        let x = sequences.get(spec, i);
        let name = spec.inputs[i].name;
        let (t, b) = match (x, spec.inputs[i].ids) {
            (SeqInput::Values(v), false) => {
                let (t, b, w) = v.dim();
                if w != core.widths[i] {
                    return Err(Error::InputWidth {
                        graph: spec.name.to_string(),
                        input: name.to_string(),
                        expected: core.widths[i],
                        found: w,
                    });
                }
                (t, b)
            }
            (SeqInput::Ids(ids), true) => ids.dim(),
            (_, ids) => {
                let kind = if ids {
                    "integer ids, (T, B)"
                } else {
                    "values, (T, B, width)"
                };
                return Err(seq_error(spec, format!("sequence `{name}` takes {kind}")));
            }
        };
        match dims {
            None => dims = Some((t, b)),
            Some(d) if d != (t, b) => {
                return Err(seq_error(
                    spec,
                    format!(
                        "sequence `{name}` is {t} steps of batch {b}, but another is {} steps of batch {}",
                        d.0, d.1
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    let Some((steps, batch)) = dims else {
        return Err(seq_error(
            spec,
            "the graph has no sequence input, so the number of steps is unknown".into(),
        ));
    };
    if steps == 0 {
        return Err(seq_error(spec, "the sequence has no steps".into()));
    }
    if let Start::Given(initial) = &start {
        if initial.len() != spec.recurrent.len() {
            return Err(seq_error(
                spec,
                format!(
                    "expected {} initial state(s), one per recurrent pair, got {}",
                    spec.recurrent.len(),
                    initial.len()
                ),
            ));
        }
        for (state, &(i, _)) in initial.iter().zip(spec.recurrent) {
            if state.dim() != (batch, core.widths[i]) {
                return Err(seq_error(
                    spec,
                    format!(
                        "initial state `{}` is {:?}, but the sequence needs ({batch}, {})",
                        spec.inputs[i].name,
                        state.dim(),
                        core.widths[i]
                    ),
                ));
            }
        }
    }
    seq.resize(steps, batch);
    for i in seq_inputs() {
        match sequences.get(spec, i) {
            SeqInput::Values(v) => {
                let mut dst = seq.values[i]
                    .view_mut()
                    .into_shape_with_order((steps, batch, core.widths[i]))
                    .map_err(|e| seq_error(spec, e.to_string()))?;
                dst.assign(&v);
            }
            SeqInput::Ids(ids) => {
                seq.ids[i].clear();
                seq.ids[i].extend(ids.iter().copied());
            }
        }
    }
    for (k, &(i, _)) in spec.recurrent.iter().enumerate() {
        let mut first = row_range_mut(&mut seq.values[i], 0..batch);
        match &start {
            Start::Given(initial) => first.assign(&initial[k]),
            Start::Carry if seq.carry[k].dim() == (batch, core.widths[i]) => first.assign(&seq.carry[k]),
            Start::Carry => first.fill(F::zero()),
        }
    }
    seq.calls = seq.calls.wrapping_add(1);
    let mode = Mode {
        training: core.training,
        checked: core.checked,
        seed: core.seed,
        dropout: core.dropout,
    };
    let mut visit = SeqForward {
        spec,
        ranges: core.store.node_ranges(),
        params: core.store.values(),
        mode,
        seq,
        rows: 0..0,
        run: 0,
        step: None,
    };
    let all = 0..steps * batch;
    run_phase::<F, G>(layers, &mut visit, Phase::Pre, all.clone(), 0, None)?;
    for t in 0..steps {
        run_phase::<F, G>(
            layers,
            &mut visit,
            Phase::Loop,
            t * batch..(t + 1) * batch,
            t,
            Some(t),
        )?;
        // The next state enters step t + 1.
        let seq = &mut *visit.seq;
        for &(i, o) in spec.recurrent {
            let from = spec.output_slot(o);
            let rows = t * batch..(t + 1) * batch;
            if t + 1 < steps {
                let (src, dst) = two_mut(&mut seq.values, from, i);
                row_range_mut(dst, rows.end..rows.end + batch).assign(&row_range(src, rows));
            }
        }
    }
    run_phase::<F, G>(layers, &mut visit, Phase::Post, all, 0, None)?;
    let seq = visit.seq;
    let last = (steps - 1) * batch..steps * batch;
    for (k, &(i, o)) in spec.recurrent.iter().enumerate() {
        ensure_shape(&mut seq.carry[k], batch, core.widths[i]);
        seq.carry[k].assign(&row_range(&seq.values[spec.output_slot(o)], last.clone()));
    }
    seq.valid = true;
    Ok(())
}

/// Distinct elements `a` (shared) and `b` (writable) of `v`.
fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&T, &mut T) {
    if a < b {
        let (lo, hi) = v.split_at_mut(b);
        (&lo[a], &mut hi[0])
    } else {
        let (lo, hi) = v.split_at_mut(a);
        (&hi[0], &mut lo[b])
    }
}

fn run_phase<F: Float, G: Graph<F>>(
    layers: &G::Layers,
    visit: &mut SeqForward<'_, F>,
    phase: Phase,
    rows: Range<usize>,
    run: usize,
    step: Option<usize>,
) -> Result<()> {
    let spec = G::SPEC;
    visit.rows = rows.clone();
    visit.run = run;
    visit.step = step;
    for &k in spec.order.iter().filter(|&&k| spec.nodes[k].phase == phase) {
        let slot = spec.node_slot(k);
        let result = match spec.nodes[k].kind {
            NodeKind::Output { host, output } => {
                let seq = &mut *visit.seq;
                match seq.nested[host].get(run) {
                    Some(inner) => {
                        seq.values[slot]
                            .slice_mut(s![rows.clone(), ..])
                            .assign(&inner.output(output));
                        Ok(())
                    }
                    None => Err(node_error(spec, k, "its graph has not run".into())),
                }
            }
            _ => G::node(layers, k, visit),
        };
        result.map_err(|e| at(e, step, 0))?;
        if visit.mode.checked {
            let values = row_range(&visit.seq.values[slot], rows.clone());
            check_finite(spec, k, Pass::Forward, values).map_err(|e| at(e, step, visit.seq.batch))?;
        }
    }
    Ok(())
}

/// Names the step of an error: `step` in the loop; over all `T·B` rows,
/// the step of the offending row (and its row within the step).
fn at(e: Error, step: Option<usize>, batch: usize) -> Error {
    match (step, e) {
        (Some(t), e) => e.at_step(t),
        (
            None,
            Error::NonFinite {
                graph,
                node,
                file,
                line,
                pass,
                step: None,
                index,
                value,
            },
        ) if batch > 0 => Error::NonFinite {
            graph,
            node,
            file,
            line,
            pass,
            step: Some(index.0 / batch),
            index: (index.0 % batch, index.1),
            value,
        },
        (None, e) => e,
    }
}

struct SeqForward<'a, F> {
    spec: &'static GraphSpec,
    ranges: &'a [Range<usize>],
    params: &'a [F],
    mode: Mode,
    seq: &'a mut SeqTape<F>,
    rows: Range<usize>,
    run: usize,
    step: Option<usize>,
}

impl<F: Float> Visit<F> for SeqForward<'_, F> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
        let (spec, seq, rows) = (self.spec, &mut *self.seq, self.rows.clone());
        let node = &spec.nodes[k];
        let slot = spec.node_slot(k);
        let mut output = std::mem::take(&mut seq.values[slot]);
        let inputs: [Input<'_, F>; N] = node_inputs(spec, &seq.values, &seq.ids, node, rows.clone());
        let cx = Forward {
            params: &self.params[self.ranges[k].clone()],
            inputs: &inputs,
            training: self.mode.training,
            dropout: self.mode.dropout,
            seed: mix_seed(self.mode.seed, seq.calls, k as u64, self.run as u64),
            state: &mut seq.states[k][self.run],
        };
        let result = layer.forward(cx, row_range_mut(&mut output, rows));
        seq.values[slot] = output;
        result.map_err(|m| node_error(spec, k, m))
    }

    fn nested<G: Graph<F>>(&mut self, k: usize, graph: &G) -> Result<()> {
        let (spec, seq, rows) = (self.spec, &mut *self.seq, self.rows.clone());
        let node = &spec.nodes[k];
        let NodeKind::Nested { to } = node.kind else {
            return Err(node_error(spec, k, "is not a nested graph".into()));
        };
        while seq.nested[k].len() <= self.run {
            seq.nested[k].push(graph.new_tape());
        }
        let inner = &mut seq.nested[k][self.run];
        inner.resize(rows.len());
        for (&from, &i) in node.inputs.iter().zip(to) {
            match input_rows(spec, &seq.values, &seq.ids, from, rows.clone()) {
                Input::Values(v) => inner.input_mut(i).assign(&v),
                Input::Ids(ids) => inner.set_ids(i, ids),
            }
        }
        inner.set_stream(mix_seed(seq.calls, k as u64, self.run as u64, 1));
        let (layers, core) = graph.parts();
        crate::run::forward_with::<F, G>(
            layers,
            core.store.node_ranges(),
            &self.params[self.ranges[k].clone()],
            self.mode,
            inner,
        )
        .map_err(|e| nested_error(spec, k, e))
    }
}

/// What a backward visit computes for the nodes it is given.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    /// Parameter and input gradients.
    Both,
    /// Input gradients only (loop nodes, step by step).
    Inputs,
    /// Parameter gradients only (loop nodes, once over all rows).
    Params,
}

/// Propagates the output gradients in `seq` back through the plan, adding
/// parameter gradients into `graph`'s gradient buffer.
pub(crate) fn backward<F: Float, G: Graph<F>>(graph: &mut G, seq: &mut SeqTape<F>) -> Result<()> {
    let spec = G::SPEC;
    let (layers, core) = graph.parts_mut();
    seq.check_owner(spec, &core.widths)?;
    if !seq.valid {
        return Err(Error::NoForward {
            graph: spec.name.to_string(),
        });
    }
    let checked = core.checked;
    if checked {
        core.saved_grads.clear();
        core.saved_grads.extend_from_slice(core.store.grads());
    }
    let (steps, batch) = (seq.steps, seq.batch);
    for tapes in &mut seq.nested {
        tapes.iter_mut().for_each(Tape::clear_grads);
    }
    let (ranges, params, grads) = core.store.split_mut();
    let mut visit = SeqBackward {
        spec,
        ranges,
        params,
        grads,
        checked,
        seq,
        rows: 0..0,
        run: 0,
        part: Part::Both,
    };
    let all = 0..steps * batch;
    let result = (|| {
        backward_phase::<F, G>(layers, &mut visit, Phase::Post, all.clone(), 0, Part::Both, None)?;
        for t in (0..steps).rev() {
            let rows = t * batch..(t + 1) * batch;
            if t + 1 < steps {
                // The gradient of the state entering step t + 1 flows into the
                // output that made it at step t.
                let seq = &mut *visit.seq;
                for &(i, o) in spec.recurrent {
                    let (src, dst) = two_mut(&mut seq.grads, i, spec.output_slot(o));
                    let mut d = row_range_mut(dst, rows.clone());
                    d += &row_range(src, rows.end..rows.end + batch);
                }
            }
            backward_phase::<F, G>(layers, &mut visit, Phase::Loop, rows, t, Part::Inputs, Some(t))?;
        }
        backward_phase::<F, G>(
            layers,
            &mut visit,
            Phase::Loop,
            all.clone(),
            0,
            Part::Params,
            None,
        )?;
        backward_phase::<F, G>(layers, &mut visit, Phase::Pre, all, 0, Part::Both, None)
    })();
    if checked && result.is_err() {
        core.store.grads_mut().copy_from_slice(&core.saved_grads);
    }
    result
}

fn backward_phase<F: Float, G: Graph<F>>(
    layers: &G::Layers,
    visit: &mut SeqBackward<'_, F>,
    phase: Phase,
    rows: Range<usize>,
    run: usize,
    part: Part,
    step: Option<usize>,
) -> Result<()> {
    let spec = G::SPEC;
    visit.rows = rows.clone();
    visit.run = run;
    visit.part = part;
    for &k in spec.order.iter().rev().filter(|&&k| spec.nodes[k].phase == phase) {
        let slot = spec.node_slot(k);
        if visit.checked && part != Part::Params {
            let grads = row_range(&visit.seq.grads[slot], rows.clone());
            check_finite(spec, k, Pass::Backward, grads).map_err(|e| at(e, step, visit.seq.batch))?;
        }
        match spec.nodes[k].kind {
            NodeKind::Output { host, output } if part != Part::Params => {
                let seq = &mut *visit.seq;
                if let Some(inner) = seq.nested[host].get_mut(run) {
                    let mut seed = inner.output_grad_mut(output);
                    seed += &row_range(&seq.grads[slot], rows.clone());
                }
            }
            NodeKind::Output { .. } => {}
            _ => G::node(layers, k, visit).map_err(|e| at(e, step, 0))?,
        }
    }
    Ok(())
}

struct SeqBackward<'a, F> {
    spec: &'static GraphSpec,
    ranges: &'a [Range<usize>],
    params: &'a [F],
    grads: &'a mut [F],
    checked: bool,
    seq: &'a mut SeqTape<F>,
    rows: Range<usize>,
    run: usize,
    part: Part,
}

impl<F: Float> Visit<F> for SeqBackward<'_, F> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()> {
        let (spec, rows) = (self.spec, self.rows.clone());
        let node = &spec.nodes[k];
        let slot = spec.node_slot(k);
        let range = self.ranges[k].clone();
        let seq = &mut *self.seq;
        let states = &seq.states[k];
        // A loop node whose layer keeps state (a Dropout mask per step) has
        // its parameter gradients taken step by step, with each step's state.
        let stateful = states.iter().any(|s| !s.is_empty());
        let (params_now, inputs_now) = match self.part {
            Part::Both => (true, true),
            Part::Inputs => (stateful, true),
            Part::Params => (!stateful, false),
        };
        let wanted: [bool; N] = std::array::from_fn(|i| grad_wanted(spec, &seq.input_grads, node.inputs[i]));
        let d_output = std::mem::take(&mut seq.grads[slot]);
        let inputs: [Input<'_, F>; N] = node_inputs(spec, &seq.values, &seq.ids, node, rows.clone());
        let state = if self.part == Part::Params { 0 } else { self.run };
        let cx = Backward {
            params: &self.params[range.clone()],
            inputs: &inputs,
            output: row_range(&seq.values[slot], rows.clone()),
            d_output: row_range(&d_output, rows.clone()),
            state: states[state.min(states.len().saturating_sub(1))].view(),
        };
        let mut result = if params_now {
            layer.backward_params(&cx, &mut self.grads[range.clone()])
        } else {
            Ok(())
        };
        if inputs_now {
            for (i, &from) in node.inputs.iter().enumerate() {
                if result.is_ok() && wanted[i] {
                    result = layer.backward_input(i, &cx, row_range_mut(&mut seq.grads[from], rows.clone()));
                }
            }
        }
        seq.grads[slot] = d_output;
        result.map_err(|m| node_error(spec, k, m))?;
        if self.checked && params_now {
            let grads = ArrayView2::from_shape((1, range.len()), &self.grads[range])
                .map_err(|e| node_error(spec, k, e.to_string()))?;
            check_finite(spec, k, Pass::Parameters, grads)?;
        }
        Ok(())
    }

    fn nested<G: Graph<F>>(&mut self, k: usize, graph: &G) -> Result<()> {
        if self.part == Part::Params {
            return Ok(()); // a nested graph's parameters are done step by step
        }
        let (spec, rows) = (self.spec, self.rows.clone());
        let node = &spec.nodes[k];
        let NodeKind::Nested { to } = node.kind else {
            return Err(node_error(spec, k, "is not a nested graph".into()));
        };
        let range = self.ranges[k].clone();
        let seq = &mut *self.seq;
        let Some(inner) = seq.nested[k].get_mut(self.run) else {
            return Err(node_error(spec, k, "its graph has not run forward".into()));
        };
        let (layers, core) = graph.parts();
        crate::run::backward_with::<F, G>(
            layers,
            core.store.node_ranges(),
            &self.params[range.clone()],
            &mut self.grads[range],
            self.checked,
            inner,
        )
        .map_err(|e| nested_error(spec, k, e))?;
        for (&from, &i) in node.inputs.iter().zip(to) {
            if grad_wanted(spec, &seq.input_grads, from) {
                let mut d = row_range_mut(&mut seq.grads[from], rows.clone());
                d += &seq.nested[k][self.run].input_grad(i);
            }
        }
        Ok(())
    }
}

/// Clears the gradients and adds `d_outputs` (one `(T, B, width)` per
/// output) as the seed of backward.
pub(crate) fn seed<F: Float>(
    spec: &GraphSpec,
    seq: &mut SeqTape<F>,
    d_outputs: &[ArrayView3<'_, F>],
) -> Result<()> {
    if !seq.valid {
        return Err(Error::NoForward {
            graph: spec.name.to_string(),
        });
    }
    crate::graph::check_gradient_count(spec, d_outputs.len())?;
    let (steps, batch) = (seq.steps, seq.batch);
    for (o, d) in d_outputs.iter().enumerate() {
        let width = seq.widths[spec.output_slot(o)];
        if d.dim() != (steps, batch, width) {
            return Err(Error::GradShape {
                graph: spec.name.to_string(),
                output: spec.outputs[o].name.to_string(),
                expected: crate::Shape(vec![steps, batch, width]),
                found: crate::Shape(d.shape().to_vec()),
            });
        }
    }
    seq.grads.iter_mut().for_each(zero);
    for (o, d) in d_outputs.iter().enumerate() {
        let slot = spec.output_slot(o);
        let width = seq.widths[slot];
        let mut g = seq.grads[slot]
            .view_mut()
            .into_shape_with_order((steps, batch, width))
            .map_err(|e| seq_error(spec, e.to_string()))?;
        g += d;
    }
    Ok(())
}

/// Clears the gradients, seeds every loss output with the gradient of its
/// reduction over all `T·B` losses, and returns the reduced loss.
pub(crate) fn seed_loss<F: Float>(spec: &GraphSpec, seq: &mut SeqTape<F>, reduction: Reduction) -> Result<F> {
    if !seq.valid {
        return Err(Error::NoForward {
            graph: spec.name.to_string(),
        });
    }
    let losses = || (0..spec.outputs.len()).filter(|&o| spec.nodes[spec.outputs[o].node].loss);
    if losses().next().is_none() {
        return Err(seq_error(
            spec,
            "the graph has no loss output (a criterion node among its outputs)".into(),
        ));
    }
    seq.grads.iter_mut().for_each(zero);
    let scale = F::from_f64(reduction.scale(seq.steps * seq.batch));
    let mut total = F::zero();
    for o in losses() {
        let slot = spec.output_slot(o);
        total += seq.values[slot].sum() * scale;
        seq.grads[slot].fill(scale);
    }
    Ok(total)
}
