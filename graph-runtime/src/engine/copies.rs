//! The copy units of a plan (`Enter`, `Leave`, `Link`, `Carry`): values
//! handed between a graph and the graphs nested in it, and a recurrent
//! state carried to the next step; backward, the gradients added back the
//! other way. Each is resolved to two slots' rows ([`RowCopy`]) and then
//! copied row by row, so that the threads of a split loop can each copy
//! their own rows.

use super::plan::{Block, Hop, Plan, UnitKind};
use super::visit::grad_wanted;
use crate::kernels::{pool, vectorised};
use crate::spec::Fusion;
use crate::spec::{GraphSpec, NodeKind};
use crate::tape::{Held, OuterSlot, Record, SlotPtr};
use crate::Float;
use std::ops::Range;

/// One copy unit, resolved: columns `from_cols` of slot `from` into
/// columns `to_cols` of slot `to`, assigned (forward) or added (backward).
/// A carry reads or writes its state one step later than the step it runs
/// at (`from_later`, `to_later`: a step's rows later), and does nothing at
/// the last step.
#[derive(Debug, Clone)]
pub(super) struct RowCopy<F> {
    from: SlotPtr<F>,
    from_cols: Range<usize>,
    to: SlotPtr<F>,
    to_cols: Range<usize>,
    add: bool,
    from_later: usize,
    to_later: usize,
}

impl<F: Float> RowCopy<F> {
    /// Copies at the step whose rows (or part of them) are `rows`.
    ///
    /// # Safety
    /// The slot pointers were taken in this pass, and no other thread reads
    /// or writes the rows this writes, nor writes the rows it reads.
    pub(super) unsafe fn run(&self, rows: Range<usize>) {
        // SAFETY (both calls): as this function's caller guarantees.
        if rows.len() * self.from_cols.len() < WIDE_COPY {
            // A few values: not worth choosing the vector width for (a
            // batch-1 cell copies a handful per step).
            unsafe { self.run_rows(rows) }
        } else {
            unsafe { run_wide(self, rows) }
        }
    }

    /// [`run`](Self::run), for the vectors it is compiled for
    /// ([`run_wide`]).
    ///
    /// # Safety
    /// As [`run`](Self::run).
    #[inline(always)]
    unsafe fn run_rows(&self, rows: Range<usize>) {
        let later = self.from_later.max(self.to_later);
        let end = rows
            .end
            .min(self.from.rows().min(self.to.rows()).saturating_sub(later));
        if rows.start >= end {
            return;
        }
        let from_rows = rows.start + self.from_later..end + self.from_later;
        let to_rows = rows.start + self.to_later..end + self.to_later;
        // SAFETY: as this function's caller guarantees.
        let (src, mut dst) = unsafe {
            (
                self.from.view(from_rows, self.from_cols.clone()),
                self.to.view_mut(to_rows, self.to_cols.clone()),
            )
        };
        for (mut d, s) in dst.rows_mut().into_iter().zip(src.rows()) {
            let (Some(d), Some(s)) = (d.as_slice_mut(), s.to_slice()) else {
                continue;
            };
            if self.add {
                d.iter_mut().zip(s).for_each(|(d, &s)| *d += s);
            } else {
                d.copy_from_slice(s);
            }
        }
    }
}

vectorised! {
    /// [`RowCopy::run`] for the widest vectors the CPU has (a stack's
    /// state groups are copied row by row, and backward adds).
    ///
    /// # Safety
    /// As [`RowCopy::run`].
    unsafe fn run_wide<F: Float>(copy: &RowCopy<F>, rows: Range<usize>) => RowCopy::run_rows
}

impl<F: Float> RowCopy<F> {
    /// [`RowCopy::run`] over many rows (a copy outside a loop, over all
    /// of a sequence's rows), split across the pool's threads by runs of
    /// rows: on one thread the other waited for it.
    ///
    /// # Safety
    /// As [`RowCopy::run`], for the calling thread and the pool's.
    pub(super) unsafe fn run_split(&self, rows: Range<usize>) {
        let (n, width) = (rows.len(), self.from_cols.len());
        let parts = if n * width >= PARALLEL_COPY {
            pool::threads().min(n).max(1)
        } else {
            1
        };
        if parts == 1 {
            // SAFETY: as this function's caller guarantees.
            return unsafe { self.run(rows) };
        }
        pool::run_rows(parts, n, 1, &|_, run| {
            // SAFETY: each thread copies its own rows (`run_rows` splits
            // them), as the caller guarantees for all of them.
            unsafe { self.run(rows.start + run.start..rows.start + run.end) }
        });
    }
}

/// Values a copy moves at least before it runs compiled for wide vectors.
const WIDE_COPY: usize = 256;

/// Values a copy moves at least before it is split across threads.
const PARALLEL_COPY: usize = 1 << 16;

/// The nested graph's input that host node `host`'s input `j` feeds.
pub(super) fn entry(spec: &GraphSpec, host: usize, j: usize) -> Option<usize> {
    match spec.nodes[host].kind {
        NodeKind::Nested { to } => to.get(j).copied(),
        NodeKind::Stack => Some(j),
        _ => None,
    }
}

/// The record `hops` below `record` (itself for none).
fn below<'r, F>(mut record: &'r Record<F>, hops: &[Hop]) -> &'r Record<F> {
    for h in hops {
        record = &record.nested[h.node][h.layer];
    }
    record
}

/// Whether copy unit `u` copies ids (an `Enter` of an ids input), which
/// [`resolve`] leaves to the caller.
pub(super) fn copies_ids<F: Float>(root: &Record<F>, plan: &Plan, u: usize) -> bool {
    let unit = &plan.units[u];
    let UnitKind::Enter { .. } = unit.kind else {
        return false;
    };
    let source = root.at(plan.source(u));
    let from = unit.source_slot;
    from < source.spec.inputs.len() && source.spec.inputs[from].ids
}

/// Copy unit `u` resolved to its slots, for a pass of `batch` rows per
/// step; `None` when it copies nothing (a gradient not wanted, a layer or
/// input that is not there) or copies ids (see [`copies_ids`]).
pub(super) fn resolve<F: Float>(
    root: &Record<F>,
    plan: &Plan,
    u: usize,
    batch: usize,
    back: bool,
) -> Option<RowCopy<F>> {
    let unit = &plan.units[u];
    let (source, path, from) = (plan.source(u), plan.path(u), unit.source_slot);
    // The forward direction: from, its columns, to, its columns, and how
    // many rows later the destination is (a carry's state).
    let (src, src_cols, dst, dst_cols, later) = match unit.kind {
        // The source's rows into the input of the nested graph it enters;
        // the source is the host's input or, when the host's graph only
        // passes it on, a slot of a graph further out.
        UnitKind::Enter {
            input: j,
            layer,
            outer,
            inner,
        } => {
            if copies_ids(root, plan, u) {
                return None;
            }
            let outer_record = root.at(source);
            let host = below(outer_record, &path[source.len()..]);
            let dst = host.nested[unit.node].get(layer)?;
            let i = entry(host.spec, unit.node, j)?;
            if back && !grad_wanted(outer_record.spec, &outer_record.input_grads, from) {
                return None;
            }
            let from_cols = Block::columns(outer, outer_record.widths[from]);
            let to_cols = Block::columns(inner, dst.widths[i]);
            let ptrs = |r: &Record<F>, s: usize| if back { r.grad_ptrs[s] } else { r.value_ptrs[s] };
            (ptrs(outer_record, from), from_cols, ptrs(dst, i), to_cols, 0)
        }
        // A nested graph's output (read where it is made, however deep)
        // into its node here.
        UnitKind::Leave { outer, inner, .. } => {
            let dst = root.at(path);
            let slot = dst.spec.node_slot(unit.node);
            let src = below(dst, &source[path.len()..]);
            let to_cols = Block::columns(outer, dst.widths[slot]);
            let from_cols = Block::columns(inner, src.widths[from]);
            let ptrs = |r: &Record<F>, s: usize| if back { r.grad_ptrs[s] } else { r.value_ptrs[s] };
            (ptrs(src, from), from_cols, ptrs(dst, slot), to_cols, 0)
        }
        // The output 0 of a stack's layer below into input 0 of layer `layer`.
        UnitKind::Link { layer } => {
            let layers = &root.at(path).nested[unit.node];
            if layer == 0 || layer >= layers.len() || source.len() <= path.len() {
                return None;
            }
            let src = below(&layers[layer - 1], &source[path.len() + 1..]);
            let dst = &layers[layer];
            let ptrs = |r: &Record<F>, s: usize| if back { r.grad_ptrs[s] } else { r.value_ptrs[s] };
            let (a, b) = (ptrs(src, from), ptrs(dst, 0));
            (a, 0..a.width(), b, 0..b.width(), 0)
        }
        // Recurrent pair `node`'s output at step `t` into its state input
        // at step `t + 1`, the columns of `block`.
        UnitKind::Carry { block } => {
            let spec = root.spec;
            let (i, o) = spec.recurrent[unit.node];
            let out = spec.output_slot(o);
            let cols = Block::columns(block, root.widths[i]);
            let ptrs = |s: usize| {
                if back {
                    root.grad_ptrs[s]
                } else {
                    root.value_ptrs[s]
                }
            };
            (ptrs(out), cols.clone(), ptrs(i), cols, batch)
        }
        UnitKind::Node | UnitKind::Fused { .. } => return None,
    };
    // A nested cell's state that its fused pass keeps where the enclosing
    // graph does (`shared_states`) is there already.
    if later == 0 && src.same_columns(&src_cols, &dst, &dst_cols) {
        return None;
    }
    Some(if back {
        // The gradient goes the other way, added.
        RowCopy {
            from: dst,
            from_cols: dst_cols,
            to: src,
            to_cols: src_cols,
            add: true,
            from_later: later,
            to_later: 0,
        }
    } else {
        RowCopy {
            from: src,
            from_cols: src_cols,
            to: dst,
            to_cols: dst_cols,
            add: false,
            from_later: 0,
            to_later: later,
        }
    })
}

/// A slot of a nested record that needs no copy: its record's path, the
/// slot, whether its gradients are shared too (or only its values), and
/// where it is instead.
pub(crate) struct SharedState {
    pub path: Vec<Hop>,
    pub slot: usize,
    pub grads: bool,
    pub at: OuterSlot,
}

/// The `Enter` and `Leave` copies of a fused LSTM cell's state that the
/// cell's pass can do without, reading and writing the columns of the
/// enclosing graph's slot in place: a state `c` entering the cell (its
/// values and gradients: the enclosing slot's columns have no other
/// reader, so their gradient is the cell's), and `c_next`, `h_next`
/// leaving it (their values only: the enclosing slot's gradient is its
/// own readers', the cell's adds what the cell reads). Only slots no
/// layer reads qualify, since the fused pass alone addresses the strided
/// columns (a layer reads its input as contiguous rows).
pub(crate) fn shared_states<F: Float>(root: &Record<F>, plan: &Plan) -> Vec<SharedState> {
    // The records with a fused group, and the group.
    let fused: Vec<(&[Hop], usize)> = (0..plan.units.len())
        .filter_map(|u| match plan.units[u].kind {
            UnitKind::Fused { fusion } => Some((plan.path(u), fusion)),
            _ => None,
        })
        .collect();
    // Whether `slot` of the record at `path` is the state entering a fused
    // group there (`entering`) or one leaving it, read by the group's nodes
    // alone.
    let group_slot = |path: &[Hop], slot: usize, entering: bool| {
        let spec = root.at(path).spec;
        fused.iter().any(|&(p, fusion)| {
            let Fusion::LstmGates(group) = &spec.fusions[fusion];
            let state = if entering {
                slot == group.c
            } else {
                slot == spec.node_slot(group.c_next) || slot == spec.node_slot(group.h_next)
            };
            p == path
                && state
                && spec
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.inputs.contains(&slot))
                    .all(|(k, _)| group.nodes().contains(&k))
        })
    };
    let own = |r: &Record<F>, s: usize, grads: bool| {
        r.kept[s] && r.values_held[s] == Held::Own && (!grads || r.grads_held[s] == Held::Own)
    };
    let mut shared: Vec<SharedState> = Vec::new();
    for u in 0..plan.units.len() {
        let unit = &plan.units[u];
        let (path, source, from) = (plan.path(u), plan.source(u), unit.source_slot);
        match unit.kind {
            UnitKind::Enter {
                input: j,
                layer,
                outer,
                inner: None,
            } => {
                if copies_ids(root, plan, u) || !path.starts_with(source) {
                    continue;
                }
                let host = root.at(path);
                let Some(i) = entry(host.spec, unit.node, j) else {
                    continue;
                };
                if host.nested[unit.node].get(layer).is_none() {
                    continue;
                }
                let mut inner_path = path.to_vec();
                inner_path.push(Hop {
                    node: unit.node,
                    layer,
                });
                let (src, dst) = (root.at(source), root.at(&inner_path));
                // The enclosing slot is read by one node (the host this copy
                // enters, or the one on the way to it) and is no output.
                let readers = src.spec.nodes.iter().filter(|n| n.inputs.contains(&from)).count();
                let output =
                    |r: &Record<F>, s: usize| (0..r.spec.outputs.len()).any(|o| r.spec.output_slot(o) == s);
                if readers != 1
                    || output(src, from)
                    || output(dst, i)
                    || !own(src, from, true)
                    || !own(dst, i, true)
                {
                    continue;
                }
                if !group_slot(&inner_path, i, true) {
                    continue;
                }
                let cols = Block::columns(outer, src.widths[from]);
                if cols.len() != dst.widths[i] {
                    continue;
                }
                shared.push(SharedState {
                    path: inner_path,
                    slot: i,
                    grads: true,
                    at: OuterSlot {
                        path: source.to_vec(),
                        slot: from,
                        start: cols.start,
                        width: cols.len(),
                    },
                });
            }
            UnitKind::Leave {
                outer, inner: None, ..
            } => {
                if !source.starts_with(path) || source.len() == path.len() {
                    continue;
                }
                let (src, dst) = (root.at(source), root.at(path));
                let to = dst.spec.node_slot(unit.node);
                if !own(src, from, false) || !own(dst, to, false) {
                    continue;
                }
                // One destination per slot: the first copy out of it.
                if !group_slot(source, from, false)
                    || shared.iter().any(|s| s.path == source && s.slot == from)
                {
                    continue;
                }
                let cols = Block::columns(outer, dst.widths[to]);
                if cols.len() != src.widths[from] {
                    continue;
                }
                shared.push(SharedState {
                    path: source.to_vec(),
                    slot: from,
                    grads: false,
                    at: OuterSlot {
                        path: path.to_vec(),
                        slot: to,
                        start: cols.start,
                        width: cols.len(),
                    },
                });
            }
            _ => {}
        }
    }
    shared
}
