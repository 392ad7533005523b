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

/// A drawn box: an input, a node or a nested graph.
struct Item {
    /// The slot it stands for in its graph.
    slot: usize,
    lines: Vec<String>,
    role: Role,
    /// Whether it is the failing node.
    hot: bool,
    /// A nested graph's own drawing.
    inner: Option<Box<Block>>,
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
}

/// One graph's drawing: its boxes and edges, in its own coordinates.
struct Block {
    title: String,
    items: Vec<Item>,
    /// `(from item, to item)`.
    edges: Vec<(usize, usize)>,
    /// Recurrent pairs: `(output item, input item)`.
    recurrent: Vec<(usize, usize)>,
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
/// path of this graph from the top (`host.`).
fn block(d: &Description, highlight: Option<&str>, plans: &Plans, prefix: &str) -> Block {
    let spec = d.spec;
    let mut blocks = Vec::new();
    for (k, node) in spec.nodes.iter().enumerate() {
        // A stack is drawn as one box (its layers are alike).
        if let Some(inner) = d.nested[k].first().filter(|_| node.kind != NodeKind::Stack) {
            // The part of the path inside this host, if the highlight is there.
            let inside = highlight
                .and_then(|h| h.strip_prefix(node.name))
                .and_then(|rest| rest.strip_prefix('.'));
            blocks.push((k, block(inner, inside, plans, &format!("{prefix}{}.", node.name))));
        }
    }
    layout(spec, &d.widths, &mut blocks, highlight, plans, prefix)
}

fn label_width(lines: &[String]) -> f64 {
    lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64 * CHAR_W + 2.0 * PAD
}

/// Places the items of a graph in columns and rows.
fn layout(
    spec: &GraphSpec,
    widths: &[usize],
    nested: &mut Vec<(usize, Block)>,
    highlight: Option<&str>,
    plans: &Plans,
    prefix: &str,
) -> Block {
    let n_in = spec.inputs.len();
    let outputs: Vec<usize> = spec.outputs.iter().map(|o| o.node).collect();
    let mut items: Vec<Item> = Vec::new();
    // Item of each slot (inputs, then nodes).
    let mut item_of = vec![usize::MAX; spec.slots()];
    for (i, input) in spec.inputs.iter().enumerate() {
        let width = if input.ids {
            "ids".to_string()
        } else {
            format!("[{}]", widths[i])
        };
        let lines = vec![input.name.to_string(), format!("input {width}")];
        item_of[i] = items.len();
        items.push(item(i, lines, Role::Input, None));
    }
    for (k, node) in spec.nodes.iter().enumerate() {
        let slot = n_in + k;
        item_of[slot] = items.len();
        let inner = nested
            .iter()
            .position(|(h, _)| *h == k)
            .map(|p| Box::new(nested.remove(p).1));
        if let Some(inner) = inner {
            let mut it = item(
                slot,
                vec![format!("{} = {}", node.name, node.layer)],
                Role::Cluster,
                None,
            );
            it.w = it.w.max(inner.w + 2.0 * PAD);
            it.h = inner.h + LINE_H + 2.0 * PAD;
            it.inner = Some(inner);
            items.push(it);
            continue;
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
        items.push(item(slot, lines, role, None));
    }
    let mut edges = Vec::new();
    for (k, node) in spec.nodes.iter().enumerate() {
        for &from in node.inputs {
            edges.push((item_of[from], item_of[n_in + k]));
        }
    }
    let recurrent = spec
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
        column[to] = spec.nodes[k]
            .inputs
            .iter()
            .map(|&s| column[item_of[s]] + 1)
            .max()
            .unwrap_or(0);
    }
    for i in 0..n_in {
        let first = edges
            .iter()
            .filter(|e| e.0 == item_of[i])
            .map(|e| column[e.1])
            .min();
        column[item_of[i]] = first.map_or(0, |c| c.saturating_sub(1));
    }
    let n_cols = column.iter().max().map_or(0, |c| c + 1);
    let mut cols: Vec<Vec<usize>> = vec![Vec::new(); n_cols];
    for (it, &c) in column.iter().enumerate() {
        cols[c].push(it);
    }
    // Rows: by the mean row of the inputs, a few sweeps.
    let mut row = vec![0.0f64; items.len()];
    for col in &cols {
        for (r, &it) in col.iter().enumerate() {
            row[it] = r as f64;
        }
    }
    for _ in 0..4 {
        for col in cols.iter_mut().skip(1) {
            for &it in col.iter() {
                let ins: Vec<f64> = edges.iter().filter(|e| e.1 == it).map(|e| row[e.0]).collect();
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
    // Coordinates: columns left to right, each centred vertically.
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
    for (c, col) in cols.iter().enumerate() {
        let mut y = (height - col_h[c]) / 2.0;
        for &it in col {
            items[it].x = x + (col_w[c] - items[it].w) / 2.0;
            items[it].y = y;
            y += items[it].h + ROW_GAP;
        }
        x += col_w[c] + COL_GAP;
    }
    // Room on the left and below for the recurrent edges' routes.
    let margin = RECURRENT_GAP * spec.recurrent.len() as f64;
    for it in &mut items {
        it.x += margin;
    }
    let width = (x - COL_GAP).max(0.0) + margin;
    let block = Block {
        title: spec.name.to_string(),
        items,
        edges,
        recurrent,
        w: width,
        h: height + margin + if spec.recurrent.is_empty() { 0.0 } else { ROW_GAP },
    };
    mark(block, spec, highlight)
}

fn item(slot: usize, lines: Vec<String>, role: Role, inner: Option<Box<Block>>) -> Item {
    let w = label_width(&lines);
    let h = lines.len() as f64 * LINE_H + PAD;
    Item {
        slot,
        lines,
        role,
        hot: false,
        inner,
        w,
        h,
        x: 0.0,
        y: 0.0,
    }
}

/// Marks the highlighted node, if it is in this graph (not nested deeper).
fn mark(mut block: Block, spec: &GraphSpec, highlight: Option<&str>) -> Block {
    if let Some(name) = highlight.filter(|h| !h.contains('.')) {
        for it in &mut block.items {
            if spec.slot_name(it.slot) == name {
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

/// Draws `block` at `(ox, oy)`.
fn draw(out: &mut String, block: &Block, ox: f64, oy: f64) {
    let _ = writeln!(out, "<g class=\"graph\" data-name=\"{}\">", escape(&block.title));
    for &(a, b) in &block.edges {
        let (a, b) = (&block.items[a], &block.items[b]);
        let (x1, y1) = (ox + a.x + a.w, oy + a.y + a.h / 2.0);
        let (x2, y2) = (ox + b.x, oy + b.y + b.h / 2.0);
        let mid = (x1 + x2) / 2.0;
        let _ = writeln!(
            out,
            "<path class=\"edge\" d=\"M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}\" \
             fill=\"none\" stroke=\"#555\" marker-end=\"url(#arrow)\"/>"
        );
    }
    for it in &block.items {
        let (x, y) = (ox + it.x, oy + it.y);
        let (class, fill, stroke, width) = match (it.hot, it.role) {
            (true, _) => ("node failed", "#fdd", "#d00", 2.5),
            (_, Role::Input) => ("input", "#e3efff", "#36c", 1.5),
            (_, Role::Output) => ("node output", "#e6f6e6", "#2a6", 2.5),
            (_, Role::Cluster) => ("cluster", "#fafafa", "#888", 1.0),
            (_, Role::Node) => ("node", "#fff", "#333", 1.0),
        };
        let rx = if it.role == Role::Input { 10 } else { 4 };
        let _ = writeln!(
            out,
            "<g class=\"{class}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{rx}\" \
             fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"/>",
            it.w, it.h
        );
        for (l, line) in it.lines.iter().enumerate() {
            let weight = if l == 0 { " font-weight=\"bold\"" } else { "" };
            let (tx, anchor) = if it.role == Role::Cluster {
                (x + PAD, "start")
            } else {
                (x + it.w / 2.0, "middle")
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
    // Recurrent pairs, on top: down from the output, below everything, left
    // of everything, and into the input's left side; one lane per pair.
    for (lane, &(o, i)) in block.recurrent.iter().enumerate() {
        let (o, i) = (&block.items[o], &block.items[i]);
        let lane = (lane + 1) as f64 * RECURRENT_GAP;
        let bottom = oy + block.h - ROW_GAP - RECURRENT_GAP * block.recurrent.len() as f64 + lane;
        let left = ox + RECURRENT_GAP * block.recurrent.len() as f64 - lane;
        let (x1, y1) = (ox + o.x + o.w / 2.0, oy + o.y + o.h);
        let (x2, y2) = (ox + i.x, oy + i.y + i.h / 2.0);
        let _ = writeln!(
            out,
            "<path class=\"recurrent\" d=\"M{x1:.1},{y1:.1} L{x1:.1},{bottom:.1} L{left:.1},{bottom:.1} \
             L{left:.1},{y2:.1} L{x2:.1},{y2:.1}\" fill=\"none\" stroke=\"#2a6\" stroke-dasharray=\"6 4\" \
             stroke-linejoin=\"round\" marker-end=\"url(#arrow)\"/>"
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
pub(crate) fn to_svg(d: &Description, error: Option<&Error>) -> String {
    let caption = error.and_then(caption);
    let plans = Plans::new(d.plan());
    let block = block(d, caption.as_ref().map(|(node, _)| node.as_str()), &plans, "");
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
