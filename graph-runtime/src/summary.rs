//! A graph as a table, as Keras' `summary()` or torchinfo show a model:
//! each node with its layer, input and output widths, parameter count and
//! source line; a nested graph or stack as one row (its graph, sizes and
//! parameters), or, expanded, its own rows indented under it (each layer of
//! a stack), their lines with their file; totals that are the sum of the
//! rows.

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
    /// Empty for a host whose rows below count its parameters.
    params: Option<usize>,
    line: String,
}

/// A nested graph as written with its sizes: `Lstm[input=128, hidden=128, layers=2]`.
fn sized(g: &Description) -> String {
    let sizes: Vec<String> = g
        .spec
        .sizes
        .iter()
        .zip(&g.sizes)
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if sizes.is_empty() {
        g.spec.name.to_string()
    } else {
        format!("{}[{}]", g.spec.name, sizes.join(", "))
    }
}

/// The rows of `d`; `file` names the source file on nested rows.
fn rows(d: &Description, depth: usize, expand: bool, out: &mut Vec<Row>) {
    let spec = d.spec;
    let file = spec.file.rsplit(['/', '\\']).next().unwrap_or(spec.file);
    for (k, node) in spec.nodes.iter().enumerate() {
        let layers = &d.nested[k];
        let layer = match (node.kind, layers.first()) {
            (NodeKind::Stack, Some(first)) => {
                let upper = layers.get(1).map(sized).filter(|u| *u != sized(first));
                match upper {
                    Some(upper) => format!("Stack ×{}: {}, then {upper}", layers.len(), sized(first)),
                    None => format!("Stack ×{}: {}", layers.len(), sized(first)),
                }
            }
            (NodeKind::Nested { .. }, Some(first)) => sized(first),
            _ => node.layer.to_string(),
        };
        let expanded = expand && !layers.is_empty();
        out.push(Row {
            depth,
            node: node.name.to_string(),
            layer,
            inputs: node
                .inputs
                .iter()
                .map(|&s| d.width_text(s))
                .collect::<Vec<_>>()
                .join(", "),
            output: d.width_text(spec.node_slot(k)),
            params: (!expanded).then_some(d.params[k]),
            line: if depth == 0 {
                node.line.to_string()
            } else {
                format!("{file}:{}", node.line)
            },
        });
        if expanded {
            for (l, inner) in layers.iter().enumerate() {
                if node.kind == NodeKind::Stack {
                    out.push(Row {
                        depth: depth + 1,
                        node: format!("[{l}]"),
                        layer: sized(inner),
                        inputs: String::new(),
                        output: String::new(),
                        params: None,
                        line: String::new(),
                    });
                }
                let depth = depth + 1 + usize::from(node.kind == NodeKind::Stack);
                rows(inner, depth, expand, out);
            }
        }
    }
}

/// The table of `graph`: nested graphs as one row, or `expand`ed.
pub(crate) fn summary(d: &Description, expand: bool) -> String {
    let mut table = Vec::new();
    rows(d, 0, expand, &mut table);
    let headers = ["node", "layer", "inputs", "output", "params", "line"];
    let cells: Vec<[String; 6]> = table
        .iter()
        .map(|r| {
            [
                format!("{}{}", "  ".repeat(r.depth), r.node),
                r.layer.clone(),
                r.inputs.clone(),
                r.output.clone(),
                r.params.map_or(String::new(), |p| p.to_string()),
                r.line.clone(),
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
    // The total is the sum of the rows (a host expanded counts below).
    let total: usize = table.iter().filter_map(|r| r.params).sum();
    debug_assert_eq!(total, d.num_params());
    let nested = table.len() - table.iter().filter(|r| r.depth == 0).count();
    if nested > 0 {
        let _ = write!(
            s,
            "{} nodes and {nested} rows of nested graphs, {total} parameters",
            spec.nodes.len()
        );
    } else {
        let _ = write!(s, "{} nodes, {total} parameters", spec.nodes.len());
    }
    s
}
