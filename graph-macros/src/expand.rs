//! Expansion: the checked graph to Rust code.
//!
//! For a graph `G` this generates the struct `G<F>` (parameters, layers,
//! mode), `GLayers<F>` (one layer or nested graph per node), the tape
//! `GTape<F>` holding `GValues<F>` twice (values and gradients, one matrix
//! per input and node) and the tape of every nested graph, the typed
//! `GOutputs` / `GInputGrads` views returned by `forward` / `backward`, and
//! the `graph_runtime::Graph` impl.
//!
//! The passes themselves are associated functions, `__forward_with` and
//! `__backward_with`, that take the layers and a parameter slice: a graph
//! runs them on its own buffers, and a graph nested in another runs them on
//! its slice of the outer graph's buffers. All math lives in the runtime.
//!
//! Size parameters: const generics (`G<const H: usize>`) are spelled as
//! themselves; run-time sizes (`G[vocab]`), user layers' output widths and
//! widths of nested graphs given `[..]` live in a `GSizes` struct kept by the
//! graph and its tapes, spelled `sizes.field` where a `sizes` binding is in
//! scope; widths of other nested graphs are their constants.

use crate::check::{Arg, Atom, Checked, Claim, Graph, Node, Select, Source};
use crate::layers::{Call, Rule};
use crate::width::Width;
use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

pub fn expand(checked: &Checked) -> TokenStream {
    let rt = &checked.runtime;
    checked
        .graphs
        .iter()
        .map(|g| Expander::new(rt, g).graph())
        .collect()
}

fn lit(n: usize) -> Literal {
    Literal::usize_unsuffixed(n)
}

/// An identifier for generated locals that cannot clash with user names.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

struct Expander<'a> {
    rt: &'a TokenStream,
    g: &'a Graph,
    /// `sizes`, the binding widths known at build time are read from.
    sizes: Ident,
}

/// Generated local names, spanned so that they cannot clash with the user's.
struct Locals {
    tape: Ident,
    values: Ident,
    inputs: Ident,
    layers: Ident,
    ranges: Ident,
    params: Ident,
    param_grads: Ident,
    mode: Ident,
    checked: Ident,
    rng: Ident,
}

impl Locals {
    fn new() -> Self {
        Locals {
            tape: local("tape"),
            values: local("values"),
            inputs: local("inputs"),
            layers: local("layers"),
            ranges: local("ranges"),
            params: local("params"),
            param_grads: local("param_grads"),
            mode: local("mode"),
            checked: local("checked"),
            rng: local("rng"),
        }
    }
}

impl<'a> Expander<'a> {
    fn new(rt: &'a TokenStream, g: &'a Graph) -> Self {
        Expander {
            rt,
            g,
            sizes: local("sizes"),
        }
    }

    fn atom(&self, name: &str) -> Option<(usize, &Atom)> {
        self.g.atoms.iter().enumerate().find(|(_, a)| a.name == name)
    }

    fn host_is_dynamic(&self, host: usize) -> bool {
        self.g.nodes[host].nested.as_ref().is_some_and(|n| n.dynamic)
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
        self.g.nodes.iter().any(|n| n.layer.rule == Rule::Host)
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
        if let Some(c) = self.g.const_sizes.iter().find(|c| *c == atom) {
            return quote!(#c);
        }
        if let Some((i, a)) = self.atom(atom) {
            if self.host_is_dynamic(a.host) {
                let field = format_ident!("__a{}", i);
                return quote!(#sizes.#field);
            }
            let ty = self.nested_type(&self.g.nodes[a.host]);
            let rt = self.rt;
            let (consts, names) = if a.output {
                (quote!(OUTPUT_WIDTHS), quote!(OUTPUTS))
            } else {
                (quote!(INPUT_WIDTHS), quote!(INPUTS))
            };
            return match &a.select {
                Select::Index(j) => {
                    let j = lit(*j);
                    quote!(<#ty>::#consts[#j])
                }
                Select::Name(n) => {
                    let n = n.to_string();
                    quote!(<#ty>::#consts[#rt::__private::position(<#ty>::#names, #n)])
                }
            };
        }
        let field = Ident::new(atom, Span::call_site());
        quote!(#sizes.#field)
    }

    fn is_runtime(&self, w: &Width) -> bool {
        w.atoms().any(|a| {
            if self.g.const_sizes.iter().any(|c| c == a) {
                return false;
            }
            match self.atom(a) {
                Some((_, atom)) => self.host_is_dynamic(atom.host),
                None => true,
            }
        })
    }

    fn field(&self, src: Source) -> &Ident {
        match src {
            Source::Input(i) => &self.g.inputs[i].name,
            Source::Node(k) => &self.g.nodes[k].name,
        }
    }

    /// `path<generics.., F>` of a nested graph node.
    fn nested_type(&self, node: &Node) -> TokenStream {
        let nested = node.nested.as_ref().expect("a host node");
        let path = &nested.path;
        let args = nested.generics.iter().flat_map(|g| g.args.iter());
        quote!(#path<#(#args,)* F>)
    }

    fn layer_type(&self, node: &Node) -> TokenStream {
        let rt = self.rt;
        if node.nested.is_some() {
            return self.nested_type(node);
        }
        if let Some(path) = &node.path {
            return quote!(#path);
        }
        let ty = Ident::new(node.layer.name, Span::call_site());
        match node.layer.rule {
            Rule::Output => quote!(#rt::__private::NestedOutput),
            Rule::Criterion | Rule::ClassCriterion => quote!(#rt::criteria::#ty),
            _ => quote!(#rt::layers::#ty),
        }
    }

    fn layer_ctor(&self, node: &Node) -> TokenStream {
        let ty = self.layer_type(node);
        if let Some(nested) = &node.nested {
            let sizes = nested.sizes.iter().map(|a| match a {
                Arg::Width(w) => self.width(w),
                Arg::Float(e) | Arg::Expr(e) => quote!(#e),
            });
            return quote!(<#ty>::__nested(&[#(#sizes),*])?);
        }
        let args: Vec<TokenStream> = node
            .args
            .iter()
            .map(|a| match a {
                Arg::Width(w) => self.width(w),
                Arg::Float(e) => quote!((#e) as f64),
                Arg::Expr(e) => quote!(#e),
            })
            .collect();
        match node.layer.rule {
            Rule::Criterion | Rule::ClassCriterion => quote!(#ty::new()),
            Rule::Custom => quote!(#ty::new(#(#args),*)),
            _ if args.is_empty() => ty,
            _ => quote!(#ty::new(#(#args),*)),
        }
    }

    fn num_params(node: &Node) -> Width {
        let arg = |i: usize| match &node.args[i] {
            Arg::Width(w) => w.clone(),
            Arg::Float(_) | Arg::Expr(_) => Width::constant(0),
        };
        match node.layer.rule {
            Rule::Linear => arg(0).add(&Width::constant(1)).mul(&arg(1)),
            Rule::Embedding => arg(0).mul(&arg(1)),
            _ => Width::constant(0),
        }
    }

    fn nested_field(node: &Node) -> Ident {
        format_ident!("nested_{}", node.name.to_string().trim_start_matches('_'))
    }

    fn mask_field(node: &Node) -> Ident {
        format_ident!("mask_{}", node.name.to_string().trim_start_matches('_'))
    }

    /// The index of the selected output of a nested graph, at run time.
    fn select_index(&self, layers: &Ident, host: &Node, select: &Select) -> TokenStream {
        self.select_in(layers, host, select, true)
    }

    /// The index of the selected input (`output` false) or output of a
    /// nested graph, at run time.
    fn select_in(&self, layers: &Ident, host: &Node, select: &Select, output: bool) -> TokenStream {
        let rt = self.rt;
        let h = &host.name;
        match select {
            Select::Index(j) => {
                let j = lit(*j);
                quote!(#j)
            }
            Select::Name(n) => {
                let n = n.to_string();
                let names = if output {
                    quote!(#rt::Graph::output_names(&#layers.#h))
                } else {
                    quote!(#rt::Graph::input_names(&#layers.#h))
                };
                quote!(#rt::__private::position(#names, #n))
            }
        }
    }

    /// For each input of a host node, the index of the nested graph's input
    /// it goes to.
    fn host_input_indices(&self, layers: &Ident, k: usize) -> Vec<TokenStream> {
        let node = &self.g.nodes[k];
        let mut selects: Vec<Select> = (0..node.inputs.len()).map(Select::Index).collect();
        for a in self.g.atoms.iter().filter(|a| a.host == k && !a.output) {
            if let (Select::Name(_), Some(slot)) = (&a.select, a.slot) {
                selects[slot] = a.select.clone();
            }
        }
        selects
            .iter()
            .map(|s| self.select_in(layers, node, s, false))
            .collect()
    }

    fn graph(&self) -> TokenStream {
        let rt = self.rt;
        let g = self.g;
        let l = Locals::new();
        let Locals {
            tape,
            layers,
            ranges,
            params,
            param_grads,
            mode,
            checked,
            rng,
            ..
        } = &l;
        let name = &g.name;
        let name_str = name.to_string();
        let vis = &g.vis;
        let attrs = &g.attrs;
        let tape_ty = format_ident!("{}Tape", name);
        let values_ty = format_ident!("{}Values", name);
        let outputs_ty = format_ident!("{}Outputs", name);
        let input_grads_ty = format_ident!("{}InputGrads", name);
        let layers_ty = format_ident!("{}Layers", name);
        let sizes_ty = format_ident!("{}Sizes", name);
        let sizes = &self.sizes;

        // Generic parameters: const sizes first, the float type last (it has a default).
        let consts = &g.const_sizes;
        let gen_decl = quote!(#(const #consts: usize,)*);
        let gen_use = quote!(#(#consts,)*);
        let runtime_sizes = &g.runtime_sizes;
        let sizes_fields = self.sizes_fields();
        let hidden_fields = &sizes_fields[runtime_sizes.len()..];
        let (sizes_field_ty, sizes_decl) = if self.has_sizes_struct() {
            let docs = runtime_sizes.iter().map(|s| format!("Size `{s}`."));
            (
                quote!(#sizes_ty),
                quote! {
                    #[doc = concat!("The sizes of [`", #name_str, "`] known when it is built.")]
                    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
                    #vis struct #sizes_ty {
                        #(#[doc = #docs] pub #runtime_sizes: usize,)*
                        #(#[doc(hidden)] pub #hidden_fields: usize,)*
                    }
                },
            )
        } else {
            (quote!(()), quote!())
        };
        let bind_sizes = |from: TokenStream| {
            if self.has_sizes_struct() {
                quote!(let #sizes = #from;)
            } else {
                quote!(let _ = #from;)
            }
        };
        let bind_self_sizes = bind_sizes(quote!(self.sizes));
        let bind_arg_sizes = bind_sizes(quote!(*#sizes));

        // Inputs.
        let value_inputs: Vec<usize> = (0..g.inputs.len())
            .filter(|&i| g.inputs[i].width.is_some())
            .collect();
        let input_names: Vec<&Ident> = g.inputs.iter().map(|i| &i.name).collect();
        let input_strs: Vec<String> = input_names.iter().map(|i| i.to_string()).collect();
        let input_widths: Vec<TokenStream> = g
            .inputs
            .iter()
            .map(|i| i.width.as_ref().map_or(quote!(1usize), |w| self.width(w)))
            .collect();
        let input_fields: Vec<TokenStream> = g
            .inputs
            .iter()
            .map(|i| {
                let n = &i.name;
                match &i.width {
                    Some(w) => {
                        let doc = format!("Input `{n}`, `(batch, {w})`.");
                        quote!(#[doc = #doc] pub #n: #rt::ndarray::Array2<F>,)
                    }
                    None => {
                        let doc = format!("Input `{n}`: one id per sample.");
                        quote!(#[doc = #doc] pub #n: #rt::__private::Vec<usize>,)
                    }
                }
            })
            .collect();
        let input_empty: Vec<TokenStream> = g
            .inputs
            .iter()
            .zip(&input_widths)
            .map(|(i, w)| {
                let n = &i.name;
                match i.width {
                    Some(_) => quote!(#n: #rt::ndarray::Array2::zeros((0, #w)),),
                    None => quote!(#n: #rt::__private::Vec::new(),),
                }
            })
            .collect();
        let input_resize: Vec<TokenStream> = value_inputs
            .iter()
            .map(|&i| {
                let (n, w) = (&input_names[i], &input_widths[i]);
                quote!(#rt::__private::ensure_shape(&mut self.#n, batch, #w);)
            })
            .collect();
        let value_idx: Vec<Literal> = value_inputs.iter().map(|&i| lit(i)).collect();
        let value_names: Vec<&Ident> = value_inputs.iter().map(|&i| input_names[i]).collect();
        let ids_inputs: Vec<usize> = (0..g.inputs.len())
            .filter(|&i| g.inputs[i].width.is_none())
            .collect();
        let ids_idx: Vec<Literal> = ids_inputs.iter().map(|&i| lit(i)).collect();
        let ids_names: Vec<&Ident> = ids_inputs.iter().map(|&i| input_names[i]).collect();
        let input_is_ids: Vec<bool> = g.inputs.iter().map(|i| i.width.is_none()).collect();
        let input_traits: Vec<TokenStream> = input_is_ids
            .iter()
            .map(|&ids| {
                if ids {
                    quote!(#rt::AsIds)
                } else {
                    quote!(#rt::AsBatch<F>)
                }
            })
            .collect();
        let input_conv: Vec<TokenStream> = g
            .inputs
            .iter()
            .map(|i| {
                let n = &i.name;
                if i.width.is_none() {
                    quote!(#rt::Input::Ids(&#rt::AsIds::as_ids(#n)))
                } else {
                    quote!(#rt::Input::Values(#rt::AsBatch::as_batch(#n)))
                }
            })
            .collect();

        // Nodes. Host nodes (nested graphs) hold no value of their own.
        let is_host = |k: usize| g.nodes[k].layer.rule == Rule::Host;
        let value_nodes: Vec<usize> = (0..g.nodes.len()).filter(|&k| !is_host(k)).collect();
        let host_nodes: Vec<usize> = (0..g.nodes.len()).filter(|&k| is_host(k)).collect();
        let node_names: Vec<&Ident> = g.nodes.iter().map(|n| &n.name).collect();
        let node_strs: Vec<String> = node_names.iter().map(|n| n.to_string()).collect();
        let node_widths: Vec<TokenStream> = g.nodes.iter().map(|n| self.width(&n.width)).collect();
        let node_docs: Vec<String> = g
            .nodes
            .iter()
            .map(|n| match n.layer.rule {
                Rule::Host => format!("Node `{}`: the graph `{}`.", n.name, layer_label(n)),
                _ => format!(
                    "Node `{}` = `{}`, `(batch, {})`.",
                    n.name,
                    layer_label(n),
                    n.width
                ),
            })
            .collect();
        let val_names: Vec<&Ident> = value_nodes.iter().map(|&k| node_names[k]).collect();
        let val_widths: Vec<&TokenStream> = value_nodes.iter().map(|&k| &node_widths[k]).collect();
        let val_docs: Vec<&String> = value_nodes.iter().map(|&k| &node_docs[k]).collect();
        let layer_tys: Vec<TokenStream> = g.nodes.iter().map(|n| self.layer_type(n)).collect();
        let layer_inits: Vec<TokenStream> = g.nodes.iter().map(|n| self.layer_ctor(n)).collect();
        let masked: Vec<usize> = (0..g.nodes.len())
            .filter(|&k| g.nodes[k].layer.call == Call::Masked)
            .collect();
        let mask_fields: Vec<Ident> = masked.iter().map(|&k| Self::mask_field(&g.nodes[k])).collect();
        let mask_widths: Vec<&TokenStream> = masked.iter().map(|&k| &node_widths[k]).collect();
        let nested_fields: Vec<Ident> = host_nodes
            .iter()
            .map(|&k| Self::nested_field(&g.nodes[k]))
            .collect();
        let nested_tys: Vec<&TokenStream> = host_nodes.iter().map(|&k| &layer_tys[k]).collect();
        let nested_hosts: Vec<&Ident> = host_nodes.iter().map(|&k| node_names[k]).collect();

        // Outputs.
        let output_names: Vec<&Ident> = g.outputs.iter().map(|(o, _)| o).collect();
        let output_strs: Vec<String> = output_names.iter().map(|o| o.to_string()).collect();
        let output_widths: Vec<&TokenStream> = g.outputs.iter().map(|&(_, k)| &node_widths[k]).collect();
        let output_fields: Vec<&Ident> = g.outputs.iter().map(|&(_, k)| &g.nodes[k].name).collect();
        let output_docs: Vec<String> = g
            .outputs
            .iter()
            .map(|&(ref o, k)| format!("Output `{o}`, `(batch, {})`.", g.nodes[k].width))
            .collect();
        let input_grad_docs: Vec<String> = value_inputs
            .iter()
            .map(|&i| {
                format!(
                    "Gradient of the loss with respect to input `{}`, `(batch, {})`.",
                    input_names[i],
                    g.inputs[i].width.as_ref().expect("value input")
                )
            })
            .collect();
        let input_idx: Vec<Literal> = (0..g.inputs.len()).map(lit).collect();
        let output_idx: Vec<Literal> = (0..g.outputs.len()).map(lit).collect();
        let n_nodes = lit(g.nodes.len());
        let n_inputs_lit = lit(g.inputs.len());
        let recurrent: Vec<TokenStream> = g
            .recurrent
            .iter()
            .map(|&(i, o)| {
                let (i, o) = (lit(i), lit(o));
                quote!((#i, #o))
            })
            .collect();

        let forward_steps: Vec<TokenStream> = g.order.iter().map(|&k| self.forward_step(k, &l)).collect();
        let backward_steps: Vec<TokenStream> =
            g.order.iter().rev().map(|&k| self.backward_step(k, &l)).collect();

        let param_shapes = g.nodes.iter().zip(&layer_tys).map(|(n, ty)| {
            let f = &n.name;
            match n.layer.call {
                Call::Layer => quote!(<#ty as #rt::Layer<F>>::param_shapes(&layers.#f)),
                Call::Ids => quote!(layers.#f.param_shapes()),
                Call::Nested => quote!(layers.#f.__param_shapes()),
                Call::ClassTarget | Call::Masked | Call::Select => quote!(#rt::__private::Vec::new()),
            }
        });
        let param_inits = g.nodes.iter().zip(&layer_tys).enumerate().map(|(k, (n, ty))| {
            let f = &n.name;
            let k = lit(k);
            let slice = quote!(&mut #params[#ranges[#k].clone()]);
            match n.layer.call {
                Call::Layer => quote!(<#ty as #rt::Layer<F>>::init(&#layers.#f, #slice, #rng);),
                Call::Ids => quote!(#layers.#f.init(#slice, #rng);),
                Call::Nested => quote!(#layers.#f.__init_into(#slice, #rng);),
                Call::ClassTarget | Call::Masked | Call::Select => quote!(),
            }
        });

        let total_params = g
            .nodes
            .iter()
            .map(Self::num_params)
            .fold(Width::constant(0), |a, b| a.add(&b));
        let dot = to_dot(g);
        let struct_doc = format!(
            "\n\nGenerated by `graph!`: inputs {}; outputs {}{}. \
             Run it with [`forward`]({name_str}::forward) and [`backward`]({name_str}::backward) \
             on a [`{tape_ty}`].",
            g.inputs
                .iter()
                .map(|i| match &i.width {
                    Some(w) => format!("`{}: [{w}]`", i.name),
                    None => format!("`{}: usize`", i.name),
                })
                .collect::<Vec<_>>()
                .join(", "),
            g.outputs
                .iter()
                .map(|&(ref o, k)| format!("`{o}: [{}]`", g.nodes[k].width))
                .collect::<Vec<_>>()
                .join(", "),
            if self.has_hosts() {
                String::new()
            } else {
                format!("; {total_params} parameters")
            },
        );
        let oob = |what: &str, n: usize| format!("{name_str} has {n} {what}s; index out of range");
        let (oob_in, oob_out) = (oob("input", g.inputs.len()), oob("output", g.outputs.len()));
        let oob_values = format!("{name_str}: this input holds ids, or the index is out of range");
        let oob_ids = format!("{name_str}: this input holds values, or the index is out of range");

        // Consts that do not depend on anything known only at build time.
        let input_consts = if runtime_sizes.is_empty() {
            quote! {
                /// Input widths (per sample; 1 for an ids input), in declaration order.
                pub const INPUT_WIDTHS: &'static [usize] = &[#(#input_widths),*];
            }
        } else {
            quote!()
        };
        let output_consts = if self.has_sizes_struct() {
            quote!()
        } else {
            quote! {
                /// Output widths (per sample), in declaration order.
                pub const OUTPUT_WIDTHS: &'static [usize] = &[#(#output_widths),*];
            }
        };
        let params_const = if self.has_sizes_struct() || self.has_hosts() {
            quote!()
        } else {
            let total = self.width(&total_params);
            quote! {
                /// Total number of parameters.
                pub const NUM_PARAMS: usize = #total;
            }
        };

        // Checks the macro could not decide.
        let (const_checks, runtime_checks) = self.deferred_checks(layers);
        let check_const_use = if const_checks.is_empty() {
            quote!()
        } else {
            quote!(let () = Self::SIZE_CHECKS;)
        };
        let size_checks_const = if const_checks.is_empty() {
            quote!()
        } else {
            quote! {
                /// Size checks the macro could not decide, evaluated when the graph is built.
                const SIZE_CHECKS: () = { #(#const_checks)* };
            }
        };

        // Constructors.
        let size_params: Vec<TokenStream> = runtime_sizes.iter().map(|s| quote!(#s: usize)).collect();
        let (ctor_ret, ctor_ok, zeros_call) = if self.is_fallible() {
            (
                quote!(#rt::Result<Self>),
                quote!(::core::result::Result::Ok),
                quote!(Self::zeros(#(#runtime_sizes),*)?),
            )
        } else {
            (quote!(Self), quote!(), quote!(Self::zeros()))
        };
        let make_sizes = if self.has_sizes_struct() {
            let zero_checks = runtime_sizes.iter().map(|s| {
                let msg = format!("size `{s}` must be at least 1, got 0");
                quote! {
                    if #s == 0 {
                        return ::core::result::Result::Err(#rt::Error::Sizes {
                            graph: #name_str.into(),
                            message: #msg.into(),
                        });
                    }
                }
            });
            quote! {
                #(#zero_checks)*
                #[allow(unused_mut)]
                let mut #sizes = #sizes_ty { #(#runtime_sizes,)* #(#hidden_fields: 0,)* };
            }
        } else {
            quote!(let #sizes = ();)
        };
        let derive_widths = self.derive_widths(layers, &input_widths, &node_widths);
        let nested_size_args = if runtime_sizes.is_empty() {
            quote!()
        } else {
            let idx = (0..runtime_sizes.len()).map(lit);
            quote!(#(sizes[#idx]),*)
        };
        let n_sizes = runtime_sizes.len();
        let nested_ctor = if self.is_fallible() {
            quote!(Self::zeros(#nested_size_args))
        } else {
            quote!(::core::result::Result::Ok(Self::zeros()))
        };
        let sizes_method = if runtime_sizes.is_empty() {
            quote!()
        } else {
            quote! {
                /// The sizes this graph was built with.
                pub fn sizes(&self) -> #sizes_ty {
                    self.sizes
                }
            }
        };
        // Building layers fails only where a nested graph cannot be built.
        let (build_ret, build_ok, build_try) = if self.has_hosts() {
            (
                quote!(#rt::Result<#layers_ty<#gen_use F>>),
                quote!(::core::result::Result::Ok),
                quote!(?),
            )
        } else {
            (quote!(#layers_ty<#gen_use F>), quote!(), quote!())
        };
        let zeros_doc = if self.is_fallible() {
            "A graph with every parameter zero, in training mode; an error if its sizes do not fit its nodes."
        } else {
            "A graph with every parameter zero, in training mode."
        };

        quote! {
            #sizes_decl

            #(#attrs)*
            #[doc = #struct_doc]
            #[derive(Debug, Clone)]
            #vis struct #name<#gen_decl F: #rt::Float = f32> {
                store: #rt::ParamStore<F>,
                layers: #layers_ty<#gen_use F>,
                sizes: #sizes_field_ty,
                training: bool,
                checked: bool,
                seed: u64,
            }

            #[doc = concat!("The layers of [`", #name_str, "`], one field per node.")]
            #[derive(Debug, Clone)]
            #vis struct #layers_ty<#gen_decl F: #rt::Float> {
                #(#[doc = #node_docs] pub #node_names: #layer_tys,)*
                _float: #rt::__private::PhantomData<F>,
            }

            #[doc = concat!("One matrix per input and node of [`", #name_str, "`].")]
            #[derive(Debug, Clone)]
            #vis struct #values_ty<#gen_decl F> {
                #(#input_fields)*
                #(#[doc = #val_docs] pub #val_names: #rt::ndarray::Array2<F>,)*
            }

            #[doc = concat!("The record of a forward pass of [`", #name_str, "`]: every value, and after backward every gradient. Reuse it: it reallocates only when the batch size changes.")]
            #[derive(Debug, Clone)]
            #vis struct #tape_ty<#gen_decl F: #rt::Float> {
                batch: ::core::option::Option<usize>,
                sizes: #sizes_field_ty,
                salt: u64,
                calls: u64,
                input_grads: [bool; #n_inputs_lit],
                /// Recorded values.
                pub values: #values_ty<#gen_use F>,
                /// Gradients of the loss with respect to each value.
                pub grads: #values_ty<#gen_use F>,
                #(#mask_fields: #rt::ndarray::Array2<F>,)*
                #(#nested_fields: <#nested_tys as #rt::Graph<F>>::Tape,)*
            }

            #[doc = concat!("The outputs of [`", #name_str, "::forward`], borrowed from the tape.")]
            #[derive(Debug, Clone, Copy)]
            #vis struct #outputs_ty<'t, F> {
                #(#[doc = #output_docs] pub #output_names: #rt::ndarray::ArrayView2<'t, F>,)*
            }

            #[doc = concat!("The input gradients returned by [`", #name_str, "::backward`], borrowed from the tape.")]
            #[derive(Debug, Clone, Copy)]
            #vis struct #input_grads_ty<'t, F> {
                #(#[doc = #input_grad_docs] pub #value_names: #rt::ndarray::ArrayView2<'t, F>,)*
                _tape: ::core::marker::PhantomData<#rt::ndarray::ArrayView2<'t, F>>,
            }

            impl<#gen_decl F: #rt::Float> #values_ty<#gen_use F> {
                #[allow(unused_variables)]
                fn empty(#sizes: &#sizes_field_ty) -> Self {
                    #bind_arg_sizes
                    Self {
                        #(#input_empty)*
                        #(#val_names: #rt::ndarray::Array2::zeros((0, #val_widths)),)*
                    }
                }

                #[allow(unused_variables)]
                fn resize(&mut self, batch: usize, #sizes: &#sizes_field_ty) {
                    #bind_arg_sizes
                    #(#input_resize)*
                    #(#rt::__private::ensure_shape(&mut self.#val_names, batch, #val_widths);)*
                }

                fn fill_zero(&mut self) {
                    #(self.#value_names.fill(F::zero());)*
                    #(self.#val_names.fill(F::zero());)*
                }
            }

            impl<#gen_decl F: #rt::Float> #rt::Tape<F> for #tape_ty<#gen_use F> {
                fn batch_size(&self) -> ::core::option::Option<usize> {
                    self.batch
                }

                #[allow(unused_variables)]
                fn resize(&mut self, batch: usize) {
                    self.values.resize(batch, &self.sizes);
                    self.grads.resize(batch, &self.sizes);
                    #bind_self_sizes
                    #(#rt::__private::ensure_shape(&mut self.#mask_fields, batch, #mask_widths);)*
                    #(#rt::Tape::resize(&mut self.#nested_fields, batch);)*
                    self.batch = ::core::option::Option::Some(batch);
                }

                fn input(&self, i: usize) -> #rt::ndarray::ArrayView2<'_, F> {
                    match i {
                        #(#value_idx => self.values.#value_names.view(),)*
                        _ => panic!(#oob_values),
                    }
                }

                fn input_mut(&mut self, i: usize) -> #rt::ndarray::ArrayViewMut2<'_, F> {
                    match i {
                        #(#value_idx => self.values.#value_names.view_mut(),)*
                        _ => panic!(#oob_values),
                    }
                }

                fn set_ids(&mut self, i: usize, ids: &[usize]) {
                    match i {
                        #(#ids_idx => {
                            self.values.#ids_names.clear();
                            self.values.#ids_names.extend_from_slice(ids);
                        })*
                        _ => { let _ = ids; panic!(#oob_ids) }
                    }
                }

                fn input_ids(&self, i: usize) -> &[usize] {
                    match i {
                        #(#ids_idx => &self.values.#ids_names,)*
                        _ => panic!(#oob_ids),
                    }
                }

                fn output(&self, i: usize) -> #rt::ndarray::ArrayView2<'_, F> {
                    match i {
                        #(#output_idx => self.values.#output_fields.view(),)*
                        _ => panic!(#oob_out),
                    }
                }

                fn output_grad_mut(&mut self, i: usize) -> #rt::ndarray::ArrayViewMut2<'_, F> {
                    match i {
                        #(#output_idx => self.grads.#output_fields.view_mut(),)*
                        _ => panic!(#oob_out),
                    }
                }

                fn output_and_grad_mut(
                    &mut self,
                    i: usize,
                ) -> (#rt::ndarray::ArrayView2<'_, F>, #rt::ndarray::ArrayViewMut2<'_, F>) {
                    match i {
                        #(#output_idx => (self.values.#output_fields.view(), self.grads.#output_fields.view_mut()),)*
                        _ => panic!(#oob_out),
                    }
                }

                fn input_grad(&self, i: usize) -> #rt::ndarray::ArrayView2<'_, F> {
                    match i {
                        #(#value_idx => self.grads.#value_names.view(),)*
                        _ => panic!(#oob_values),
                    }
                }

                fn set_input_grad(&mut self, i: usize, on: bool) {
                    self.input_grads[i] = on;
                }

                fn clear_grads(&mut self) {
                    self.grads.fill_zero();
                    #(#rt::Tape::clear_grads(&mut self.#nested_fields);)*
                }
            }

            impl<#gen_decl F: #rt::Float> #name<#gen_use F> {
                /// The graph's name.
                pub const NAME: &'static str = #name_str;
                /// Input names, in declaration order.
                pub const INPUTS: &'static [&'static str] = &[#(#input_strs),*];
                /// Output names, in declaration order.
                pub const OUTPUTS: &'static [&'static str] = &[#(#output_strs),*];
                /// Node names (nested calls included), in declaration order.
                pub const NODES: &'static [&'static str] = &[#(#node_strs),*];
                /// `(input index, output index)` of each `#[recurrent]` pair.
                pub const RECURRENT: &'static [(usize, usize)] = &[#(#recurrent),*];
                /// A Graphviz picture of the graph (`dot -Tsvg`).
                pub const DOT: &'static str = #dot;
                #input_consts
                #output_consts
                #params_const
                #size_checks_const

                #[allow(unused_variables)]
                fn build_layers(#sizes: &#sizes_field_ty) -> #build_ret {
                    #bind_arg_sizes
                    #build_ok(#layers_ty {
                        #(#node_names: #layer_inits,)*
                        _float: #rt::__private::PhantomData,
                    })
                }

                fn param_layout(layers: &#layers_ty<#gen_use F>) -> [(&'static str, #rt::__private::Vec<#rt::ParamShape>); #n_nodes] {
                    [#((#node_strs, #param_shapes)),*]
                }

                #[doc = #zeros_doc]
                #[allow(clippy::let_unit_value)]
                pub fn zeros(#(#size_params),*) -> #ctor_ret {
                    #check_const_use
                    #make_sizes
                    let #layers = Self::build_layers(&#sizes)#build_try;
                    #(#derive_widths)*
                    #(#runtime_checks)*
                    let store = #rt::ParamStore::new(#name_str, &Self::param_layout(&#layers));
                    #ctor_ok(Self { store, layers: #layers, sizes: #sizes, training: true, checked: false, seed: 0 })
                }

                /// A graph with torch-like initial parameters (`Linear`: uniform
                /// in ±1/√in; `Embedding`: standard normal), in training mode.
                pub fn new(#rng: &mut impl #rt::rand::RngCore, #(#size_params),*) -> #ctor_ret {
                    let mut graph = #zeros_call;
                    {
                        let (#ranges, #params) = graph.store.ranges_and_values_mut();
                        Self::__init_with(&graph.layers, #ranges, #params, #rng);
                    }
                    graph.seed = #rt::rand::RngCore::next_u64(#rng);
                    #ctor_ok(graph)
                }

                #sizes_method

                /// A fresh tape to run this graph on.
                pub fn tape(&self) -> #tape_ty<#gen_use F> {
                    #bind_self_sizes
                    #tape_ty {
                        batch: ::core::option::Option::None,
                        sizes: self.sizes,
                        salt: #rt::__private::next_tape_salt(),
                        calls: 0,
                        input_grads: [true; #n_inputs_lit],
                        values: #values_ty::empty(&self.sizes),
                        grads: #values_ty::empty(&self.sizes),
                        #(#mask_fields: #rt::ndarray::Array2::zeros((0, #mask_widths)),)*
                        #(#nested_fields: #rt::Graph::new_tape(&self.layers.#nested_hosts),)*
                    }
                }

                /// Runs the graph on one value per input (a `(batch, width)`
                /// matrix, or a 1-D value for one sample; ids for a `usize`
                /// input) and records the pass in `tape`.
                ///
                /// Fails, leaving the graph unchanged, if an input has the wrong
                /// width or the inputs disagree on the batch size.
                #[allow(clippy::too_many_arguments)]
                pub fn forward<'t>(
                    &self,
                    #tape: &'t mut #tape_ty<#gen_use F>,
                    #(#input_names: &(impl #input_traits + ?Sized),)*
                ) -> #rt::Result<#outputs_ty<'t, F>> {
                    #rt::Graph::forward_inputs(self, #tape, &[#(#input_conv),*])?;
                    let #tape = &*#tape;
                    ::core::result::Result::Ok(#outputs_ty {
                        #(#output_names: #tape.values.#output_fields.view(),)*
                    })
                }

                /// Propagates one gradient per output back through the pass
                /// recorded in `tape`, returning the gradient for each input.
                /// Parameter gradients ACCUMULATE until [`zero_grad`](Self::zero_grad).
                #[allow(clippy::too_many_arguments)]
                pub fn backward<'t>(
                    &mut self,
                    #tape: &'t mut #tape_ty<#gen_use F>,
                    #(#output_names: &(impl #rt::AsBatch<F> + ?Sized),)*
                ) -> #rt::Result<#input_grads_ty<'t, F>> {
                    #rt::Graph::backward_views(self, #tape, &[#(#output_names.as_batch()),*])?;
                    let #tape = &*#tape;
                    ::core::result::Result::Ok(#input_grads_ty {
                        #(#value_names: #tape.grads.#value_names.view(),)*
                        _tape: ::core::marker::PhantomData,
                    })
                }

                /// All parameters in one flat buffer, in declaration order.
                pub fn params(&self) -> &[F] {
                    self.store.values()
                }

                /// All parameters, writable.
                pub fn params_mut(&mut self) -> &mut [F] {
                    self.store.values_mut()
                }

                /// All accumulated gradients, in the layout of [`params`](Self::params).
                pub fn grads(&self) -> &[F] {
                    self.store.grads()
                }

                /// All accumulated gradients, writable.
                pub fn grads_mut(&mut self) -> &mut [F] {
                    self.store.grads_mut()
                }

                /// Total number of parameters.
                pub fn num_params(&self) -> usize {
                    self.store.len()
                }

                /// Sets every parameter gradient to zero.
                pub fn zero_grad(&mut self) {
                    self.store.zero_grad();
                }

                /// The named parameter tensor, e.g. `"x2h.weight"` (`(out, in)`).
                pub fn param(&self, name: &str) -> #rt::Result<#rt::ndarray::ArrayViewD<'_, F>> {
                    self.store.param(name)
                }

                /// The named parameter tensor, writable.
                pub fn param_mut(&mut self, name: &str) -> #rt::Result<#rt::ndarray::ArrayViewMutD<'_, F>> {
                    self.store.param_mut(name)
                }

                /// The accumulated gradient of the named parameter tensor.
                pub fn grad(&self, name: &str) -> #rt::Result<#rt::ndarray::ArrayViewD<'_, F>> {
                    self.store.grad(name)
                }

                /// Writes every parameter, by name, to a safetensors file.
                pub fn save(&self, path: impl ::core::convert::AsRef<::std::path::Path>) -> #rt::Result<()> {
                    self.store.save(path)
                }

                /// Sets every parameter from a safetensors file written by
                /// [`save`](Self::save) (or by torch, with the same names and
                /// shapes). On error nothing changes.
                pub fn load(&mut self, path: impl ::core::convert::AsRef<::std::path::Path>) -> #rt::Result<()> {
                    self.store.load(path)
                }

                /// Name, shape and offset of every parameter tensor.
                pub fn param_specs(&self) -> &[#rt::ParamSpec] {
                    self.store.specs()
                }

                /// The parameters and gradients as one store (for optimizers and tools).
                pub fn store(&self) -> &#rt::ParamStore<F> {
                    &self.store
                }

                /// The parameters and gradients, writable.
                pub fn store_mut(&mut self) -> &mut #rt::ParamStore<F> {
                    &mut self.store
                }

                /// The layer (or nested graph) of every node.
                pub fn layers(&self) -> &#layers_ty<#gen_use F> {
                    &self.layers
                }

                /// Switches to training mode (torch's `training()`): Dropout drops.
                pub fn training(&mut self) {
                    self.training = true;
                }

                /// Switches to evaluation mode (torch's `evaluate()`): Dropout is the identity.
                pub fn evaluate(&mut self) {
                    self.training = false;
                }

                /// Whether the graph is in training mode.
                pub fn is_training(&self) -> bool {
                    self.training
                }

                /// Sets the seed Dropout masks are drawn from (set from the
                /// generator by [`new`](Self::new)).
                pub fn set_seed(&mut self, seed: u64) {
                    self.seed = seed;
                }

                /// Turns checked mode on or off: when on, the first node whose
                /// output or gradient holds a NaN or an infinity makes `forward`
                /// or `backward` fail with an error naming the node, its source
                /// line and the value. Off by default.
                pub fn set_checked(&mut self, checked: bool) {
                    self.checked = checked;
                }

                /// A Graphviz picture of the graph; see [`DOT`](Self::DOT).
                pub fn to_dot(&self) -> &'static str {
                    Self::DOT
                }

                #[doc(hidden)]
                pub fn __nested(sizes: &[usize]) -> #rt::Result<Self> {
                    if sizes.len() != #n_sizes {
                        return ::core::result::Result::Err(#rt::Error::Sizes {
                            graph: #name_str.into(),
                            message: ::std::format!("takes {} size(s) where it is nested, got {}", #n_sizes, sizes.len()),
                        });
                    }
                    #nested_ctor
                }

                #[doc(hidden)]
                pub fn __layers(&self) -> &#layers_ty<#gen_use F> {
                    &self.layers
                }

                #[doc(hidden)]
                pub fn __ranges(&self) -> &[#rt::__private::Range<usize>] {
                    self.store.node_ranges()
                }

                #[doc(hidden)]
                pub fn __param_shapes(&self) -> #rt::__private::Vec<#rt::ParamShape> {
                    self.store.param_shapes()
                }

                #[doc(hidden)]
                pub fn __init_into(&self, #params: &mut [F], #rng: &mut dyn #rt::rand::RngCore) {
                    Self::__init_with(&self.layers, self.store.node_ranges(), #params, #rng);
                }

                #[doc(hidden)]
                #[allow(unused_variables)]
                pub fn __init_with(
                    #layers: &#layers_ty<#gen_use F>,
                    #ranges: &[#rt::__private::Range<usize>],
                    #params: &mut [F],
                    #rng: &mut dyn #rt::rand::RngCore,
                ) {
                    #(#param_inits)*
                }

                #[doc(hidden)]
                #[allow(unused_variables)]
                pub fn __forward_with(
                    #layers: &#layers_ty<#gen_use F>,
                    #ranges: &[#rt::__private::Range<usize>],
                    #params: &[F],
                    #mode: #rt::__private::Mode,
                    #tape: &mut #tape_ty<#gen_use F>,
                ) -> #rt::Result<()> {
                    #tape.calls = #tape.calls.wrapping_add(1);
                    #(#forward_steps)*
                    ::core::result::Result::Ok(())
                }

                #[doc(hidden)]
                #[allow(unused_variables)]
                pub fn __backward_with(
                    #layers: &#layers_ty<#gen_use F>,
                    #ranges: &[#rt::__private::Range<usize>],
                    #params: &[F],
                    #param_grads: &mut [F],
                    #checked: bool,
                    #tape: &mut #tape_ty<#gen_use F>,
                ) -> #rt::Result<()> {
                    #(#backward_steps)*
                    ::core::result::Result::Ok(())
                }
            }

            impl<#gen_decl F: #rt::Float> #rt::Graph<F> for #name<#gen_use F> {
                type Tape = #tape_ty<#gen_use F>;

                fn name(&self) -> &'static str {
                    #name_str
                }

                fn input_names(&self) -> &'static [&'static str] {
                    Self::INPUTS
                }

                fn output_names(&self) -> &'static [&'static str] {
                    Self::OUTPUTS
                }

                #[allow(unused_variables)]
                fn input_width(&self, i: usize) -> usize {
                    #bind_self_sizes
                    match i {
                        #(#input_idx => #input_widths,)*
                        _ => panic!(#oob_in),
                    }
                }

                fn input_is_ids(&self, i: usize) -> bool {
                    [#(#input_is_ids),*][i]
                }

                #[allow(unused_variables)]
                fn output_width(&self, i: usize) -> usize {
                    #bind_self_sizes
                    match i {
                        #(#output_idx => #output_widths,)*
                        _ => panic!(#oob_out),
                    }
                }

                fn recurrent_pairs(&self) -> &'static [(usize, usize)] {
                    Self::RECURRENT
                }

                fn new_tape(&self) -> #tape_ty<#gen_use F> {
                    self.tape()
                }

                fn forward_tape(&self, #tape: &mut #tape_ty<#gen_use F>) -> #rt::Result<()> {
                    let #mode = #rt::__private::Mode { training: self.training, checked: self.checked, seed: self.seed };
                    Self::__forward_with(&self.layers, self.store.node_ranges(), self.store.values(), #mode, #tape)
                }

                fn backward_tape(&mut self, #tape: &mut #tape_ty<#gen_use F>) -> #rt::Result<()> {
                    let (#ranges, #params, #param_grads) = self.store.split_mut();
                    Self::__backward_with(&self.layers, #ranges, #params, #param_grads, self.checked, #tape)
                }

                fn store(&self) -> &#rt::ParamStore<F> {
                    &self.store
                }

                fn store_mut(&mut self) -> &mut #rt::ParamStore<F> {
                    &mut self.store
                }

                fn is_training(&self) -> bool {
                    self.training
                }

                fn set_training(&mut self, training: bool) {
                    self.training = training;
                }

                fn is_checked(&self) -> bool {
                    self.checked
                }

                fn set_checked(&mut self, checked: bool) {
                    self.checked = checked;
                }
            }
        }
    }

    /// One node of `__forward_with`.
    fn forward_step(&self, k: usize, l: &Locals) -> TokenStream {
        let rt = self.rt;
        let Locals {
            tape,
            values: v,
            layers,
            ranges,
            params,
            mode,
            ..
        } = l;
        let node = &self.g.nodes[k];
        let f = &node.name;
        let ty = self.layer_type(node);
        let ins: Vec<&Ident> = node.inputs.iter().map(|&s| self.field(s)).collect();
        let name_str = self.g.name.to_string();
        let (node_str, line) = (f.to_string(), node.line);
        let k_lit = lit(k);
        let node_params = quote!(&#params[#ranges[#k_lit].clone()]);
        let call = match node.layer.call {
            Call::Layer => quote! {
                <#ty as #rt::Layer<F>>::forward(&#layers.#f, #node_params, &[#(#tape.values.#ins.view()),*], #tape.values.#f.view_mut());
            },
            Call::Ids => {
                let ids = ins[0];
                quote! {
                    #layers.#f.forward_ids(#node_params, &#tape.values.#ids, #tape.values.#f.view_mut()).map_err(|message| {
                        #rt::Error::InvalidInput {
                            graph: #name_str.into(),
                            message: ::std::format!("node `{}` ({}:{}): {}", #node_str, ::core::file!(), #line, message),
                        }
                    })?;
                }
            }
            Call::ClassTarget => {
                let (x, ids) = (ins[0], ins[1]);
                quote! {
                    {
                        let #v = &mut #tape.values;
                        #layers.#f.forward_class(#v.#x.view(), &#v.#ids, #v.#f.view_mut()).map_err(|e| #rt::Error::InvalidInput {
                            graph: #name_str.into(),
                            message: ::std::format!("node `{}` ({}:{}): {}", #node_str, ::core::file!(), #line, e),
                        })?;
                    }
                }
            }
            Call::Masked => {
                let x = ins[0];
                let mask = Self::mask_field(node);
                quote! {
                    #layers.#f.forward_masked(
                        #mode.training,
                        #rt::__private::mix_seed(#mode.seed, #tape.salt, #tape.calls, #k_lit),
                        #tape.values.#x.view(),
                        #tape.#mask.view_mut(),
                        #tape.values.#f.view_mut(),
                    );
                }
            }
            Call::Nested => {
                let nested = Self::nested_field(node);
                let idx = self.host_input_indices(layers, k);
                return quote! {
                    {
                        let nested = &mut #tape.#nested;
                        #(#rt::Tape::input_mut(nested, #idx).assign(&#tape.values.#ins);)*
                        <#ty>::__forward_with(#layers.#f.__layers(), #layers.#f.__ranges(), #node_params, #mode, nested)?;
                    }
                };
            }
            Call::Select => {
                let (host, select) = node.select.as_ref().expect("an output node");
                let host = &self.g.nodes[*host];
                let j = self.select_index(layers, host, select);
                let nested = Self::nested_field(host);
                quote! {
                    #tape.values.#f.assign(&#rt::Tape::output(&#tape.#nested, #j));
                }
            }
        };
        quote! {
            #call
            if #mode.checked {
                #rt::__private::check_finite(
                    #name_str, #node_str, ::core::file!(), #line, #rt::__private::Pass::Forward, #tape.values.#f.view(),
                )?;
            }
        }
    }

    /// One node of `__backward_with`.
    fn backward_step(&self, k: usize, l: &Locals) -> TokenStream {
        let rt = self.rt;
        let Locals {
            tape,
            inputs,
            layers,
            ranges,
            params,
            param_grads,
            checked,
            ..
        } = l;
        let node = &self.g.nodes[k];
        let f = &node.name;
        let ty = self.layer_type(node);
        let ins: Vec<&Ident> = node.inputs.iter().map(|&s| self.field(s)).collect();
        let name_str = self.g.name.to_string();
        let (node_str, line) = (f.to_string(), node.line);
        let k_lit = lit(k);
        let range = quote!(#ranges[#k_lit].clone());
        let body = match node.layer.call {
            Call::Layer => {
                let idx = (0..ins.len()).map(lit);
                // A graph input's gradient is computed only if wanted.
                let wanted = node.inputs.iter().map(|&src| match src {
                    Source::Input(i) => {
                        let i = lit(i);
                        quote!(#tape.input_grads[#i])
                    }
                    Source::Node(_) => quote!(true),
                });
                quote! {
                    let #inputs = [#(#tape.values.#ins.view()),*];
                    let (p, pg) = (&#params[#range], &mut #param_grads[#range]);
                    <#ty as #rt::Layer<F>>::backward_params(
                        &#layers.#f, p, pg, &#inputs, #tape.values.#f.view(), #tape.grads.#f.view(),
                    );
                    #(
                        if #wanted {
                            <#ty as #rt::Layer<F>>::backward_input(
                                &#layers.#f, #idx, p, &#inputs, #tape.values.#f.view(), #tape.grads.#f.view(),
                                #tape.grads.#ins.view_mut(),
                            );
                        }
                    )*
                }
            }
            Call::Ids => {
                let ids = ins[0];
                quote! {
                    #layers.#f.backward_ids(&mut #param_grads[#range], &#tape.values.#ids, #tape.grads.#f.view());
                }
            }
            Call::ClassTarget => {
                let (x, ids) = (ins[0], ins[1]);
                quote! {
                    #layers.#f.backward_class(#tape.values.#x.view(), &#tape.values.#ids, #tape.grads.#f.view(), #tape.grads.#x.view_mut());
                }
            }
            Call::Masked => {
                let x = ins[0];
                let mask = Self::mask_field(node);
                quote! {
                    #layers.#f.backward_masked(#tape.#mask.view(), #tape.grads.#f.view(), #tape.grads.#x.view_mut());
                }
            }
            Call::Nested => {
                let nested = Self::nested_field(node);
                let idx = self.host_input_indices(layers, k);
                return quote! {
                    {
                        let nested = &mut #tape.#nested;
                        <#ty>::__backward_with(
                            #layers.#f.__layers(), #layers.#f.__ranges(), &#params[#range], &mut #param_grads[#range],
                            #checked, nested,
                        )?;
                        #({
                            let mut d = #tape.grads.#ins.view_mut();
                            d += &#rt::Tape::input_grad(nested, #idx);
                        })*
                    }
                };
            }
            Call::Select => {
                let (host, select) = node.select.as_ref().expect("an output node");
                let host = &self.g.nodes[*host];
                let j = self.select_index(layers, host, select);
                let nested = Self::nested_field(host);
                quote! {
                    let mut seed = #rt::Tape::output_grad_mut(&mut #tape.#nested, #j);
                    seed += &#tape.grads.#f;
                }
            }
        };
        quote! {
            if #checked {
                #rt::__private::check_finite(
                    #name_str, #node_str, ::core::file!(), #line, #rt::__private::Pass::Backward, #tape.grads.#f.view(),
                )?;
            }
            { #body }
        }
    }

    /// In `zeros`: widths known when the graph is built, into the sizes
    /// struct: user layers' output widths (their shape rule runs here) and
    /// widths of nested graphs given `[..]`.
    fn derive_widths(
        &self,
        layers: &Ident,
        input_widths: &[TokenStream],
        node_widths: &[TokenStream],
    ) -> Vec<TokenStream> {
        let rt = self.rt;
        let g = self.g;
        let sizes = &self.sizes;
        let name_str = g.name.to_string();
        let mut out = Vec::new();
        // In evaluation order, so that a width may use earlier ones.
        for &k in &g.order {
            let node = &g.nodes[k];
            if let Some((_, atom)) = g.derived.iter().find(|(n, _)| *n == k) {
                let f = &node.name;
                let ty = self.layer_type(node);
                let field = Ident::new(atom, Span::call_site());
                let in_widths = node.inputs.iter().map(|&src| match src {
                    Source::Input(i) => input_widths[i].clone(),
                    Source::Node(j) => node_widths[j].clone(),
                });
                let (node_str, line) = (f.to_string(), node.line);
                out.push(quote! {
                    #sizes.#field = <#ty as #rt::Layer<F>>::output_width(&#layers.#f, &[#(#in_widths),*]).map_err(|message| {
                        #rt::Error::Sizes {
                            graph: #name_str.into(),
                            message: ::std::format!("node `{}` ({}:{}): {}", #node_str, ::core::file!(), #line, message),
                        }
                    })?;
                });
            }
            if node.layer.rule == Rule::Host && self.host_is_dynamic(k) {
                let h = &node.name;
                for (i, atom) in g.atoms.iter().enumerate().filter(|(_, a)| a.host == k) {
                    let field = format_ident!("__a{}", i);
                    let j = self.select_in(layers, node, &atom.select, atom.output);
                    let width = if atom.output {
                        quote!(#rt::Graph::output_width(&#layers.#h, j))
                    } else {
                        quote!(#rt::Graph::input_width(&#layers.#h, j))
                    };
                    // An unknown name is reported by a check below.
                    let value = quote!({
                        let j = #j;
                        if j == usize::MAX { 0 } else { #width }
                    });
                    out.push(quote!(#sizes.#field = #value;));
                }
            }
        }
        out
    }

    /// Deferred claims as const assertions (compile-time sizes only) and as
    /// constructor checks (anything known only when the graph is built).
    fn deferred_checks(&self, layers: &Ident) -> (Vec<TokenStream>, Vec<TokenStream>) {
        let rt = self.rt;
        let name_str = self.g.name.to_string();
        let (mut consts, mut runtime) = (Vec::new(), Vec::new());
        for d in &self.g.deferred {
            let (cond, at_build) = match &d.claim {
                Claim::Equal(a, b) => {
                    let (ta, tb) = (self.width(a), self.width(b));
                    (quote!(#ta == #tb), self.is_runtime(a) || self.is_runtime(b))
                }
                Claim::AtMost(a, b) => {
                    let (ta, tb) = (self.width(a), self.width(b));
                    (quote!(#ta <= #tb), self.is_runtime(a) || self.is_runtime(b))
                }
                Claim::Count { host, outputs, n } => {
                    let node = &self.g.nodes[*host];
                    let n = lit(*n);
                    if self.host_is_dynamic(*host) {
                        let h = &node.name;
                        let names = if *outputs {
                            quote!(#rt::Graph::output_names(&#layers.#h))
                        } else {
                            quote!(#rt::Graph::input_names(&#layers.#h))
                        };
                        (quote!(#names.len() == #n), true)
                    } else {
                        let ty = self.nested_type(node);
                        let names = if *outputs { quote!(OUTPUTS) } else { quote!(INPUTS) };
                        (quote!(<#ty>::#names.len() == #n), false)
                    }
                }
                Claim::Has { host, output, name } => {
                    let node = &self.g.nodes[*host];
                    if self.host_is_dynamic(*host) {
                        let h = &node.name;
                        let names = if *output {
                            quote!(#rt::Graph::output_names(&#layers.#h))
                        } else {
                            quote!(#rt::Graph::input_names(&#layers.#h))
                        };
                        (
                            quote!(#rt::__private::position(#names, #name) != usize::MAX),
                            true,
                        )
                    } else {
                        let ty = self.nested_type(node);
                        let names = if *output { quote!(OUTPUTS) } else { quote!(INPUTS) };
                        (
                            quote!(#rt::__private::position(<#ty>::#names, #name) != usize::MAX),
                            false,
                        )
                    }
                }
            };
            let message = &d.message;
            if at_build {
                let sizes = &self.sizes;
                let shown = self.g.runtime_sizes.iter().map(|s| {
                    let text = format!("{s} = {{}}");
                    quote!(::std::format!(#text, #sizes.#s))
                });
                let line = d.span.start().line;
                runtime.push(quote! {
                    if !(#cond) {
                        let shown: #rt::__private::Vec<::std::string::String> = #rt::__private::vec![#(#shown),*];
                        let with = if shown.is_empty() {
                            ::std::string::String::new()
                        } else {
                            ::std::format!(" (with {})", shown.join(", "))
                        };
                        return ::core::result::Result::Err(#rt::Error::Sizes {
                            graph: #name_str.into(),
                            message: ::std::format!("{}{}, at {}:{}", #message, with, ::core::file!(), #line),
                        });
                    }
                });
            } else {
                consts.push(quote_spanned!(d.span=> ::core::assert!(#cond, #message);));
            }
        }
        (consts, runtime)
    }
}

fn layer_label(node: &Node) -> String {
    let name = match (&node.path, &node.nested) {
        (Some(p), _) => quote!(#p).to_string().replace(' ', ""),
        (None, Some(n)) => {
            let p = &n.path;
            let g = &n.generics;
            quote!(#p #g).to_string().replace(' ', "")
        }
        (None, None) => node.layer.name.to_string(),
    };
    if node.layer.rule == Rule::Host {
        return name;
    }
    if let Some((_, select)) = &node.select {
        return match select {
            Select::Index(j) => format!("output {j}"),
            Select::Name(n) => format!("output {n}"),
        };
    }
    let args: Vec<String> = node
        .args
        .iter()
        .map(|a| match a {
            Arg::Width(w) => w.to_string(),
            Arg::Float(e) | Arg::Expr(e) => quote!(#e).to_string(),
        })
        .collect();
    format!("{name}({})", args.join(", "))
}

/// The Graphviz picture: inputs as boxes, outputs doubly outlined, nested
/// graphs as boxes with rounded corners, every edge labelled with the width
/// it carries.
fn to_dot(g: &Graph) -> String {
    let mut s = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n",
        g.name
    );
    for i in &g.inputs {
        let w = i.width.as_ref().map_or("ids".to_string(), |w| format!("[{w}]"));
        s += &format!("  \"{}\" [shape=box, label=\"{}\\n{w}\"];\n", i.name, i.name);
    }
    for (k, n) in g.nodes.iter().enumerate() {
        let periph = if g.outputs.iter().any(|&(_, o)| o == k) {
            ", peripheries=2"
        } else {
            ""
        };
        let shape = if n.layer.rule == Rule::Host {
            "box, style=rounded"
        } else {
            "ellipse"
        };
        s += &format!(
            "  \"{}\" [shape={shape}{periph}, label=\"{}\\n{}\"];\n",
            n.name,
            n.name,
            layer_label(n)
        );
    }
    for n in &g.nodes {
        for &src in &n.inputs {
            let (from, w) = match src {
                Source::Input(i) => (
                    &g.inputs[i].name,
                    g.inputs[i]
                        .width
                        .as_ref()
                        .map_or("ids".to_string(), Width::to_string),
                ),
                Source::Node(k) if g.nodes[k].layer.rule == Rule::Host => (&g.nodes[k].name, String::new()),
                Source::Node(k) => (&g.nodes[k].name, g.nodes[k].width.to_string()),
            };
            s += &format!("  \"{from}\" -> \"{}\" [label=\"{w}\"];\n", n.name);
        }
    }
    s += "}\n";
    s
}
