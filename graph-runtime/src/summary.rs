//! A graph as a table, as Keras' `summary()` or torchinfo show a model:
//! each node with its layer, input and output widths, parameter count and
//! source line; nested graphs indented under their node; totals.

use crate::describe::Description;
use crate::spec::NodeKind;
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

fn rows(d: &Description, depth: usize, out: &mut Vec<Row>) {
    let spec = d.spec;
    for (k, node) in spec.nodes.iter().enumerate() {
        let nested = matches!(node.kind, NodeKind::Nested { .. });
        out.push(Row {
            depth,
            node: node.name.to_string(),
            layer: node.layer.to_string(),
            inputs: node
                .inputs
                .iter()
                .map(|&s| d.width_text(s))
                .collect::<Vec<_>>()
                .join(", "),
            output: d.width_text(spec.node_slot(k)),
            params: d.params[k],
            line: node.line,
        });
        if let Some(inner) = d.nested[k].first().filter(|_| nested) {
            rows(inner, depth + 1, out);
        }
    }
}

/// The table of `graph`.
pub(crate) fn summary(d: &Description) -> String {
    let mut table = Vec::new();
    rows(d, 0, &mut table);
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
    let spec = d.spec;
    let mut s = String::new();
    let inputs: Vec<String> = spec
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| match input.ids {
            true => format!("{}: ids", input.name),
            false => format!("{}: [{}]", input.name, d.widths[i]),
        })
        .collect();
    let outputs: Vec<String> = (0..spec.outputs.len())
        .map(|o| format!("{}: [{}]", spec.outputs[o].name, d.output_width(o)))
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
    let _ = write!(s, "{} nodes, {} parameters", spec.nodes.len(), d.num_params());
    s
}
