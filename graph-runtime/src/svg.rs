//! Pictures of graphs as SVG, drawn here without graphviz: a layered
//! drawing, left to right. Each node is a box with its name, its layer and
//! its width; inputs and outputs stand out; a nested graph is a boxed
//! cluster holding its own drawing; recurrent pairs are dashed edges from
//! the output back to the input; where the plan has loops, each node says
//! when it runs over a sequence (once over all steps, or in which loop). A
//! checked-mode error can be drawn on the
//! picture: the failing node in red, the pass, step and value in a caption.
//!
//! The layout: a node's column is the longest path to it from the inputs;
//! within a column nodes are ordered by the mean position of their inputs
//! (a few sweeps); a nested graph is laid out first and placed as one tall
//! box. Our graphs are small DAGs, for which this is enough, and it keeps
//! clusters, which the pure-Rust DOT layout crates do not draw.

use crate::describe::Description;
use crate::engine::plan::Plan;
use crate::error::{Error, Pass};
use crate::spec::{GraphSpec, NodeKind};
use std::fmt::Write;

const CHAR_W: f64 = 7.2; // 12 px monospace
const LINE_H: f64 = 15.0;
const PAD: f64 = 8.0;
const COL_GAP: f64 = 46.0;
const ROW_GAP: f64 = 18.0;
const RECURRENT_GAP: f64 = 10.0;

/// A drawn box: an input, a node, a nested graph (collapsed, with ports),
/// a nested graph's drawing (a cluster), or a point a long edge passes.
struct Item {
    /// The slot it stands for in its graph (`usize::MAX` for a waypoint).
    slot: usize,
    lines: Vec<String>,
    role: Role,
    /// Whether it is the failing node.
    hot: bool,
    /// A nested graph's own drawing.
    inner: Option<Box<Block>>,
    /// A collapsed nested graph's inputs and outputs: one port each, on
    /// the left and the right side, labelled.
    ports_in: Vec<String>,
    ports_out: Vec<String>,
    w: f64,
    h: f64,
    x: f64,
    y: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Input,
    Node,
    Output,
    Cluster,
    /// A nested graph or stack drawn as one box.
    Nested,
    /// Where a long edge crosses a column (not drawn).
    Waypoint,
}

/// An edge: from an item (at its output port, if any) to an item (at its
/// input port), through waypoints, one per column it crosses.
struct Edge {
    from: (usize, Option<usize>),
    to: (usize, Option<usize>),
    via: Vec<usize>,
}

/// One graph's drawing: its boxes and edges, in its own coordinates.
struct Block {
    title: String,
    items: Vec<Item>,
    edges: Vec<Edge>,
    /// Recurrent pairs: `(output item, input item)`.
    recurrent: Vec<(usize, usize)>,
    /// Each column's left and right edge.
    columns: Vec<(f64, f64)>,
    /// Per item: its column.
    column_of: Vec<usize>,
    w: f64,
    h: f64,
}

/// When each node runs over a sequence, by its path: `None` where the plan
/// has no loop.
struct Plans {
    plan: Plan,
    /// Per segment: its loop's number (from 1), 0 outside loops.
    loops: Vec<usize>,
}

impl Plans {
    fn new(plan: Plan) -> Self {
        let mut n = 0;
        let loops = (0..plan.segments())
            .map(|s| {
                if plan.is_loop(s) {
                    n += 1;
                    n
                } else {
                    0
                }
            })
            .collect();
        Plans { plan, loops }
    }

    fn label(&self, path: &str) -> Option<String> {
        if !self.loops.iter().any(|&l| l > 0) {
            return None;
        }
        let s = self.plan.segment_of(path)?;
        Some(match self.loops[s] {
            0 => "over all steps".to_string(),
            l => format!("in loop {l}"),
        })
    }
}

/// The drawing of the graph `d`, with the node at path `highlight` (if any)
/// marked: `node`, or `host.node` inside a nested graph. `prefix` is the
/// path of this graph from the top (`host.`). Nested graphs and stacks are
/// one box each unless `expand`, which draws a nested graph's own nodes in
/// a cluster (a stack: its first layer's, or the one the highlight is in,
/// `×N` in the title).
fn block(d: &Description, highlight: Option<&str>, plans: &Plans, prefix: &str, expand: bool) -> Block {
    let spec = d.spec;
    let mut blocks = Vec::new();
    if expand {
        for (k, node) in spec.nodes.iter().enumerate() {
            if d.nested[k].is_empty() {
                continue;
            }
            // The part of the path inside this host, if the highlight is
            // there; in a stack, the layer it is in is the one drawn.
            let rest = highlight.and_then(|h| h.strip_prefix(node.name));
            let (layer, inside) = match rest.and_then(|r| r.strip_prefix('[')) {
                Some(r) => match r.split_once("].") {
                    Some((l, inside)) => (l.parse().unwrap_or(0), Some(inside)),
                    None => (0, None),
                },
                None => (0, rest.and_then(|r| r.strip_prefix('.'))),
            };
            let Some(inner) = d.nested[k].get(layer) else {
                continue;
            };
            let path = match node.kind {
                NodeKind::Stack => format!("{prefix}{}[{layer}].", node.name),
                _ => format!("{prefix}{}.", node.name),
            };
            blocks.push((k, block(inner, inside, plans, &path, expand)));
        }
    }
    layout(d, &mut blocks, highlight, plans, prefix)
}

fn label_width(lines: &[String]) -> f64 {
    lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64 * CHAR_W + 2.0 * PAD
}

/// `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The lines of a collapsed nested graph or stack at node `k`: its name,
/// its graph, its sizes (one per line), the depth of a stack inside it,
/// its parameters.
fn nested_lines(d: &Description, k: usize) -> Vec<String> {
    let node = &d.spec.nodes[k];
    let mut lines = vec![node.name.to_string()];
    let layers = &d.nested[k];
    let sizes = |g: &Description| -> Vec<String> {
        g.spec
            .sizes
            .iter()
            .zip(&g.sizes)
            .map(|(n, v)| format!("{n} = {v}"))
            .collect()
    };
    if let Some(first) = layers.first() {
        if node.kind == NodeKind::Stack {
            lines.push(format!("Stack ×{}", layers.len()));
            lines.push(first.spec.name.to_string());
            lines.extend(sizes(first));
            if let Some(upper) = layers
                .get(1)
                .filter(|u| u.spec.name != first.spec.name || u.sizes != first.sizes)
            {
                lines.push(format!("then {}", upper.spec.name));
                lines.extend(sizes(upper));
            }
        } else {
            lines.push(first.spec.name.to_string());
            lines.extend(sizes(first));
            // A stack inside (the shipped `Lstm`): its depth.
            for (j, inner) in first.spec.nodes.iter().enumerate() {
                if inner.kind == NodeKind::Stack {
                    lines.push(format!("{} layers", first.nested[j].len()));
                }
            }
        }
    }
    lines.push(format!("{} params", thousands(d.params[k])));
    lines
}

/// Places the items of a graph in columns and rows.
fn layout(
    d: &Description,
    nested: &mut Vec<(usize, Block)>,
    highlight: Option<&str>,
    plans: &Plans,
    prefix: &str,
) -> Block {
    let (spec, widths) = (d.spec, &d.widths);
    let n_in = spec.inputs.len();
    let outputs: Vec<usize> = spec.outputs.iter().map(|o| o.node).collect();
    let mut items: Vec<Item> = Vec::new();
    // Item of each slot (inputs, then nodes), and the output port an
    // `Output` node of a collapsed host leaves from.
    let mut item_of = vec![usize::MAX; spec.slots()];
    let mut port_of: Vec<Option<usize>> = vec![None; spec.slots()];
    for (i, input) in spec.inputs.iter().enumerate() {
        let width = if input.ids {
            "ids".to_string()
        } else {
            format!("[{}]", widths[i])
        };
        let lines = vec![input.name.to_string(), format!("input {width}")];
        item_of[i] = items.len();
        items.push(item(i, lines, Role::Input));
    }
    for (k, node) in spec.nodes.iter().enumerate() {
        let slot = n_in + k;
        let inner = nested
            .iter()
            .position(|(h, _)| *h == k)
            .map(|p| Box::new(nested.remove(p).1));
        if let Some(inner) = inner {
            let title = match node.kind {
                NodeKind::Stack => format!("{} = {} ×{}", node.name, node.layer, d.nested[k].len()),
                _ => format!("{} = {}", node.name, node.layer),
            };
            let mut it = item(slot, vec![title], Role::Cluster);
            it.w = it.w.max(inner.w + 2.0 * PAD);
            it.h = inner.h + LINE_H + 2.0 * PAD;
            it.inner = Some(inner);
            item_of[slot] = items.len();
            items.push(it);
            continue;
        }
        if let (Some(first), true) = (d.nested[k].first(), crate::instance::is_host(node.kind)) {
            // Collapsed: one box, a port per input and per output.
            let mut it = item(slot, nested_lines(d, k), Role::Nested);
            it.ports_in = match node.kind {
                NodeKind::Stack => first.spec.inputs.iter().map(|i| i.name.to_string()).collect(),
                NodeKind::Nested { to } => to
                    .iter()
                    .map(|&i| first.spec.inputs.get(i).map_or("?", |s| s.name).to_string())
                    .collect(),
                _ => Vec::new(),
            };
            it.ports_out = (0..spec.nodes.len())
                .filter_map(|j| match spec.nodes[j].kind {
                    NodeKind::Output { host, output } if host == k => Some((j, output)),
                    _ => None,
                })
                .map(|(j, output)| {
                    let name = match node.kind {
                        NodeKind::Stack if output == 0 => "out".to_string(),
                        NodeKind::Stack => format!(
                            "{} ×{}",
                            first.spec.outputs.get(output - 1).map_or("?", |o| o.name),
                            d.nested[k].len()
                        ),
                        _ => first.spec.outputs.get(output).map_or("?", |o| o.name).to_string(),
                    };
                    format!("{name} [{}]", widths[n_in + j])
                })
                .collect();
            let side =
                |ports: &[String]| ports.iter().map(|p| p.chars().count()).max().unwrap_or(0) as f64 * CHAR_W;
            let rows = it.lines.len().max(it.ports_in.len()).max(it.ports_out.len());
            it.w = label_width(&it.lines) + side(&it.ports_in) + side(&it.ports_out) + 2.0 * PAD;
            it.h = rows as f64 * LINE_H + PAD;
            item_of[slot] = items.len();
            items.push(it);
            continue;
        }
        if let NodeKind::Output { host, .. } = node.kind {
            let host_item = item_of[n_in + host];
            if items.get(host_item).is_some_and(|h| h.role == Role::Nested) {
                // An output of a collapsed host leaves from its port; drawn
                // as a box of its own only when it is an output of the graph.
                if !outputs.contains(&k) {
                    item_of[slot] = host_item;
                    port_of[slot] = Some(out_port(spec, host, k));
                    continue;
                }
                item_of[slot] = items.len();
                let lines = vec![node.name.to_string(), format!("→ [{}]", widths[slot])];
                items.push(item(slot, lines, Role::Output));
                continue;
            }
        }
        let role = if outputs.contains(&k) {
            Role::Output
        } else {
            Role::Node
        };
        let mut lines = vec![
            node.name.to_string(),
            node.layer.to_string(),
            format!("→ [{}]", widths[slot]),
        ];
        // The plan: when the node runs over a sequence.
        if let Some(when) = plans.label(&format!("{prefix}{}", node.name)) {
            lines.push(when);
        }
        item_of[slot] = items.len();
        items.push(item(slot, lines, role));
    }
    // Edges, at ports where the ends are collapsed hosts.
    let mut edges: Vec<Edge> = Vec::new();
    for (k, node) in spec.nodes.iter().enumerate() {
        let to = item_of[n_in + k];
        let collapsed_out =
            matches!(node.kind, NodeKind::Output { host, .. } if items[to].slot == n_in + host);
        if collapsed_out {
            continue;
        }
        match node.kind {
            NodeKind::Output { host, .. } if items[item_of[n_in + host]].role == Role::Nested => {
                // An output of the graph that a collapsed host gives.
                edges.push(Edge {
                    from: (item_of[n_in + host], Some(out_port(spec, host, k))),
                    to: (to, None),
                    via: Vec::new(),
                });
            }
            _ => {
                let ported = items[to].role == Role::Nested;
                for (j, &from) in node.inputs.iter().enumerate() {
                    edges.push(Edge {
                        from: (item_of[from], port_of[from]),
                        to: (to, ported.then_some(j)),
                        via: Vec::new(),
                    });
                }
            }
        }
    }
    let recurrent: Vec<(usize, usize)> = spec
        .recurrent
        .iter()
        .map(|&(i, o)| (item_of[spec.output_slot(o)], item_of[i]))
        .collect();

    // Columns: the longest path from an input; then each input moves to
    // the column just before its first consumer, so that an input used late
    // (a target, a class id) does not cross the whole picture.
    let mut column = vec![0usize; items.len()];
    for &k in spec.order {
        let to = item_of[n_in + k];
        if items[to].slot != n_in + k {
            continue; // an output folded into its host's port
        }
        let from = |s: usize| column[item_of[s]] + 1;
        column[to] = match spec.nodes[k].kind {
            NodeKind::Output { host, .. } => from(n_in + host),
            _ => spec.nodes[k].inputs.iter().map(|&s| from(s)).max().unwrap_or(0),
        };
    }
    for i in 0..n_in {
        let first = edges
            .iter()
            .filter(|e| e.from.0 == item_of[i])
            .map(|e| column[e.to.0])
            .min();
        column[item_of[i]] = first.map_or(0, |c| c.saturating_sub(1));
    }
    // A long edge passes a waypoint in every column between its ends, so
    // that it never crosses a box.
    for e in &mut edges {
        let (a, b) = (column[e.from.0], column[e.to.0]);
        for c in a + 1..b {
            e.via.push(items.len());
            let mut w = item(usize::MAX, Vec::new(), Role::Waypoint);
            (w.w, w.h) = (2.0, LINE_H / 2.0);
            items.push(w);
            column.push(c);
        }
    }
    let n_cols = column.iter().max().map_or(0, |c| c + 1);
    let mut cols: Vec<Vec<usize>> = vec![Vec::new(); n_cols];
    for (it, &c) in column.iter().enumerate() {
        cols[c].push(it);
    }
    // Rows: by the mean row of what feeds each item, a few sweeps.
    let mut feeds: Vec<Vec<usize>> = vec![Vec::new(); items.len()];
    for e in &edges {
        let chain: Vec<usize> = std::iter::once(e.from.0)
            .chain(e.via.iter().copied())
            .chain([e.to.0])
            .collect();
        for pair in chain.windows(2) {
            feeds[pair[1]].push(pair[0]);
        }
    }
    let mut row = vec![0.0f64; items.len()];
    for col in &cols {
        for (r, &it) in col.iter().enumerate() {
            row[it] = r as f64;
        }
    }
    for _ in 0..4 {
        for col in cols.iter_mut().skip(1) {
            for &it in col.iter() {
                let ins: Vec<f64> = feeds[it].iter().map(|&f| row[f]).collect();
                if !ins.is_empty() {
                    row[it] = ins.iter().sum::<f64>() / ins.len() as f64;
                }
            }
            col.sort_by(|a, b| row[*a].total_cmp(&row[*b]));
            for (r, &it) in col.iter().enumerate() {
                row[it] = r as f64;
            }
        }
    }
    // Coordinates: columns left to right, each centred vertically; room on
    // the left for the recurrent edges' lanes, and between columns for
    // the edges' vertical runs.
    // Recurrent lanes: before a column holding a state input.
    let lanes = RECURRENT_GAP * spec.recurrent.len() as f64;
    let state_column: Vec<bool> = (0..n_cols)
        .map(|c| spec.recurrent.iter().any(|&(i, _)| column[item_of[i]] == c))
        .collect();
    let col_w: Vec<f64> = cols
        .iter()
        .map(|c| c.iter().map(|&i| items[i].w).fold(0.0, f64::max))
        .collect();
    let col_h: Vec<f64> = cols
        .iter()
        .map(|c| c.iter().map(|&i| items[i].h).sum::<f64>() + ROW_GAP * c.len().saturating_sub(1) as f64)
        .collect();
    let height = col_h.iter().copied().fold(0.0, f64::max);
    let mut x = 0.0;
    let mut columns = Vec::with_capacity(n_cols);
    for (c, col) in cols.iter().enumerate() {
        if state_column[c] {
            x += lanes;
        }
        let mut y = (height - col_h[c]) / 2.0;
        for &it in col {
            items[it].x = x + (col_w[c] - items[it].w) / 2.0;
            items[it].y = y;
            y += items[it].h + ROW_GAP;
        }
        columns.push((x, x + col_w[c]));
        x += col_w[c] + COL_GAP;
    }
    // The last column's gap too, where recurrent edges turn down.
    let last_has_state_output = spec
        .recurrent
        .iter()
        .any(|&(_, o)| column[item_of[spec.output_slot(o)]] + 1 == n_cols);
    let width = if last_has_state_output {
        x
    } else {
        (x - COL_GAP).max(0.0)
    };
    let block = Block {
        title: spec.name.to_string(),
        items,
        edges,
        recurrent,
        columns,
        column_of: column,
        w: width,
        h: height + lanes + if spec.recurrent.is_empty() { 0.0 } else { ROW_GAP },
    };
    mark(block, spec, highlight)
}

/// The output port of the collapsed host `host` that its output node `k`
/// leaves from: `k`'s rank among the host's output nodes.
fn out_port(spec: &GraphSpec, host: usize, k: usize) -> usize {
    (0..k)
        .filter(|&j| matches!(spec.nodes[j].kind, NodeKind::Output { host: h, .. } if h == host))
        .count()
}

fn item(slot: usize, lines: Vec<String>, role: Role) -> Item {
    let w = label_width(&lines);
    let h = lines.len() as f64 * LINE_H + PAD;
    Item {
        slot,
        lines,
        role,
        hot: false,
        inner: None,
        ports_in: Vec::new(),
        ports_out: Vec::new(),
        w,
        h,
        x: 0.0,
        y: 0.0,
    }
}

/// The height of port `j` of an item at `y`.
fn port_y(y: f64, j: usize) -> f64 {
    y + PAD / 2.0 + LINE_H * (j as f64 + 0.5)
}

/// Marks the highlighted node, if it is in this graph (not nested deeper).
fn mark(mut block: Block, spec: &GraphSpec, highlight: Option<&str>) -> Block {
    if let Some(name) = highlight.filter(|h| !h.contains('.')) {
        for it in &mut block.items {
            if it.slot != usize::MAX && spec.slot_name(it.slot) == name {
                it.lines.insert(1, "✖ failed here".to_string());
                it.h += LINE_H;
                it.hot = true;
            }
        }
    }
    block
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The side of an item's box a port or edge end is on: `(x, y)`.
fn end_point(it: &Item, port: Option<usize>, right: bool) -> (f64, f64) {
    let x = if right { it.x + it.w } else { it.x };
    match port {
        Some(j) => (x, port_y(it.y, j)),
        None => (x, it.y + it.h / 2.0),
    }
}

/// The polyline of edge `e` (number `n`): out of its source at the right,
/// along the row to its column's edge, down or up in the gap between
/// columns, along the row of each waypoint, into its target at the left.
/// Vertical runs stay in the gaps and horizontal runs in the rows of the
/// ends, so an edge never crosses a box or the text in it.
fn route(block: &Block, e: &Edge, n: usize) -> Vec<(f64, f64)> {
    let items = &block.items;
    let (a, b) = (&items[e.from.0], &items[e.to.0]);
    let mut points = vec![end_point(a, e.from.1, true)];
    let mut col = block.column_of[e.from.0];
    let spread = (n % 5) as f64 * 4.0 - 8.0;
    let mut y = points[0].1;
    points.push((block.columns[col].1, y));
    for &w in e.via.iter().chain([&e.to.0]) {
        let target = &items[w];
        let ty = if w == e.to.0 {
            end_point(b, e.to.1, false).1
        } else {
            target.y + target.h / 2.0
        };
        let gx = block.columns[col].1 + COL_GAP / 2.0 + spread;
        points.push((gx, y));
        points.push((gx, ty));
        col = block.column_of[w];
        y = ty;
        points.push((block.columns[col].0, y));
        if w != e.to.0 {
            points.push((block.columns[col].1, y));
        }
    }
    points.push(end_point(b, e.to.1, false));
    points.dedup();
    points
}

fn polyline(points: &[(f64, f64)]) -> String {
    let mut d = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        let _ = write!(d, "{}{x:.1},{y:.1}", if i == 0 { "M" } else { " L" });
    }
    d
}

/// Draws `block` at `(ox, oy)`.
fn draw(out: &mut String, block: &Block, ox: f64, oy: f64) {
    let _ = writeln!(out, "<g class=\"graph\" data-name=\"{}\">", escape(&block.title));
    for (n, e) in block.edges.iter().enumerate() {
        let points: Vec<(f64, f64)> = route(block, e, n)
            .into_iter()
            .map(|(x, y)| (ox + x, oy + y))
            .collect();
        let _ = writeln!(
            out,
            "<path class=\"edge\" d=\"{}\" fill=\"none\" stroke=\"#555\" stroke-linejoin=\"round\" \
             marker-end=\"url(#arrow)\"/>",
            polyline(&points)
        );
    }
    for it in block.items.iter().filter(|it| it.role != Role::Waypoint) {
        let (x, y) = (ox + it.x, oy + it.y);
        let (class, fill, stroke, width) = match (it.hot, it.role) {
            (true, _) => ("node failed", "#fdd", "#d00", 2.5),
            (_, Role::Input) => ("input", "#e3efff", "#36c", 1.5),
            (_, Role::Output) => ("node output", "#e6f6e6", "#2a6", 2.5),
            (_, Role::Cluster) => ("cluster", "#fafafa", "#888", 1.0),
            (_, Role::Nested) => ("node nested", "#f4f0ff", "#63c", 1.5),
            (_, Role::Node | Role::Waypoint) => ("node", "#fff", "#333", 1.0),
        };
        let rx = if it.role == Role::Input { 10 } else { 4 };
        let _ = writeln!(
            out,
            "<g class=\"{class}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{rx}\" \
             fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"/>",
            it.w, it.h
        );
        // A collapsed nested graph: its ports on the sides, its text between.
        let side =
            |ports: &[String]| ports.iter().map(|p| p.chars().count()).max().unwrap_or(0) as f64 * CHAR_W;
        let (left, right) = (side(&it.ports_in), side(&it.ports_out));
        for (j, name) in it.ports_in.iter().enumerate() {
            let py = oy + port_y(it.y, j);
            let _ = writeln!(
                out,
                "<g class=\"port in\" data-name=\"{}\"><circle cx=\"{x:.1}\" cy=\"{py:.1}\" r=\"2.5\" fill=\"#63c\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"start\" fill=\"#63c\">{}</text></g>",
                escape(name),
                x + PAD / 2.0,
                py + 4.0,
                escape(name)
            );
        }
        for (j, name) in it.ports_out.iter().enumerate() {
            let (px, py) = (x + it.w, oy + port_y(it.y, j));
            let _ = writeln!(
                out,
                "<g class=\"port out\" data-name=\"{}\"><circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"2.5\" fill=\"#63c\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#63c\">{}</text></g>",
                escape(name),
                px - PAD / 2.0,
                py + 4.0,
                escape(name)
            );
        }
        for (l, line) in it.lines.iter().enumerate() {
            let weight = if l == 0 { " font-weight=\"bold\"" } else { "" };
            let (tx, anchor) = match it.role {
                Role::Cluster => (x + PAD, "start"),
                Role::Nested => (x + PAD + left + (it.w - 2.0 * PAD - left - right) / 2.0, "middle"),
                _ => (x + it.w / 2.0, "middle"),
            };
            let _ = writeln!(
                out,
                "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\"{weight}>{}</text>",
                y + PAD / 2.0 + LINE_H * (l as f64 + 0.8),
                escape(line)
            );
        }
        if let Some(inner) = &it.inner {
            draw(out, inner, x + (it.w - inner.w) / 2.0, y + LINE_H + PAD);
        }
        out.push_str("</g>\n");
    }
    // Recurrent pairs, on top: right out of the output into the gap after
    // its column, down below everything, left to the lanes before the
    // input's column, up, and into the input's left side; a lane per pair.
    let pairs = block.recurrent.len();
    for (lane, &(o, i)) in block.recurrent.iter().enumerate() {
        let (oi, ii) = (&block.items[o], &block.items[i]);
        let gap = RECURRENT_GAP * (lane as f64 + 0.5);
        let bottom = oy + block.h - ROW_GAP - RECURRENT_GAP * pairs as f64 + gap;
        let right = ox + block.columns[block.column_of[o]].1 + COL_GAP / 2.0 + gap
            - RECURRENT_GAP * pairs as f64 / 2.0;
        let left = ox + block.columns[block.column_of[i]].0 - gap;
        let (x1, y1) = (ox + oi.x + oi.w, oy + oi.y + oi.h / 2.0);
        let (x2, y2) = (ox + ii.x, oy + ii.y + ii.h / 2.0);
        let points = [
            (x1, y1),
            (right, y1),
            (right, bottom),
            (left, bottom),
            (left, y2),
            (x2, y2),
        ];
        let _ = writeln!(
            out,
            "<path class=\"recurrent\" d=\"{}\" fill=\"none\" stroke=\"#2a6\" stroke-dasharray=\"6 4\" \
             stroke-linejoin=\"round\" marker-end=\"url(#arrow)\"/>",
            polyline(&points)
        );
    }
    out.push_str("</g>\n");
}

/// The caption of a checked-mode error.
fn caption(error: &Error) -> Option<(String, String)> {
    match error {
        Error::NonFinite {
            node,
            file,
            line,
            pass,
            step,
            value,
            index,
            ..
        } => {
            let what = match pass {
                Pass::Forward => "output",
                Pass::Backward => "incoming gradient",
                Pass::Parameters => "parameter gradient",
            };
            let step = step.map_or(String::new(), |t| format!(" at step {t}"));
            Some((
                node.clone(),
                format!(
                    "{what} of `{node}` ({file}:{line}) is {value} at [{}, {}]{step}",
                    index.0, index.1
                ),
            ))
        }
        Error::Node {
            node,
            file,
            line,
            message,
            ..
        } => Some((node.clone(), format!("`{node}` ({file}:{line}): {message}"))),
        _ => None,
    }
}

/// The picture of `graph` as an SVG document; with `error` (a checked-mode
/// error or a node's failure), the failing node in red and the error as a
/// caption.
pub(crate) fn to_svg(d: &Description, error: Option<&Error>, expand: bool) -> String {
    let caption = error.and_then(caption);
    let plans = Plans::new(d.plan());
    let block = block(
        d,
        caption.as_ref().map(|(node, _)| node.as_str()),
        &plans,
        "",
        expand,
    );
    let title_h = 2.0 * LINE_H;
    let caption_h = if caption.is_some() { LINE_H * 1.5 } else { 0.0 };
    let caption_w = caption
        .as_ref()
        .map_or(0.0, |(_, c)| c.chars().count() as f64 * CHAR_W);
    let (w, h) = (
        block.w.max(caption_w) + 2.0 * PAD,
        block.h + title_h + caption_h + 2.0 * PAD,
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" \
         font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"12\">"
    );
    out.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" \
         orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555\"/></marker></defs>\n",
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        out,
        "<text x=\"{PAD}\" y=\"{:.1}\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        LINE_H * 1.2,
        escape(d.spec.name)
    );
    if let Some((_, text)) = &caption {
        let _ = writeln!(
            out,
            "<text class=\"caption\" x=\"{PAD}\" y=\"{:.1}\" fill=\"#d00\">{}</text>",
            title_h + LINE_H,
            escape(text)
        );
    }
    draw(&mut out, &block, PAD, title_h + caption_h + PAD);
    out.push_str("</svg>\n");
    out
}
