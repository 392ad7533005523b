//! Gradient buffers cleared step by step, inside the loop that first adds
//! to them, instead of all at once before backward.
//!
//! Backward adds into gradient buffers, so each must be zero before its
//! first contribution. Clearing a `(T·B, width)` buffer whole before the
//! pass writes it to memory, and the loop then reads it back step by step.
//! A buffer whose first contribution (in backward order) comes from a
//! loop is instead cleared one step's rows at a time, at the start of that
//! step, while the rows are about to be used: every unit of a loop writes,
//! at step `t`, only the rows of step `t` (a carry's gradient goes from
//! step `t + 1`'s state to step `t`'s output, at step `t`), and units that
//! run after the loop only add to what it wrote.
//!
//! The writers are found from the plan and the slots' holds: each unit's
//! backward adds to the gradients of what its forward read. The set may be
//! larger than the real one (a larger set only moves the clearing earlier).

use super::plan::{Hop, Plan, UnitKind};
use crate::tape::{Held, Record};
use crate::Float;
use std::ops::Range;

/// A gradient buffer (slot `slot` of the record at `path`, held in a buffer
/// of its own) that the loop starting at unit `loop_start` clears step by
/// step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoopClear {
    pub loop_start: usize,
    pub path: Vec<Hop>,
    pub slot: usize,
}

/// The gradient buffers of the graphs of `root` whose first writer in
/// backward runs in a loop of `plan`, with the loop.
pub(crate) fn loop_clears<F: Float>(root: &Record<F>, plan: &Plan) -> Vec<LoopClear> {
    // Per buffer: the last unit (in plan order) that adds to it, which is
    // the first to run backward.
    let mut last: Vec<(Vec<Hop>, usize, usize)> = Vec::new();
    for u in 0..plan.units.len() {
        for (path, slot) in writes(root, plan, u) {
            let Some((path, slot)) = own_buffer(root, path, slot) else {
                continue;
            };
            match last.iter_mut().find(|(p, s, _)| *p == path && *s == slot) {
                Some(entry) => entry.2 = entry.2.max(u),
                None => last.push((path, slot, u)),
            }
        }
    }
    last.into_iter()
        .filter_map(|(path, slot, u)| {
            let segment = plan.segments.iter().find(|s| s.units.contains(&u))?;
            let record = root.at(&path);
            // A buffer the pass writes whole needs no clearing at all.
            (segment.looped && !record.written[slot]).then_some(LoopClear {
                loop_start: segment.units.start,
                path,
                slot,
            })
        })
        .collect()
}

/// The slots (record path, slot) whose gradients unit `u`'s backward may
/// add to: those its forward reads.
fn writes<F: Float>(root: &Record<F>, plan: &Plan, u: usize) -> Vec<(Vec<Hop>, usize)> {
    let unit = &plan.units[u];
    let path = plan.path(u).to_vec();
    let record = root.at(&path);
    let spec = record.spec;
    match unit.kind {
        UnitKind::Node => spec.nodes[unit.node]
            .inputs
            .iter()
            .map(|&s| (path.clone(), s))
            .collect(),
        UnitKind::Fused { fusion } => {
            let crate::spec::Fusion::LstmGates(group) = &spec.fusions[fusion];
            let mut slots: Vec<usize> = spec.nodes[group.sum].inputs.to_vec();
            slots.push(group.c);
            slots.extend(group.inner().iter().map(|&k| spec.node_slot(k)));
            slots.extend([group.c_next, group.h_next].map(|k| spec.node_slot(k)));
            slots.into_iter().map(|s| (path.clone(), s)).collect()
        }
        // Backward, a copy adds into the slot it copied from.
        UnitKind::Enter { .. } | UnitKind::Leave { .. } => {
            vec![(plan.source(u).to_vec(), unit.source_slot)]
        }
        UnitKind::Link { layer } => {
            let source = plan.source(u);
            if layer == 0 || source.len() <= path.len() {
                return Vec::new();
            }
            let mut from = path.clone();
            from.push(Hop {
                node: unit.node,
                layer: layer - 1,
            });
            from.extend_from_slice(&source[path.len() + 1..]);
            vec![(from, unit.source_slot)]
        }
        UnitKind::Carry { .. } => {
            let (_, o) = spec.recurrent[unit.node];
            vec![(Vec::new(), spec.output_slot(o))]
        }
    }
}

/// The buffer slot `slot`'s gradients lie in: its own, or the slot whose
/// columns hold them; `None` for gradients no buffer holds (derived).
fn own_buffer<F: Float>(root: &Record<F>, path: Vec<Hop>, slot: usize) -> Option<(Vec<Hop>, usize)> {
    let record = root.at(&path);
    match record.grads_held.get(slot)? {
        Held::Own => Some((path, slot)),
        Held::In(w) => own_buffer(root, path, w.slot),
        Held::Outer(i) => {
            let o = &record.outer[*i];
            own_buffer(root, o.path.clone(), o.slot)
        }
        Held::Derived(_) => None,
    }
}

/// Zeroes rows `rows` (one step's, or a thread's part of them) of every
/// buffer the loop starting at unit `loop_start` clears, but the top-level
/// slots `seeded` (given gradients before backward).
///
/// # Safety
/// `root`'s pointers were taken in this pass; no other thread reads or
/// writes these rows of these buffers meanwhile.
pub(crate) unsafe fn clear_rows<F: Float>(
    root: &Record<F>,
    clears: &[LoopClear],
    seeded: &[bool],
    loop_start: usize,
    rows: Range<usize>,
) {
    for c in clears.iter().filter(|c| c.loop_start == loop_start) {
        if c.path.is_empty() && seeded.get(c.slot).copied().unwrap_or(false) {
            continue;
        }
        let ptr = root.at(&c.path).grad_ptrs[c.slot];
        if ptr.width() == 0 || rows.end > ptr.rows() {
            continue;
        }
        // SAFETY: as this function's caller guarantees; an own buffer's
        // rows are contiguous.
        unsafe { ptr.rows_mut(&rows) }.fill(F::zero());
    }
}
