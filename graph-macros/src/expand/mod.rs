//! Expansion: the checked graph to Rust code, emitting only what depends on
//! the graph. Everything else (parameter access, modes, checkpoints, tapes
//! and the pass loops) lives once in the runtime, as provided methods of
//! `graph_runtime::Graph`.
//!
//! For a graph `G` the files here emit, in order:
//! - `types`: `G<F>`, `GLayers<F>` (one layer or nested graph per node),
//!   `GOutputs`/`GInputGrads` (named views returned by `forward`/`backward`),
//!   `GSizes` for run-time sizes, and the `GTape` alias;
//! - `api`: the constants, the constructors and the typed `forward` and
//!   `backward`;
//! - `passes`: `impl Graph for G`: the `GraphSpec` constant and `node`,
//!   which hands node `k` to the runtime's pass;
//! - `checks`: widths known only when the graph is built, and the claims the
//!   macro could not decide (const assertions or constructor checks);
//! - `sequence`: for a recurrent graph, the typed sequence API
//!   (`forward_seq`, `backward_seq`) and its named views;
//! - `fuse`: groups of nodes the runtime may compute as one unit (the gate
//!   arithmetic of an LSTM cell);
//! - `dot`: the Graphviz picture;
//! - `python`: the graph as a `torch.nn.Module` class, in Python;
//! - `stub`: for a graph with mistakes, its interface alone.
//!
//! Size parameters: const generics (`G<const H: usize>`) are spelled as
//! themselves; run-time sizes (`G[vocab]`), user layers' output widths and
//! widths of nested graphs given `[..]` live in a `GSizes` struct kept by the
//! graph, spelled `sizes.field` where a `sizes` binding is in scope; widths
//! of other nested graphs are their constants.

mod api;
mod checks;
mod dot;
mod fuse;
mod passes;
mod python;
mod sequence;
mod stub;
mod types;

use crate::ir::{Arg, Atom, Checked, Graph, Node, NodeKind, Select, Source};
use crate::layers::Rule;
use crate::width::Width;
use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

pub fn expand(checked: &Checked) -> TokenStream {
    let rt = &checked.runtime;
    let graphs = checked.graphs.iter().map(|g| {
        let x = Expander::new(rt, g);
        let (types, api, passes, sequence) = (x.types(), x.api(), x.passes(), x.sequence());
        quote!(#types #api #passes #sequence)
    });
    let stubs = checked.stubs.iter().map(|s| stub::stub(rt, s));
    graphs.chain(stubs).collect()
}

fn lit(n: usize) -> Literal {
    Literal::usize_unsuffixed(n)
}

/// `tokens` shown at `at`: every token keeps how it resolves names (so
/// `$crate` still does) but reports its location as `at`. Signatures of
/// generated methods are moved to the user's declaration, so that rustc's
/// notes ("method defined here", "required by this bound") point at the
/// graph's name or the input's, not at the whole `graph!` block.
fn relocate(tokens: TokenStream, at: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            proc_macro2::TokenTree::Group(g) => {
                let mut group = proc_macro2::Group::new(g.delimiter(), relocate(g.stream(), at));
                group.set_span(g.span().located_at(at));
                proc_macro2::TokenTree::Group(group)
            }
            mut other => {
                other.set_span(other.span().located_at(at));
                other
            }
        })
        .collect()
}

/// An identifier for generated locals that cannot clash with user names.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// What every part of one graph's expansion needs: the runtime's path, the
/// checked graph, and the names of its generated types.
#[derive(Clone)]
struct Expander<'a> {
    rt: &'a TokenStream,
    g: &'a Graph,
    /// `sizes`, the binding widths known at build time are read from.
    sizes: Ident,
    /// `const I: usize, ..` and `I, ..`: the graph's const generics.
    gen_decl: TokenStream,
    gen_use: TokenStream,
    layers_ty: Ident,
    outputs_ty: Ident,
    input_grads_ty: Ident,
    sizes_ty: Ident,
    /// The float type in generated types: `F`, or `f32` in a free constant
    /// (widths do not depend on it).
    float: TokenStream,
}

impl<'a> Expander<'a> {
    fn new(rt: &'a TokenStream, g: &'a Graph) -> Self {
        let consts = &g.const_sizes;
        Expander {
            rt,
            g,
            sizes: local("sizes"),
            gen_decl: quote!(#(const #consts: usize,)*),
            gen_use: quote!(#(#consts,)*),
            layers_ty: format_ident!("{}Layers", g.name),
            outputs_ty: format_ident!("{}Outputs", g.name),
            input_grads_ty: format_ident!("{}InputGrads", g.name),
            sizes_ty: format_ident!("{}Sizes", g.name),
            float: quote!(F),
        }
    }

    fn atom(&self, name: &str) -> Option<(usize, &Atom)> {
        self.g.atoms.iter().enumerate().find(|(_, a)| a.name == name)
    }

    fn host_is_dynamic(&self, host: usize) -> bool {
        self.g.nodes[host].nested().is_some_and(|n| n.dynamic)
    }

    fn is_host(&self, k: usize) -> bool {
        self.g.nodes[k].nested().is_some()
    }

    /// Widths read from the sizes struct: run-time sizes, user layer
    /// outputs, widths of nested graphs given `[..]`.
    fn sizes_fields(&self) -> Vec<Ident> {
        let mut fields: Vec<Ident> = self.g.runtime_sizes.clone();
        fields.extend(
            self.g
                .derived
                .iter()
                .map(|(_, a)| Ident::new(a, Span::call_site())),
        );
        fields.extend(
            self.g
                .atoms
                .iter()
                .enumerate()
                .filter(|(_, a)| self.host_is_dynamic(a.host))
                .map(|(i, _)| format_ident!("__a{}", i)),
        );
        fields
    }

    fn has_sizes_struct(&self) -> bool {
        !self.sizes_fields().is_empty()
    }

    fn has_hosts(&self) -> bool {
        (0..self.g.nodes.len()).any(|k| self.is_host(k))
    }

    /// Whether constructors return `Result`: something is checked when the
    /// graph is built.
    fn is_fallible(&self) -> bool {
        self.has_sizes_struct() || self.has_hosts()
    }

    /// A width as a `usize` expression.
    fn width(&self, w: &Width) -> TokenStream {
        w.to_tokens(&|atom| self.atom_tokens(atom))
    }

    fn atom_tokens(&self, atom: &str) -> TokenStream {
        let sizes = &self.sizes;
        if let Some((_, numerator, by)) = self.g.quotients.iter().find(|(q, _, _)| q == atom) {
            let (numerator, by) = (self.width(numerator), lit(*by as usize));
            return quote!((#numerator / #by));
        }
        if let Some(c) = self.g.const_sizes.iter().find(|c| *c == atom) {
            return quote!(#c);
        }
        if let Some((i, a)) = self.atom(atom) {
            if self.host_is_dynamic(a.host) {
                let field = format_ident!("__a{}", i);
                return quote!(#sizes.#field);
            }
            let host = &self.g.nodes[a.host];
            let ty = if a.upper {
                self.upper_type(host)
            } else {
                self.nested_type(host)
            };
            let consts = if a.output {
                quote!(OUTPUT_WIDTHS)
            } else {
                quote!(INPUT_WIDTHS)
            };
            let j = self.select_index(a.host, &a.select, a.output);
            let rt = self.rt;
            return quote!(#rt::__private::width_at(<#ty>::#consts, #j));
        }
        let field = Ident::new(atom, Span::call_site());
        quote!(#sizes.#field)
    }

    fn is_runtime(&self, w: &Width) -> bool {
        w.atoms().any(|a| {
            if self.g.const_sizes.iter().any(|c| c == a) {
                return false;
            }
            if let Some((_, numerator, _)) = self.g.quotients.iter().find(|(q, _, _)| q == a) {
                return self.is_runtime(numerator);
            }
            match self.atom(a) {
                Some((_, atom)) => self.host_is_dynamic(atom.host),
                None => true,
            }
        })
    }

    /// The slot a node input reads: inputs first, then nodes.
    fn slot(&self, src: Source) -> usize {
        match src {
            Source::Input(i) => i,
            Source::Node(k) => self.g.inputs.len() + k,
        }
    }

    /// `path<generics.., F>` of a nested graph node.
    fn nested_type(&self, node: &Node) -> TokenStream {
        match node.nested() {
            Some(nested) => {
                let path = &nested.path;
                let args = nested.generics.iter().flat_map(|g| g.args.iter()).map(size_arg);
                let float = &self.float;
                quote!(#path<#(#args,)* #float>)
            }
            None => quote!(()),
        }
    }

    /// The type of a stack's upper layers (of the nested graph otherwise).
    fn upper_type(&self, node: &Node) -> TokenStream {
        match node.nested().and_then(|n| n.stack.as_ref()) {
            Some((_, upper)) => {
                let path = &upper.path;
                let args = upper.generics.iter().flat_map(|g| g.args.iter()).map(size_arg);
                let float = &self.float;
                quote!(#path<#(#args,)* #float>)
            }
            None => self.nested_type(node),
        }
    }

    fn layer_type(&self, node: &Node) -> TokenStream {
        let rt = self.rt;
        match &node.kind {
            NodeKind::Nested(nested) if nested.stack.is_some() => {
                let (first, upper) = (self.nested_type(node), self.upper_type(node));
                quote!(#rt::Stack<#first, #upper>)
            }
            NodeKind::Builtin { layer, .. } => {
                let ty = Ident::new(layer.name, Span::call_site());
                match layer.rule {
                    Rule::Criterion | Rule::ClassCriterion => quote!(#rt::criteria::#ty),
                    _ => quote!(#rt::layers::#ty),
                }
            }
            // Named once, by an alias, so that an unknown type is one error.
            NodeKind::Custom { .. } => {
                let alias = self.user_layer_alias(node);
                quote!(#alias)
            }
            NodeKind::Nested(_) | NodeKind::Output { .. } => self.nested_type(node),
        }
    }

    fn layer_ctor(&self, node: &Node) -> TokenStream {
        let ty = self.layer_type(node);
        match &node.kind {
            NodeKind::Nested(nested) => {
                let sizes = nested.sizes.iter().map(|a| self.arg(a, false));
                let Some((depth, upper)) = &nested.stack else {
                    return quote!(<#ty>::__nested(&[#(#sizes),*])?);
                };
                let rt = self.rt;
                let (first_ty, upper_ty) = (self.nested_type(node), self.upper_type(node));
                let upper_sizes = upper.sizes.iter().map(|a| self.arg(a, false));
                let depth = self.width(depth);
                let graph = self.g.name.to_string();
                let text = format!("node `{}` {{}}, at {{}}:{}", node.name, node.line);
                quote! {
                    #rt::Stack::new(
                        #depth,
                        <#first_ty>::__nested(&[#(#sizes),*])?,
                        <#upper_ty>::__nested(&[#(#upper_sizes),*])?,
                    )
                    .map_err(|m| #rt::Error::Sizes {
                        graph: #graph.into(),
                        message: ::std::format!(#text, m, ::core::file!()),
                    })?
                }
            }
            // Criteria hold a reduction; other layers without arguments are unit structs.
            NodeKind::Builtin { layer, args } if args.is_empty() => match layer.rule {
                Rule::Criterion | Rule::ClassCriterion => quote!(#ty::new()),
                _ => ty,
            },
            NodeKind::Builtin { args, .. } | NodeKind::Custom { args, .. } => {
                let args = args.iter().map(|a| self.arg(a, true));
                quote!(#ty::new(#(#args),*))
            }
            NodeKind::Output { .. } => quote!(()),
        }
    }

    /// The alias under which the user layer of `node` is named.
    fn user_layer_alias(&self, node: &Node) -> Ident {
        format_ident!("__{}_{}_Layer", self.g.name, node.name)
    }

    fn arg(&self, a: &Arg, float_as_f64: bool) -> TokenStream {
        match a {
            Arg::Width(w) => self.width(w),
            Arg::Float(e) if float_as_f64 => quote!((#e) as f64),
            Arg::Float(e) | Arg::Expr(e) => quote!(#e),
        }
    }

    /// The index of the selected input (`output` false) or output of the
    /// nested graph at node `host`, as a constant expression.
    fn select_index(&self, host: usize, select: &Select, output: bool) -> TokenStream {
        let rt = self.rt;
        match select {
            Select::Index(j) => {
                let j = lit(*j);
                quote!(#j)
            }
            Select::Name(n) => {
                let ty = self.nested_type(&self.g.nodes[host]);
                let n = n.to_string();
                let find = if output {
                    quote!(output_index)
                } else {
                    quote!(input_index)
                };
                let float = &self.float;
                quote!(#rt::__private::#find(<#ty as #rt::Graph<#float>>::SPEC, #n))
            }
        }
    }

    /// For each input of a host node, the index of the nested graph's input
    /// it goes to.
    fn host_input_indices(&self, k: usize) -> Vec<TokenStream> {
        let node = &self.g.nodes[k];
        let mut selects: Vec<Select> = (0..node.inputs.len()).map(Select::Index).collect();
        for a in self.g.atoms.iter().filter(|a| a.host == k && !a.output) {
            if let (Select::Name(_), Some(slot)) = (&a.select, a.slot) {
                selects[slot] = a.select.clone();
            }
        }
        selects.iter().map(|s| self.select_index(k, s, false)).collect()
    }
}

/// How a node is written in `graph!`: `Linear(2, 4)`, `RnnCell`, `output y`.
fn layer_label(node: &Node) -> String {
    let (name, args) = match &node.kind {
        NodeKind::Nested(n) => {
            let (p, g) = (&n.path, &n.generics);
            let first = quote!(#p #g).to_string().replace(' ', "");
            return match &n.stack {
                Some((depth, upper)) => {
                    let (p, g) = (&upper.path, &upper.generics);
                    let upper = quote!(#p #g).to_string().replace(' ', "");
                    if upper == first {
                        format!("Stack({depth}, {first})")
                    } else {
                        format!("Stack({depth}, {first}, {upper})")
                    }
                }
                None => first,
            };
        }
        NodeKind::Output { select, .. } => {
            return match select {
                Select::Index(j) => format!("output {j}"),
                Select::Name(n) => format!("output {n}"),
            }
        }
        NodeKind::Builtin { layer, args } => (layer.name.to_string(), args),
        NodeKind::Custom { path, args } => (quote!(#path).to_string().replace(' ', ""), args),
    };
    let args: Vec<String> = args
        .iter()
        .map(|a| match a {
            Arg::Width(w) => w.to_string(),
            Arg::Float(e) | Arg::Expr(e) => quote!(#e).to_string(),
        })
        .collect();
    format!("{name}({})", args.join(", "))
}

/// A nested graph's size as a generic argument: a name in braces, so that
/// rustc reads it as a value (a const generic or a `const`), and a name
/// that is neither is "cannot find value `H`", not a type nobody meant
/// with a hint to rename it to the float parameter.
fn size_arg(arg: &syn::GenericArgument) -> TokenStream {
    match arg {
        syn::GenericArgument::Type(syn::Type::Path(p))
            if p.qself.is_none() && p.path.get_ident().is_some() =>
        {
            let span = p.path.segments[0].ident.span();
            quote_spanned!(span=> { #p })
        }
        other => quote!(#other),
    }
}
