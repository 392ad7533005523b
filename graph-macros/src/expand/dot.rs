//! The Graphviz picture of a graph, made at compile time: inputs as boxes,
//! outputs doubly outlined, nested graphs as boxes with rounded corners,
//! every edge labelled with the width it carries. (The plan a pass follows
//! is composed at run time, through nested graphs: `Graph::plan`.)

use super::layer_label;
use crate::ir::{Graph, Source};
use crate::width::Width;

/// The Graphviz picture: inputs as boxes, outputs doubly outlined, nested
/// graphs as boxes with rounded corners, every edge labelled with the width
/// it carries.
pub(super) fn to_dot(g: &Graph) -> String {
    let mut s = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n",
        g.name
    );
    for i in &g.inputs {
        let w = i.width.as_ref().map_or("ids".to_string(), |w| format!("[{w}]"));
        s += &format!("  \"{}\" [shape=box, label=\"{}\\n{w}\"];\n", i.name, i.name);
    }
    for (k, n) in g.nodes.iter().enumerate() {
        let periph = if g.outputs.iter().any(|&(_, o)| o == k) {
            ", peripheries=2"
        } else {
            ""
        };
        let shape = if n.nested().is_some() {
            "box, style=rounded"
        } else {
            "ellipse"
        };
        s += &format!(
            "  \"{}\" [shape={shape}{periph}, label=\"{}\\n{}\"];\n",
            n.name,
            n.name,
            layer_label(n)
        );
    }
    for n in &g.nodes {
        for &src in &n.inputs {
            let (from, w) = match src {
                Source::Input(i) => (
                    &g.inputs[i].name,
                    g.inputs[i]
                        .width
                        .as_ref()
                        .map_or("ids".to_string(), Width::to_string),
                ),
                Source::Node(k) if g.nodes[k].nested().is_some() => (&g.nodes[k].name, String::new()),
                Source::Node(k) => (&g.nodes[k].name, g.nodes[k].width.to_string()),
            };
            s += &format!("  \"{from}\" -> \"{}\" [label=\"{w}\"];\n", n.name);
        }
    }
    s += "}\n";
    s
}
