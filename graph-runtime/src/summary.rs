//! A graph as a table, as Keras' `summary()` or torchinfo show a model:
//! each node with its layer, input and output widths, parameter count and
//! source line; nested graphs indented under their node; totals.

use crate::graph::{Graph, Visit};
use crate::layer::Layer;
use crate::spec::NodeKind;
use crate::Float;
use std::fmt::Write;

/// One row of the table.
struct Row {
    depth: usize,
    node: String,
    layer: String,
    inputs: String,
    output: String,
    params: usize,
    line: u32,
}

/// Collects the rows of the nested graphs through `Graph::node`.
struct Nested<'a> {
    depth: usize,
    rows: &'a mut Vec<Row>,
}

impl<F: Float> Visit<F> for Nested<'_> {
    fn layer<L: Layer<F>, const N: usize>(&mut self, _: usize, _: &L) -> crate::Result<()> {
        Ok(())
    }
    fn nested<G: Graph<F>>(&mut self, _: usize, graph: &G) -> crate::Result<()> {
        rows(graph, self.depth, self.rows);
        Ok(())
    }
}

fn rows<F: Float, G: Graph<F>>(graph: &G, depth: usize, out: &mut Vec<Row>) {
    let spec = G::SPEC;
    let (layers, core) = graph.parts();
    let width = |slot: usize| match spec.inputs.get(slot) {
        Some(i) if i.ids => "ids".to_string(),
        Some(_) => core.widths[slot].to_string(),
        // A nested graph's node holds no value of its own.
        None if matches!(spec.nodes[slot - spec.inputs.len()].kind, NodeKind::Nested { .. }) => String::new(),
        None => core.widths[slot].to_string(),
    };
    for (k, node) in spec.nodes.iter().enumerate() {
        let nested = matches!(node.kind, NodeKind::Nested { .. });
        out.push(Row {
            depth,
            node: node.name.to_string(),
            layer: node.layer.to_string(),
            inputs: node
                .inputs
                .iter()
                .map(|&s| width(s))
                .collect::<Vec<_>>()
                .join(", "),
            output: if nested {
                String::new()
            } else {
                width(spec.node_slot(k))
            },
            params: core.store.node_ranges()[k].len(),
            line: node.line,
        });
        if nested {
            let mut visit = Nested {
                depth: depth + 1,
                rows: out,
            };
            // Collecting rows cannot fail.
            let _ = G::node(layers, k, &mut visit);
        }
    }
}

/// The table of `graph`.
pub(crate) fn summary<F: Float, G: Graph<F>>(graph: &G) -> String {
    let mut table = Vec::new();
    rows(graph, 0, &mut table);
    let headers = ["node", "layer", "inputs", "output", "params", "line"];
    let cells: Vec<[String; 6]> = table
        .iter()
        .map(|r| {
            [
                format!("{}{}", "  ".repeat(r.depth), r.node),
                r.layer.clone(),
                r.inputs.clone(),
                r.output.clone(),
                r.params.to_string(),
                r.line.to_string(),
            ]
        })
        .collect();
    let mut w: [usize; 6] = headers.map(str::len);
    for row in &cells {
        for (w, c) in w.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let spec = G::SPEC;
    let mut s = String::new();
    let inputs: Vec<String> = spec
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| match input.ids {
            true => format!("{}: ids", input.name),
            false => format!("{}: [{}]", input.name, graph.input_width(i)),
        })
        .collect();
    let outputs: Vec<String> = (0..spec.outputs.len())
        .map(|o| format!("{}: [{}]", spec.outputs[o].name, graph.output_width(o)))
        .collect();
    let _ = writeln!(
        s,
        "{}({}) -> ({})",
        spec.name,
        inputs.join(", "),
        outputs.join(", ")
    );
    let line = |s: &mut String, row: &[String]| {
        let _ = writeln!(
            s,
            "{:<a$}  {:<b$}  {:<c$}  {:<d$}  {:>e$}  {:>f$}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            a = w[0],
            b = w[1],
            c = w[2],
            d = w[3],
            e = w[4],
            f = w[5]
        );
    };
    line(&mut s, &headers.map(String::from));
    let _ = writeln!(s, "{}", "-".repeat(w.iter().sum::<usize>() + 10));
    for row in &cells {
        line(&mut s, row);
    }
    let _ = writeln!(s, "{}", "-".repeat(w.iter().sum::<usize>() + 10));
    let _ = write!(s, "{} nodes, {} parameters", spec.nodes.len(), graph.num_params());
    s
}
