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

/// One step down a path through nested graphs: host node `node`, its
/// nested graph number `layer` (0 but in a stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hop {
    pub node: usize,
    pub layer: usize,
}

/// The specs of a graph instance and of the graphs nested in it, by host
/// node: what the plan is composed from.
#[derive(Debug, Clone)]
pub(crate) struct SpecTree {
    pub spec: &'static GraphSpec,
    /// Per node: the nested graphs' trees (one for a nested graph, one per
    /// layer for a stack, none for a layer).
    pub nested: Vec<Vec<SpecTree>>,
}

impl SpecTree {
    /// Into how many blocks of columns input `i` is read: the depth of the
    /// stack whose group it feeds (directly or through nested graphs), else 1.
    fn input_blocks(&self, i: usize) -> usize {
        let mut found = 1;
        for (k, node) in self.spec.nodes.iter().enumerate() {
            for (j, &s) in node.inputs.iter().enumerate() {
                if s != i {
                    continue;
                }
                let blocks = match node.kind {
                    NodeKind::Stack if j > 0 => self.nested[k].len(),
                    NodeKind::Nested { to } => self.nested[k].first().map_or(1, |t| t.input_blocks(to[j])),
                    _ => 1,
                };
                if blocks > 1 {
                    if found > 1 && found != blocks {
                        return 1;
                    }
                    found = blocks;
                }
            }
        }
        found
    }
}

/// Block `index` of `count` equal blocks of a slot's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub index: usize,
    pub count: usize,
}

impl Block {
    /// Block `index` of `count`, or the whole slot when `count` is 1.
    fn of(index: usize, count: usize) -> Option<Block> {
        (count > 1).then_some(Block { index, count })
    }

    /// Block `inner` of the columns of block `outer` (either the whole slot
    /// for `None`), as one block of the slot.
    fn within(outer: Option<Block>, inner: Option<Block>) -> Option<Block> {
        match (outer, inner) {
            (None, b) | (b, None) => b,
            (Some(o), Some(i)) => Some(Block {
                index: o.index * i.count + i.index,
                count: o.count * i.count,
            }),
        }
    }

    /// The columns of `block` in a slot `width` wide (all of them for `None`).
    #[inline]
    pub fn columns(block: Option<Block>, width: usize) -> Range<usize> {
        match block {
            None => 0..width,
            Some(b) => {
                let w = width / b.count;
                b.index * w..(b.index + 1) * w
            }
        }
    }
}

/// What a unit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnitKind {
    /// Runs the layer of node `node` of the graph at `path`.
    Node,
    /// Copies input `input` of host node `node` (of the graph at `path`)
    /// into nested graph `layer`'s input: columns `outer` of the source
    /// into columns `inner` (a block of a stack's group, or of a state
    /// passed through nested graphs to one).
    Enter {
        input: usize,
        layer: usize,
        outer: Option<Block>,
        inner: Option<Block>,
    },
    /// Copies nested graph `layer`'s output into node `node` (a
    /// `NodeKind::Output`) of the graph at `path`, columns `inner` into
    /// columns `outer`.
    Leave {
        layer: usize,
        outer: Option<Block>,
        inner: Option<Block>,
    },
    /// Copies output 0 of layer `layer - 1` of the stack at node `node` into
    /// input 0 of layer `layer`.
    Link { layer: usize },
    /// Copies recurrent pair `node`'s output at step `t` into its state
    /// input at step `t + 1` (top-level graph only), the columns of `block`:
    /// a stack's layers each carry their own block, so each stays a loop of
    /// its own.
    Carry { block: Option<Block> },
    /// Runs the group `spec.fusions[fusion]` of the graph at `path` as one
    /// unit (`node` is its first node).
    Fused { fusion: usize },
}

/// One unit of work, run over a range of rows.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub kind: UnitKind,
    /// The nested graphs leading from the top-level graph to the unit's
    /// graph, as a range of [`Plan::paths`].
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
    /// For a copy (`Enter`, `Leave`, `Link`): the graph it copies from, as
    /// a range of [`Plan::paths`], and the slot there. A nested graph's
    /// input that only feeds graphs nested deeper is not copied into it:
    /// the deeper copy reads the outer source; likewise a nested output
    /// that only leaves is read where it is made.
    pub source: Range<usize>,
    pub source_slot: usize,
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
    pub(crate) paths: Vec<Hop>,
    pub(crate) deps: Vec<usize>,
    pub(crate) reads: Vec<usize>,
    /// Per output of the top-level graph: the unit that computes it.
    pub(crate) output_units: Vec<Option<usize>>,
    /// The nodes units compute, and their names by path from the top-level
    /// graph (`layer1.hh`), for pictures and `Display`.
    pub(crate) computes: Vec<usize>,
    names: Vec<String>,
    /// Slots not copied into (a nested graph's input or output it only
    /// passes on): the graph's path, the slot, and where the value is.
    elided: Vec<(Vec<Hop>, usize, String)>,
}

impl Plan {
    /// The nested graphs leading to unit `u`'s graph.
    #[inline]
    pub(crate) fn path(&self, u: usize) -> &[Hop] {
        &self.paths[self.units[u].path.clone()]
    }

    /// The slots the plan does not copy into, by graph path.
    pub(crate) fn elided_slots(&self) -> impl Iterator<Item = (&[Hop], usize)> {
        self.elided.iter().map(|(p, s, _)| (p.as_slice(), *s))
    }

    /// Where the value of slot `slot` of the graph at `path` is, if the plan
    /// does not copy it there.
    pub(crate) fn elided(&self, path: &[Hop], slot: usize) -> Option<&str> {
        self.elided
            .iter()
            .find(|(p, s, _)| p == path && *s == slot)
            .map(|(_, _, source)| source.as_str())
    }

    /// The nested graphs leading to the graph copy unit `u` reads from.
    #[inline]
    pub(crate) fn source(&self, u: usize) -> &[Hop] {
        &self.paths[self.units[u].source.clone()]
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
        let top = b.graph(tree, Vec::new(), String::new(), Vec::new(), Vec::new());
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
    path: Vec<Hop>,
    /// Per slot: the units that produce it.
    producer: Vec<Producer>,
    /// Per node: the nested graphs' indices in `Builder::graphs`.
    nested: Vec<Vec<usize>>,
    /// Per slot: where its value is instead, if it is not copied.
    alias: Vec<Option<Alias>>,
    /// Its path from the top-level graph, as names: `y_lstm.`.
    prefix: String,
    /// Whether it is a layer of a stack.
    stack_layer: bool,
}

/// What produces a slot within a step.
#[derive(Debug, Clone, Default)]
enum Producer {
    /// Nothing in the plan (an input of the top-level graph, or a slot
    /// never written: see [`Alias`]).
    #[default]
    Nothing,
    /// One unit, all columns.
    Whole(usize),
    /// One unit per block of columns.
    Blocks(Vec<usize>),
}

impl Producer {
    /// The units a read of `block` (all columns for `None`) depends on.
    fn of(&self, block: Option<Block>) -> Vec<usize> {
        match (self, block) {
            (Producer::Nothing, _) => Vec::new(),
            (Producer::Whole(u), _) => vec![*u],
            (Producer::Blocks(us), Some(b)) if us.len() == b.count => vec![us[b.index]],
            (Producer::Blocks(us), _) => us.clone(),
        }
    }

    /// The unit that finishes the slot (the last block's), if any.
    fn last(&self) -> Option<usize> {
        match self {
            Producer::Nothing => None,
            Producer::Whole(u) => Some(*u),
            Producer::Blocks(us) => us.last().copied(),
        }
    }
}

/// A unit while the plan is composed.
struct Draft {
    kind: UnitKind,
    graph: usize,
    node: usize,
    /// The slots it reads, `(graph, slot, columns)`, resolved to units at
    /// the end (a fused unit reads slots produced after its first node).
    reads: Vec<(usize, usize, Option<Block>)>,
    /// Units it reads that are known when it is made (a nested output's).
    deps: Vec<usize>,
    /// The nodes it computes, and their names.
    computes: Vec<usize>,
    names: Vec<String>,
    /// For a copy: the graph and slot it copies from.
    source: (usize, usize),
}

/// Where a slot's value is, when it is not copied into the slot: a slot of
/// another graph (an outer one for a nested graph's input that only feeds
/// deeper graphs, an inner one for an output only given out), whole or
/// block by block.
#[derive(Debug, Clone)]
enum Alias {
    Whole(Source),
    Blocks(Vec<Source>),
}

/// A slot of graph `graph`, the columns of `block`.
#[derive(Debug, Clone, Copy)]
struct Source {
    graph: usize,
    slot: usize,
    block: Option<Block>,
}

/// Whether input `i` of `spec` is read by nested graphs and stacks only
/// (its `#[recurrent]` pairs do not matter: only the top-level graph's
/// states are carried).
fn passes_through(spec: &GraphSpec, i: usize) -> bool {
    let mut readers = spec.nodes.iter().filter(|n| n.inputs.contains(&i)).peekable();
    readers.peek().is_some() && readers.all(|n| matches!(n.kind, NodeKind::Nested { .. } | NodeKind::Stack))
}

/// The producer of a slot copied by `units`: one unit, or one per block.
fn producer_of(units: Vec<usize>) -> Producer {
    match units.as_slice() {
        [] => Producer::Nothing,
        [u] => Producer::Whole(*u),
        _ => Producer::Blocks(units),
    }
}

#[derive(Default)]
struct Builder {
    /// Whether the next graph composed is a stack's layer.
    layer_next: bool,
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
            source: (graph, usize::MAX),
        });
        self.units.len() - 1
    }

    /// A copy unit reading `source`: its read, its source.
    fn copy_from(&mut self, u: usize, source: Source) {
        self.units[u]
            .reads
            .push((source.graph, source.slot, source.block));
        self.units[u].source = (source.graph, source.slot);
    }

    /// Where a copy reading slot `slot` of graph `g`, columns `block`,
    /// reads: what the slot aliases, or the slot (aliases are made only
    /// where every reader can resolve them).
    fn source(&self, g: usize, slot: usize, block: Option<Block>) -> Source {
        self.resolve(g, slot, block).unwrap_or(Source {
            graph: g,
            slot,
            block,
        })
    }

    /// [`resolve`](Self::resolve), if the value is in a graph the one at
    /// `path` is nested in (copies into a nested graph read from above;
    /// the output of a stack's layer below is beside it, not above).
    fn outer(&self, g: usize, slot: usize, block: Option<Block>, path: &[Hop]) -> Option<Source> {
        self.resolve(g, slot, block)
            .filter(|src| path.starts_with(&self.graphs[src.graph].path))
    }

    /// Where the value of slot `slot` of graph `g`, columns `block`, is:
    /// the slot itself, or what it aliases. `None` when the alias cannot
    /// give those columns from one slot.
    fn resolve(&self, g: usize, slot: usize, block: Option<Block>) -> Option<Source> {
        match &self.graphs[g].alias[slot] {
            None => Some(Source {
                graph: g,
                slot,
                block,
            }),
            Some(Alias::Whole(src)) => Some(Source {
                block: Block::within(src.block, block),
                ..*src
            }),
            Some(Alias::Blocks(srcs)) => match block {
                Some(b) if srcs.len() == b.count => Some(srcs[b.index]),
                _ => None,
            },
        }
    }

    /// Unit `u` computes node `k` of graph `g`, named `name`.
    fn computes(&mut self, u: usize, g: usize, k: usize, name: String) {
        let slot = self.graphs[g].spec.node_slot(k);
        self.graphs[g].producer[slot] = Producer::Whole(u);
        self.units[u].computes.push(k);
        self.units[u].names.push(name);
    }

    /// Adds the units of the graph `tree` at `path` (and of its nested
    /// graphs) in evaluation order; returns its index. `inputs` are the
    /// units that produce its inputs (none for the top-level graph).
    fn graph(
        &mut self,
        tree: &SpecTree,
        path: Vec<Hop>,
        prefix: String,
        inputs: Vec<(usize, Producer)>,
        aliases: Vec<(usize, Alias)>,
    ) -> usize {
        let spec = tree.spec;
        let g = self.graphs.len();
        let mut producer = vec![Producer::Nothing; spec.slots()];
        for (i, p) in inputs {
            if let Some(slot) = producer.get_mut(i) {
                *slot = p;
            }
        }
        let mut alias = vec![None; spec.slots()];
        for (i, a) in aliases {
            if let Some(slot) = alias.get_mut(i) {
                *slot = Some(a);
            }
        }
        self.graphs.push(GraphAt {
            spec,
            path: path.clone(),
            producer,
            nested: vec![Vec::new(); spec.nodes.len()],
            alias,
            prefix: prefix.clone(),
            stack_layer: std::mem::take(&mut self.layer_next),
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
                    self.units[u]
                        .reads
                        .extend(sum.inputs.iter().map(|&s| (g, s, None)));
                    self.units[u].reads.push((g, group.c, None));
                    for n in group.nodes() {
                        self.computes(u, g, n, name(n));
                    }
                }
                continue;
            }
            match node.kind {
                NodeKind::Layer => {
                    let u = self.push(UnitKind::Node, g, k);
                    self.units[u]
                        .reads
                        .extend(node.inputs.iter().map(|&s| (g, s, None)));
                    self.computes(u, g, k, name(k));
                }
                NodeKind::Nested { to } => {
                    let Some(inner) = tree.nested.get(k).and_then(|n| n.first()) else {
                        continue;
                    };
                    let mut inner_path = path.clone();
                    inner_path.push(Hop { node: k, layer: 0 });
                    let (mut enters, mut aliases) = (Vec::new(), Vec::new());
                    for (j, &from) in node.inputs.iter().enumerate() {
                        let i = to[j];
                        // An input that only graphs nested deeper read is
                        // not copied here: they read its source.
                        if passes_through(inner.spec, i) {
                            if let Some(src) = self.outer(g, from, None, &inner_path) {
                                aliases.push((i, Alias::Whole(src)));
                                continue;
                            }
                        }
                        // An input that reaches a stack's group is copied
                        // block by block, so that each layer depends on its
                        // own block.
                        let blocks = inner.input_blocks(i);
                        let units: Vec<usize> = (0..blocks)
                            .map(|b| {
                                let block = Block::of(b, blocks);
                                let src = self.source(g, from, block);
                                let kind = UnitKind::Enter {
                                    input: j,
                                    layer: 0,
                                    outer: src.block,
                                    inner: block,
                                };
                                let u = self.push(kind, g, k);
                                self.copy_from(u, src);
                                u
                            })
                            .collect();
                        enters.push((i, producer_of(units)));
                    }
                    let n = self.graph(inner, inner_path, format!("{}.", name(k)), enters, aliases);
                    self.graphs[g].nested[k] = vec![n];
                }
                NodeKind::Stack => {
                    let layers = tree.nested.get(k).map_or(&[][..], Vec::as_slice);
                    let depth = layers.len();
                    for (l, inner) in layers.iter().enumerate() {
                        let mut inner_path = path.clone();
                        inner_path.push(Hop { node: k, layer: l });
                        let mut enters: Vec<(usize, Producer)> = Vec::with_capacity(node.inputs.len());
                        let mut aliases = Vec::new();
                        for (j, &from) in node.inputs.iter().enumerate() {
                            // What the layer reads, block `l` of a group.
                            let (graph, slot, block) = if j == 0 && l > 0 {
                                let below = self.graphs[g].nested[k][l - 1];
                                (below, self.graphs[below].spec.output_slot(0), None)
                            } else if j == 0 {
                                (g, from, None)
                            } else {
                                (g, from, Block::of(l, depth))
                            };
                            // A layer that only passes the input on to a
                            // graph nested in it is not copied into.
                            if passes_through(inner.spec, j) {
                                if let Some(src) = self.outer(graph, slot, block, &inner_path) {
                                    aliases.push((j, Alias::Whole(src)));
                                    continue;
                                }
                            }
                            let u = if j == 0 && l > 0 {
                                let below = self.graphs[g].nested[k][l - 1];
                                let slot = self.graphs[below].spec.output_slot(0);
                                let src = self.source(below, slot, None);
                                let u = self.push(UnitKind::Link { layer: l }, g, k);
                                self.copy_from(u, src);
                                u
                            } else {
                                let block = if j == 0 { None } else { Block::of(l, depth) };
                                let src = self.source(g, from, block);
                                let kind = UnitKind::Enter {
                                    input: j,
                                    layer: l,
                                    outer: src.block,
                                    inner: None,
                                };
                                let u = self.push(kind, g, k);
                                self.copy_from(u, src);
                                u
                            };
                            enters.push((j, Producer::Whole(u)));
                        }
                        self.layer_next = true;
                        let n = self.graph(inner, inner_path, format!("{}[{l}].", name(k)), enters, aliases);
                        self.graphs[g].nested[k].push(n);
                    }
                }
                NodeKind::Output { host, output } => self.leave(g, k, host, output, name(k)),
            }
        }
        g
    }

    /// The units of node `k` of graph `g`, output `output` of the nested
    /// graph or stack at node `host`: one copy, or one per block of a group.
    fn leave(&mut self, g: usize, k: usize, host: usize, output: usize, name: String) {
        let spec = self.graphs[g].spec;
        let inner = self.graphs[g].nested[host].clone();
        // (layer, output of the layer's graph, columns out there, columns here)
        let copies: Vec<(usize, usize, Option<Block>, Option<Block>)> = match spec.nodes[host].kind {
            NodeKind::Stack if output == 0 => vec![(inner.len().saturating_sub(1), 0, None, None)],
            NodeKind::Stack => (0..inner.len())
                .map(|l| (l, output - 1, None, Block::of(l, inner.len())))
                .collect(),
            _ => {
                let blocks = self.tree_output_blocks(&inner, output);
                (0..blocks)
                    .map(|b| (0, output, Block::of(b, blocks), Block::of(b, blocks)))
                    .collect()
            }
        };
        // Where each copy reads (the nested output, or what it aliases),
        // a copy of an output aliased block by block becoming one per block:
        // (layer, source, columns here).
        let mut pieces: Vec<(usize, Source, Option<Block>)> = Vec::new();
        for &(layer, from, in_block, out_block) in &copies {
            let Some(&n) = inner.get(layer) else { continue };
            let inner_spec = self.graphs[n].spec;
            if from >= inner_spec.outputs.len() {
                continue;
            }
            let at = inner_spec.output_slot(from);
            match (&self.graphs[n].alias[at], in_block) {
                (Some(Alias::Blocks(srcs)), None) => {
                    let count = srcs.len();
                    for (i, &src) in srcs.iter().enumerate() {
                        let here = Block::within(out_block, Some(Block { index: i, count }));
                        pieces.push((layer, src, here));
                    }
                }
                _ => pieces.push((layer, self.source(n, at, in_block), out_block)),
            }
        }
        let slot = spec.node_slot(k);
        // In a nested graph, an output that nothing here reads is not
        // copied: the graph outside reads it where it is made, whole or
        // block by block.
        let returned = spec.outputs.iter().any(|o| o.node == k);
        let read_here = spec.nodes.iter().any(|n| n.inputs.contains(&slot));
        // A stack's layer hands its output 0 to the next layer whole: that
        // output stays one copy unless it is one source.
        let linked = self.graphs[g].stack_layer && spec.outputs.first().is_some_and(|o| o.node == k);
        let alias = match pieces.as_slice() {
            [(_, src, None)] => Some(Alias::Whole(*src)),
            _ if linked => None,
            _ => {
                let count = pieces.len();
                let in_order = pieces
                    .iter()
                    .enumerate()
                    .all(|(i, (_, _, b))| *b == Some(Block { index: i, count }));
                in_order.then(|| Alias::Blocks(pieces.iter().map(|(_, src, _)| *src).collect()))
            }
        };
        if g != 0 && returned && !read_here {
            if let Some(alias) = alias {
                self.graphs[g].alias[slot] = Some(alias);
                return;
            }
        }
        let mut units = Vec::with_capacity(pieces.len());
        for (layer, src, out_block) in pieces {
            let kind = UnitKind::Leave {
                layer,
                outer: out_block,
                inner: src.block,
            };
            let u = self.push(kind, g, k);
            self.copy_from(u, src);
            units.push(u);
        }
        // The last copy computes the node (its value is whole only then).
        if let Some(&last) = units.last() {
            self.computes(last, g, k, name);
        }
        self.graphs[g].producer[slot] = producer_of(units);
    }

    /// Into how many blocks the nested graph `inner` (graph indices, one for
    /// a nested graph) writes its output `output`.
    fn tree_output_blocks(&self, inner: &[usize], output: usize) -> usize {
        let Some(&n) = inner.first() else { return 1 };
        let spec = self.graphs[n].spec;
        if output >= spec.outputs.len() {
            return 1;
        }
        let slot = spec.output_slot(output);
        match (&self.graphs[n].alias[slot], &self.graphs[n].producer[slot]) {
            (Some(Alias::Blocks(srcs)), _) => srcs.len(),
            (_, Producer::Blocks(us)) => us.len(),
            _ => 1,
        }
    }

    /// One carry unit per recurrent pair of the top-level graph, or one per
    /// block when the pair is a stack's group.
    fn carries(&mut self, tree: &SpecTree, top: usize) {
        for (pair, &(i, o)) in tree.spec.recurrent.iter().enumerate() {
            let out = tree.spec.output_slot(o);
            let blocks = match &self.graphs[top].producer[out] {
                Producer::Blocks(us) if tree.input_blocks(i) == us.len() => us.len(),
                _ => 1,
            };
            for b in 0..blocks {
                let block = Block::of(b, blocks);
                let u = self.push(UnitKind::Carry { block }, top, pair);
                self.units[u].reads.push((top, out, block));
            }
        }
    }

    fn finish(mut self) -> Plan {
        let n = self.units.len();
        // Reads become dependencies on the units that produce them, or, for
        // inputs of the top-level graph, reads of those inputs.
        let mut top_reads: Vec<Vec<(usize, Option<Block>)>> = vec![Vec::new(); n];
        for (unit, top) in self.units.iter_mut().zip(&mut top_reads) {
            for (g, s, block) in std::mem::take(&mut unit.reads) {
                let producer = self.graphs[g].producer.get(s).cloned().unwrap_or_default();
                match producer {
                    Producer::Nothing if g == 0 && s < self.graphs[0].spec.inputs.len() => {
                        top.push((s, block))
                    }
                    p => unit.deps.extend(p.of(block)),
                }
            }
        }
        let top = &self.graphs[0];
        let pairs = top.spec.recurrent;
        // Edges across steps: a reader of state input i reads the carry of
        // its pair (of its block, when the carry is by blocks).
        let carries_of = |i: usize| -> Vec<usize> {
            let Some(pair) = pairs.iter().position(|&(s, _)| s == i) else {
                return Vec::new();
            };
            (0..n)
                .filter(|&u| {
                    matches!(self.units[u].kind, UnitKind::Carry { .. }) && self.units[u].node == pair
                })
                .collect()
        };
        let deps: Vec<Vec<usize>> = self.units.iter().map(|d| d.deps.clone()).collect();
        let mut edges: Vec<Vec<usize>> = deps.clone();
        for (edges, reads) in edges.iter_mut().zip(&top_reads) {
            for &(i, block) in reads {
                let carries = carries_of(i);
                match block {
                    Some(b) if carries.len() == b.count => edges.push(carries[b.index]),
                    _ => edges.extend(carries),
                }
            }
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
            reads.extend(top_reads[u].iter().map(|&(i, _)| i));
            let c = computes.len()..computes.len() + d.computes.len();
            computes.extend(&d.computes);
            names.extend(d.names.iter().cloned());
            let (source_graph, source_slot) = d.source;
            let source = paths.len()..paths.len() + self.graphs[source_graph].path.len();
            paths.extend(&self.graphs[source_graph].path);
            units.push(Unit {
                kind: d.kind,
                path,
                node: d.node,
                deps: dep_range,
                reads: r,
                computes: c,
                source,
                source_slot,
            });
        }
        let name_of = |src: &Source| {
            let g = &self.graphs[src.graph];
            format!("{}{}", g.prefix, g.spec.slot_name(src.slot))
        };
        let elided = self
            .graphs
            .iter()
            .flat_map(|g| {
                g.alias.iter().enumerate().filter_map(|(slot, a)| {
                    let source = match a.as_ref()? {
                        Alias::Whole(src) => name_of(src),
                        Alias::Blocks(srcs) => srcs.iter().map(name_of).collect::<Vec<_>>().join("`, `"),
                    };
                    Some((g.path.clone(), slot, source))
                })
            })
            .collect();
        let top = &self.graphs[0];
        let output_units = (0..top.spec.outputs.len())
            .map(|o| top.producer[top.spec.output_slot(o)].last().map(|u| position[u]))
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
            elided,
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
        .filter(|&u| !matches!(kinds[u], UnitKind::Carry { .. }))
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
    done.extend(
        members
            .iter()
            .copied()
            .filter(|&u| matches!(kinds[u], UnitKind::Carry { .. })),
    );
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
