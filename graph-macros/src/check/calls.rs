//! Pass: each call's layer. A built-in is looked up in the catalogue and its
//! arguments and number of inputs checked; a name that is not built in is a
//! user layer (unless it is a torch spelling or a typo of a built-in); a
//! graph call is a nested graph.

use super::{RawKind, RawNode, Scope};
use crate::ast::{Call, Expr, GraphCall};
use crate::errors::Errors;
use crate::ir::{Arg, Nested, NodeKind};
use crate::layers::{self, ArgKind};
use crate::width::{self, Width};

pub(super) fn resolve(scope: &mut Scope, sizes: &[String], raw: &[RawNode]) -> Vec<Option<NodeKind>> {
    let mut kinds: Vec<Option<NodeKind>> = Vec::with_capacity(raw.len());
    for (k, node) in raw.iter().enumerate() {
        let kind = match (&node.kind, node.split) {
            // A split is checked once, on its first part; the other parts
            // share that check.
            (_, Some((part, _))) if part > 0 => kinds[k - part].as_ref().and_then(|_| narrow(Vec::new())),
            (RawKind::Layer(_), _) => check_call(node, sizes, &mut scope.errors),
            (RawKind::Host(call, _), _) => check_graph_call(call, sizes, &mut scope.errors),
            (RawKind::Output { host, select }, _) => Some(NodeKind::Output {
                host: *host,
                select: select.clone(),
            }),
        };
        kinds.push(kind);
    }
    kinds
}

/// A `Narrow` with these arguments (the parts of a `Split`).
pub(super) fn narrow(args: Vec<Arg>) -> Option<NodeKind> {
    layers::lookup("Narrow").map(|layer| NodeKind::Builtin { layer, args })
}

fn count(n: usize, was: bool) -> String {
    match (n, was) {
        (0, _) => "none was".to_string(),
        (1, _) => "1 was".to_string(),
        (n, _) => format!("{n} were"),
    }
}

/// Looks up the layer and checks its arguments and number of inputs.
fn check_call(node: &RawNode, sizes: &[String], errors: &mut Errors) -> Option<NodeKind> {
    let call = node.call()?;
    let layer_name = call.layer.to_string();
    if let Some((_, n)) = node.split {
        return check_split(node, n, errors);
    }
    let Some(def) = layers::lookup(&layer_name) else {
        if let Some(typo) = misspelt_layer(call) {
            errors.push(typo);
            return None;
        }
        return check_custom(node, sizes, errors);
    };
    let mut ok = true;
    if call.args.len() != def.args.len() {
        let names: Vec<&str> = def.args.iter().map(|(n, _)| *n).collect();
        let expected = match def.args.len() {
            0 => "no arguments".to_string(),
            1 => format!("1 argument ({})", names[0]),
            n => format!("{n} arguments ({})", names.join(", ")),
        };
        errors.push(syn::Error::new(
            call.args_span,
            format!(
                "node `{}`: `{layer_name}` takes {expected}, but {} given",
                node.statement,
                count(call.args.len(), true)
            ),
        ));
        ok = false;
    }
    if !def.arity.accepts(call.inputs.len()) {
        errors.push(syn::Error::new(
            call.inputs_span,
            format!(
                "node `{}`: `{layer_name}` takes {}, but {} given",
                node.statement,
                def.arity.describe(),
                count(call.inputs.len(), true)
            ),
        ));
        ok = false;
    }
    let mut args = Vec::with_capacity(call.args.len());
    for (arg, (arg_name, kind)) in call.args.iter().zip(def.args) {
        let checked = match kind {
            ArgKind::Width => positive_width(arg, sizes).map(Arg::Width),
            ArgKind::Offset => width::parse(arg, sizes).and_then(|w| match w.as_const() {
                Some(c) if c < 0 => Err("an offset must not be negative".to_string()),
                _ => Ok(Arg::Width(w)),
            }),
            ArgKind::Float => float_literal(arg).map(|_| Arg::Float(Box::new(arg.clone()))),
            ArgKind::Probability => match float_literal(arg) {
                Ok(p) if (0.0..1.0).contains(&p) => Ok(Arg::Float(Box::new(arg.clone()))),
                Ok(p) => Err(format!(
                    "a probability is in [0, 1), found {p}{}",
                    if p > 1.0 && p < 100.0 {
                        format!("\n= help: for {p}%, write {}", p / 100.0)
                    } else {
                        String::new()
                    }
                )),
                Err(e) => Err(e),
            },
        };
        match checked {
            Ok(a) => args.push(a),
            Err(msg) => {
                errors.push(syn::Error::new_spanned(
                    arg,
                    format!(
                        "node `{}`: `{layer_name}` argument `{arg_name}`: {msg}",
                        node.statement
                    ),
                ));
                ok = false;
            }
        }
    }
    ok.then_some(NodeKind::Builtin { layer: def, args })
}

/// `(a, b, ..) = Split(n)(x)`: `n` a positive literal equal to the number of names.
fn check_split(node: &RawNode, n: usize, errors: &mut Errors) -> Option<NodeKind> {
    let call = node.call()?;
    let parts = match call.args.as_slice() {
        [arg] => match positive_width(arg, &[]).ok().and_then(|w| w.as_const()) {
            Some(p) => Some((p as usize, arg)),
            None => {
                errors.push(syn::Error::new_spanned(
                    arg,
                    "`Split` takes the number of parts, a positive integer",
                ));
                return None;
            }
        },
        _ => {
            errors.push(syn::Error::new(
                call.args_span,
                format!(
                    "`Split` takes 1 argument (the number of parts), but {} given",
                    count(call.args.len(), true)
                ),
            ));
            return None;
        }
    };
    let (p, arg) = parts?;
    if p != n {
        errors.push(syn::Error::new_spanned(
            arg,
            format!("`Split({p})` makes {p} parts, but {n} names receive them"),
        ));
        return None;
    }
    if call.inputs.len() != 1 {
        errors.push(syn::Error::new(
            call.inputs_span,
            format!(
                "`Split` takes exactly one input, but {} given",
                count(call.inputs.len(), true)
            ),
        ));
        return None;
    }
    // Its arguments depend on the input's width: see `widths::infer_split`.
    narrow(Vec::new())
}

/// A name that is not built in is a user layer, unless it is a torch
/// spelling of a built-in or one or two edits away from one: then it is most
/// likely a typo. (A path, `self::Lineal`, is always a user layer.)
fn misspelt_layer(call: &Call) -> Option<syn::Error> {
    if call.path.segments.len() > 1 {
        return None;
    }
    let layer_name = call.layer.to_string();
    let alias = layers::ALIASES
        .iter()
        .find(|(a, _)| *a == layer_name)
        .map(|(_, l)| *l);
    let help = match alias {
        Some(l) => format!("\n= help: this layer is called `{l}` here"),
        None => {
            // Stricter than did-you-mean elsewhere: a miss here makes the
            // name a user layer, which is legitimate.
            let close = layers::CATALOG
                .iter()
                .map(|d| d.name)
                .chain([layers::SPLIT])
                .map(|n| (strsim::damerau_levenshtein(&layer_name, n), n))
                .filter(|&(d, _)| d > 0 && d <= 2 && d <= layer_name.len() / 3)
                .min_by_key(|&(d, _)| d);
            let (_, n) = close?;
            let hint = format!("\n= help: did you mean `{n}`?");
            format!("{hint}\n= help: to use a layer of your own with this name, write its path: `self::{layer_name}`")
        }
    };
    Some(syn::Error::new(
        call.layer.span(),
        format!("unknown layer `{layer_name}`{help}"),
    ))
}

/// A user layer: a type implementing `graph_runtime::Layer`, built with
/// `Type::new(args)`. Arguments that are widths may use the graph's sizes.
fn check_custom(node: &RawNode, sizes: &[String], errors: &mut Errors) -> Option<NodeKind> {
    let call = node.call()?;
    if call.inputs.is_empty() {
        errors.push(syn::Error::new(
            call.inputs_span,
            format!("node `{}`: `{}` is given no inputs", node.statement, call.layer),
        ));
        return None;
    }
    let args = call
        .args
        .iter()
        .map(|a| match width::parse(a, sizes) {
            Ok(w) if w.as_const().is_none_or(|c| c >= 0) => Arg::Width(w),
            _ => Arg::Expr(Box::new(a.clone())),
        })
        .collect();
    Some(NodeKind::Custom {
        path: call.path.clone(),
        args,
    })
}

/// A graph used as a node: its type, generic arguments and sizes. A
/// built-in layer called with one argument list is the common slip
/// `Tanh(x)` for `Tanh()(x)`.
fn check_graph_call(call: &GraphCall, sizes: &[String], errors: &mut Errors) -> Option<NodeKind> {
    let name = call.name.to_string();
    if call.path.segments.len() == 1
        && call.generics.is_none()
        && !call.dynamic
        && (layers::lookup(&name).is_some() || name == layers::SPLIT)
    {
        let names: Vec<String> = call
            .inputs
            .iter()
            .filter_map(|e| match e {
                Expr::Ref(r) => Some(r.to_string()),
                _ => None,
            })
            .collect();
        let help = if !names.is_empty() && names.len() == call.inputs.len() {
            format!(
                "\n= help: if these are its inputs, write `{name}()({})`",
                names.join(", ")
            )
        } else {
            String::new()
        };
        errors.push(syn::Error::new(
            call.inputs_span,
            format!(
                "`{name}(..)` builds a layer but gives it no inputs: write `{name}(..)(input, ...)`{help}"
            ),
        ));
        return None;
    }
    let args = graph_sizes(&name, &call.sizes, sizes, errors);
    let stack = match &call.stack {
        None => None,
        Some(stack) => {
            let depth = match width::parse(&stack.depth, sizes) {
                Ok(d) if d.as_const().is_some_and(|d| d < 1) => Err(format!(
                    "a stack needs at least one layer, but its depth is {}",
                    d.as_const().unwrap_or(0)
                )),
                Ok(d) => Ok(d),
                Err(msg) => Err(format!("the depth of a `Stack` (its number of layers): {msg}")),
            }
            .map_err(|msg| errors.push(syn::Error::new_spanned(&stack.depth, msg)));
            let rest = &stack.rest;
            let rest_args = graph_sizes(&rest.name.to_string(), &rest.sizes, sizes, errors);
            let upper = Nested {
                path: rest.path.clone(),
                generics: rest.generics.clone(),
                sizes: rest_args?,
                dynamic: rest.dynamic,
                stack: None,
            };
            Some((depth.ok()?, Box::new(upper)))
        }
    };
    Some(NodeKind::Nested(Nested {
        path: call.path.clone(),
        generics: call.generics.clone(),
        sizes: args?,
        // A stack's widths are read from its layers when it is built if
        // either takes run-time sizes; otherwise they are constants.
        dynamic: call.dynamic || stack.as_ref().is_some_and(|(_, upper)| upper.dynamic),
        stack,
    }))
}

/// The sizes given to graph `name`, each a positive width.
fn graph_sizes(name: &str, exprs: &[syn::Expr], sizes: &[String], errors: &mut Errors) -> Option<Vec<Arg>> {
    let mut args = Vec::with_capacity(exprs.len());
    let mut ok = true;
    for expr in exprs {
        match positive_width(expr, sizes) {
            Ok(w) => args.push(Arg::Width(w)),
            Err(msg) => {
                errors.push(syn::Error::new_spanned(
                    expr,
                    format!("a size of `{name}`: {msg}"),
                ));
                ok = false;
            }
        }
    }
    ok.then_some(args)
}

/// A width that must be positive: zero and negative constants are errors.
pub(super) fn positive_width(expr: &syn::Expr, sizes: &[String]) -> Result<Width, String> {
    let w = width::parse(expr, sizes)?;
    match w.as_const() {
        Some(0) => Err("a width must be at least 1, found 0".to_string()),
        Some(c) if c < 0 => Err(format!("a width must be positive, `{w}` is {c}")),
        _ => Ok(w),
    }
}

fn float_literal(expr: &syn::Expr) -> Result<f64, String> {
    let (negative, inner) = match expr {
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => (true, &**expr),
        e => (false, e),
    };
    let value = match inner {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Float(f),
            ..
        }) => f.base10_parse::<f64>().map_err(|e| e.to_string())?,
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(i),
            ..
        }) => i.base10_parse::<f64>().map_err(|e| e.to_string())?,
        _ => return Err("expected a number literal".to_string()),
    };
    Ok(if negative { -value } else { value })
}
