//! Checking: names, evaluation order and shapes. Turns the syntax tree into
//! the checked graph of `ir` that `expand` generates code from.
//!
//! Every mistake becomes a `syn::Error` spanned on the offending token; as
//! many independent mistakes as can be found are reported together. A node
//! whose inputs are already wrong gets no width, and nothing downstream of it
//! is reported again.
//!
//! Each graph goes through the passes below, in order, each in its own file:
//! a pass takes what earlier passes found and returns what it finds, so
//! `check_graph` reads as the data flow; they share only a [`Scope`], the
//! declaration and the mistakes found so far.
//!
//! Widths are polynomials over the graph's sizes (`width.rs`). What the macro
//! cannot decide symbolically becomes a `Deferred` check in generated code.
//!
//! Nested calls are flattened into anonymous nodes named
//! `{statement}_{layer}` in snake case (`y = Sigmoid()(Linear(4, 1)(h))`
//! declares `y_linear`, then `y`), with `_2`, `_3`, ... when a statement
//! nests the same layer more than once. `(a, b) = Split(2)(x);` declares
//! `Narrow` nodes `a` and `b`. Nodes are numbered in that declaration order,
//! which is also the order of their parameters.

mod calls;
mod declare;
mod flatten;
mod names;
mod order;
mod outputs;
mod params;
mod recurrent;
mod stub;
mod widths;

pub use widths::derived_atom;

use crate::ast::{Call, GraphCall, GraphDecl, Invocation};
use crate::errors::Errors;
use crate::ir::{Checked, Graph, Input, Node, NodeKind, Select};
use proc_macro2::Span;
use quote::quote;
use std::collections::HashMap;
use syn::Ident;

/// The names in the macro's table of shipped cells (once per path they
/// are named by).
#[cfg(test)]
pub(crate) fn shipped_names() -> Vec<String> {
    widths::Signature::shipped()
        .iter()
        .map(|s| s.name().to_string())
        .collect()
}

/// Checks every graph of the invocation. Graphs with mistakes become stubs
/// (see [`Stub`]); the mistakes are in the returned errors.
pub fn check(invocation: Invocation) -> (Checked, Errors) {
    let runtime = invocation.runtime.unwrap_or_else(|| quote!(::graph_runtime));
    let mut errors = Errors::default();
    let (mut graphs, mut stubs) = (Vec::new(), Vec::new());
    let mut seen: HashMap<String, Span> = HashMap::new();
    // What each graph of the invocation takes, for the graphs that nest it.
    let mut siblings: Vec<widths::Signature> = invocation.graphs.iter().map(widths::Signature::of).collect();
    siblings.extend(widths::Signature::shipped());
    for decl in invocation.graphs {
        let key = decl.name.to_string();
        if seen.insert(key.clone(), decl.name.span()).is_some() {
            errors.push(syn::Error::new(
                decl.name.span(),
                format!("a graph named `{key}` is already declared in this graph! block"),
            ));
            continue;
        }
        match check_graph(&decl, &siblings) {
            Ok(g) => {
                // Graphs declared later read its outputs' widths too.
                if let Some(s) = siblings.iter_mut().find(|s| s.is(&key)) {
                    s.learn_outputs(&g);
                }
                graphs.push(g)
            }
            Err(e) => {
                errors.push(e);
                stubs.push(stub::of(decl, &siblings));
            }
        }
    }
    (
        Checked {
            runtime,
            graphs,
            stubs,
        },
        errors,
    )
}

/// The passes of one graph, in order: each takes what earlier ones found
/// and returns what it finds; mistakes go to `scope`.
fn check_graph(decl: &GraphDecl, siblings: &[widths::Signature]) -> syn::Result<Graph> {
    let mut scope = Scope::new(decl);
    // The sizes and inputs, and the widths they declare.
    let (sizes, inputs) = declare::sizes_and_inputs(&mut scope);
    // Statements become nodes, nested calls first, with generated names.
    let raw = flatten::statements(&mut scope);
    // Every name declared once; every input of a node found.
    let defs = names::define(&mut scope, &sizes, &inputs, &raw);
    let sources = names::resolve(&mut scope, &inputs, &raw, &defs);
    // Each call's layer (built-in, user type or graph) and its arguments.
    let mut kinds = calls::resolve(&mut scope, &sizes, &raw);
    // `#[params(tensor = name)]`: a layer's tensors under names of their own.
    let param_names = params::rename(&mut scope, &raw, &kinds);
    // An order in which each node follows its inputs; cycles reported.
    let order = order::evaluation_order(&mut scope, &raw, &sources);
    // Every node's width by its layer's shape rule, or a deferred claim
    // (and each part of a split becomes a `Narrow`).
    let nodes = widths::Nodes {
        sizes: &sizes,
        inputs: &inputs,
        raw: &raw,
        sources: &sources,
        order: &order,
        siblings,
    };
    let mut found = widths::infer(&mut scope, &nodes, &mut kinds);
    let mut moot = Vec::new();
    // The outputs are nodes, and everything reaches one.
    let outputs = outputs::resolve(&mut scope, &inputs, &raw, &defs);
    if scope.errors.is_empty() {
        outputs::check_usage(&mut scope, &inputs, &raw, &sources, &outputs);
    }
    // `#[recurrent(input = output)]` pairs of one width.
    let recurrent = recurrent::pairs(&mut scope, &inputs, &outputs, &defs, &mut found, &mut moot);
    if !scope.errors.is_empty() {
        return scope.errors.finish(Graph::empty(decl));
    }
    // With no errors, every node has a kind, its inputs and a width.
    let derived: Vec<(usize, String)> = order
        .iter()
        .filter(|&&k| matches!(kinds[k], Some(NodeKind::Custom { .. })))
        .map(|&k| (k, widths::derived_atom(&raw[k].name)))
        .collect();
    let nodes: Option<Vec<Node>> = raw
        .iter()
        .zip(kinds)
        .zip(sources)
        .zip(found.widths)
        .zip(param_names)
        .map(|((((node, kind), sources), width), params)| {
            Some(Node {
                params,
                name: node.name.clone(),
                statement: node.statement.clone(),
                kind: kind?,
                inputs: sources?.into_iter().map(|(s, _)| s).collect(),
                width: width?,
                line: node.name.span().start().line as u32,
            })
        })
        .collect();
    let Some(nodes) = nodes else {
        return Err(syn::Error::new(
            decl.name.span(),
            format!(
                "graph! could not check `{}` but found no mistake; please report this",
                scope.graph
            ),
        ));
    };
    Ok(Graph {
        attrs: decl.attrs.clone(),
        vis: decl.vis.clone(),
        name: decl.name.clone(),
        const_sizes: decl.const_sizes.clone(),
        runtime_sizes: decl.runtime_sizes.clone(),
        inputs,
        nodes,
        order,
        outputs,
        recurrent,
        deferred: found.deferred,
        moot,
        derived,
        atoms: found.atoms,
        quotients: found.quotients,
    })
}

/// What the passes of one graph share: the declaration and the mistakes
/// found so far. Everything else a pass finds, it returns.
struct Scope<'a> {
    decl: &'a GraphDecl,
    /// The graph's name, for messages.
    graph: String,
    errors: Errors,
    /// Names of statements already reported, whose uses are not reported again.
    broken: Vec<String>,
}

impl<'a> Scope<'a> {
    fn new(decl: &'a GraphDecl) -> Self {
        Scope {
            decl,
            graph: decl.name.to_string(),
            errors: Errors::default(),
            broken: Vec::new(),
        }
    }
}

/// Every input and node name, for did-you-mean hints.
fn all_names(inputs: &[Input], raw: &[RawNode]) -> Vec<String> {
    let inputs = inputs.iter().map(|i| i.name.to_string());
    inputs.chain(raw.iter().map(|n| n.name.to_string())).collect()
}

impl Graph {
    /// The value returned beside errors: never expanded.
    fn empty(decl: &GraphDecl) -> Self {
        Graph {
            attrs: Vec::new(),
            vis: decl.vis.clone(),
            name: decl.name.clone(),
            const_sizes: Vec::new(),
            runtime_sizes: Vec::new(),
            inputs: Vec::new(),
            nodes: Vec::new(),
            order: Vec::new(),
            outputs: Vec::new(),
            recurrent: Vec::new(),
            deferred: Vec::new(),
            moot: Vec::new(),
            derived: Vec::new(),
            atoms: Vec::new(),
            quotients: Vec::new(),
        }
    }
}

/// A node before resolution: its name, its call and its inputs (names, or
/// indices of the anonymous nodes its nested calls became).
struct RawNode<'a> {
    name: Ident,
    /// Whether the name was generated for a nested call.
    generated: bool,
    /// The statement the node comes from: what messages call it, since a
    /// generated name (`y_linear`) is nothing the user wrote.
    statement: Ident,
    kind: RawKind<'a>,
    inputs: Vec<RawInput<'a>>,
    /// For `(a, b, ..) = Split(n)(x)`: this node's position and `n`.
    split: Option<(usize, usize)>,
}

enum RawKind<'a> {
    Layer(&'a Call),
    /// A nested graph, and how many outputs its binding takes (if it must
    /// have exactly that many).
    Host(&'a GraphCall, Option<usize>),
    Output {
        host: usize,
        select: Select,
    },
}

impl<'a> RawNode<'a> {
    fn call(&self) -> Option<&'a Call> {
        match self.kind {
            RawKind::Layer(call) => Some(call),
            _ => None,
        }
    }

    /// What the node is, for messages: the layer or graph name.
    fn what(&self) -> String {
        match &self.kind {
            RawKind::Layer(call) => call.layer.to_string(),
            RawKind::Host(call, _) => call.name.to_string(),
            RawKind::Output { .. } => "output".to_string(),
        }
    }
}

enum RawInput<'a> {
    Name(&'a Ident),
    Anonymous(usize, Span),
}

#[derive(Clone, Copy)]
enum Def {
    Input(usize),
    Node(usize),
}
