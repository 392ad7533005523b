//! Pass: statements to nodes. Nested calls become anonymous nodes (inner
//! calls first, named `{statement}_{layer}`), `(a, b) = Split(2)(x)` one node
//! per part, and a graph call a host node plus one node per output taken.

use super::{RawInput, RawKind, RawNode, Scope};
use crate::ast::{Call, Expr, GraphCall};
use crate::ir::Select;
use crate::layers;
use std::collections::HashMap;
use syn::Ident;

pub(super) fn statements<'a>(scope: &mut Scope<'a>) -> Vec<RawNode<'a>> {
    let decl = scope.decl;
    let mut raw: Vec<RawNode<'a>> = Vec::new();
    for statement in &decl.statements {
        let first = &statement.names[0];
        match &statement.value {
            Expr::Ref(other) => {
                scope.broken.extend(statement.names.iter().map(Ident::to_string));
                scope.errors.push(syn::Error::new(
                    other.span(),
                    format!(
                        "`{first} = {other};` gives a node another name, but every node is a layer call\n\
                         = help: to copy `{other}`, write `{first} = Identity()({other});`"
                    ),
                ));
            }
            Expr::Call(call) if call.layer == layers::SPLIT => {
                let mut counts = HashMap::new();
                let shared = flatten_inputs(first, &call.inputs, &mut raw, &mut counts);
                let n = statement.names.len();
                for (k, name) in statement.names.iter().enumerate() {
                    raw.push(RawNode {
                        name: name.clone(),
                        generated: false,
                        statement: name.clone(),
                        kind: RawKind::Layer(call),
                        inputs: shared
                            .iter()
                            .map(|i| match i {
                                RawInput::Name(n) => RawInput::Name(n),
                                RawInput::Anonymous(k, s) => RawInput::Anonymous(*k, *s),
                            })
                            .collect(),
                        split: Some((k, n)),
                    });
                }
            }
            Expr::Call(call) => {
                if statement.names.len() > 1 {
                    scope.broken.extend(statement.names.iter().map(Ident::to_string));
                    scope.errors.push(syn::Error::new(
                        statement.names[1].span(),
                        format!(
                            "`({})` names {} nodes, but `{}` has one output\n\
                             = help: to cut a node into equal parts, use `Split(n)`",
                            names_list(&statement.names),
                            statement.names.len(),
                            call.layer
                        ),
                    ));
                    continue;
                }
                let mut counts = HashMap::new();
                flatten(first, first.clone(), false, call, &mut raw, &mut counts);
            }
            Expr::Graph(call) => {
                if let (Some(output), true) = (&call.output, statement.names.len() > 1) {
                    scope.broken.extend(statement.names.iter().map(Ident::to_string));
                    scope.errors.push(syn::Error::new(
                        statement.names[1].span(),
                        format!(
                            "`.{output}` takes one output of `{}`, but {} names receive it",
                            call.name,
                            statement.names.len()
                        ),
                    ));
                    continue;
                }
                let mut counts = HashMap::new();
                // `h1 = Cell(x, h).new_h;` takes one output by name, whatever
                // the number of outputs; otherwise the names receive them all.
                let expect = call.output.is_none().then_some(statement.names.len());
                let host = flatten_graph(first, call, &mut raw, &mut counts, expect);
                for (j, name) in statement.names.iter().enumerate() {
                    let select = match &call.output {
                        Some(o) => Select::Name(o.clone()),
                        None => Select::Index(j),
                    };
                    raw.push(RawNode {
                        name: name.clone(),
                        generated: false,
                        statement: name.clone(),
                        kind: RawKind::Output { host, select },
                        inputs: vec![RawInput::Anonymous(host, call.name.span())],
                        split: None,
                    });
                }
            }
        }
    }
    raw
}

fn names_list(names: &[Ident]) -> String {
    let names: Vec<String> = names.iter().map(Ident::to_string).collect();
    names.join(", ")
}

/// Flattens the nested calls among `exprs` and returns them as inputs.
fn flatten_inputs<'a>(
    statement: &Ident,
    exprs: &'a [Expr],
    raw: &mut Vec<RawNode<'a>>,
    counts: &mut HashMap<String, usize>,
) -> Vec<RawInput<'a>> {
    let mut inputs = Vec::with_capacity(exprs.len());
    for input in exprs {
        match input {
            Expr::Ref(r) => inputs.push(RawInput::Name(r)),
            Expr::Call(inner) => {
                let inner_name = anonymous(statement, &inner.layer, counts);
                let k = flatten(statement, inner_name, true, inner, raw, counts);
                inputs.push(RawInput::Anonymous(k, inner.layer.span()));
            }
            Expr::Graph(inner) => {
                // An anonymous graph call gives one output: the one named
                // with `.name`, or its only one.
                let expect = if inner.output.is_some() { None } else { Some(1) };
                let host = flatten_graph(statement, inner, raw, counts, expect);
                let select = match &inner.output {
                    Some(o) => Select::Name(o.clone()),
                    None => Select::Index(0),
                };
                let suffix = inner.output.as_ref().map_or("out".to_string(), Ident::to_string);
                let name = Ident::new(&format!("{}_{suffix}", raw[host].name), inner.name.span());
                raw.push(RawNode {
                    name,
                    generated: true,
                    statement: statement.clone(),
                    kind: RawKind::Output { host, select },
                    inputs: vec![RawInput::Anonymous(host, inner.name.span())],
                    split: None,
                });
                inputs.push(RawInput::Anonymous(raw.len() - 1, inner.name.span()));
            }
        }
    }
    inputs
}

/// `{statement}_{layer}`, numbered from the second use in a statement.
fn anonymous(statement: &Ident, layer: &Ident, counts: &mut HashMap<String, usize>) -> Ident {
    let base = format!("{statement}_{}", layers::snake(&layer.to_string()));
    let n = counts.entry(base.clone()).or_insert(0);
    *n += 1;
    let generated = if *n == 1 { base } else { format!("{base}_{n}") };
    Ident::new(&generated, layer.span())
}

/// Appends the nodes of `call` (inner calls first) to `raw`.
fn flatten<'a>(
    statement: &Ident,
    name: Ident,
    generated: bool,
    call: &'a Call,
    raw: &mut Vec<RawNode<'a>>,
    counts: &mut HashMap<String, usize>,
) -> usize {
    let inputs = flatten_inputs(statement, &call.inputs, raw, counts);
    raw.push(RawNode {
        name,
        generated,
        statement: statement.clone(),
        kind: RawKind::Layer(call),
        inputs,
        split: None,
    });
    raw.len() - 1
}

/// Appends the host node of a graph call (its inputs first); returns its index.
fn flatten_graph<'a>(
    statement: &Ident,
    call: &'a GraphCall,
    raw: &mut Vec<RawNode<'a>>,
    counts: &mut HashMap<String, usize>,
    outputs: Option<usize>,
) -> usize {
    let inputs = flatten_inputs(statement, &call.inputs, raw, counts);
    let name = anonymous(statement, &call.name, counts);
    raw.push(RawNode {
        name,
        generated: true,
        statement: statement.clone(),
        kind: RawKind::Host(call, outputs),
        inputs,
        split: None,
    });
    raw.len() - 1
}
