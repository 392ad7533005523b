//! What a pass is given, checked and copied into the tape: the feeds of a
//! forward pass (one per input: its steps, batch size, width and kind must
//! agree), and the output gradients of a backward pass. Every mistake is an
//! error naming the graph and the input or output, with both shapes; the
//! tape is then marked as holding no pass.

use super::plan::UnitKind;
use crate::criteria::Reduction;
use crate::error::{Error, Result, Shape};
use crate::feed::Feed;
use crate::spec::GraphSpec;
use crate::tape::{ensure_shape, row_range, row_range_mut, Record, Tape};
use crate::Float;

fn pass_error(spec: &GraphSpec, message: String) -> Error {
    Error::Sequence {
        graph: spec.name.to_string(),
        message,
    }
}

/// What kind of thing input `i` takes, in words.
fn takes(spec: &GraphSpec, i: usize) -> &'static str {
    let state = spec.recurrent.iter().any(|&(s, _)| s == i);
    match (state, spec.inputs[i].ids) {
        (true, _) => "its initial value, (batch, width) values, or Carry or Absent (it is a recurrent state)",
        (false, true) => "integer ids: one per sample for a step, (steps, batch) for a sequence, or Absent",
        (false, false) => {
            "values: (batch, width) for a step, (steps, batch, width) for a sequence, or Absent"
        }
    }
}

fn feed_name<F>(feed: &Feed<'_, F>) -> &'static str {
    match feed {
        Feed::Values(_) => "Values",
        Feed::Ids(_) => "Ids",
        Feed::Seq(_) => "Seq",
        Feed::IdSeq(_) => "IdSeq",
        Feed::Carry => "Carry",
        Feed::Absent => "Absent",
    }
}

/// The steps and batch size the given inputs imply, and the first input
/// that gave them.
struct Dims {
    input: usize,
    steps: usize,
    batch: usize,
    seq: bool,
}

/// Checks `feeds` against the graph of `tape` (slot widths `widths`),
/// sizes the tape and copies them in. On error the tape holds no pass.
pub(crate) fn feeds<F: Float>(tape: &mut Tape<F>, widths: &[usize], feeds: &[Feed<'_, F>]) -> Result<()> {
    let had_pass = std::mem::replace(&mut tape.valid, false);
    let spec = tape.root.spec;
    if feeds.len() != spec.inputs.len() {
        return Err(Error::Arity {
            graph: spec.name.to_string(),
            what: "inputs",
            expected: spec.inputs.len(),
            found: feeds.len(),
        });
    }
    let state_of = |i: usize| spec.recurrent.iter().position(|&(s, _)| s == i);
    let width_error = |i: usize, found: usize| Error::InputWidth {
        graph: spec.name.to_string(),
        input: spec.inputs[i].name.to_string(),
        expected: widths[i],
        found,
    };
    let mut dims: Option<Dims> = None;
    let mut state_batch: Option<(usize, usize)> = None;
    for (i, feed) in feeds.iter().enumerate() {
        let (state, ids) = (state_of(i).is_some(), spec.inputs[i].ids);
        let found = match (feed, state, ids) {
            (Feed::Values(v), true, _) => {
                if v.ncols() != widths[i] {
                    return Err(width_error(i, v.ncols()));
                }
                state_batch.get_or_insert((i, v.nrows()));
                None
            }
            (Feed::Carry, true, _) | (Feed::Absent, _, _) => None,
            (Feed::Values(v), false, false) => {
                if v.ncols() != widths[i] {
                    return Err(width_error(i, v.ncols()));
                }
                Some((1, v.nrows(), false))
            }
            (Feed::Ids(x), false, true) => Some((1, x.len(), false)),
            (Feed::Seq(v), false, false) => {
                let (t, b, w) = v.dim();
                if w != widths[i] {
                    return Err(width_error(i, w));
                }
                Some((t, b, true))
            }
            (Feed::IdSeq(x), false, true) => Some((x.nrows(), x.ncols(), true)),
            (feed, _, _) => {
                return Err(Error::InvalidInput {
                    graph: spec.name.to_string(),
                    message: format!(
                        "input `{}` takes {}, not {}",
                        spec.inputs[i].name,
                        takes(spec, i),
                        feed_name(feed)
                    ),
                })
            }
        };
        let Some((steps, batch, seq)) = found else {
            continue;
        };
        match &dims {
            None => {
                dims = Some(Dims {
                    input: i,
                    steps,
                    batch,
                    seq,
                })
            }
            Some(d) => {
                let first = spec.inputs[d.input].name;
                let name = spec.inputs[i].name;
                if d.seq != seq {
                    let kind = |seq: bool| if seq { "a sequence" } else { "one step" };
                    return Err(pass_error(
                        spec,
                        format!(
                            "input `{name}` is {}, but `{first}` is {}: give every input that is not a state \
                             as one step or every one as a sequence",
                            kind(seq),
                            kind(d.seq)
                        ),
                    ));
                }
                if d.steps != steps {
                    return Err(pass_error(
                        spec,
                        format!(
                            "sequence `{name}` is {steps} steps of batch {batch}, but `{first}` is {} steps of batch {}",
                            d.steps, d.batch
                        ),
                    ));
                }
                if d.batch != batch {
                    return Err(Error::BatchMismatch {
                        graph: spec.name.to_string(),
                        first: first.to_string(),
                        expected: d.batch,
                        input: name.to_string(),
                        found: batch,
                    });
                }
            }
        }
    }
    let (first, steps, batch) = match (&dims, state_batch) {
        (Some(d), _) => (d.input, d.steps, d.batch),
        (None, Some((i, b))) => (i, 1, b),
        (None, None) => {
            return Err(pass_error(
                spec,
                "no input gives the batch size: every input is Absent or Carry".into(),
            ))
        }
    };
    if let Some((i, b)) = state_batch {
        if b != batch {
            return Err(Error::BatchMismatch {
                graph: spec.name.to_string(),
                first: spec.inputs[first].name.to_string(),
                expected: batch,
                input: spec.inputs[i].name.to_string(),
                found: b,
            });
        }
    }
    if steps == 0 {
        return Err(pass_error(spec, "the sequence has no steps".into()));
    }
    let Some(rows) = steps.checked_mul(batch) else {
        return Err(pass_error(
            spec,
            format!("{steps} steps of batch {batch} are too many rows"),
        ));
    };

    // A carried state starts where the last completed pass of this batch
    // size ended: kept before the buffers are reused.
    for (k, &(i, o)) in spec.recurrent.iter().enumerate() {
        if !matches!(feeds[i], Feed::Carry) {
            continue;
        }
        if had_pass && tape.batch == batch {
            let last = (tape.steps - 1) * batch..tape.steps * batch;
            ensure_shape(&mut tape.carry[k], batch, widths[i]);
            tape.carry[k].assign(&row_range(&tape.root.values[spec.output_slot(o)], last));
        } else {
            ensure_shape(&mut tape.carry[k], 0, 0);
        }
    }
    tape.root.resize(rows);
    tape.steps = steps;
    tape.batch = batch;
    let root = &mut tape.root;
    let mut any_absent = false;
    for (i, feed) in feeds.iter().enumerate() {
        tape.absent[i] = false;
        match (feed, state_of(i)) {
            (Feed::Values(v), Some(_)) => copy_into(&mut root.values[i], v.iter(), v.as_slice()),
            (Feed::Values(v), None) => copy_into(&mut root.values[i], v.iter(), v.as_slice()),
            (Feed::Ids(x), _) => root.ids[i].copy_from_slice(x),
            (Feed::Seq(v), _) => copy_into(&mut root.values[i], v.iter(), v.as_slice()),
            (Feed::IdSeq(x), _) => root.ids[i].iter_mut().zip(x.iter()).for_each(|(d, &s)| *d = s),
            (Feed::Carry, Some(k)) if tape.carry[k].dim() == (batch, widths[i]) => {
                row_range_mut(&mut root.values[i], 0..batch).assign(&tape.carry[k])
            }
            (Feed::Carry | Feed::Absent, Some(_)) => {
                row_range_mut(&mut root.values[i], 0..batch).fill(F::zero())
            }
            (_, None) => {
                tape.absent[i] = true;
                any_absent = true;
            }
        }
    }
    skip_absent(tape, any_absent)
}

/// Copies values in row-major order into the first rows of `to`: from a
/// contiguous slice where there is one.
fn copy_into<'a, F: Float>(
    to: &mut ndarray::Array2<F>,
    all: impl Iterator<Item = &'a F>,
    contiguous: Option<&[F]>,
) {
    let to = to.as_slice_mut().expect("tape buffers are contiguous");
    match contiguous {
        Some(from) => to[..from.len()].copy_from_slice(from),
        None => to.iter_mut().zip(all).for_each(|(d, &s)| *d = s),
    }
}

/// Marks the units that depend on an absent input (their values NaN); an
/// error if a state depends on one.
fn skip_absent<F: Float>(tape: &mut Tape<F>, any_absent: bool) -> Result<()> {
    tape.any_skipped = false;
    if !any_absent {
        return Ok(());
    }
    let plan = &*tape.plan;
    let spec = tape.root.spec;
    for u in 0..plan.units.len() {
        let unit = &plan.units[u];
        let reads_absent = plan.reads[unit.reads.clone()].iter().any(|&i| tape.absent[i]);
        let skip = reads_absent || plan.deps[unit.deps.clone()].iter().any(|&d| tape.skipped[d]);
        tape.skipped[u] = skip;
        if !skip {
            continue;
        }
        tape.any_skipped = true;
        let record = tape.root.at_mut(plan.path(u));
        match unit.kind {
            UnitKind::Node | UnitKind::Leave { .. } | UnitKind::Fused { .. } => {
                for &k in &plan.computes[unit.computes.clone()] {
                    // A slot whose values lie in another's (a part of a
                    // fused sum) is filled with it.
                    let slot = record.spec.node_slot(k);
                    record.values[slot].fill(F::nan());
                }
            }
            UnitKind::Enter { .. } | UnitKind::Link { .. } => {}
            UnitKind::Carry { .. } => {
                let (i, _) = spec.recurrent[unit.node];
                return Err(pass_error(
                    spec,
                    format!(
                        "the state `{}` depends on {}, which is Absent: give it",
                        spec.inputs[i].name,
                        absent_names(tape)
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn absent_names<F>(tape: &Tape<F>) -> String {
    let spec = tape.root.spec;
    let names: Vec<String> = (0..spec.inputs.len())
        .filter(|&i| tape.absent[i])
        .map(|i| format!("`{}`", spec.inputs[i].name))
        .collect();
    names.join(", ")
}

/// Whether output `o` was not computed by the last pass.
fn output_skipped<F>(tape: &Tape<F>, o: usize) -> bool {
    tape.any_skipped && tape.plan.output_units[o].is_some_and(|u| tape.skipped[u])
}

fn not_computed<F>(tape: &Tape<F>, o: usize) -> Error {
    let spec = tape.root.spec;
    pass_error(
        spec,
        format!(
            "output `{}` was not computed: it depends on {}, which the forward pass was given as Absent",
            spec.outputs[o].name,
            absent_names(tape)
        ),
    )
}

/// Checks that `tape` holds a completed forward pass.
pub(crate) fn completed<F>(tape: &Tape<F>) -> Result<()> {
    if tape.valid {
        Ok(())
    } else {
        Err(crate::tape::no_forward(tape.root.spec, tape.steps > 0))
    }
}

/// Clears the gradients and adds `grads` (one per output: `(T·B, width)`
/// or `(T, B, width)` values, or Absent for zero) as the seed of backward.
pub(crate) fn output_grads<F: Float>(tape: &mut Tape<F>, grads: &[Feed<'_, F>]) -> Result<()> {
    completed(tape)?;
    let spec = tape.root.spec;
    if grads.len() != spec.outputs.len() {
        return Err(Error::Arity {
            graph: spec.name.to_string(),
            what: "output gradients",
            expected: spec.outputs.len(),
            found: grads.len(),
        });
    }
    let (steps, batch) = (tape.steps, tape.batch);
    for (o, feed) in grads.iter().enumerate() {
        let width = tape.root.widths[spec.output_slot(o)];
        let (fits, expected): (bool, &[usize]) = match feed {
            Feed::Absent => continue,
            Feed::Values(v) => (v.dim() == (steps * batch, width), &[steps * batch, width]),
            Feed::Seq(v) => (v.dim() == (steps, batch, width), &[steps, batch, width]),
            other => {
                return Err(Error::InvalidInput {
                    graph: spec.name.to_string(),
                    message: format!(
                        "the gradient for output `{}` takes values, (batch, width) for a step or \
                         (steps, batch, width) for a sequence, or Absent, not {}",
                        spec.outputs[o].name,
                        feed_name(other)
                    ),
                })
            }
        };
        if !fits {
            let found = match feed {
                Feed::Values(v) => Shape::from(v.shape()),
                Feed::Seq(v) => Shape::from(v.shape()),
                _ => Shape(Vec::new()),
            };
            return Err(Error::GradShape {
                graph: spec.name.to_string(),
                output: spec.outputs[o].name.to_string(),
                expected: Shape::from(expected),
                found,
            });
        }
        if output_skipped(tape, o) {
            return Err(not_computed(tape, o));
        }
    }
    tape.clear_grads(|slot| {
        (0..spec.outputs.len()).any(|o| spec.output_slot(o) == slot && !matches!(grads[o], Feed::Absent))
    });
    for (o, feed) in grads.iter().enumerate() {
        let slot = spec.output_slot(o);
        let seed = tape.root.grads[slot]
            .as_slice_mut()
            .expect("tape buffers are contiguous");
        let add = |seed: &mut [F], from: Option<&[F]>, all: &mut dyn Iterator<Item = &F>| match from {
            Some(g) => seed.iter_mut().zip(g).for_each(|(d, &g)| *d += g),
            None => seed.iter_mut().zip(all).for_each(|(d, &g)| *d += g),
        };
        match feed {
            Feed::Values(v) => add(seed, v.as_slice(), &mut v.iter()),
            Feed::Seq(v) => add(seed, v.as_slice(), &mut v.iter()),
            _ => {}
        }
    }
    Ok(())
}

/// Clears the gradients, seeds every loss output (a criterion node among
/// the outputs) with the gradient of `reduction` over all `T·B` losses,
/// and returns the reduced loss.
pub(crate) fn loss_grads<F: Float>(tape: &mut Tape<F>, reduction: Reduction) -> Result<F> {
    completed(tape)?;
    let spec = tape.root.spec;
    let losses = || (0..spec.outputs.len()).filter(|&o| spec.nodes[spec.outputs[o].node].loss);
    if losses().next().is_none() {
        return Err(pass_error(
            spec,
            "the graph has no loss output (a criterion node among its outputs)".into(),
        ));
    }
    if let Some(o) = losses().find(|&o| output_skipped(tape, o)) {
        return Err(not_computed(tape, o));
    }
    tape.clear_grads(|slot| losses().any(|o| spec.output_slot(o) == slot));
    let scale = F::from_f64(reduction.scale(tape.steps * tape.batch));
    let mut total = F::zero();
    for o in losses() {
        let slot = spec.output_slot(o);
        total += tape.root.values[slot].sum() * scale;
        tape.root.grads[slot].fill(scale);
    }
    Ok(total)
}

/// A loss written per step and output: `(step, output, value, gradient)`,
/// the gradient buffer given when the loss's gradient is wanted.
pub(crate) type StepTerm<'a, F> = &'a mut dyn FnMut(
    usize,
    usize,
    ndarray::ArrayView2<'_, F>,
    Option<ndarray::ArrayViewMut2<'_, F>>,
) -> Result<F>;

/// Calls `term` on each computed output at each step of the pass on `tape`
/// and returns the sum; with `grads`, the gradients are cleared first and
/// each term adds its gradient into its output's buffer.
pub(crate) fn each_step<F: Float>(tape: &mut Tape<F>, grads: bool, term: StepTerm<'_, F>) -> Result<F> {
    completed(tape)?;
    let spec = tape.root.spec;
    if grads {
        tape.clear_grads(|slot| (0..spec.outputs.len()).any(|o| spec.output_slot(o) == slot));
    }
    let (steps, batch) = (tape.steps, tape.batch);
    let mut total = F::zero();
    for t in 0..steps {
        for o in 0..spec.outputs.len() {
            if output_skipped(tape, o) {
                continue;
            }
            let slot = spec.output_slot(o);
            let rows = t * batch..(t + 1) * batch;
            let Record {
                values,
                grads: buffers,
                ..
            } = &mut tape.root;
            let grad = grads.then(|| row_range_mut(&mut buffers[slot], rows.clone()));
            total += term(t, o, row_range(&values[slot], rows), grad)?;
        }
    }
    Ok(total)
}
