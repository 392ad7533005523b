//! Passes: outputs. Each listed output is a node (not an input, listed
//! once); then every input must be used and every node reach an output.

use super::names::{unknown_name, Sources};
use super::{all_names, Def, RawKind, RawNode, Scope};
use crate::ir::{Input, Source};
use proc_macro2::Span;
use std::collections::HashMap;
use syn::Ident;

pub(super) fn resolve(
    scope: &mut Scope,
    inputs: &[Input],
    raw: &[RawNode],
    defs: &HashMap<String, Def>,
) -> Vec<(Ident, usize)> {
    let graph_name = &scope.graph;
    let all_names = all_names(inputs, raw);
    let mut listed: HashMap<String, Span> = HashMap::new();
    let mut outputs = Vec::new();
    for out in &scope.decl.outputs {
        let key = out.to_string();
        if listed.insert(key.clone(), out.span()).is_some() {
            scope.errors.push(syn::Error::new(
                out.span(),
                format!("output `{key}` is listed twice"),
            ));
            continue;
        }
        match defs.get(&key) {
            Some(Def::Node(k)) => outputs.push((out.clone(), *k)),
            Some(Def::Input(_)) => scope.errors.push(syn::Error::new(
                out.span(),
                format!(
                    "output `{key}` is an input of `{graph_name}`; outputs must be nodes\n\
                     = help: pass it through a node: `{key}_out = Identity()({key});`"
                ),
            )),
            None if scope.broken.contains(&key) => {}
            None => {
                let mut error = unknown_name(out, &all_names, graph_name);
                if !error.to_string().contains("help:") {
                    let nodes: Vec<String> = raw
                        .iter()
                        .filter(|n| !n.generated)
                        .map(|n| format!("`{}`", n.name))
                        .collect();
                    error = syn::Error::new(
                        out.span(),
                        format!(
                            "{error}\n= help: the nodes of `{graph_name}` are {}",
                            nodes.join(", ")
                        ),
                    );
                }
                scope.errors.push(error)
            }
        }
    }
    outputs
}

/// Every input is used by some node, and every node reaches an output
/// (names starting with `_` are exempt).
pub(super) fn check_usage(
    scope: &mut Scope,
    inputs: &[Input],
    raw: &[RawNode],
    sources: &Sources,
    outputs: &[(Ident, usize)],
) {
    let errors = &mut scope.errors;
    let mut input_used = vec![false; inputs.len()];
    for srcs in sources.iter().flatten() {
        for (src, _) in srcs {
            if let Source::Input(i) = src {
                input_used[*i] = true;
            }
        }
    }
    // An input left out of a nested graph's call is the likelier mistake
    // when there is one: say what each call is given.
    let calls: Vec<String> = raw
        .iter()
        .filter_map(|n| match &n.kind {
            RawKind::Host(call, _) => Some(format!("`{}` is given {}", call.name, call.inputs.len())),
            _ => None,
        })
        .collect();
    for (input, used) in inputs.iter().zip(input_used) {
        if !used && !input.name.to_string().starts_with('_') {
            let nested = if calls.is_empty() {
                String::new()
            } else {
                format!(
                    "\n= help: if `{}` is meant for a nested graph, pass it in its call ({})",
                    input.name,
                    calls.join(", ")
                )
            };
            errors.push(syn::Error::new(
                input.name.span(),
                format!(
                    "input `{}` is never used{nested}\n= help: remove it, or name it `_{}` if it is unused on purpose",
                    input.name, input.name
                ),
            ));
        }
    }
    // Nodes that reach an output: walk back from the outputs.
    let mut reaches = vec![false; raw.len()];
    let mut stack: Vec<usize> = outputs.iter().map(|&(_, k)| k).collect();
    while let Some(k) = stack.pop() {
        if std::mem::replace(&mut reaches[k], true) {
            continue;
        }
        for (src, _) in sources[k].iter().flatten() {
            if let Source::Node(j) = src {
                stack.push(*j);
            }
        }
    }
    for (node, reached) in raw.iter().zip(reaches) {
        if !reached && !node.name.to_string().starts_with('_') {
            errors.push(syn::Error::new(
                node.name.span(),
                format!(
                    "node `{}` does not reach any output, so it would be computed for nothing\n\
                     = help: list it among the outputs, use it in another node, or remove it",
                    node.name
                ),
            ));
        }
    }
}
