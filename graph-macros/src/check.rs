//! Checking: names, evaluation order and shapes. Turns the syntax tree into
//! the checked graph that `expand` generates code from.
//!
//! Every mistake becomes a `syn::Error` spanned on the offending token; as
//! many independent mistakes as can be found are reported together. A node
//! whose inputs are already wrong gets no width, and nothing downstream of it
//! is reported again.
//!
//! Nested calls are flattened into anonymous nodes named
//! `{statement}_{layer}` in snake case (`y = Sigmoid()(Linear(4, 1)(h))`
//! declares `y_linear`, then `y`), with `_2`, `_3`, ... when a statement
//! nests the same layer more than once. Nodes are numbered in that
//! declaration order, which is also the order of their parameters.

use crate::ast::{Call, Expr, GraphDecl, Invocation};
use crate::layers::{self, LayerDef, Rule};
use crate::parse::Errors;
use proc_macro2::{Span, TokenStream};
use quote::quote;
use std::collections::HashMap;
use syn::{Attribute, Ident, Visibility};

/// A whole invocation, checked.
pub struct Checked {
    pub runtime: TokenStream,
    pub graphs: Vec<Graph>,
}

/// One graph, checked: every name resolved, every width known, nodes in an
/// order where each comes after its inputs.
pub struct Graph {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub inputs: Vec<Input>,
    /// In declaration order (the order of the parameters).
    pub nodes: Vec<Node>,
    /// Node indices in evaluation order.
    pub order: Vec<usize>,
    /// Output name (spanned where listed) and node index.
    pub outputs: Vec<(Ident, usize)>,
    /// `(input index, output index)` of each `#[recurrent]` pair.
    pub recurrent: Vec<(usize, usize)>,
}

pub struct Input {
    pub name: Ident,
    pub width: u64,
}

pub struct Node {
    /// The user's name, or a generated one spanned on the nested call.
    pub name: Ident,
    pub layer: &'static LayerDef,
    pub args: Vec<u64>,
    pub inputs: Vec<Source>,
    pub width: u64,
    /// Source line of the node's name (0 when unknown), for run-time messages.
    pub line: u32,
}

/// Where a node's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Input(usize),
    Node(usize),
}

pub fn check(invocation: Invocation) -> syn::Result<Checked> {
    let runtime = invocation.runtime.unwrap_or_else(|| quote!(::graph_runtime));
    let mut errors = Errors::default();
    let mut graphs = Vec::new();
    let mut seen: HashMap<String, Span> = HashMap::new();
    for decl in invocation.graphs {
        let key = decl.name.to_string();
        if seen.insert(key.clone(), decl.name.span()).is_some() {
            errors.push(syn::Error::new(
                decl.name.span(),
                format!("a graph named `{key}` is already declared in this graph! block"),
            ));
            continue;
        }
        match check_graph(decl) {
            Ok(g) => graphs.push(g),
            Err(e) => errors.push(e),
        }
    }
    errors.finish(Checked { runtime, graphs })
}

/// A node before resolution: its name, its call and its inputs (names, or
/// indices of the anonymous nodes its nested calls became).
struct RawNode<'a> {
    name: Ident,
    /// Whether the name was generated for a nested call.
    generated: bool,
    call: &'a Call,
    inputs: Vec<RawInput<'a>>,
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

fn check_graph(decl: GraphDecl) -> syn::Result<Graph> {
    let mut errors = Errors::default();
    let graph_name = decl.name.to_string();

    // Inputs and their widths.
    let mut inputs = Vec::new();
    for input in &decl.inputs {
        let width = match width_literal(&input.width) {
            Ok(w) => w,
            Err(msg) => {
                errors.push(syn::Error::new_spanned(
                    &input.width,
                    format!("input `{}`: {msg}", input.name),
                ));
                0
            }
        };
        inputs.push(Input {
            name: input.name.clone(),
            width,
        });
    }

    // Flatten statements into nodes, nested calls first. Names of statements
    // that are already reported are remembered, so uses of them are not
    // reported again as unknown.
    let mut raw: Vec<RawNode> = Vec::new();
    let mut broken: Vec<String> = Vec::new();
    for statement in &decl.statements {
        if statement.names.len() > 1 {
            broken.extend(statement.names.iter().map(Ident::to_string));
            errors.push(syn::Error::new(
                statement.names[1].span(),
                format!(
                    "`{}` declares {} names, but `{}` has one output; declare one node per statement",
                    names_list(&statement.names),
                    statement.names.len(),
                    match &statement.value {
                        Expr::Call(c) => c.layer.to_string(),
                        Expr::Ref(r) => r.to_string(),
                    }
                ),
            ));
            continue;
        }
        let name = &statement.names[0];
        match &statement.value {
            Expr::Ref(other) => {
                broken.push(name.to_string());
                errors.push(syn::Error::new(
                    other.span(),
                    format!(
                        "`{name} = {other};` gives a node another name, but every node is a layer call\n\
                     = help: to copy `{other}`, write `{name} = Identity()({other});`"
                    ),
                ))
            }
            Expr::Call(call) => {
                let mut counts = HashMap::new();
                flatten(name, name.clone(), false, call, &mut raw, &mut counts);
            }
        }
    }

    // Names.
    let mut defs: HashMap<String, Def> = HashMap::new();
    for (i, input) in inputs.iter().enumerate() {
        let key = input.name.to_string();
        if defs.insert(key.clone(), Def::Input(i)).is_some() {
            errors.push(syn::Error::new(
                input.name.span(),
                format!("`{graph_name}` declares the input `{key}` twice"),
            ));
        }
    }
    for (k, node) in raw.iter().enumerate() {
        let key = node.name.to_string();
        match defs.get(&key) {
            Some(Def::Input(_)) => errors.push(syn::Error::new(
                node.name.span(),
                format!(
                    "node `{key}` has the name of an input of `{graph_name}`; give the node another name"
                ),
            )),
            Some(Def::Node(_)) if node.generated => errors.push(syn::Error::new(
                node.name.span(),
                format!(
                    "the nested `{}` call gets the name `{key}`, which is already taken\n\
                     = help: declare it as a node of its own with another name",
                    node.call.layer
                ),
            )),
            Some(Def::Node(_)) => errors.push(syn::Error::new(
                node.name.span(),
                format!("node `{key}` is declared twice in `{graph_name}`"),
            )),
            None => {
                defs.insert(key, Def::Node(k));
            }
        }
    }

    // Resolve inputs and layers.
    let all_names: Vec<String> = inputs
        .iter()
        .map(|i| i.name.to_string())
        .chain(raw.iter().map(|n| n.name.to_string()))
        .collect();
    let mut sources: Vec<Option<Vec<(Source, Span)>>> = Vec::with_capacity(raw.len());
    for node in &raw {
        let mut resolved = Vec::new();
        let mut ok = true;
        for input in &node.inputs {
            match input {
                RawInput::Name(name) => match defs.get(&name.to_string()) {
                    Some(Def::Input(i)) => resolved.push((Source::Input(*i), name.span())),
                    Some(Def::Node(k)) => resolved.push((Source::Node(*k), name.span())),
                    None => {
                        ok = false;
                        if !broken.contains(&name.to_string()) {
                            errors.push(unknown_name(name, &all_names, &graph_name));
                        }
                    }
                },
                RawInput::Anonymous(k, span) => resolved.push((Source::Node(*k), *span)),
            }
        }
        sources.push(ok.then_some(resolved));
    }

    let mut layer_defs: Vec<Option<(&'static LayerDef, Vec<u64>)>> = Vec::with_capacity(raw.len());
    for node in &raw {
        layer_defs.push(check_call(node, &mut errors));
    }

    // Evaluation order, and cycles.
    let order = topological_order(&raw, &sources, &mut errors);

    // Widths, in evaluation order.
    let mut widths: Vec<Option<u64>> = vec![None; raw.len()];
    for &k in &order {
        let (Some(srcs), Some((def, args))) = (&sources[k], &layer_defs[k]) else {
            continue;
        };
        let mut in_widths = Vec::with_capacity(srcs.len());
        for (src, span) in srcs {
            let w = match *src {
                Source::Input(i) => (inputs[i].width > 0).then_some(inputs[i].width),
                Source::Node(j) => widths[j],
            };
            match w {
                Some(w) => in_widths.push((w, *span, source_name(*src, &inputs, &raw))),
                None => break,
            }
        }
        if in_widths.len() != srcs.len() {
            continue; // an input is already wrong and reported
        }
        match infer_width(&raw[k], def, args, &in_widths) {
            Ok(w) => widths[k] = Some(w),
            Err(e) => errors.push(e),
        }
    }

    // Outputs.
    let mut outputs = Vec::new();
    let mut listed: HashMap<String, Span> = HashMap::new();
    for out in &decl.outputs {
        let key = out.to_string();
        if listed.insert(key.clone(), out.span()).is_some() {
            errors.push(syn::Error::new(
                out.span(),
                format!("output `{key}` is listed twice"),
            ));
            continue;
        }
        match defs.get(&key) {
            Some(Def::Node(k)) => outputs.push((out.clone(), *k)),
            Some(Def::Input(_)) => errors.push(syn::Error::new(
                out.span(),
                format!(
                    "output `{key}` is an input of `{graph_name}`; outputs must be nodes\n\
                     = help: pass it through a node: `{key}_out = Identity()({key});`"
                ),
            )),
            None if broken.contains(&key) => {}
            None => errors.push(unknown_name(out, &all_names, &graph_name)),
        }
    }

    // Everything must be used: inputs by some node, nodes by some output.
    if errors.is_empty() {
        check_usage(&inputs, &raw, &sources, &outputs, &mut errors);
    }

    // Recurrent pairs.
    let mut recurrent = Vec::new();
    for pair in &decl.recurrent {
        let input = inputs.iter().position(|i| i.name == pair.input);
        let output = outputs.iter().position(|(o, _)| *o == pair.output);
        match (input, output) {
            (None, _) => errors.push(syn::Error::new(
                pair.input.span(),
                format!(
                    "`#[recurrent({} = {})]`: `{}` is not an input of `{graph_name}`{}",
                    pair.input,
                    pair.output,
                    pair.input,
                    did_you_mean(&pair.input.to_string(), inputs.iter().map(|i| i.name.to_string()))
                ),
            )),
            (_, None) => errors.push(syn::Error::new(
                pair.output.span(),
                format!(
                    "`#[recurrent({} = {})]`: `{}` is not an output of `{graph_name}`{}",
                    pair.input,
                    pair.output,
                    pair.output,
                    did_you_mean(
                        &pair.output.to_string(),
                        outputs.iter().map(|(o, _)| o.to_string())
                    )
                ),
            )),
            (Some(i), Some(o)) => {
                let in_w = inputs[i].width;
                if let Some(out_w) = widths[outputs[o].1] {
                    if in_w != 0 && out_w != in_w {
                        errors.push(syn::Error::new(
                            pair.output.span(),
                            format!(
                                "`#[recurrent({} = {})]`: output `{}` is {out_w} wide but it feeds input `{}`, which is {in_w} wide",
                                pair.input, pair.output, pair.output, pair.input
                            ),
                        ));
                    }
                }
                if recurrent.iter().any(|&(ri, _)| ri == i) {
                    errors.push(syn::Error::new(
                        pair.input.span(),
                        format!("input `{}` is fed by two recurrent pairs", pair.input),
                    ));
                }
                recurrent.push((i, o));
            }
        }
    }

    let nodes = if errors.is_empty() {
        raw.iter()
            .zip(layer_defs)
            .zip(sources)
            .zip(&widths)
            .map(|(((node, layer), srcs), width)| {
                let (layer, args) = layer.expect("no errors: layer known");
                Node {
                    name: node.name.clone(),
                    layer,
                    args,
                    inputs: srcs
                        .expect("no errors: inputs resolved")
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect(),
                    width: width.expect("no errors: width known"),
                    line: node.name.span().start().line as u32,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    errors.finish(Graph {
        attrs: decl.attrs,
        vis: decl.vis,
        name: decl.name,
        inputs,
        nodes,
        order,
        outputs,
        recurrent,
    })
}

fn names_list(names: &[Ident]) -> String {
    let names: Vec<String> = names.iter().map(Ident::to_string).collect();
    format!("({})", names.join(", "))
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
    let mut inputs = Vec::with_capacity(call.inputs.len());
    for input in &call.inputs {
        match input {
            Expr::Ref(r) => inputs.push(RawInput::Name(r)),
            Expr::Call(inner) => {
                let base = format!("{statement}_{}", layers::snake(&inner.layer.to_string()));
                let n = counts.entry(base.clone()).or_insert(0);
                *n += 1;
                let generated = if *n == 1 { base } else { format!("{base}_{n}") };
                let inner_name = Ident::new(&generated, inner.layer.span());
                let k = flatten(statement, inner_name, true, inner, raw, counts);
                inputs.push(RawInput::Anonymous(k, inner.layer.span()));
            }
        }
    }
    raw.push(RawNode {
        name,
        generated,
        call,
        inputs,
    });
    raw.len() - 1
}

fn source_name(src: Source, inputs: &[Input], raw: &[RawNode]) -> String {
    match src {
        Source::Input(i) => inputs[i].name.to_string(),
        Source::Node(k) => raw[k].name.to_string(),
    }
}

/// Looks up the layer and checks its arguments and number of inputs.
fn check_call(node: &RawNode, errors: &mut Errors) -> Option<(&'static LayerDef, Vec<u64>)> {
    let call = node.call;
    let layer_name = call.layer.to_string();
    let Some(def) = layers::lookup(&layer_name) else {
        let alias = layers::ALIASES
            .iter()
            .find(|(a, _)| *a == layer_name)
            .map(|(_, l)| *l);
        let help = match alias {
            Some(l) => format!("\n= help: this layer is called `{l}` here"),
            None => {
                let hint = did_you_mean(&layer_name, layers::CATALOG.iter().map(|d| d.name.to_string()));
                if hint.is_empty() {
                    let all: Vec<&str> = layers::CATALOG.iter().map(|d| d.name).collect();
                    format!("\n= help: the built-in layers are {}", all.join(", "))
                } else {
                    hint
                }
            }
        };
        errors.push(syn::Error::new(
            call.layer.span(),
            format!("unknown layer `{layer_name}`{help}"),
        ));
        return None;
    };
    let mut ok = true;
    if call.args.len() != def.args.len() {
        let expected = match def.args.len() {
            0 => "no arguments".to_string(),
            1 => format!("1 argument ({})", def.args[0]),
            n => format!("{n} arguments ({})", def.args.join(", ")),
        };
        errors.push(syn::Error::new(
            call.args_span,
            format!(
                "node `{}`: `{layer_name}` takes {expected}, but {} given",
                node.name,
                match call.args.len() {
                    1 => "1 was".to_string(),
                    n => format!("{n} were"),
                }
            ),
        ));
        ok = false;
    }
    if !def.arity.accepts(call.inputs.len()) {
        errors.push(syn::Error::new(
            call.inputs_span,
            format!(
                "node `{}`: `{layer_name}` takes {}, but {} given",
                node.name,
                def.arity.describe(),
                match call.inputs.len() {
                    0 => "none was".to_string(),
                    1 => "1 was".to_string(),
                    n => format!("{n} were"),
                }
            ),
        ));
        ok = false;
    }
    let mut args = Vec::with_capacity(call.args.len());
    for (arg, arg_name) in call.args.iter().zip(def.args) {
        match width_literal(arg) {
            Ok(v) => args.push(v),
            Err(msg) => {
                errors.push(syn::Error::new_spanned(
                    arg,
                    format!(
                        "node `{}`: `{layer_name}` argument `{arg_name}`: {msg}",
                        node.name
                    ),
                ));
                ok = false;
            }
        }
    }
    ok.then_some((def, args))
}

/// A width: a positive integer literal.
fn width_literal(expr: &syn::Expr) -> Result<u64, String> {
    let expr = match expr {
        syn::Expr::Group(g) => &*g.expr,
        syn::Expr::Paren(p) => &*p.expr,
        e => e,
    };
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) => match int.base10_parse::<u64>() {
            Ok(0) => Err("a width must be at least 1, found 0".to_string()),
            Ok(v) if v > u32::MAX as u64 => Err(format!("width {v} is too large")),
            Ok(v) => Ok(v),
            Err(_) => Err(format!("`{}` is not a width (a positive integer)", int)),
        },
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            ..
        }) => Err("a width must be a positive integer, found a negative number".to_string()),
        syn::Expr::Lit(syn::ExprLit { lit, .. }) => Err(format!(
            "expected a width (a positive integer), found `{}`",
            quote!(#lit)
        )),
        _ => Err("expected a width (a positive integer literal)".to_string()),
    }
}

/// Applies the layer's shape rule.
fn infer_width(
    node: &RawNode,
    def: &LayerDef,
    args: &[u64],
    inputs: &[(u64, Span, String)],
) -> syn::Result<u64> {
    let layer = &node.call.layer;
    match def.rule {
        Rule::Linear => {
            let (width, span, name) = &inputs[0];
            if *width != args[0] {
                return Err(syn::Error::new(
                    *span,
                    format!(
                        "node `{}`: `{layer}({}, {})` expects an input of width {}, but `{name}` has width {width}",
                        node.name, args[0], args[1], args[0]
                    ),
                ));
            }
            Ok(args[1])
        }
        Rule::SameAsInput => Ok(inputs[0].0),
        Rule::ElementWise => {
            let (first, _, first_name) = &inputs[0];
            for (width, span, name) in &inputs[1..] {
                if width != first {
                    return Err(syn::Error::new(
                        *span,
                        format!(
                            "node `{}`: `{layer}` is element-wise, so its inputs must have one width, \
                             but `{first_name}` has width {first} and `{name}` has width {width}",
                            node.name
                        ),
                    ));
                }
            }
            Ok(*first)
        }
    }
}

/// A depth-first order in which every node comes after its inputs; a cycle
/// is reported once, naming its whole path.
fn topological_order(
    raw: &[RawNode],
    sources: &[Option<Vec<(Source, Span)>>],
    errors: &mut Errors,
) -> Vec<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; raw.len()];
    let mut order = Vec::with_capacity(raw.len());
    for start in 0..raw.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next input to visit).
        let mut stack = vec![(start, 0usize)];
        marks[start] = Mark::Active;
        while let Some(&mut (k, ref mut next)) = stack.last_mut() {
            let deps = sources[k].as_deref().unwrap_or(&[]);
            if let Some((src, _)) = deps.get(*next) {
                *next += 1;
                if let Source::Node(j) = *src {
                    match marks[j] {
                        Mark::New => {
                            marks[j] = Mark::Active;
                            stack.push((j, 0));
                        }
                        Mark::Active => {
                            let pos = stack
                                .iter()
                                .position(|&(n, _)| n == j)
                                .expect("active node on stack");
                            // Data-flow order: j feeds the deepest node, which feeds
                            // the one that pushed it, ... back to j.
                            let mut path = vec![raw[j].name.to_string()];
                            path.extend(
                                stack[pos + 1..]
                                    .iter()
                                    .rev()
                                    .map(|&(n, _)| raw[n].name.to_string()),
                            );
                            path.push(raw[j].name.to_string());
                            errors.push(syn::Error::new(
                                raw[j].name.span(),
                                format!(
                                    "cycle: {}; a node cannot depend on its own output\n\
                                     = help: to carry a value to the next step, use `#[recurrent(input = output)]`",
                                    path.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" -> ")
                                ),
                            ));
                            // Break the cycle for the rest of the walk.
                            marks[j] = Mark::Done;
                        }
                        Mark::Done => {}
                    }
                }
            } else {
                if marks[k] == Mark::Active {
                    marks[k] = Mark::Done;
                    order.push(k);
                }
                stack.pop();
            }
        }
    }
    order
}

fn check_usage(
    inputs: &[Input],
    raw: &[RawNode],
    sources: &[Option<Vec<(Source, Span)>>],
    outputs: &[(Ident, usize)],
    errors: &mut Errors,
) {
    let mut input_used = vec![false; inputs.len()];
    for srcs in sources.iter().flatten() {
        for (src, _) in srcs {
            if let Source::Input(i) = src {
                input_used[*i] = true;
            }
        }
    }
    for (input, used) in inputs.iter().zip(input_used) {
        if !used && !input.name.to_string().starts_with('_') {
            errors.push(syn::Error::new(
                input.name.span(),
                format!(
                    "input `{}` is never used\n= help: remove it, or name it `_{}` if it is unused on purpose",
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

fn unknown_name(name: &Ident, known: &[String], graph: &str) -> syn::Error {
    let key = name.to_string();
    let hint = did_you_mean(&key, known.iter().cloned());
    let hint = if hint.is_empty() && layers::lookup(&key).is_some() {
        format!("\n= help: `{key}` is a layer; call it on its inputs: `{key}(..)(input)`")
    } else {
        hint
    };
    syn::Error::new(
        name.span(),
        format!("`{key}` is not an input or a node of `{graph}`{hint}"),
    )
}

/// `\n= help: did you mean `x`?` for the closest candidate, or nothing.
pub fn did_you_mean(name: &str, candidates: impl Iterator<Item = String>) -> String {
    let best = candidates
        .map(|c| (strsim::levenshtein(name, &c), c))
        .filter(|(d, c)| {
            *d > 0 && *d < name.len().min(c.len()).max(2) && *d <= name.len().max(c.len()) / 3 + 1
        })
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!("\n= help: did you mean `{c}`?"),
        None => String::new(),
    }
}
