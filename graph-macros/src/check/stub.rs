//! The interface of a graph with mistakes, read from its declaration alone:
//! what code using the graph needs to type-check, so that a compile shows
//! the mistakes and no follow-on errors.

use super::widths::{sizes_mistake, unknown_shipped, Signature};
use crate::ast::{Expr, GraphDecl, InputKind};
use crate::ir::Stub;
use crate::layers;
use syn::Ident;

/// `known`: the graphs the macro knows; a nested call that gives one of
/// them its sizes wrongly is reported and not named by the stub (naming it
/// would be a second error, inside the library).
pub(super) fn of(decl: GraphDecl, known: &[Signature]) -> Stub {
    let mut inputs: Vec<(Ident, bool)> = Vec::new();
    for input in decl.inputs {
        if !inputs.iter().any(|(n, _)| *n == input.name) {
            inputs.push((input.name, matches!(input.kind, InputKind::Ids)));
        }
    }

    // As the real expansion decides: run-time sizes, user layers and nested
    // graphs make the constructors fallible.
    let fallible =
        !decl.runtime_sizes.is_empty() || decl.statements.iter().any(|s| built_when_constructed(&s.value));
    let states = unique(decl.recurrent.iter().map(|p| p.input.clone()).collect());
    let (mut nested, mut misnamed) = (Vec::new(), Vec::new());
    for statement in &decl.statements {
        nested_calls(&statement.value, known, &mut nested, &mut misnamed);
    }
    Stub {
        states,
        attrs: decl.attrs,
        vis: decl.vis,
        name: decl.name,
        const_sizes: unique(decl.const_sizes),
        runtime_sizes: unique(decl.runtime_sizes),
        inputs,
        outputs: unique(decl.outputs),
        fallible,
        nested,
        misnamed,
    }
}

/// The graphs `expr` calls, as written.
fn nested_calls(
    expr: &Expr,
    known: &[Signature],
    out: &mut Vec<(syn::Path, Option<syn::AngleBracketedGenericArguments>)>,
    misnamed: &mut Vec<syn::Path>,
) {
    match expr {
        Expr::Ref(_) => {}
        Expr::Graph(call) => {
            // A built-in layer written like a graph (`Tanh(h)`) is a
            // mistake reported already, not a graph.
            let name = call.name.to_string();
            if layers::lookup(&name).is_none() && name != layers::SPLIT {
                let named = super::widths::graph_ref(call);
                match sizes_mistake(known, &named) {
                    None => out.push((call.path.clone(), call.generics.clone())),
                    // A graph that does not exist is not named at all.
                    Some(_) if unknown_shipped(known, &named).is_some() => {}
                    Some(_) => misnamed.push(call.path.clone()),
                }
            }
            call.inputs
                .iter()
                .for_each(|e| nested_calls(e, known, out, misnamed));
        }
        Expr::Call(call) => call
            .inputs
            .iter()
            .for_each(|e| nested_calls(e, known, out, misnamed)),
    }
}

/// Whether `expr` holds a nested graph or a user layer.
fn built_when_constructed(expr: &Expr) -> bool {
    match expr {
        Expr::Ref(_) => false,
        Expr::Graph(_) => true,
        Expr::Call(call) => {
            let name = call.layer.to_string();
            (layers::lookup(&name).is_none() && name != layers::SPLIT)
                || call.inputs.iter().any(built_when_constructed)
        }
    }
}

/// Each name once, in first-seen order.
fn unique(names: Vec<Ident>) -> Vec<Ident> {
    let mut out: Vec<Ident> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}
