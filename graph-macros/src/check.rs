//! Checking: names, evaluation order and shapes. Turns the syntax tree into
//! the checked graph that `expand` generates code from.
//!
//! Every mistake becomes a `syn::Error` spanned on the offending token; as
//! many independent mistakes as can be found are reported together. A node
//! whose inputs are already wrong gets no width, and nothing downstream of it
//! is reported again.
//!
//! Widths are polynomials over the graph's sizes (`width.rs`). What the macro
//! cannot decide symbolically becomes a [`Deferred`] check in generated code.
//!
//! Nested calls are flattened into anonymous nodes named
//! `{statement}_{layer}` in snake case (`y = Sigmoid()(Linear(4, 1)(h))`
//! declares `y_linear`, then `y`), with `_2`, `_3`, ... when a statement
//! nests the same layer more than once. `(a, b) = Split(2)(x);` declares
//! `Narrow` nodes `a` and `b`. Nodes are numbered in that declaration order,
//! which is also the order of their parameters.

use crate::ast::{Call, Expr, GraphCall, GraphDecl, InputKind, Invocation};
use crate::layers::{self, ArgKind, LayerDef, Rule};
use crate::parse::Errors;
use crate::width::{self, Decision, Width};
use proc_macro2::{Span, TokenStream};
use quote::quote;
use std::collections::HashMap;
use syn::{Attribute, Ident, Visibility};

/// A whole invocation, checked.
pub struct Checked {
    pub runtime: TokenStream,
    pub graphs: Vec<Graph>,
}

/// One graph, checked: every name resolved, every width known (perhaps as an
/// expression of sizes), nodes in an order where each comes after its inputs.
pub struct Graph {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub const_sizes: Vec<Ident>,
    pub runtime_sizes: Vec<Ident>,
    pub inputs: Vec<Input>,
    /// In declaration order (the order of the parameters).
    pub nodes: Vec<Node>,
    /// Node indices in evaluation order.
    pub order: Vec<usize>,
    /// Output name (spanned where listed) and node index.
    pub outputs: Vec<(Ident, usize)>,
    /// `(input index, output index)` of each `#[recurrent]` pair.
    pub recurrent: Vec<(usize, usize)>,
    /// Claims about sizes the macro could not decide.
    pub deferred: Vec<Deferred>,
    /// Output widths of user layers, known when the graph is built: node
    /// index and the width's atom name.
    pub derived: Vec<(usize, String)>,
    /// Widths of nested graphs' inputs and outputs.
    pub atoms: Vec<Atom>,
}

/// A width of a nested graph's input or output, standing in a polynomial.
pub struct Atom {
    /// The atom's name in polynomials and messages: `host.in[0]`.
    pub name: String,
    /// The host node.
    pub host: usize,
    /// An output (true) or an input (false).
    pub output: bool,
    pub select: Select,
    /// For an input: its position among the arguments of the call.
    pub slot: Option<usize>,
}

/// Which input or output of a nested graph.
#[derive(Clone)]
pub enum Select {
    Index(usize),
    Name(Ident),
}

/// A nested graph node's type and sizes.
pub struct Nested {
    pub path: syn::Path,
    pub generics: Option<syn::AngleBracketedGenericArguments>,
    pub sizes: Vec<Arg>,
    /// Widths read when the outer graph is built (`Graph[..](..)`).
    pub dynamic: bool,
}

pub struct Input {
    pub name: Ident,
    /// `None` for an ids input (`name: usize`).
    pub width: Option<Width>,
}

pub struct Node {
    /// The user's name, or a generated one spanned on the nested call.
    pub name: Ident,
    pub layer: &'static LayerDef,
    /// The type of a user layer (`layer` is then `layers::CUSTOM`).
    pub path: Option<syn::Path>,
    /// The graph a host node runs (`layer` is then `layers::HOST`).
    pub nested: Option<Nested>,
    /// The host and output an output node takes (`layers::OUTPUT`).
    pub select: Option<(usize, Select)>,
    pub args: Vec<Arg>,
    pub inputs: Vec<Source>,
    pub width: Width,
    /// Source line of the node's name (0 when unknown), for run-time messages.
    pub line: u32,
}

/// A checked constructor argument.
pub enum Arg {
    Width(Width),
    Float(Box<syn::Expr>),
    /// An argument of a user layer that is not a width, passed as written.
    Expr(Box<syn::Expr>),
}

/// Where a node's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Input(usize),
    Node(usize),
}

/// A claim checked by generated code: by a const assertion when every size
/// involved is a const generic, by the constructor otherwise.
pub struct Deferred {
    pub claim: Claim,
    /// The message if the claim is false, naming the node and the widths.
    pub message: String,
    pub span: Span,
}

pub enum Claim {
    Equal(Width, Width),
    AtMost(Width, Width),
    /// A nested graph (host node) has `n` inputs, or `n` outputs.
    Count {
        host: usize,
        outputs: bool,
        n: usize,
    },
    /// A nested graph has an output (or an input) of this name.
    Has {
        host: usize,
        output: bool,
        name: String,
    },
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

/// The width of a value flowing into a node, as the shape rules see it.
#[derive(Clone)]
struct Flow {
    /// `None` for integer ids.
    width: Option<Width>,
    span: Span,
    name: String,
}

/// What is known about a node's layer after its call is checked.
struct LayerUse {
    def: &'static LayerDef,
    args: Vec<Arg>,
    path: Option<syn::Path>,
    nested: Option<Nested>,
}

fn check_graph(decl: GraphDecl) -> syn::Result<Graph> {
    let mut errors = Errors::default();
    let graph_name = decl.name.to_string();
    let mut deferred = Vec::new();

    // Sizes.
    let mut sizes: Vec<String> = Vec::new();
    for size in decl.const_sizes.iter().chain(&decl.runtime_sizes) {
        let key = size.to_string();
        if sizes.contains(&key) {
            errors.push(syn::Error::new(
                size.span(),
                format!("size `{key}` is declared twice"),
            ));
        }
        sizes.push(key);
    }

    // Inputs and their widths.
    let mut inputs = Vec::new();
    for input in &decl.inputs {
        let width = match &input.kind {
            InputKind::Ids => None,
            InputKind::Values(expr) => match positive_width(expr, &sizes) {
                Ok(w) => Some(w),
                Err(msg) => {
                    errors.push(syn::Error::new_spanned(
                        expr,
                        format!("input `{}`: {msg}", input.name),
                    ));
                    Some(Width::constant(1))
                }
            },
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
        let first = &statement.names[0];
        match &statement.value {
            Expr::Ref(other) => {
                broken.extend(statement.names.iter().map(Ident::to_string));
                errors.push(syn::Error::new(
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
                    broken.extend(statement.names.iter().map(Ident::to_string));
                    errors.push(syn::Error::new(
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
                    broken.extend(statement.names.iter().map(Ident::to_string));
                    errors.push(syn::Error::new(
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
                let host = flatten_graph(first, call, &mut raw, &mut counts, Some(statement.names.len()));
                for (j, name) in statement.names.iter().enumerate() {
                    let select = match &call.output {
                        Some(o) => Select::Name(o.clone()),
                        None => Select::Index(j),
                    };
                    raw.push(RawNode {
                        name: name.clone(),
                        generated: false,
                        kind: RawKind::Output { host, select },
                        inputs: vec![RawInput::Anonymous(host, call.name.span())],
                        split: None,
                    });
                }
            }
        }
    }

    // Names.
    let mut defs: HashMap<String, Def> = HashMap::new();
    for (i, input) in inputs.iter().enumerate() {
        let key = input.name.to_string();
        if sizes.contains(&key) {
            errors.push(syn::Error::new(
                input.name.span(),
                format!("input `{key}` has the name of a size of `{graph_name}`"),
            ));
        }
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
                    node.what()
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

    let mut uses: Vec<Option<LayerUse>> = Vec::with_capacity(raw.len());
    for node in &raw {
        // A split is checked once, on its first part.
        let used = match (&node.kind, node.split) {
            (_, Some((k, _))) if k > 0 => None,
            (RawKind::Layer(_), _) => check_call(node, &sizes, &mut errors),
            (RawKind::Host(call, _), _) => check_graph_call(call, &sizes, &mut errors),
            (RawKind::Output { .. }, _) => Some(LayerUse {
                def: &layers::OUTPUT,
                args: Vec::new(),
                path: None,
                nested: None,
            }),
        };
        uses.push(used);
    }
    // The other parts of a split share the first part's check.
    for k in 0..raw.len() {
        if let Some((part, _)) = raw[k].split {
            if part > 0 {
                let first = k - part;
                if uses[first].is_some() {
                    uses[k] = Some(LayerUse {
                        def: uses[first].as_ref().map(|u| u.def).expect("checked"),
                        args: Vec::new(),
                        path: None,
                        nested: None,
                    });
                }
            }
        }
    }

    // Evaluation order, and cycles.
    let order = topological_order(&raw, &sources, &mut errors);

    // Widths, in evaluation order.
    let mut widths: Vec<Option<Width>> = vec![None; raw.len()];
    let mut atoms: Vec<Atom> = Vec::new();
    let mut split_args: Vec<Option<Vec<Arg>>> = (0..raw.len()).map(|_| None).collect();
    for &k in &order {
        let (Some(srcs), Some(layer)) = (&sources[k], &uses[k]) else {
            continue;
        };
        let mut flows = Vec::with_capacity(srcs.len());
        for (src, span) in srcs {
            let (width, known) = match *src {
                Source::Input(i) => (inputs[i].width.clone(), true),
                Source::Node(j) => (widths[j].clone(), widths[j].is_some()),
            };
            if !known {
                break;
            }
            flows.push(Flow {
                width,
                span: *span,
                name: source_name(*src, &inputs, &raw),
            });
        }
        if flows.len() != srcs.len() {
            continue; // an input is already wrong and reported
        }
        let node = &raw[k];
        let result = match (&node.kind, node.split) {
            (_, Some((part, n))) => infer_split(node, part, n, &flows).map(|(w, args)| {
                split_args[k] = Some(args);
                w
            }),
            (RawKind::Host(call, expect), _) => {
                infer_host(k, node, call, *expect, &flows, &mut atoms, &mut deferred)
            }
            (RawKind::Output { host, select }, _) => {
                Ok(output_atom(*host, select, &raw, &mut atoms, &mut deferred))
            }
            (RawKind::Layer(_), None) => infer_width(node, layer, &flows, &mut deferred),
        };
        match result {
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
        let pair_text = format!("`#[recurrent({} = {})]`", pair.input, pair.output);
        match (input, output) {
            (None, _) => errors.push(syn::Error::new(
                pair.input.span(),
                format!(
                    "{pair_text}: `{}` is not an input of `{graph_name}`{}",
                    pair.input,
                    did_you_mean(&pair.input.to_string(), inputs.iter().map(|i| i.name.to_string()))
                ),
            )),
            (_, None) => errors.push(syn::Error::new(
                pair.output.span(),
                format!(
                    "{pair_text}: `{}` is not an output of `{graph_name}`{}",
                    pair.output,
                    did_you_mean(
                        &pair.output.to_string(),
                        outputs.iter().map(|(o, _)| o.to_string())
                    )
                ),
            )),
            (Some(i), Some(o)) => {
                match (&inputs[i].width, &widths[outputs[o].1]) {
                    (None, _) => errors.push(syn::Error::new(
                        pair.input.span(),
                        format!(
                            "{pair_text}: `{}` holds integer ids; a recurrent state holds values",
                            pair.input
                        ),
                    )),
                    (Some(in_w), Some(out_w)) => {
                        let message = format!(
                            "{pair_text}: output `{}` is {out_w} wide but it feeds input `{}`, which is {in_w} wide",
                            pair.output, pair.input
                        );
                        match out_w.equals(in_w) {
                            Decision::Yes => {}
                            Decision::No => errors.push(syn::Error::new(pair.output.span(), message)),
                            Decision::Unknown => deferred.push(Deferred {
                                claim: Claim::Equal(out_w.clone(), in_w.clone()),
                                message,
                                span: pair.output.span(),
                            }),
                        }
                    }
                    (Some(_), None) => {}
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

    if !errors.is_empty() {
        return errors.finish(Graph {
            attrs: Vec::new(),
            vis: decl.vis,
            name: decl.name,
            const_sizes: Vec::new(),
            runtime_sizes: Vec::new(),
            inputs: Vec::new(),
            nodes: Vec::new(),
            order: Vec::new(),
            outputs: Vec::new(),
            recurrent: Vec::new(),
            deferred: Vec::new(),
            derived: Vec::new(),
            atoms: Vec::new(),
        });
    }
    let derived: Vec<(usize, String)> = order
        .iter()
        .filter(|&&k| uses[k].as_ref().is_some_and(|u| u.def.rule == Rule::Custom))
        .map(|&k| (k, derived_atom(&raw[k].name)))
        .collect();
    let mut nodes = Vec::with_capacity(raw.len());
    for (k, ((node, layer), srcs)) in raw.iter().zip(uses).zip(sources).enumerate() {
        let layer = layer.expect("no errors: layer known");
        let (def, args, path, nested) = match split_args[k].take() {
            Some(args) => (
                layers::lookup("Narrow").expect("Narrow is built in"),
                args,
                None,
                None,
            ),
            None => (layer.def, layer.args, layer.path, layer.nested),
        };
        let select = match &node.kind {
            RawKind::Output { host, select } => Some((*host, select.clone())),
            _ => None,
        };
        nodes.push(Node {
            name: node.name.clone(),
            layer: def,
            path,
            nested,
            select,
            args,
            inputs: srcs
                .expect("no errors: inputs resolved")
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            width: widths[k].clone().expect("no errors: width known"),
            line: node.name.span().start().line as u32,
        });
    }
    Ok(Graph {
        attrs: decl.attrs,
        vis: decl.vis,
        name: decl.name,
        const_sizes: decl.const_sizes,
        runtime_sizes: decl.runtime_sizes,
        inputs,
        nodes,
        order,
        outputs,
        recurrent,
        deferred,
        derived,
        atoms,
    })
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
        kind: RawKind::Host(call, outputs),
        inputs,
        split: None,
    });
    raw.len() - 1
}

fn source_name(src: Source, inputs: &[Input], raw: &[RawNode]) -> String {
    match src {
        Source::Input(i) => inputs[i].name.to_string(),
        Source::Node(k) => raw[k].name.to_string(),
    }
}

fn count(n: usize, was: bool) -> String {
    match (n, was) {
        (0, _) => "none was".to_string(),
        (1, _) => "1 was".to_string(),
        (n, _) => format!("{n} were"),
    }
}

/// Looks up the layer and checks its arguments and number of inputs.
fn check_call(node: &RawNode, sizes: &[String], errors: &mut Errors) -> Option<LayerUse> {
    let call = node.call().expect("a layer node");
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
                node.name,
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
                node.name,
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
        };
        match checked {
            Ok(a) => args.push(a),
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
    ok.then_some(LayerUse {
        def,
        args,
        path: None,
        nested: None,
    })
}

/// `(a, b, ..) = Split(n)(x)`: `n` a positive literal equal to the number of names.
fn check_split(node: &RawNode, n: usize, errors: &mut Errors) -> Option<LayerUse> {
    let call = node.call().expect("a layer node");
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
    Some(LayerUse {
        def: layers::lookup("Narrow").expect("Narrow is built in"),
        args: Vec::new(),
        path: None,
        nested: None,
    })
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
fn check_custom(node: &RawNode, sizes: &[String], errors: &mut Errors) -> Option<LayerUse> {
    let call = node.call().expect("a layer node");
    if call.inputs.is_empty() {
        errors.push(syn::Error::new(
            call.inputs_span,
            format!("node `{}`: `{}` is given no inputs", node.name, call.layer),
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
    Some(LayerUse {
        def: &layers::CUSTOM,
        args,
        path: Some(call.path.clone()),
        nested: None,
    })
}

/// A width that must be positive: zero and negative constants are errors.
fn positive_width(expr: &syn::Expr, sizes: &[String]) -> Result<Width, String> {
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

fn need_values<'f>(node: &RawNode, flow: &'f Flow) -> syn::Result<&'f Width> {
    flow.width.as_ref().ok_or_else(|| {
        syn::Error::new(
            flow.span,
            format!(
                "node `{}`: `{}` takes values, but `{}` holds integer ids\n\
                 = help: turn ids into values with `Embedding(vocab, dim)({})`",
                node.name,
                node.what(),
                flow.name,
                flow.name
            ),
        )
    })
}

/// Compares two widths: an error if they differ, a deferred check if the
/// macro cannot tell.
fn require(
    decision: Decision,
    claim: Claim,
    span: Span,
    message: String,
    deferred: &mut Vec<Deferred>,
) -> syn::Result<()> {
    match decision {
        Decision::Yes => Ok(()),
        Decision::No => Err(syn::Error::new(span, message)),
        Decision::Unknown => {
            deferred.push(Deferred { claim, message, span });
            Ok(())
        }
    }
}

/// Applies the layer's shape rule.
fn infer_width(
    node: &RawNode,
    layer: &LayerUse,
    inputs: &[Flow],
    deferred: &mut Vec<Deferred>,
) -> syn::Result<Width> {
    let call = node.what();
    let arg = |i: usize| match &layer.args[i] {
        Arg::Width(w) => w.clone(),
        Arg::Float(_) | Arg::Expr(_) => Width::constant(0),
    };
    match layer.def.rule {
        Rule::Host | Rule::Output => {
            unreachable!("nested graph nodes are inferred by infer_host and output_atom")
        }
        Rule::Custom => {
            for flow in inputs {
                need_values(node, flow)?;
            }
            Ok(Width::atom(&derived_atom(&node.name)))
        }
        Rule::Linear => {
            let w = need_values(node, &inputs[0])?;
            let (n_in, n_out) = (arg(0), arg(1));
            let message = format!(
                "node `{}`: `{call}({n_in}, {n_out})` expects an input of width {n_in}, but `{}` has width {w}",
                node.name, inputs[0].name
            );
            require(
                w.equals(&n_in),
                Claim::Equal(w.clone(), n_in),
                inputs[0].span,
                message,
                deferred,
            )?;
            Ok(n_out)
        }
        Rule::SameAsInput => need_values(node, &inputs[0]).cloned(),
        Rule::ElementWise => {
            let first = need_values(node, &inputs[0])?;
            for flow in &inputs[1..] {
                let w = need_values(node, flow)?;
                let message = format!(
                    "node `{}`: `{call}` is element-wise, so its inputs must have one width, \
                     but `{}` has width {first} and `{}` has width {w}",
                    node.name, inputs[0].name, flow.name
                );
                require(
                    w.equals(first),
                    Claim::Equal(w.clone(), first.clone()),
                    flow.span,
                    message,
                    deferred,
                )?;
            }
            Ok(first.clone())
        }
        Rule::Concat => {
            let mut total = Width::constant(0);
            for flow in inputs {
                total = total.add(need_values(node, flow)?);
            }
            Ok(total)
        }
        Rule::Narrow => {
            let w = need_values(node, &inputs[0])?;
            let (offset, length) = (arg(0), arg(1));
            let end = offset.add(&length);
            let message = format!(
                "node `{}`: `{call}({offset}, {length})` takes columns {offset}..{end}, but `{}` has width {w}",
                node.name, inputs[0].name
            );
            require(
                end.at_most(w),
                Claim::AtMost(end.clone(), w.clone()),
                node.call().map_or(node.name.span(), |c| c.args_span),
                message,
                deferred,
            )?;
            Ok(length)
        }
        Rule::Embedding => {
            if inputs[0].width.is_some() {
                return Err(syn::Error::new(
                    inputs[0].span,
                    format!(
                        "node `{}`: `{call}` looks up integer ids, but `{}` holds values\n\
                         = help: declare the ids as an input `name: usize`",
                        node.name, inputs[0].name
                    ),
                ));
            }
            Ok(arg(1))
        }
        Rule::Criterion => {
            let prediction = need_values(node, &inputs[0])?;
            let target = need_values(node, &inputs[1])?;
            let message = format!(
                "node `{}`: `{call}` compares a prediction and a target of one width, \
                 but `{}` has width {prediction} and `{}` has width {target}",
                node.name, inputs[0].name, inputs[1].name
            );
            require(
                target.equals(prediction),
                Claim::Equal(target.clone(), prediction.clone()),
                inputs[1].span,
                message,
                deferred,
            )?;
            Ok(Width::constant(1))
        }
        Rule::ClassCriterion => {
            need_values(node, &inputs[0])?;
            if inputs[1].width.is_some() {
                return Err(syn::Error::new(
                    inputs[1].span,
                    format!(
                        "node `{}`: `{call}` takes the target classes as integer ids, but `{}` holds values\n\
                         = help: declare the target as an input `name: usize`",
                        node.name, inputs[1].name
                    ),
                ));
            }
            Ok(Width::constant(1))
        }
    }
}

/// A graph used as a node: its type, generic arguments and sizes. A
/// built-in layer called with one argument list is the common slip
/// `Tanh(x)` for `Tanh()(x)`.
fn check_graph_call(call: &GraphCall, sizes: &[String], errors: &mut Errors) -> Option<LayerUse> {
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
    let mut args = Vec::with_capacity(call.sizes.len());
    for expr in &call.sizes {
        match positive_width(expr, sizes) {
            Ok(w) => args.push(Arg::Width(w)),
            Err(msg) => {
                errors.push(syn::Error::new_spanned(
                    expr,
                    format!("a size of `{name}`: {msg}"),
                ));
                return None;
            }
        }
    }
    Some(LayerUse {
        def: &layers::HOST,
        args: Vec::new(),
        path: None,
        nested: Some(Nested {
            path: call.path.clone(),
            generics: call.generics.clone(),
            sizes: args,
            dynamic: call.dynamic,
        }),
    })
}

/// A nested graph node: its inputs must match the graph's input widths and
/// count, and its binding the number of its outputs. The macro cannot see
/// the other graph, so these are deferred checks.
fn infer_host(
    k: usize,
    node: &RawNode,
    call: &GraphCall,
    expect_outputs: Option<usize>,
    inputs: &[Flow],
    atoms: &mut Vec<Atom>,
    deferred: &mut Vec<Deferred>,
) -> syn::Result<Width> {
    let graph = &call.name;
    for (i, flow) in inputs.iter().enumerate() {
        let w = need_values(node, flow)?;
        let (name, select) = match &call.input_names[i] {
            None => (format!("{}.in[{i}]", node.name), Select::Index(i)),
            Some(n) => {
                deferred.push(Deferred {
                    claim: Claim::Has {
                        host: k,
                        output: false,
                        name: n.to_string(),
                    },
                    message: format!("`{graph}` has no input named `{n}`"),
                    span: n.span(),
                });
                (format!("{}.in.{n}", node.name), Select::Name(n.clone()))
            }
        };
        atoms.push(Atom {
            name: name.clone(),
            host: k,
            output: false,
            select,
            slot: Some(i),
        });
        deferred.push(Deferred {
            claim: Claim::Equal(w.clone(), Width::atom(&name)),
            message: format!(
                "node `{}`: input {i} of `{graph}` has another width than `{}`, which has width {w}",
                node.name, flow.name
            ),
            span: flow.span,
        });
    }
    deferred.push(Deferred {
        claim: Claim::Count {
            host: k,
            outputs: false,
            n: inputs.len(),
        },
        message: format!(
            "`{graph}` is given {} input(s), but it declares another number",
            inputs.len()
        ),
        span: call.inputs_span,
    });
    if let Some(n) = expect_outputs {
        deferred.push(Deferred {
            claim: Claim::Count {
                host: k,
                outputs: true,
                n,
            },
            message: format!(
                "`{graph}` gives its outputs to {n} name(s), but it has another number of outputs\n\
                 = help: take one output by name: `{graph}(..).output`"
            ),
            span: call.name.span(),
        });
    }
    Ok(Width::constant(0))
}

/// The width of a nested graph's output, as an atom.
fn output_atom(
    host: usize,
    select: &Select,
    raw: &[RawNode],
    atoms: &mut Vec<Atom>,
    deferred: &mut Vec<Deferred>,
) -> Width {
    let name = match select {
        Select::Index(j) => format!("{}.out[{j}]", raw[host].name),
        Select::Name(n) => format!("{}.out.{n}", raw[host].name),
    };
    if !atoms.iter().any(|a| a.name == name) {
        if let Select::Name(n) = select {
            deferred.push(Deferred {
                claim: Claim::Has {
                    host,
                    output: true,
                    name: n.to_string(),
                },
                message: format!("`{}` has no output named `{n}`", raw[host].what()),
                span: n.span(),
            });
        }
        atoms.push(Atom {
            name: name.clone(),
            host,
            output: true,
            select: select.clone(),
            slot: None,
        });
    }
    Width::atom(&name)
}

/// The atom standing for a user layer's output width.
pub fn derived_atom(node: &Ident) -> String {
    format!("__{node}")
}

/// Part `part` of `Split(n)`: a `Narrow(part * w / n, w / n)`.
fn infer_split(node: &RawNode, part: usize, n: usize, inputs: &[Flow]) -> syn::Result<(Width, Vec<Arg>)> {
    let w = need_values(node, &inputs[0])?;
    let n = n as i64;
    let length = match w.div_exact(n) {
        Some(l) => l,
        None if w.as_const().is_some() => {
            return Err(syn::Error::new(
                inputs[0].span,
                format!(
                    "`Split({n})` cuts `{}` into {n} equal parts, but its width {w} is not divisible by {n}",
                    inputs[0].name
                ),
            ))
        }
        None => {
            return Err(syn::Error::new(
                inputs[0].span,
                format!(
                    "`Split({n})` needs the width of `{}` ({w}) to be a multiple of {n} the macro can see, \
                     such as `{n} * H`",
                    inputs[0].name
                ),
            ))
        }
    };
    let offset = length.scale(part as i64);
    Ok((length.clone(), vec![Arg::Width(offset), Arg::Width(length)]))
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
