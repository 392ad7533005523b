//! Pass: widths, in evaluation order. Each built-in layer's shape rule runs
//! on its inputs' widths; a mismatch is an error naming the node, the layer
//! and both widths, and a claim the macro cannot decide symbolically (a size
//! against another, a nested graph's width) becomes a `Deferred` check. A
//! user layer's output width is an atom known when the graph is built.

use super::names::Sources;
use super::{calls, RawKind, RawNode, Scope};
use crate::ast::GraphCall;
use crate::ir::{Arg, Atom, Claim, Deferred, Input, NodeKind, Select, Source};
use crate::layers::{LayerDef, Rule};
use crate::width::{Decision, Width};
use proc_macro2::Span;
use syn::Ident;

/// The width of a value flowing into a node, as the shape rules see it.
#[derive(Clone)]
struct Flow {
    /// `None` for integer ids.
    width: Option<Width>,
    span: Span,
    name: String,
}

/// What the width pass reads: the declaration's sizes and inputs, the
/// nodes with their inputs and the evaluation order.
pub(super) struct Nodes<'a, 'r> {
    pub sizes: &'a [String],
    pub inputs: &'a [Input],
    pub raw: &'a [RawNode<'r>],
    pub sources: &'a Sources,
    pub order: &'a [usize],
    /// The graphs declared in the same invocation, whose inputs the macro
    /// can check where they are nested.
    pub siblings: &'a [Signature],
}

/// A shipped cell as the macro knows it: its name, whether its sizes are
/// const generics, its sizes, its inputs and its outputs with their widths.
type ShippedCell = (
    &'static str,
    bool,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
);

/// What a graph of the invocation takes: its sizes and its inputs' widths
/// in them (`None` for ids), as the graph that nests it sees them.
pub(crate) struct Signature {
    /// The path before the name a call must write (`nngraph::cells` for a
    /// shipped cell; nothing for a graph of the invocation).
    prefix: &'static [&'static str],
    name: String,
    const_sizes: Vec<String>,
    runtime_sizes: Vec<String>,
    inputs: Vec<(String, Option<Width>)>,
    /// Its outputs' widths, once the graph is checked (a graph declared
    /// later in the invocation is not yet).
    pub outputs: Option<Vec<(String, Option<Width>)>>,
}

/// A known graph's inputs and outputs in the sizes of the graph calling it.
pub(crate) struct Called {
    pub inputs: Vec<(String, Option<Width>)>,
    pub outputs: Option<Vec<(String, Option<Width>)>>,
}

impl Signature {
    pub fn of(decl: &crate::ast::GraphDecl) -> Signature {
        let names = |v: &[Ident]| -> Vec<String> { v.iter().map(Ident::to_string).collect() };
        let (const_sizes, runtime_sizes) = (names(&decl.const_sizes), names(&decl.runtime_sizes));
        let sizes: Vec<String> = const_sizes.iter().chain(&runtime_sizes).cloned().collect();
        let inputs = decl
            .inputs
            .iter()
            .map(|i| {
                let width = match &i.kind {
                    crate::ast::InputKind::Values(e) => crate::width::parse(e, &sizes).ok(),
                    crate::ast::InputKind::Ids => None,
                };
                (i.name.to_string(), width)
            })
            .collect();
        Signature {
            prefix: &[],
            name: decl.name.to_string(),
            const_sizes,
            runtime_sizes,
            inputs,
            outputs: None,
        }
    }

    /// The shipped cells and stacks (`nngraph::cells`), as the runtime
    /// declares them: a call that names them by that path (or through
    /// `graph_runtime::cells`) is checked like a graph of the invocation.
    pub fn shipped() -> Vec<Signature> {
        const CELLS: &[ShippedCell] = &[
            (
                "LstmCell",
                true,
                &["I", "H"],
                &[("x", "I"), ("h", "H"), ("c", "H")],
                &[("h_next", "H"), ("c_next", "H")],
            ),
            (
                "GruCell",
                true,
                &["I", "H"],
                &[("x", "I"), ("h", "H")],
                &[("h_next", "H")],
            ),
            (
                "LstmLayer",
                false,
                &["input", "hidden"],
                &[("x", "input"), ("h", "hidden"), ("c", "hidden")],
                &[("h_next", "hidden"), ("c_next", "hidden")],
            ),
            (
                "GruLayer",
                false,
                &["input", "hidden"],
                &[("x", "input"), ("h", "hidden")],
                &[("h_next", "hidden")],
            ),
            (
                "RnnLayer",
                false,
                &["input", "hidden"],
                &[("x", "input"), ("h", "hidden")],
                &[("h_next", "hidden")],
            ),
            (
                "LstmUpper",
                false,
                &["hidden"],
                &[("x", "hidden"), ("h", "hidden"), ("c", "hidden")],
                &[("h_next", "hidden"), ("c_next", "hidden")],
            ),
            (
                "GruUpper",
                false,
                &["hidden"],
                &[("x", "hidden"), ("h", "hidden")],
                &[("h_next", "hidden")],
            ),
            (
                "RnnUpper",
                false,
                &["hidden"],
                &[("x", "hidden"), ("h", "hidden")],
                &[("h_next", "hidden")],
            ),
            (
                "Lstm",
                false,
                &["input", "hidden", "layers"],
                &[("x", "input"), ("h", "layers * hidden"), ("c", "layers * hidden")],
                &[
                    ("y", "hidden"),
                    ("h_n", "layers * hidden"),
                    ("c_n", "layers * hidden"),
                ],
            ),
            (
                "Gru",
                false,
                &["input", "hidden", "layers"],
                &[("x", "input"), ("h", "layers * hidden")],
                &[("y", "hidden"), ("h_n", "layers * hidden")],
            ),
            (
                "Rnn",
                false,
                &["input", "hidden", "layers"],
                &[("x", "input"), ("h", "layers * hidden")],
                &[("y", "hidden"), ("h_n", "layers * hidden")],
            ),
        ];
        let mut out = Vec::new();
        for prefix in SHIPPED_PREFIXES {
            for &(name, consts, sizes, inputs, outputs) in CELLS {
                let names: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
                let widths = |list: &[(&str, &str)]| -> Vec<(String, Option<Width>)> {
                    list.iter()
                        .map(|&(n, w)| {
                            let width = syn::parse_str::<syn::Expr>(w)
                                .ok()
                                .and_then(|e| crate::width::parse(&e, &names).ok());
                            (n.to_string(), width)
                        })
                        .collect()
                };
                let (inputs, outputs) = (widths(inputs), widths(outputs));
                let (const_sizes, runtime_sizes) = if consts {
                    (names, Vec::new())
                } else {
                    (Vec::new(), names)
                };
                out.push(Signature {
                    prefix,
                    name: name.to_string(),
                    const_sizes,
                    runtime_sizes,
                    inputs,
                    outputs: Some(outputs),
                });
            }
        }
        out
    }

    /// This graph's input widths in the sizes of the graph calling it with
    /// `call`, when the call names this graph and gives its sizes as widths.
    pub fn as_called(&self, call: &GraphCall, sizes: &[String]) -> Option<Called> {
        if call.stack.is_some() {
            return None;
        }
        self.as_named(&graph_ref(call), sizes)
    }

    /// As [`as_called`](Self::as_called), for a graph named without its
    /// inputs (a stack's layers).
    pub fn as_named(&self, call: &crate::ast::GraphRef, sizes: &[String]) -> Option<Called> {
        let segments: Vec<String> = call.path.segments.iter().map(|s| s.ident.to_string()).collect();
        let written = &segments[..segments.len().saturating_sub(1)];
        if written != self.prefix || call.name != self.name.as_str() {
            return None;
        }
        let given: Vec<syn::Expr> = if call.dynamic {
            call.sizes.clone()
        } else {
            let args = call.generics.iter().flat_map(|g| g.args.iter());
            args.map(|a| match a {
                syn::GenericArgument::Const(e) => Some(e.clone()),
                syn::GenericArgument::Type(syn::Type::Path(p)) => Some(syn::Expr::Path(syn::ExprPath {
                    attrs: Vec::new(),
                    qself: None,
                    path: p.path.clone(),
                })),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?
        };
        let names = if call.dynamic {
            &self.runtime_sizes
        } else {
            &self.const_sizes
        };
        if given.len() != names.len() || (call.dynamic && !self.const_sizes.is_empty()) {
            return None;
        }
        let values: Vec<Width> = given
            .iter()
            .map(|e| crate::width::parse(e, sizes).ok())
            .collect::<Option<_>>()?;
        let value = |atom: &str| names.iter().position(|n| n == atom).map(|i| values[i].clone());
        let called = |list: &[(String, Option<Width>)]| -> Vec<(String, Option<Width>)> {
            list.iter()
                .map(|(n, w)| (n.clone(), w.as_ref().map(|w| w.substitute(&value))))
                .collect()
        };
        Some(Called {
            inputs: called(&self.inputs),
            outputs: self.outputs.as_deref().map(called),
        })
    }

    /// A mistake in how `call` gives this graph's sizes (`[..]` for const
    /// generics or `<..>` for run-time sizes, or how many), when `call`
    /// names this graph: by its path, or a shipped cell with const sizes
    /// by its bare name (imported) with its sizes in `[..]`, which can only
    /// be that mistake since no graph of the invocation has the name.
    fn sizes_mistake(&self, call: &crate::ast::GraphRef, invocation: &[Signature]) -> Option<syn::Error> {
        let segments: Vec<String> = call.path.segments.iter().map(|s| s.ident.to_string()).collect();
        let written = &segments[..segments.len().saturating_sub(1)];
        let name = call.name.to_string();
        if name != self.name {
            return None;
        }
        let bare_shipped = !self.prefix.is_empty()
            && written.is_empty()
            && call.dynamic
            && !self.const_sizes.is_empty()
            && !invocation.iter().any(|s| s.is(&name));
        if written != self.prefix && !bare_shipped {
            return None;
        }
        let given: Vec<String> = if call.dynamic {
            call.sizes.iter().map(|e| quote::quote!(#e).to_string()).collect()
        } else {
            let args = call.generics.iter().flat_map(|g| g.args.iter());
            args.map(|a| quote::quote!(#a).to_string()).collect()
        };
        let (expected, open, close, how) = if self.const_sizes.is_empty() {
            (
                &self.runtime_sizes,
                "[",
                "]",
                "when the graph is built, in `[..]`",
            )
        } else {
            (&self.const_sizes, "<", ">", "as const generics, in `<..>`")
        };
        let form = |sizes: &[String]| format!("{name}{open}{}{close}", sizes.join(", "));
        let message = if expected.is_empty() && (call.dynamic || call.generics.is_some()) {
            format!(
                "`{name}` takes no sizes, but it is given {}\n= help: write `{name}(..)`",
                given.len()
            )
        } else if expected.is_empty() {
            return None;
        } else if call.dynamic == self.const_sizes.is_empty() || (call.generics.is_none() && !call.dynamic) {
            if given.len() == expected.len() {
                return None;
            }
            format!(
                "`{name}` takes {} size(s) ({}), but it is given {}\n= help: write `{}`",
                expected.len(),
                expected.join(", "),
                given.len(),
                form(expected)
            )
        } else {
            let help = if given.len() == expected.len() {
                form(&given)
            } else {
                form(expected)
            };
            format!(
                "`{name}` takes its sizes {how}: `{}`\n= help: write `{help}`",
                form(expected)
            )
        };
        Some(syn::Error::new(call.name.span(), message))
    }

    /// Its name.
    #[cfg(test)]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is the graph `name` of the invocation.
    pub fn is(&self, name: &str) -> bool {
        self.prefix.is_empty() && self.name == name
    }

    /// Its outputs' widths from its checked graph, those written in its
    /// sizes only (a width through a graph nested in it stays unknown).
    pub fn learn_outputs(&mut self, g: &crate::ir::Graph) {
        let sizes: Vec<String> = g
            .const_sizes
            .iter()
            .chain(&g.runtime_sizes)
            .map(Ident::to_string)
            .collect();
        self.outputs = Some(
            g.outputs
                .iter()
                .map(|(name, k)| {
                    let w = &g.nodes[*k].width;
                    let known = w.atoms().all(|a| sizes.iter().any(|s| s == a));
                    (name.to_string(), known.then(|| w.clone()))
                })
                .collect(),
        );
    }
}

/// A mistake in how `call` gives the sizes of a graph the macro knows (of
/// the invocation, or shipped).
pub(crate) fn sizes_mistake(known: &[Signature], call: &crate::ast::GraphRef) -> Option<syn::Error> {
    unknown_shipped(known, call).or_else(|| known.iter().find_map(|s| s.sizes_mistake(call, known)))
}

/// The paths the shipped cells are named by.
const SHIPPED_PREFIXES: [&[&str]; 2] = [&["nngraph", "cells"], &["graph_runtime", "cells"]];

/// A graph named by the shipped cells' path that is not one of them (a
/// misspelt `nngraph::cells::LSTMCell`): said here, with the closest name,
/// rather than by rustc pointing at the library's declarations.
pub(crate) fn unknown_shipped(known: &[Signature], call: &crate::ast::GraphRef) -> Option<syn::Error> {
    let segments: Vec<String> = call.path.segments.iter().map(|s| s.ident.to_string()).collect();
    let written = &segments[..segments.len().saturating_sub(1)];
    let prefix = SHIPPED_PREFIXES.iter().find(|p| written == **p)?;
    let name = call.name.to_string();
    let shipped: Vec<&str> = known
        .iter()
        .filter(|s| s.prefix == *prefix)
        .map(|s| s.name.as_str())
        .collect();
    if shipped.contains(&name.as_str()) {
        return None;
    }
    let by_case = shipped.iter().find(|s| s.eq_ignore_ascii_case(&name));
    let hint = match by_case {
        Some(s) => format!("\n= help: did you mean `{s}`?"),
        None => super::names::did_you_mean(&name, shipped.iter().map(|s| s.to_string())),
    };
    Some(syn::Error::new(
        call.name.span(),
        format!(
            "`{}` has no graph named `{name}`; its graphs are {}{hint}",
            prefix.join("::"),
            shipped.join(", ")
        ),
    ))
}

/// What the width pass finds.
pub(super) struct Widths {
    /// Per node: its width, or `None` where it is wrong (and reported).
    pub widths: Vec<Option<Width>>,
    /// Widths of nested graphs' inputs and outputs.
    pub atoms: Vec<Atom>,
    /// Claims the macro could not decide.
    pub deferred: Vec<Deferred>,
    /// Quotients of a `Split` of a width not known to divide.
    pub quotients: Vec<(String, Width, i64)>,
    /// The claims that a stack's group has its width, by the name of the
    /// value given as the group (a state input, typically): index in
    /// `deferred`.
    pub groups: Vec<(String, usize)>,
}

/// Infers every node's width in evaluation order; each part of a split
/// becomes a `Narrow` in `kinds`.
pub(super) fn infer(scope: &mut Scope, nodes: &Nodes, kinds: &mut [Option<NodeKind>]) -> Widths {
    let Nodes {
        sizes,
        inputs,
        raw,
        sources,
        order,
        siblings,
    } = *nodes;
    let mut found = Widths {
        widths: vec![None; raw.len()],
        atoms: Vec::new(),
        deferred: Vec::new(),
        quotients: Vec::new(),
        groups: Vec::new(),
    };
    for &k in order {
        let (Some(srcs), Some(kind)) = (&sources[k], &kinds[k]) else {
            continue;
        };
        let mut flows = Vec::with_capacity(srcs.len());
        for (src, span) in srcs {
            let width = match *src {
                Source::Input(i) => inputs[i].width.clone(),
                Source::Node(j) => match &found.widths[j] {
                    Some(w) => Some(w.clone()),
                    None => break, // an input is already wrong and reported
                },
            };
            let name = match *src {
                Source::Input(i) => inputs[i].name.to_string(),
                Source::Node(j) => shown_as_input(raw, j),
            };
            flows.push(Flow {
                width,
                span: *span,
                name,
            });
        }
        if flows.len() != srcs.len() {
            continue;
        }
        let node = &raw[k];
        let (deferred, atoms) = (&mut found.deferred, &mut found.atoms);
        let result = match (kind, node.split) {
            (_, Some((part, n))) => infer_split(node, part, n, &flows, sizes, &mut found.quotients, deferred)
                .map(|(w, args)| {
                    kinds[k] = calls::narrow(args);
                    w
                }),
            (NodeKind::Builtin { layer, args }, None) => infer_width(node, layer, args, &flows, deferred),
            (NodeKind::Custom { .. }, None) => infer_custom(node),
            (NodeKind::Nested(nested), None) => match (&node.kind, &nested.stack) {
                (super::RawKind::Host(call, expect), Some((depth, _))) => {
                    // Its layers' graphs named or sized wrongly (the upper
                    // layers' graph is the first's when written once).
                    let mut said: Vec<String> = Vec::new();
                    let layers =
                        std::iter::once(graph_ref(call)).chain(call.stack.as_ref().map(|s| s.rest.clone()));
                    for mistake in layers.filter_map(|r| sizes_mistake(siblings, &r)) {
                        let key = format!("{:?} {mistake}", mistake.span());
                        if !said.contains(&key) {
                            said.push(key);
                            scope.errors.push(mistake);
                        }
                    }
                    if !said.is_empty() {
                        continue;
                    }
                    let found = Found {
                        atoms,
                        deferred,
                        groups: &mut found.groups,
                    };
                    let stack = StackCall {
                        call,
                        depth,
                        layers: stack_layers(siblings, call, sizes),
                    };
                    infer_stack(k, node, &stack, *expect, &flows, found)
                }
                (super::RawKind::Host(call, expect), None) => {
                    if let Some(e) = sizes_mistake(siblings, &graph_ref(call)) {
                        scope.errors.push(e);
                        continue;
                    }
                    // A graph of this invocation: its inputs are known here.
                    let known = siblings.iter().find_map(|s| s.as_called(call, sizes));
                    match known.map(|known| check_known_inputs(node, call, &known, *expect, &flows)) {
                        Some(Err(e)) => Err(e),
                        _ => infer_host(k, node, call, *expect, &flows, atoms, deferred),
                    }
                }
                _ => Ok(Width::constant(0)),
            },
            (NodeKind::Output { host, select }, None) => {
                let stack = match &kinds[*host] {
                    Some(NodeKind::Nested(n)) => n.stack.as_ref().map(|(d, _)| d.clone()),
                    _ => None,
                };
                // An output of a graph the macro knows: its width in our sizes.
                let known = match &raw[*host].kind {
                    RawKind::Host(call, _) => siblings.iter().find_map(|s| s.as_called(call, sizes)),
                    _ => None,
                };
                let outputs = known.and_then(|c| c.outputs);
                if let (Some(outputs), Select::Name(n)) = (&outputs, select) {
                    if !outputs.iter().any(|(o, _)| n == o.as_str()) {
                        let names: Vec<String> = outputs.iter().map(|(o, _)| format!("`{o}`")).collect();
                        scope.errors.push(syn::Error::new(
                            n.span(),
                            format!(
                                "`{}` has no output named `{n}`; its outputs are {}",
                                raw[*host].what(),
                                names.join(", ")
                            ),
                        ));
                        continue;
                    }
                }
                let known = outputs.and_then(|outputs| match select {
                    Select::Index(j) => outputs.get(*j).cloned(),
                    Select::Name(n) => outputs.into_iter().find(|(o, _)| n == o.as_str()),
                });
                match (stack, select, known) {
                    (Some(depth), Select::Index(o), _) => {
                        let layers = match &raw[*host].kind {
                            RawKind::Host(call, _) => stack_layers(siblings, call, sizes),
                            _ => [None, None],
                        };
                        Ok(stack_output(*host, *o, &depth, raw, &layers, atoms, deferred))
                    }
                    (None, _, Some((_, Some(width)))) => Ok(width),
                    _ => Ok(output_atom(*host, select, raw, atoms, deferred)),
                }
            }
        };
        match result {
            Ok(w) => found.widths[k] = Some(w),
            Err(e) => scope.errors.push(e),
        }
    }
    found
}

/// A user layer takes values or ids (its `Layer` impl says which, at run
/// time); its output width is known when the graph is built.
fn infer_custom(node: &RawNode) -> syn::Result<Width> {
    Ok(Width::atom(&derived_atom(&node.name)))
}

fn need_values<'f>(node: &RawNode, flow: &'f Flow) -> syn::Result<&'f Width> {
    flow.width.as_ref().ok_or_else(|| {
        syn::Error::new(
            flow.span,
            format!(
                "node `{}`: `{}` takes values, but `{}` holds integer ids\n\
                 = help: turn ids into values with `Embedding(vocab, dim)({})`",
                node.statement,
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
    layer: &LayerDef,
    args: &[Arg],
    inputs: &[Flow],
    deferred: &mut Vec<Deferred>,
) -> syn::Result<Width> {
    let call = node.what();
    let arg = |i: usize| match &args[i] {
        Arg::Width(w) => w.clone(),
        Arg::Float(_) | Arg::Expr(_) => Width::constant(0),
    };
    match layer.rule {
        Rule::Linear => {
            let w = need_values(node, &inputs[0])?;
            let (n_in, n_out) = (arg(0), arg(1));
            let message = format!(
                "node `{}`: `{call}({n_in}, {n_out})` expects an input of width {n_in}, but `{}` has width {w}",
                node.statement, inputs[0].name
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
                    node.statement, inputs[0].name, flow.name
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
                node.statement, inputs[0].name
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
                        node.statement, inputs[0].name
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
                node.statement, inputs[0].name, inputs[1].name
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
                        node.statement, inputs[1].name
                    ),
                ));
            }
            Ok(Width::constant(1))
        }
    }
}

/// A nested graph declared in the same invocation: the number of inputs it
/// is given and their widths, checked here when the macro can decide
/// (else the deferred claims of [`infer_host`] decide).
fn check_known_inputs(
    node: &RawNode,
    call: &GraphCall,
    known: &Called,
    expect_outputs: Option<usize>,
    inputs: &[Flow],
) -> syn::Result<()> {
    let graph = &call.name;
    if let (Some(outputs), Some(n)) = (&known.outputs, expect_outputs) {
        if outputs.len() != n {
            let names: Vec<String> = outputs.iter().map(|(o, _)| format!("`{o}`")).collect();
            return Err(syn::Error::new(
                call.name.span(),
                format!(
                    "node `{}`: `{graph}` has {} output(s) ({}), but they are given to {n} name(s)\n\
                     = help: bind as many names, or take one output by name: `{graph}(..).output`",
                    node.statement,
                    outputs.len(),
                    names.join(", ")
                ),
            ));
        }
    }
    let known = &known.inputs;
    let names: Vec<String> = known.iter().map(|(n, _)| format!("`{n}`")).collect();
    let named = call.input_names.iter().any(Option::is_some);
    if !named && inputs.len() != known.len() {
        return Err(syn::Error::new(
            call.inputs_span,
            format!(
                "node `{}`: `{graph}` takes {} input(s) ({}), but it is given {}",
                node.statement,
                known.len(),
                names.join(", "),
                inputs.len()
            ),
        ));
    }
    // Every mistake of the call at once: unknown and missing names, widths.
    let mut errors: Vec<syn::Error> = Vec::new();
    if named {
        let missing: Vec<String> = known
            .iter()
            .filter(|(k, _)| !call.input_names.iter().flatten().any(|n| n == k.as_str()))
            .map(|(k, _)| format!("`{k}`"))
            .collect();
        let (is, missing) = (if missing.len() == 1 { "is" } else { "are" }, missing.join(", "));
        let unknown: Vec<&Ident> = call
            .input_names
            .iter()
            .flatten()
            .filter(|n| !known.iter().any(|(k, _)| *n == k.as_str()))
            .collect();
        // A misspelt name is one mistake: said once, with what is missing.
        for n in &unknown {
            let hint = if missing.is_empty() {
                String::new()
            } else {
                format!("\n= help: {missing} {is} not given")
            };
            errors.push(syn::Error::new(
                n.span(),
                format!(
                    "`{graph}` has no input named `{n}`; its inputs are {}{hint}",
                    names.join(", ")
                ),
            ));
        }
        if unknown.is_empty() && !missing.is_empty() {
            errors.push(syn::Error::new(
                call.inputs_span,
                format!(
                    "node `{}`: `{graph}` takes {} input(s) ({}), but {missing} {is} not given",
                    node.statement,
                    known.len(),
                    names.join(", "),
                ),
            ));
        }
    }
    for (i, flow) in inputs.iter().enumerate() {
        let target = match &call.input_names[i] {
            Some(n) => known.iter().find(|(k, _)| n == k.as_str()),
            None => known.get(i),
        };
        let (name, want, got) = match (target, &flow.width) {
            (Some((name, Some(want))), Some(got)) => (name, want, got),
            (Some((name, None)), Some(_)) => {
                errors.push(syn::Error::new(
                    flow.span,
                    format!(
                        "node `{}`: input `{name}` of `{graph}` takes integer ids, but `{}` holds values",
                        node.statement, flow.name
                    ),
                ));
                continue;
            }
            (Some((name, Some(_))), None) => {
                errors.push(syn::Error::new(
                    flow.span,
                    format!(
                        "node `{}`: input `{name}` of `{graph}` takes values, but `{}` holds integer ids\n\
                         = help: turn ids into values with `Embedding(vocab, dim)({})`",
                        node.statement, flow.name, flow.name
                    ),
                ));
                continue;
            }
            _ => continue,
        };
        if got.equals(want) == Decision::No {
            errors.push(syn::Error::new(
                flow.span,
                format!(
                    "node `{}`: input `{name}` of `{graph}` is {want} wide, but `{}` is {got} wide",
                    node.statement, flow.name
                ),
            ));
        }
    }
    match errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    }) {
        Some(e) => Err(e),
        None => Ok(()),
    }
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
    let label = graph_label(call);
    for (i, flow) in inputs.iter().enumerate() {
        let w = need_values(node, flow)?;
        let (name, select) = match &call.input_names[i] {
            None => (format!("{label}.in[{i}]"), Select::Index(i)),
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
                (format!("{label}.{n}"), Select::Name(n.clone()))
            }
        };
        atoms.push(Atom {
            name: name.clone(),
            host: k,
            output: false,
            select,
            slot: Some(i),
            upper: false,
        });
        deferred.push(Deferred {
            claim: Claim::Equal(w.clone(), Width::atom(&name)),
            // `{name}` is replaced by the nested graph's width, a number,
            // when the check is expanded.
            message: format!(
                "node `{}`: input {i} of `{graph}` has width {name}, but `{}` has width {w}",
                node.statement, flow.name
            ),
            span: flow.span,
        });
    }
    deferred.push(Deferred {
        claim: Claim::Count {
            host: k,
            outputs: false,
            n: inputs.len(),
            upper: false,
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
                upper: false,
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
    let label = match &raw[host].kind {
        RawKind::Host(call, _) => graph_label(call),
        _ => raw[host].name.to_string(),
    };
    let name = match select {
        Select::Index(j) => format!("{label}.out[{j}]"),
        Select::Name(n) => format!("{label}.{n}"),
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
            upper: false,
        });
    }
    Width::atom(&name)
}

/// A stack node: input 0 feeds the first layer; every other input is a
/// group, one block per layer, of the layers' width; the upper layers take
/// what the layer below gives. The layers' graphs are not visible to the
/// macro, so these are deferred checks, with the widths as numbers.
fn infer_stack(
    k: usize,
    node: &RawNode,
    stack_call: &StackCall,
    expect_outputs: Option<usize>,
    inputs: &[Flow],
    found: Found<'_>,
) -> syn::Result<Width> {
    let StackCall { call, depth, layers } = stack_call;
    let Found {
        atoms,
        deferred,
        groups,
    } = found;
    let Some(stack) = &call.stack else {
        return Ok(Width::constant(0));
    };
    let (first, upper) = (graph_label(call), ref_label(&stack.rest));
    let mut atom = |label: &str, output: bool, j: usize, upper: bool| {
        // A width of a layer the macro knows is that width.
        if let Some(w) = known_width(&layers[usize::from(upper)], output, j) {
            return w;
        }
        let name = format!("{label}.{}[{j}]", if output { "out" } else { "in" });
        if !atoms.iter().any(|a| a.name == name && a.host == k) {
            atoms.push(Atom {
                name: name.clone(),
                host: k,
                output,
                select: Select::Index(j),
                slot: (!output).then_some(j),
                upper,
            });
        }
        Width::atom(&name)
    };
    // (claim, its message, its span, the value given as a group)
    let mut claims: Vec<(Width, Width, String, Span, Option<String>)> = Vec::new();
    for (i, flow) in inputs.iter().enumerate() {
        let w = need_values(node, flow)?;
        let of_first = atom(&first, false, i, false);
        if i == 0 {
            claims.push((
                w.clone(),
                of_first.clone(),
                format!(
                    "node `{}`: the stack's first layer `{first}` takes input 0 of width {of_first}, but `{}` has width {w}",
                    node.statement, flow.name
                ),
                flow.span,
                None,
            ));
            continue;
        }
        let group = depth.mul(&of_first);
        claims.push((
            w.clone(),
            group.clone(),
            format!(
                "node `{}`: input {i} of the stack is a group, one block per layer ({}): it takes width {group}, but `{}` has width {w}",
                node.statement,
                match depth.as_const() {
                    Some(d) => format!("{d} layers"),
                    None => format!("`{depth}` layers"),
                },
                flow.name
            ),
            flow.span,
            Some(flow.name.clone()),
        ));
        let of_upper = atom(&upper, false, i, true);
        claims.push((
            of_first.clone(),
            of_upper.clone(),
            format!(
                "node `{}`: input {i} of the first layer `{first}` has width {of_first}, but the upper layers' (`{upper}`) has width {of_upper}: a group has one width",
                node.statement
            ),
            stack.rest.name.span(),
            None,
        ));
    }
    let (first_out, upper_in, upper_out) = (
        atom(&first, true, 0, false),
        atom(&upper, false, 0, true),
        atom(&upper, true, 0, true),
    );
    claims.push((
        upper_in.clone(),
        first_out.clone(),
        format!(
            "node `{}`: the upper layers (`{upper}`) take input 0 of width {upper_in}, but the first layer's output 0 has width {first_out}",
            node.statement
        ),
        stack.rest.name.span(),
        None,
    ));
    // An upper layer feeds another only from three layers on.
    let (first_label, upper_label) = (first.clone(), upper.clone());
    if depth.as_const().is_none_or(|d| d > 2) {
        claims.push((
            upper_out.clone(),
            upper_in.clone(),
        format!(
            "node `{}`: an upper layer (`{upper}`) gives output 0 of width {upper_out} to the next, which takes width {upper_in}",
            node.statement
        ),
        stack.rest.name.span(),
        None,
        ));
    }
    // Decided now where both widths are known (a shipped layer, a graph of
    // the block), every mistake at once; the others when the graph is built.
    let mut errors: Vec<syn::Error> = Vec::new();
    for (a, b, message, span, group) in claims {
        match a.equals(&b) {
            Decision::Yes => {}
            Decision::No => errors.push(syn::Error::new(span, message)),
            Decision::Unknown => {
                if let Some(name) = group {
                    groups.push((name, deferred.len()));
                }
                deferred.push(Deferred {
                    claim: Claim::Equal(a, b),
                    message,
                    span,
                });
            }
        }
    }
    if let Some(e) = errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    }) {
        return Err(e);
    }
    // The upper layers' counts, when they are another graph's.
    let (path, rest_path) = (&call.path, &stack.rest.path);
    let same_graph = quote::quote!(#path).to_string() == quote::quote!(#rest_path).to_string();
    let graphs: &[bool] = if same_graph || first_label == upper_label {
        &[false]
    } else {
        &[false, true]
    };
    for &upper in graphs {
        let span = if upper {
            stack.rest.name.span()
        } else {
            call.inputs_span
        };
        deferred.push(Deferred {
            claim: Claim::Count {
                host: k,
                outputs: false,
                n: inputs.len(),
                upper,
            },
            message: format!(
                "the stack is given {} input(s), but its layers declare another number",
                inputs.len()
            ),
            span,
        });
        if let Some(n) = expect_outputs {
            deferred.push(Deferred {
                claim: Claim::Count {
                    host: k,
                    outputs: true,
                    n: n.saturating_sub(1),
                    upper,
                },
                message: format!("the stack gives its outputs to {n} name(s)"),
                span: if upper {
                    stack.rest.name.span()
                } else {
                    stack.keyword.span()
                },
            });
        }
    }
    Ok(Width::constant(0))
}

/// The first and upper layers of the stack `call`, where the macro knows
/// their graphs.
fn stack_layers(known: &[Signature], call: &GraphCall, sizes: &[String]) -> [Option<Called>; 2] {
    let Some(stack) = &call.stack else {
        return [None, None];
    };
    let first = graph_ref(call);
    [&first, &stack.rest].map(|r| known.iter().find_map(|s| s.as_named(r, sizes)))
}

/// Width `j` of a layer's inputs (or outputs), when the macro knows it.
fn known_width(layer: &Option<Called>, output: bool, j: usize) -> Option<Width> {
    let layer = layer.as_ref()?;
    let list = if output {
        layer.outputs.as_ref()?
    } else {
        &layer.inputs
    };
    list.get(j)?.1.clone()
}

/// The width of output `o` of the stack at `host`: output 0 is the last
/// layer's output 0; output `o + 1` the group of every layer's output `o`.
fn stack_output(
    host: usize,
    o: usize,
    depth: &Width,
    raw: &[RawNode],
    layers: &[Option<Called>; 2],
    atoms: &mut Vec<Atom>,
    deferred: &mut Vec<Deferred>,
) -> Width {
    let RawKind::Host(call, _) = &raw[host].kind else {
        return Width::constant(0);
    };
    let Some(stack) = &call.stack else {
        return Width::constant(0);
    };
    let (first, upper) = (graph_label(call), ref_label(&stack.rest));
    let j = o.saturating_sub(1);
    let mut atom = |label: &str, upper: bool| {
        if let Some(w) = known_width(&layers[usize::from(upper)], true, j) {
            return w;
        }
        let name = format!("{label}.out[{j}]");
        if !atoms.iter().any(|a| a.name == name && a.host == host) {
            atoms.push(Atom {
                name: name.clone(),
                host,
                output: true,
                select: Select::Index(j),
                slot: None,
                upper,
            });
        }
        Width::atom(&name)
    };
    let of_first = atom(&first, false);
    if o == 0 {
        return of_first;
    }
    let of_upper = atom(&upper, true);
    if of_first.equals(&of_upper) == Decision::Yes {
        return depth.mul(&of_first);
    }
    deferred.push(Deferred {
        claim: Claim::Equal(of_first.clone(), of_upper.clone()),
        message: format!(
            "node `{}`: output {j} of the first layer `{first}` has width {of_first}, but the upper layers' (`{upper}`) has width {of_upper}: a group has one width",
            raw[host].statement
        ),
        span: stack.rest.name.span(),
    });
    depth.mul(&of_first)
}

/// A stack call: its depth and the layers' graphs where the macro knows
/// them (first, upper).
struct StackCall<'c> {
    call: &'c GraphCall,
    depth: &'c Width,
    layers: [Option<Called>; 2],
}

/// Where the width pass puts what it finds about a stack.
struct Found<'a> {
    atoms: &'a mut Vec<Atom>,
    deferred: &'a mut Vec<Deferred>,
    groups: &'a mut Vec<(String, usize)>,
}

/// The graph a call names, without its inputs.
pub(super) fn graph_ref(call: &GraphCall) -> crate::ast::GraphRef {
    crate::ast::GraphRef {
        path: call.path.clone(),
        name: call.name.clone(),
        generics: call.generics.clone(),
        sizes: call.sizes.clone(),
        dynamic: call.dynamic,
    }
}

/// How a stack's upper layers' graph is written (as [`graph_label`]).
fn ref_label(r: &crate::ast::GraphRef) -> String {
    let (path, generics) = (&r.path, &r.generics);
    let mut label = quote::quote!(#path #generics).to_string().replace(' ', "");
    if r.dynamic {
        let sizes: Vec<String> = r.sizes.iter().map(|e| quote::quote!(#e).to_string()).collect();
        label += &format!("[{}]", sizes.join(", "));
    }
    label
}

/// How a nested graph is written, for the names of its widths in messages:
/// `cells::Cell`, `LstmCell<3,4>`, `Inner[4]`. Equal labels mean equal
/// widths, so hosts of one graph share them.
fn graph_label(call: &GraphCall) -> String {
    let (path, generics) = (&call.path, &call.generics);
    let mut label = quote::quote!(#path #generics).to_string().replace(' ', "");
    if call.dynamic {
        let sizes: Vec<String> = call.sizes.iter().map(|e| quote::quote!(#e).to_string()).collect();
        label += &format!("[{}]", sizes.join(", "));
    }
    label
}

/// How messages name node `j` where another reads it: its name when the
/// user gave one, else the call as written (`Linear(H, 3 * H)`,
/// `Cell(..).y`), since a generated name is nothing the user wrote.
fn shown_as_input(raw: &[RawNode], j: usize) -> String {
    let node = &raw[j];
    if !node.generated {
        return node.name.to_string();
    }
    match &node.kind {
        RawKind::Layer(call) => {
            let args: Vec<String> = call.args.iter().map(expr_text).collect();
            format!("{}({})", call.layer, args.join(", "))
        }
        RawKind::Host(call, _) => format!("{}(..)", call.name),
        RawKind::Output { host, select } => {
            let host = match &raw[*host].kind {
                RawKind::Host(call, _) => call.name.to_string(),
                _ => raw[*host].name.to_string(),
            };
            match select {
                Select::Name(n) => format!("{host}(..).{n}"),
                Select::Index(0) => format!("{host}(..)"),
                Select::Index(i) => format!("output {i} of {host}(..)"),
            }
        }
    }
}

/// An expression as written (spaced by tokens: `3 * H`).
fn expr_text(e: &syn::Expr) -> String {
    quote::quote!(#e).to_string()
}

/// The atom standing for a user layer's output width.
pub fn derived_atom(node: &Ident) -> String {
    format!("__{node}")
}

/// Part `part` of `Split(n)`: a `Narrow(part * w / n, w / n)`.
///
/// A width the macro cannot divide but that is not written in the graph's
/// sizes (a nested graph's output, a user layer's) is divided when the graph
/// is built, with a deferred check that the division is exact.
fn infer_split(
    node: &RawNode,
    part: usize,
    n: usize,
    inputs: &[Flow],
    sizes: &[String],
    quotients: &mut Vec<(String, Width, i64)>,
    deferred: &mut Vec<Deferred>,
) -> syn::Result<(Width, Vec<Arg>)> {
    let w = need_values(node, &inputs[0])?;
    let n = n as i64;
    let length = match w.div_exact(n) {
        Some(l) => l,
        None if w.atoms().any(|a| !sizes.contains(a)) => {
            let name = format!("({w})/{n}");
            if !quotients.iter().any(|(q, _, _)| *q == name) {
                quotients.push((name.clone(), w.clone(), n));
                deferred.push(Deferred {
                    claim: Claim::Divisible { width: w.clone(), by: n },
                    message: format!(
                        "`Split({n})` cuts `{}` into {n} equal parts, but its width ({w}) is not divisible by {n}",
                        inputs[0].name
                    ),
                    span: inputs[0].span,
                });
            }
            Width::atom(&name)
        }
        None if w.as_const().is_some() => {
            return Err(syn::Error::new(
                inputs[0].span,
                format!(
                    "`Split({n})` cuts `{}` into {n} equal parts, but its width {w} is not divisible by {n}",
                    inputs[0].name
                ),
            ))
        }
        None if w.never_divisible(n) => {
            return Err(syn::Error::new(
                inputs[0].span,
                format!(
                "`Split({n})` cuts `{}` into {n} equal parts, but its width {w} is never a multiple of {n}",
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
