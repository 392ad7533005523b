//! The plan of a pass: every layer of a graph and of the graphs nested in it
//! as one list of units, cut into segments that run either once over all
//! `T·B` rows of the tape or step by step (a loop).
//!
//! The plan is composed when a tape is made, from the specs of the
//! instance's graphs (a nested graph is often declared in another `graph!`
//! invocation, which the macro cannot see). Units depend on the units that
//! produce their inputs within a step, and the consumers of a recurrent
//! state depend on the state's carry from the previous step. The strongly
//! connected components of that graph are the loops: one per independent
//! recurrence, so the layers of a stack get a loop each, and what feeds a
//! loop from an earlier one (the input projection of an upper layer) runs
//! once over all rows between them. Everything outside a loop runs once
//! over all rows, in an order that follows the dependencies.

use crate::spec::{Fusion, GraphSpec, NodeKind};
use std::fmt;
use std::ops::Range;

/// The specs of a graph instance and of the graphs nested in it, by host
/// node: what the plan is composed from.
#[derive(Debug, Clone)]
pub(crate) struct SpecTree {
    pub spec: &'static GraphSpec,
    /// Per node: the nested graph's tree, for host nodes.
    pub nested: Vec<Option<SpecTree>>,
}

/// What a unit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitKind {
    /// Runs the layer of node `node` of the graph at `path`.
    Node,
    /// Copies input `input` of host node `node` (of the graph at `path`)
    /// into the nested graph's input.
    Enter { input: usize },
    /// Copies a nested graph's output into node `node` (a
    /// `NodeKind::Output`) of the graph at `path`.
    Leave,
    /// Copies recurrent pair `node`'s output at step `t` into its state
    /// input at step `t + 1` (top-level graph only).
    Carry,
    /// Runs the group `spec.fusions[fusion]` of the graph at `path` as one
    /// unit (`node` is its first node).
    Fused { fusion: usize },
}

/// One unit of work, run over a range of rows.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub kind: UnitKind,
    /// The host nodes leading from the top-level graph to the unit's graph,
    /// as a range of [`Plan::paths`].
    pub path: Range<usize>,
    /// The node (or, for `Carry`, the recurrent pair) the unit is about.
    pub node: usize,
    /// The units it reads within a step, as a range of [`Plan::deps`].
    pub deps: Range<usize>,
    /// The top-level inputs it reads directly, as a range of [`Plan::reads`].
    pub reads: Range<usize>,
    /// The nodes it computes (of the graph at `path`), as a range of
    /// [`Plan::computes`]: one for a layer or a copy out of a nested
    /// graph, every node of a fused group, none for other copies.
    pub computes: Range<usize>,
}

/// A run of units: once over all rows, or step by step.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// The units, in the order they run within a step.
    pub units: Range<usize>,
    /// Whether it is a loop (runs step by step).
    pub looped: bool,
}

/// The plan of a graph instance: units in the order they run, cut into
/// segments that run once over all steps' rows or step by step.
///
/// `Graph::plan` shows it: `{}` prints each segment with the nodes it runs
/// (nested graphs' nodes by their path, `layer1.hh`).
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) units: Vec<Unit>,
    pub(crate) segments: Vec<Segment>,
    /// Every unit as one segment that is no loop: a single step's plan.
    pub(crate) whole: Segment,
    pub(crate) paths: Vec<usize>,
    pub(crate) deps: Vec<usize>,
    pub(crate) reads: Vec<usize>,
    /// Per output of the top-level graph: the unit that computes it.
    pub(crate) output_units: Vec<Option<usize>>,
    /// The nodes units compute, and their names by path from the top-level
    /// graph (`layer1.hh`), for pictures and `Display`.
    pub(crate) computes: Vec<usize>,
    names: Vec<String>,
}

impl Plan {
    /// The host nodes leading to unit `u`'s graph.
    #[inline]
    pub(crate) fn path(&self, u: usize) -> &[usize] {
        &self.paths[self.units[u].path.clone()]
    }

    /// Number of segments.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Whether segment `s` is a loop (runs step by step); `false` past the end.
    pub fn is_loop(&self, s: usize) -> bool {
        self.segments.get(s).is_some_and(|seg| seg.looped)
    }

    /// The nodes segment `s` runs, in order, by their path from the top-level
    /// graph (`h2h`, `layer1.hh`); empty past the end. Copies into and out of
    /// nested graphs and the carries of states are not listed.
    pub fn nodes(&self, s: usize) -> Vec<&str> {
        let Some(seg) = self.segments.get(s) else {
            return Vec::new();
        };
        seg.units
            .clone()
            .filter(|&u| matches!(self.units[u].kind, UnitKind::Node | UnitKind::Fused { .. }))
            .flat_map(|u| {
                self.names[self.units[u].computes.clone()]
                    .iter()
                    .map(String::as_str)
            })
            .collect()
    }

    /// The nodes of the top-level graph that segment `s` computes (layers
    /// and outputs of nested graphs), by index.
    pub(crate) fn top_nodes(&self, s: usize) -> Vec<usize> {
        let Some(seg) = self.segments.get(s) else {
            return Vec::new();
        };
        seg.units
            .clone()
            .filter(|&u| self.units[u].path.is_empty())
            .flat_map(|u| self.computes[self.units[u].computes.clone()].iter().copied())
            .collect()
    }

    /// The segment that runs the node at `path` (`h2h`, `layer1.hh`).
    pub fn segment_of(&self, path: &str) -> Option<usize> {
        let u = (0..self.units.len()).find(|&u| {
            matches!(self.units[u].kind, UnitKind::Node | UnitKind::Fused { .. })
                && self.names[self.units[u].computes.clone()]
                    .iter()
                    .any(|n| n == path)
        })?;
        self.segments.iter().position(|seg| seg.units.contains(&u))
    }

    /// Whether the node at `path` is computed in a fused unit with others.
    pub fn is_fused(&self, path: &str) -> bool {
        (0..self.units.len()).any(|u| {
            matches!(self.units[u].kind, UnitKind::Fused { .. })
                && self.names[self.units[u].computes.clone()]
                    .iter()
                    .any(|n| n == path)
        })
    }

    /// Composes the plan of the instance whose graphs are `tree`.
    pub(crate) fn of(tree: &SpecTree) -> Plan {
        let mut b = Builder::default();
        let top = b.graph(tree, Vec::new(), String::new(), &[]);
        b.carries(tree, top);
        b.finish()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut loops = 0;
        for s in 0..self.segments.len() {
            let nodes = self.nodes(s);
            if nodes.is_empty() {
                continue;
            }
            if self.is_loop(s) {
                loops += 1;
                writeln!(f, "loop {loops}, step by step: {}", nodes.join(", "))?;
            } else {
                writeln!(f, "once over all steps: {}", nodes.join(", "))?;
            }
        }
        Ok(())
    }
}

/// One graph of the tree while the plan is composed.
struct GraphAt {
    spec: &'static GraphSpec,
    path: Vec<usize>,
    /// Per slot: the unit that produces it.
    producer: Vec<Option<usize>>,
    /// Per node: the nested graph's index in `Builder::graphs`.
    nested: Vec<Option<usize>>,
}

/// A unit while the plan is composed.
struct Draft {
    kind: UnitKind,
    graph: usize,
    node: usize,
    /// The slots it reads, `(graph, slot)`, resolved to units at the end
    /// (a fused unit reads slots produced after its first node).
    reads: Vec<(usize, usize)>,
    /// Units it reads that are known when it is made (a nested output's).
    deps: Vec<usize>,
    /// The nodes it computes, and their names.
    computes: Vec<usize>,
    names: Vec<String>,
}

#[derive(Default)]
struct Builder {
    graphs: Vec<GraphAt>,
    units: Vec<Draft>,
}

impl Builder {
    fn push(&mut self, kind: UnitKind, graph: usize, node: usize) -> usize {
        self.units.push(Draft {
            kind,
            graph,
            node,
            reads: Vec::new(),
            deps: Vec::new(),
            computes: Vec::new(),
            names: Vec::new(),
        });
        self.units.len() - 1
    }

    /// Unit `u` computes node `k` of graph `g`, named `name`.
    fn computes(&mut self, u: usize, g: usize, k: usize, name: String) {
        let slot = self.graphs[g].spec.node_slot(k);
        self.graphs[g].producer[slot] = Some(u);
        self.units[u].computes.push(k);
        self.units[u].names.push(name);
    }

    /// Adds the units of the graph `tree` at `path` (and of its nested
    /// graphs) in evaluation order; returns its index. `inputs` are the
    /// units that produce its inputs (none for the top-level graph).
    fn graph(
        &mut self,
        tree: &SpecTree,
        path: Vec<usize>,
        prefix: String,
        inputs: &[(usize, usize)],
    ) -> usize {
        let spec = tree.spec;
        let g = self.graphs.len();
        let mut producer = vec![None; spec.slots()];
        for &(i, u) in inputs {
            if let Some(p) = producer.get_mut(i) {
                *p = Some(u);
            }
        }
        self.graphs.push(GraphAt {
            spec,
            path: path.clone(),
            producer,
            nested: vec![None; spec.nodes.len()],
        });
        // The fused group of each node, if any.
        let mut fused: Vec<Option<usize>> = vec![None; spec.nodes.len()];
        for (f, fusion) in spec.fusions.iter().enumerate() {
            let Fusion::LstmGates(group) = fusion;
            for k in group.nodes() {
                if let Some(slot) = fused.get_mut(k) {
                    *slot = Some(f);
                }
            }
        }
        let mut made: Vec<bool> = vec![false; spec.fusions.len()];
        let name = |k: usize| format!("{prefix}{}", spec.nodes[k].name);
        for &k in spec.order {
            let node = &spec.nodes[k];
            if let Some(f) = fused[k] {
                if !std::mem::replace(&mut made[f], true) {
                    let Fusion::LstmGates(group) = &spec.fusions[f];
                    let u = self.push(UnitKind::Fused { fusion: f }, g, k);
                    let sum = &spec.nodes[group.sum];
                    self.units[u].reads.extend(sum.inputs.iter().map(|&s| (g, s)));
                    self.units[u].reads.push((g, group.c));
                    for n in group.nodes() {
                        self.computes(u, g, n, name(n));
                    }
                }
                continue;
            }
            match node.kind {
                NodeKind::Layer => {
                    let u = self.push(UnitKind::Node, g, k);
                    self.units[u].reads.extend(node.inputs.iter().map(|&s| (g, s)));
                    self.computes(u, g, k, name(k));
                }
                NodeKind::Nested { to } => {
                    let Some(inner) = tree.nested.get(k).and_then(Option::as_ref) else {
                        continue;
                    };
                    let mut inner_path = path.clone();
                    inner_path.push(k);
                    let enters: Vec<(usize, usize)> = (0..node.inputs.len())
                        .map(|j| {
                            let u = self.push(UnitKind::Enter { input: j }, g, k);
                            self.units[u].reads.push((g, node.inputs[j]));
                            (to[j], u)
                        })
                        .collect();
                    let n = self.graph(inner, inner_path, format!("{}.", name(k)), &enters);
                    self.graphs[g].nested[k] = Some(n);
                }
                NodeKind::Output { host, output } => {
                    let u = self.push(UnitKind::Leave, g, k);
                    if let Some(n) = self.graphs[g].nested[host] {
                        let inner_spec = self.graphs[n].spec;
                        if output < inner_spec.outputs.len() {
                            self.units[u].reads.push((n, inner_spec.output_slot(output)));
                        }
                    }
                    self.computes(u, g, k, name(k));
                }
            }
        }
        g
    }

    /// One carry unit per recurrent pair of the top-level graph.
    fn carries(&mut self, tree: &SpecTree, top: usize) {
        for (pair, &(_, o)) in tree.spec.recurrent.iter().enumerate() {
            let u = self.push(UnitKind::Carry, top, pair);
            self.units[u].reads.push((top, tree.spec.output_slot(o)));
        }
    }

    fn finish(mut self) -> Plan {
        let n = self.units.len();
        // Reads become dependencies on the units that produce them, or, for
        // inputs of the top-level graph, reads of those inputs.
        let mut top_reads: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (unit, top) in self.units.iter_mut().zip(&mut top_reads) {
            for (g, s) in std::mem::take(&mut unit.reads) {
                match self.graphs[g].producer.get(s).copied().flatten() {
                    Some(p) => unit.deps.push(p),
                    None if g == 0 && s < self.graphs[0].spec.inputs.len() => top.push(s),
                    None => {}
                }
            }
        }
        let top = &self.graphs[0];
        let pairs = top.spec.recurrent;
        // Edges across steps: a reader of state input i reads the carry of
        // its pair.
        let carry_of = |i: usize| {
            let pair = pairs.iter().position(|&(s, _)| s == i)?;
            (0..n).find(|&u| self.units[u].kind == UnitKind::Carry && self.units[u].node == pair)
        };
        let deps: Vec<Vec<usize>> = self.units.iter().map(|d| d.deps.clone()).collect();
        let mut edges: Vec<Vec<usize>> = deps.clone();
        for (edges, reads) in edges.iter_mut().zip(&top_reads) {
            edges.extend(reads.iter().filter_map(|&i| carry_of(i)));
        }
        let component = strongly_connected(&edges);
        let components = component.iter().copied().max().map_or(0, |c| c + 1);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); components];
        for u in 0..n {
            members[component[u]].push(u);
        }
        // Components in dependency order; among those ready, the one whose
        // first unit comes first in evaluation order.
        let mut waiting = vec![0usize; components];
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); components];
        for u in 0..n {
            for &d in &edges[u] {
                let (cu, cd) = (component[u], component[d]);
                if cu != cd {
                    waiting[cu] += 1;
                    readers[cd].push(cu);
                }
            }
        }
        let mut ready: Vec<usize> = (0..components).filter(|&c| waiting[c] == 0).collect();
        let mut order = Vec::with_capacity(components);
        while !ready.is_empty() {
            let (at, _) = ready
                .iter()
                .enumerate()
                .min_by_key(|(_, &c)| members[c][0])
                .expect("not empty");
            let c = ready.swap_remove(at);
            order.push(c);
            for &r in &readers[c] {
                waiting[r] -= 1;
                if waiting[r] == 0 {
                    ready.push(r);
                }
            }
        }
        // Segments: consecutive components that are not loops run together.
        let kinds: Vec<UnitKind> = self.units.iter().map(|d| d.kind).collect();
        let mut sequence: Vec<usize> = Vec::with_capacity(n);
        let mut segments: Vec<Segment> = Vec::new();
        for c in order {
            let looped = members[c].len() > 1;
            let start = sequence.len();
            if looped {
                sequence.extend(step_order(&members[c], &deps, &kinds));
            } else {
                sequence.extend(&members[c]);
            }
            match segments.last_mut() {
                Some(last) if !looped && !last.looped => last.units.end = sequence.len(),
                _ => segments.push(Segment {
                    units: start..sequence.len(),
                    looped,
                }),
            }
        }
        // Renumber units in the order they run.
        let mut position = vec![0; n];
        for (p, &u) in sequence.iter().enumerate() {
            position[u] = p;
        }
        let (mut paths, mut flat_deps, mut reads) = (Vec::new(), Vec::new(), Vec::new());
        let (mut computes, mut names) = (Vec::new(), Vec::new());
        let mut units = Vec::with_capacity(n);
        for &u in &sequence {
            let d = &self.units[u];
            let path = paths.len()..paths.len() + self.graphs[d.graph].path.len();
            paths.extend(&self.graphs[d.graph].path);
            let dep_range = flat_deps.len()..flat_deps.len() + d.deps.len();
            flat_deps.extend(d.deps.iter().map(|&v| position[v]));
            let r = reads.len()..reads.len() + top_reads[u].len();
            reads.extend(&top_reads[u]);
            let c = computes.len()..computes.len() + d.computes.len();
            computes.extend(&d.computes);
            names.extend(d.names.iter().cloned());
            units.push(Unit {
                kind: d.kind,
                path,
                node: d.node,
                deps: dep_range,
                reads: r,
                computes: c,
            });
        }
        let top = &self.graphs[0];
        let output_units = (0..top.spec.outputs.len())
            .map(|o| top.producer[top.spec.output_slot(o)].map(|u| position[u]))
            .collect();
        Plan {
            whole: Segment {
                units: 0..units.len(),
                looped: false,
            },
            units,
            segments,
            paths,
            deps: flat_deps,
            reads,
            output_units,
            computes,
            names,
        }
    }
}

/// The units of a loop in the order they run within a step: each after the
/// units it reads in the same step, carries last.
fn step_order(members: &[usize], deps: &[Vec<usize>], kinds: &[UnitKind]) -> Vec<usize> {
    let inside = |u: usize| members.contains(&u);
    let mut done: Vec<usize> = Vec::with_capacity(members.len());
    let body: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&u| kinds[u] != UnitKind::Carry)
        .collect();
    while done.len() < body.len() {
        let before = done.len();
        for &u in &body {
            if !done.contains(&u) && deps[u].iter().all(|&d| !inside(d) || done.contains(&d)) {
                done.push(u);
            }
        }
        if done.len() == before {
            // Within a step the graph is acyclic; this cannot happen, but
            // never loop forever.
            done.extend(body.iter().filter(|u| !done.contains(u)).collect::<Vec<_>>());
        }
    }
    done.extend(members.iter().copied().filter(|&u| kinds[u] == UnitKind::Carry));
    done
}

/// Tarjan's strongly connected components of the graph whose edges are
/// `edges[u]` (u reads each of them); returns each vertex's component.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<usize> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut component = vec![usize::MAX; n];
    let mut next_index = 0;
    let mut components = 0;
    // Iterative depth-first search: (vertex, next edge to look at).
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut e)) = call.last_mut() {
            if let Some(&w) = edges[v].get(*e) {
                *e += 1;
                if index[w] == usize::MAX {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        component[w] = components;
                        if w == v {
                            break;
                        }
                    }
                    components += 1;
                }
            }
        }
    }
    component
}

#[cfg(test)]
mod tests {
    use super::strongly_connected;

    #[test]
    fn components_of_two_loops_joined_by_a_chain() {
        // 0 <-> 1, 1 -> 2, 2 -> 3, 3 <-> 4 (u reads edges[u]).
        let edges = vec![vec![1], vec![0, 2], vec![3], vec![4], vec![3]];
        let c = strongly_connected(&edges);
        assert_eq!(c[0], c[1]);
        assert_eq!(c[3], c[4]);
        assert_ne!(c[0], c[2]);
        assert_ne!(c[2], c[3]);
        assert_ne!(c[0], c[3]);
    }
}
