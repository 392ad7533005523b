//! The engine: one forward and one backward pass loop, for a single step
//! and for a sequence alike (a single step is a sequence of one).
//!
//! A pass follows the tape's [`Plan`]: a list of units (a
//! node's layer, a copy into or out of a nested graph, the carry of a
//! recurrent state to the next step) cut into segments. A segment that is
//! not a loop runs each unit once over all `T·B` rows of the tape; a loop
//! runs its units step by step over one step's rows. Backward runs the
//! segments in reverse: outside loops, each unit's parameter and input
//! gradients over all rows; in a loop, the input gradients step by step
//! from the last step to the first (the carry hands each state's gradient
//! back to the output that made it), then every parameter gradient of the
//! loop once over all rows. A layer is the same call with `T·B` rows or with
//! `B`: no layer needs code of its own for sequences.
//!
//! - `plan.rs`: the plan, composed from the specs of the instance's graphs.
//! - `visit.rs`: how a unit reaches its layer through nested graphs.
//! - `load.rs`: what a pass is given (feeds, output gradients), checked and
//!   copied into the tape.
//! - `clear.rs`: gradient buffers cleared step by step in the loop that
//!   first adds to them, rather than whole before backward.
//! - `fuse.rs`: fused units, groups of nodes computed in one pass (the
//!   gate arithmetic of an LSTM cell).
//! - `check.rs`: naming errors by node path and step; checked mode.

pub(crate) mod check;
pub(crate) mod clear;
pub(crate) mod copies;
mod fuse;
pub(crate) mod load;
pub(crate) mod plan;
mod split;
pub(crate) mod visit;

use crate::error::{Pass, Result};
use crate::graph::{Graph, GraphCore};
use crate::spec::NodeKind;
use crate::tape::no_forward;
use crate::tape::{Record, Tape};
use crate::Float;
use check::{at_step, check_finite, from_path, stale_weights};
use copies::entry;
use plan::{Hop, Plan, Segment, UnitKind};
use std::ops::Range;
use visit::{grad_wanted, mix_seed, BackwardVisit, ForwardVisit, Part, Place};

/// What a forward pass needs to know besides the parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Mode {
    /// Training mode (Dropout active).
    pub training: bool,
    /// Checked mode (NaN and infinity are errors).
    pub checked: bool,
    /// Seed of Dropout masks.
    pub seed: u64,
    /// The probability every Dropout node uses instead of its own.
    pub dropout: Option<f64>,
}

impl Mode {
    fn of<F>(core: &GraphCore<F>) -> Mode {
        Mode {
            training: core.training,
            checked: core.checked,
            seed: core.seed,
            dropout: core.dropout,
        }
    }
}

/// The rows a segment runs over at a time: all `T·B` rows once, or (a loop
/// over more than one step) one step's rows per step.
fn looped(seg_looped: bool, steps: usize) -> bool {
    seg_looped && steps > 1
}

/// The segments of `plan` for a pass of `steps` steps: for a single step,
/// one segment of every unit (no loop runs more than once).
fn segments(plan: &Plan, steps: usize) -> &[Segment] {
    if steps == 1 {
        std::slice::from_ref(&plan.whole)
    } else {
        &plan.segments
    }
}

/// Runs the plan forward on the inputs already loaded into `tape`.
pub(crate) fn forward<F: Float, G: Graph<F>>(graph: &G, tape: &mut Tape<F>) -> Result<()> {
    // The weights cannot change while `graph` is borrowed: products may
    // keep them packed for the pass's steps.
    let _pass = crate::kernels::packed::PassScope::enter();
    let (layers, core) = graph.parts();
    let mode = Mode::of(core);
    tape.valid = false;
    tape.weights = core.store.generation();
    tape.calls = tape.calls.wrapping_add(1);
    let seed = mix_seed(mode.seed, tape.calls, 0, 0);
    tape.take_pointers();
    let (run, root) = Run::split(tape);
    let (steps, plan) = (run.steps, run.plan);
    for seg in segments(plan, steps) {
        if looped(seg.looped, steps) {
            if run.forward_split::<F, G>(layers, core, mode, seed, root, seg.units.clone()) {
                continue;
            }
            for t in 0..steps {
                run.forward::<F, G>(layers, core, mode, seed, &mut *root, seg.units.clone(), t)?;
            }
        } else {
            run.forward::<F, G>(
                layers,
                core,
                mode,
                seed,
                &mut *root,
                seg.units.clone(),
                usize::MAX,
            )?;
        }
    }
    tape.valid = true;
    Ok(())
}

/// Runs the plan backward from the output gradients already in `tape`,
/// adding parameter gradients into `graph`'s gradient buffer. In checked
/// mode a failure leaves the parameter gradients as they were.
pub(crate) fn backward<F: Float, G: Graph<F>>(graph: &mut G, tape: &mut Tape<F>) -> Result<()> {
    let spec = G::SPEC;
    if !tape.valid {
        return Err(no_forward(spec, tape.steps > 0));
    }
    let (layers, core) = graph.parts_mut();
    if tape.weights != core.store.generation() {
        return Err(stale_weights(spec));
    }
    // Backward writes the gradients, never the weights: products may keep
    // the weights packed for the pass's steps, as forward's do.
    let _pass = crate::kernels::packed::PassScope::enter();
    let checked = core.checked;
    if checked {
        core.saved_grads.clear();
        core.saved_grads.extend_from_slice(core.store.grads());
        // A non-finite gradient left by an earlier (unchecked) pass is not
        // this pass's failure: say where it is and that it came before.
        if let Some(i) = core.saved_grads.iter().position(|g| !g.is_finite()) {
            return Err(check::earlier_non_finite(spec, &core.store, i));
        }
    }
    tape.take_pointers();
    let (run, root) = Run::split(tape);
    let (steps, plan) = (run.steps, run.plan);
    wanted_inside(root);
    let (ranges, params, grads) = core.store.split_mut();
    let mut pass = BackwardPass {
        ranges,
        params,
        grads,
        checked,
    };
    // Weight gradients sharing their dY may run as one product (`grouped`):
    // not in checked mode, which reads each layer's as it is made.
    // SAFETY: the products' operands are the tape's buffers and the store's
    // gradients, borrowed for this function; the scope ends (the queue is
    // run) below, before either borrow does. Backward never writes a
    // layer's output gradient or any value after that layer's backward,
    // and a parameter's gradient is written only by its layer.
    let grouped = (!checked).then(|| unsafe { crate::kernels::grouped::Scope::open() });
    let result = (|| {
        for seg in segments(plan, steps).iter().rev() {
            if looped(seg.looped, steps) {
                let split = run.backward_split::<F, G>(
                    layers,
                    pass.ranges,
                    pass.params,
                    root,
                    seg.units.clone(),
                    checked,
                );
                match split {
                    Some(result) => result?,
                    None => {
                        for t in (0..steps).rev() {
                            // SAFETY: pointers of this pass, one thread.
                            unsafe {
                                run.clear_step(root, seg.units.start, t * run.batch..(t + 1) * run.batch)
                            };
                            run.backward::<F, G>(
                                layers,
                                &mut pass,
                                &mut *root,
                                seg.units.clone(),
                                t,
                                Part::Inputs,
                            )?;
                        }
                    }
                }
                run.backward::<F, G>(
                    layers,
                    &mut pass,
                    &mut *root,
                    seg.units.clone(),
                    usize::MAX,
                    Part::Params,
                )?;
            } else {
                run.backward::<F, G>(
                    layers,
                    &mut pass,
                    &mut *root,
                    seg.units.clone(),
                    usize::MAX,
                    Part::Both,
                )?;
            }
        }
        Ok(())
    })();
    drop(grouped);
    if checked && result.is_err() {
        core.store.grads_mut().copy_from_slice(&core.saved_grads);
    }
    result
}

/// Tells nested records which of their inputs' gradients are wanted: those
/// whose outer source's is.
fn wanted_inside<F: Float>(record: &mut Record<F>) {
    let spec = record.spec;
    for &k in &record.hosts {
        let node = &spec.nodes[k];
        let stack = node.kind == NodeKind::Stack;
        for (l, inner) in record.nested[k].iter_mut().enumerate() {
            for (j, &from) in node.inputs.iter().enumerate() {
                let Some(i) = entry(spec, k, j) else { continue };
                // An upper layer's input 0 is the layer below's output.
                let wanted = (stack && j == 0 && l > 0) || grad_wanted(spec, &record.input_grads, from);
                if let Some(w) = inner.input_grads.get_mut(i) {
                    *w = wanted;
                }
            }
            wanted_inside(inner);
        }
    }
}

struct BackwardPass<'a, F> {
    ranges: &'a [Range<usize>],
    params: &'a [F],
    grads: &'a mut [F],
    checked: bool,
}

/// One pass's view of the plan.
struct Run<'a> {
    plan: &'a Plan,
    steps: usize,
    batch: usize,
    /// Per unit, whether it is not run (an input it depends on is absent).
    skipped: Option<&'a [bool]>,
    /// The gradient buffers backward's loops clear step by step (none when
    /// the clearing before the pass did), and the top-level slots not to
    /// (see [`Tape::clear_grads`]).
    clears: &'a [clear::LoopClear],
    seeded: &'a [bool],
}

impl<'a> Run<'a> {
    /// The pass's view of `tape`'s plan, and the records it runs on.
    fn split<F>(tape: &'a mut Tape<F>) -> (Self, &'a mut Record<F>) {
        let run = Run {
            plan: &tape.plan,
            steps: tape.steps,
            batch: tape.batch,
            skipped: tape.any_skipped.then_some(&tape.skipped[..]),
            clears: if tape.clear_in_loops {
                &tape.loop_clears
            } else {
                &[]
            },
            seeded: &tape.seeded,
        };
        (run, &mut tape.root)
    }

    /// The rows and run of step `t` (`usize::MAX`: all rows, run 0), and
    /// the step errors name.
    fn rows(&self, t: usize) -> (Range<usize>, usize, Option<usize>) {
        if t == usize::MAX {
            (0..self.steps * self.batch, 0, None)
        } else {
            (t * self.batch..(t + 1) * self.batch, t, Some(t))
        }
    }

    /// The rows per step by which an error over all rows names its step:
    /// none for a single step.
    fn step_rows(&self) -> usize {
        if self.steps > 1 {
            self.batch
        } else {
            0
        }
    }

    /// Zeroes rows `rows` (of one step) of the gradient buffers that the
    /// loop starting at unit `loop_start` clears step by step, before the
    /// loop's units run backward at that step.
    ///
    /// # Safety
    /// `root`'s pointers were taken in this pass, and no other thread reads
    /// or writes these rows meanwhile.
    unsafe fn clear_step<F: Float>(&self, root: &Record<F>, loop_start: usize, rows: Range<usize>) {
        if !self.clears.is_empty() {
            // SAFETY: as this function's caller guarantees.
            unsafe { clear::clear_rows(root, self.clears, self.seeded, loop_start, rows) }
        }
    }

    fn skips(&self, u: usize) -> bool {
        self.skipped.is_some_and(|s| s[u])
    }

    #[allow(clippy::too_many_arguments)]
    fn forward<F: Float, G: Graph<F>>(
        &self,
        layers: &G::Layers,
        core: &GraphCore<F>,
        mode: Mode,
        seed: u64,
        root: &mut Record<F>,
        units: Range<usize>,
        t: usize,
    ) -> Result<()> {
        let (rows, run, step) = self.rows(t);
        // One visitor for the whole run, pointed at each unit in turn.
        let mut visit = ForwardVisit {
            spec: G::SPEC,
            ranges: core.store.node_ranges(),
            params: core.store.values(),
            mode,
            record: root,
            place: Place {
                path: &[],
                node: 0,
                rows: rows.clone(),
                run,
            },
            seed,
        };
        for u in units {
            if self.skips(u) {
                continue;
            }
            let unit = &self.plan.units[u];
            let path = self.plan.path(u);
            let computed = match unit.kind {
                UnitKind::Node => {
                    visit.place.path = path;
                    visit.place.node = unit.node;
                    G::node(layers, visit.place.next(), &mut visit).map_err(|e| at_step(e, step, 0))?;
                    true
                }
                UnitKind::Enter { .. }
                | UnitKind::Leave { .. }
                | UnitKind::Link { .. }
                | UnitKind::Carry { .. } => {
                    self.copy(visit.record, u, rows.clone(), false);
                    matches!(unit.kind, UnitKind::Leave { .. }) && !unit.computes.is_empty()
                }
                UnitKind::Fused { fusion } => {
                    let record = visit.record.at_mut(path);
                    fuse::forward(record, &record.spec.fusions[fusion], rows.clone());
                    true
                }
            };
            if mode.checked && computed {
                let root = &*visit.record;
                let r = root.at(path);
                for &k in &self.plan.computes[unit.computes.clone()] {
                    let values = r.value_rows(root, r.spec.node_slot(k), rows.clone());
                    check_finite(r.spec, k, Pass::Forward, values.view())
                        .map_err(|e| at_step(from_path(root, path, e), step, self.step_rows()))?;
                }
            }
        }
        Ok(())
    }

    fn backward<F: Float, G: Graph<F>>(
        &self,
        layers: &G::Layers,
        pass: &mut BackwardPass<'_, F>,
        root: &mut Record<F>,
        units: Range<usize>,
        t: usize,
        part: Part,
    ) -> Result<()> {
        let (rows, run, step) = self.rows(t);
        let checked = pass.checked;
        let mut visit = BackwardVisit {
            spec: G::SPEC,
            ranges: pass.ranges,
            params: pass.params,
            grads: &mut *pass.grads,
            checked,
            record: root,
            place: Place {
                path: &[],
                node: 0,
                rows: rows.clone(),
                run,
            },
            part,
        };
        for u in units.rev() {
            if self.skips(u) {
                continue;
            }
            let unit = &self.plan.units[u];
            let path = self.plan.path(u);
            if part == Part::Params && unit.kind != UnitKind::Node {
                continue;
            }
            // Checked mode: the gradient arriving at each node the unit
            // computes, last node first (a fused group's inner nodes are
            // checked after its pass, before anything upstream runs).
            let check = |root: &Record<F>| -> Result<()> {
                let r = root.at(path);
                for &k in self.plan.computes[unit.computes.clone()].iter().rev() {
                    let grads = r.grad_rows(root, r.spec.node_slot(k), rows.clone());
                    check_finite(r.spec, k, Pass::Backward, grads.view())
                        .map_err(|e| at_step(from_path(root, path, e), step, self.step_rows()))?;
                }
                Ok(())
            };
            if checked && part != Part::Params && matches!(unit.kind, UnitKind::Node | UnitKind::Leave { .. })
            {
                check(visit.record)?;
            }
            match unit.kind {
                UnitKind::Node => {
                    visit.place.path = path;
                    visit.place.node = unit.node;
                    G::node(layers, visit.place.next(), &mut visit).map_err(|e| at_step(e, step, 0))?;
                }
                UnitKind::Enter { .. }
                | UnitKind::Leave { .. }
                | UnitKind::Link { .. }
                | UnitKind::Carry { .. } => self.copy(visit.record, u, rows.clone(), true),
                UnitKind::Fused { fusion } => {
                    let record = visit.record.at_mut(path);
                    fuse::backward(record, &record.spec.fusions[fusion], rows.clone());
                    if checked {
                        check(visit.record)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Copy unit `u` at the step whose rows are `rows` (see `copies.rs`).
    fn copy<F: Float>(&self, root: &mut Record<F>, u: usize, rows: Range<usize>, back: bool) {
        if copies::copies_ids(root, self.plan, u) {
            if !back {
                enter_ids(root, self.plan, u, rows);
            }
            return;
        }
        if let Some(copy) = copies::resolve(root, self.plan, u, self.batch, back) {
            // SAFETY: the pointers were taken at the start of this pass,
            // and this thread alone runs the pass (and hands out the rows).
            unsafe { copy.run_split(rows) };
        }
    }
}

/// The record `hops` below the records `nested` (`hops` not empty).
fn descend<'r, F>(nested: &'r mut [Vec<Record<F>>], hops: &[Hop]) -> &'r mut Record<F> {
    let (first, rest) = hops.split_first().expect("a path below a record");
    let mut record = &mut nested[first.node][first.layer];
    for h in rest {
        record = &mut record.nested[h.node][h.layer];
    }
    record
}

/// Copy unit `u` (an `Enter` of an ids input): the source's ids, rows
/// `rows`, into the input of the nested graph it enters.
fn enter_ids<F: Float>(root: &mut Record<F>, plan: &Plan, u: usize, rows: Range<usize>) {
    let unit = &plan.units[u];
    let UnitKind::Enter { input: j, layer, .. } = unit.kind else {
        return;
    };
    let (source, path, from) = (plan.source(u), plan.path(u), unit.source_slot);
    let Record {
        ids, nested, spec, ..
    } = root.at_mut(source);
    let rest = &path[source.len()..];
    let (host_spec, dst) = if rest.is_empty() {
        (*spec, nested[unit.node].get_mut(layer))
    } else {
        let host = descend(nested, rest);
        (host.spec, host.nested[unit.node].get_mut(layer))
    };
    if let (Some(dst), Some(i)) = (dst, copies::entry(host_spec, unit.node, j)) {
        dst.ids[i][rows.clone()].copy_from_slice(&ids[from][rows]);
    }
}
