//! Expansion: the checked graph to Rust code.
//!
//! For a graph `G` this generates the struct `G<F>` (parameters, layers,
//! mode), its tape `GTape<F>` holding `GValues<F>` twice (values and
//! gradients, one `(batch, width)` matrix per input and node), the typed
//! `GOutputs` / `GInputGrads` views returned by `forward` / `backward`, and
//! the `graph_runtime::Graph` impl whose `forward_tape` / `backward_tape`
//! call each node's layer. All math lives in the runtime.

use crate::check::{Checked, Graph, Node, Source};
use crate::layers::Rule;
use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote};
use syn::Ident;

pub fn expand(checked: &Checked) -> TokenStream {
    let rt = &checked.runtime;
    checked.graphs.iter().map(|g| expand_graph(rt, g)).collect()
}

fn lit(n: u64) -> Literal {
    Literal::usize_unsuffixed(n as usize)
}

/// An identifier for generated locals that cannot clash with user names.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

fn expand_graph(rt: &TokenStream, g: &Graph) -> TokenStream {
    let name = &g.name;
    let name_str = name.to_string();
    let vis = &g.vis;
    let attrs = &g.attrs;
    let tape_ty = format_ident!("{}Tape", name);
    let values_ty = format_ident!("{}Values", name);
    let outputs_ty = format_ident!("{}Outputs", name);
    let input_grads_ty = format_ident!("{}InputGrads", name);
    let layers_ty = format_ident!("{}Layers", name);

    let (tape, v, gr, inputs_l, params_l, pgrads_l, rng_l) = (
        local("tape"),
        local("values"),
        local("grads"),
        local("inputs"),
        local("params"),
        local("param_grads"),
        local("rng"),
    );

    let input_names: Vec<&Ident> = g.inputs.iter().map(|i| &i.name).collect();
    let input_strs: Vec<String> = input_names.iter().map(|i| i.to_string()).collect();
    let input_widths: Vec<Literal> = g.inputs.iter().map(|i| lit(i.width)).collect();
    let node_names: Vec<&Ident> = g.nodes.iter().map(|n| &n.name).collect();
    let node_strs: Vec<String> = node_names.iter().map(|n| n.to_string()).collect();
    let node_widths: Vec<Literal> = g.nodes.iter().map(|n| lit(n.width)).collect();
    let output_names: Vec<&Ident> = g.outputs.iter().map(|(o, _)| o).collect();
    let output_strs: Vec<String> = output_names.iter().map(|o| o.to_string()).collect();
    let output_widths: Vec<Literal> = g.outputs.iter().map(|&(_, k)| lit(g.nodes[k].width)).collect();
    let output_fields: Vec<&Ident> = g.outputs.iter().map(|&(_, k)| &g.nodes[k].name).collect();
    let n_nodes = lit(g.nodes.len() as u64);
    let total_params: u64 = g.nodes.iter().map(num_params).sum();
    let num_params_lit = lit(total_params);
    let recurrent: Vec<TokenStream> = g
        .recurrent
        .iter()
        .map(|&(i, o)| {
            let (i, o) = (lit(i as u64), lit(o as u64));
            quote!((#i, #o))
        })
        .collect();

    let layer_tys: Vec<TokenStream> = g.nodes.iter().map(|n| layer_type(rt, n)).collect();
    let layer_inits: Vec<TokenStream> = g.nodes.iter().map(|n| layer_ctor(rt, n)).collect();
    let field = |src: Source| -> &Ident {
        match src {
            Source::Input(i) => &g.inputs[i].name,
            Source::Node(k) => &g.nodes[k].name,
        }
    };

    let forward_steps = g.order.iter().map(|&k| {
        let node = &g.nodes[k];
        let f = &node.name;
        let ty = &layer_tys[k];
        let ins = node.inputs.iter().map(|&s| field(s));
        let k = lit(k as u64);
        let (node_str, line) = (f.to_string(), node.line);
        quote! {
            <#ty as #rt::Layer<F>>::forward(
                &self.layers.#f,
                self.store.node_values(#k),
                &[#(#v.#ins.view()),*],
                #v.#f.view_mut(),
            );
            if self.checked {
                #rt::__private::check_finite(
                    #name_str, #node_str, ::core::file!(), #line, #rt::__private::Pass::Forward, #v.#f.view(),
                )?;
            }
        }
    });

    let backward_steps = g.order.iter().rev().map(|&k| {
        let node = &g.nodes[k];
        let f = &node.name;
        let ty = &layer_tys[k];
        let ins: Vec<&Ident> = node.inputs.iter().map(|&s| field(s)).collect();
        let idx = (0..ins.len()).map(|i| lit(i as u64));
        let k = lit(k as u64);
        let (node_str, line) = (f.to_string(), node.line);
        quote! {
            if self.checked {
                #rt::__private::check_finite(
                    #name_str, #node_str, ::core::file!(), #line, #rt::__private::Pass::Backward, #gr.#f.view(),
                )?;
            }
            {
                let #inputs_l = [#(#v.#ins.view()),*];
                let (#params_l, #pgrads_l) = self.store.node_values_and_grads(#k);
                <#ty as #rt::Layer<F>>::backward_params(
                    &self.layers.#f, #params_l, #pgrads_l, &#inputs_l, #v.#f.view(), #gr.#f.view(),
                );
                #(
                    <#ty as #rt::Layer<F>>::backward_input(
                        &self.layers.#f, #idx, #params_l, &#inputs_l, #v.#f.view(), #gr.#f.view(),
                        #gr.#ins.view_mut(),
                    );
                )*
            }
        }
    });

    let input_idx: Vec<Literal> = (0..g.inputs.len()).map(|i| lit(i as u64)).collect();
    let output_idx: Vec<Literal> = (0..g.outputs.len()).map(|i| lit(i as u64)).collect();
    let n_inputs = g.inputs.len();
    let n_outputs = g.outputs.len();

    let dot = to_dot(g);
    let struct_doc = format!(
        "\n\nGenerated by `graph!`: inputs {}; outputs {}; {} parameters. \
         Run it with [`forward`]({name_str}::forward) and [`backward`]({name_str}::backward) \
         on a [`{tape_ty}`].",
        g.inputs
            .iter()
            .map(|i| format!("`{}: [{}]`", i.name, i.width))
            .collect::<Vec<_>>()
            .join(", "),
        g.outputs
            .iter()
            .map(|&(ref o, k)| format!("`{o}: [{}]`", g.nodes[k].width))
            .collect::<Vec<_>>()
            .join(", "),
        total_params,
    );
    let input_docs: Vec<String> = g
        .inputs
        .iter()
        .map(|i| format!("Input `{}`, `(batch, {})`.", i.name, i.width))
        .collect();
    let node_docs: Vec<String> = g
        .nodes
        .iter()
        .map(|n| {
            format!(
                "Node `{}` = `{}`, `(batch, {})`.",
                n.name,
                layer_label(n),
                n.width
            )
        })
        .collect();
    let output_docs: Vec<String> = g
        .outputs
        .iter()
        .map(|&(ref o, k)| format!("Output `{o}`, `(batch, {})`.", g.nodes[k].width))
        .collect();
    let output_grad_docs: Vec<String> = input_strs
        .iter()
        .zip(&g.inputs)
        .map(|(s, i)| {
            format!(
                "Gradient of the loss with respect to input `{s}`, `(batch, {})`.",
                i.width
            )
        })
        .collect();
    let oob = |what: &str, n: usize| format!("{name_str} has {n} {what}s; index out of range");
    let (oob_in, oob_out) = (oob("input", n_inputs), oob("output", n_outputs));

    quote! {
        #(#attrs)*
        #[doc = #struct_doc]
        #[derive(Debug, Clone)]
        #vis struct #name<F: #rt::Float = f32> {
            store: #rt::ParamStore<F>,
            layers: #layers_ty,
            training: bool,
            checked: bool,
        }

        #[doc = concat!("The layers of [`", #name_str, "`], one field per node.")]
        #[derive(Debug, Clone)]
        #vis struct #layers_ty {
            #(#[doc = #node_docs] pub #node_names: #layer_tys,)*
        }

        #[doc = concat!("One `(batch, width)` matrix per input and node of [`", #name_str, "`].")]
        #[derive(Debug, Clone)]
        #vis struct #values_ty<F> {
            #(#[doc = #input_docs] pub #input_names: #rt::ndarray::Array2<F>,)*
            #(#[doc = #node_docs] pub #node_names: #rt::ndarray::Array2<F>,)*
        }

        #[doc = concat!("The record of a forward pass of [`", #name_str, "`]: every value, and after backward every gradient. Reuse it: it reallocates only when the batch size changes.")]
        #[derive(Debug, Clone)]
        #vis struct #tape_ty<F> {
            batch: ::core::option::Option<usize>,
            /// Recorded values.
            pub values: #values_ty<F>,
            /// Gradients of the loss with respect to each value.
            pub grads: #values_ty<F>,
        }

        #[doc = concat!("The outputs of [`", #name_str, "::forward`], borrowed from the tape.")]
        #[derive(Debug, Clone, Copy)]
        #vis struct #outputs_ty<'t, F> {
            #(#[doc = #output_docs] pub #output_names: #rt::ndarray::ArrayView2<'t, F>,)*
        }

        #[doc = concat!("The input gradients returned by [`", #name_str, "::backward`], borrowed from the tape.")]
        #[derive(Debug, Clone, Copy)]
        #vis struct #input_grads_ty<'t, F> {
            #(#[doc = #output_grad_docs] pub #input_names: #rt::ndarray::ArrayView2<'t, F>,)*
        }

        impl<F: #rt::Float> #values_ty<F> {
            fn empty() -> Self {
                Self {
                    #(#input_names: #rt::ndarray::Array2::zeros((0, #input_widths)),)*
                    #(#node_names: #rt::ndarray::Array2::zeros((0, #node_widths)),)*
                }
            }

            fn resize(&mut self, batch: usize) {
                #(#rt::__private::ensure_shape(&mut self.#input_names, batch, #input_widths);)*
                #(#rt::__private::ensure_shape(&mut self.#node_names, batch, #node_widths);)*
            }

            fn fill_zero(&mut self) {
                #(self.#input_names.fill(F::zero());)*
                #(self.#node_names.fill(F::zero());)*
            }
        }

        impl<F: #rt::Float> #rt::Tape<F> for #tape_ty<F> {
            fn batch_size(&self) -> ::core::option::Option<usize> {
                self.batch
            }

            fn resize(&mut self, batch: usize) {
                self.values.resize(batch);
                self.grads.resize(batch);
                self.batch = ::core::option::Option::Some(batch);
            }

            fn input(&self, i: usize) -> #rt::ndarray::ArrayView2<'_, F> {
                match i {
                    #(#input_idx => self.values.#input_names.view(),)*
                    _ => panic!(#oob_in),
                }
            }

            fn input_mut(&mut self, i: usize) -> #rt::ndarray::ArrayViewMut2<'_, F> {
                match i {
                    #(#input_idx => self.values.#input_names.view_mut(),)*
                    _ => panic!(#oob_in),
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
                    #(#input_idx => self.grads.#input_names.view(),)*
                    _ => panic!(#oob_in),
                }
            }

            fn clear_grads(&mut self) {
                self.grads.fill_zero();
            }
        }

        impl<F: #rt::Float> #name<F> {
            /// The graph's name.
            pub const NAME: &'static str = #name_str;
            /// Input names, in declaration order.
            pub const INPUTS: &'static [&'static str] = &[#(#input_strs),*];
            /// Input widths (per sample), in declaration order.
            pub const INPUT_WIDTHS: &'static [usize] = &[#(#input_widths),*];
            /// Output names, in declaration order.
            pub const OUTPUTS: &'static [&'static str] = &[#(#output_strs),*];
            /// Output widths (per sample), in declaration order.
            pub const OUTPUT_WIDTHS: &'static [usize] = &[#(#output_widths),*];
            /// Node names (nested calls included), in declaration order.
            pub const NODES: &'static [&'static str] = &[#(#node_strs),*];
            /// Total number of parameters.
            pub const NUM_PARAMS: usize = #num_params_lit;
            /// `(input index, output index)` of each `#[recurrent]` pair.
            pub const RECURRENT: &'static [(usize, usize)] = &[#(#recurrent),*];
            /// A Graphviz picture of the graph (`dot -Tsvg`).
            pub const DOT: &'static str = #dot;

            fn build_layers() -> #layers_ty {
                #layers_ty { #(#node_names: #layer_inits,)* }
            }

            fn layer_list(layers: &#layers_ty) -> [(&'static str, &dyn #rt::Layer<F>); #n_nodes] {
                [#((#node_strs, &layers.#node_names as &dyn #rt::Layer<F>)),*]
            }

            /// A graph with every parameter zero, in training mode.
            pub fn zeros() -> Self {
                let layers = Self::build_layers();
                let store = #rt::ParamStore::new(#name_str, &Self::layer_list(&layers));
                Self { store, layers, training: true, checked: false }
            }

            /// A graph with torch-like initial parameters (`Linear`: uniform
            /// in ±1/√in), in training mode.
            pub fn new(#rng_l: &mut impl #rt::rand::RngCore) -> Self {
                let mut graph = Self::zeros();
                graph.store.init(&Self::layer_list(&graph.layers), #rng_l);
                graph
            }

            /// A fresh tape to run this graph on.
            pub fn tape(&self) -> #tape_ty<F> {
                #tape_ty {
                    batch: ::core::option::Option::None,
                    values: #values_ty::empty(),
                    grads: #values_ty::empty(),
                }
            }

            /// Runs the graph on one `(batch, width)` value per input (a 1-D
            /// value is one sample) and records the pass in `tape`.
            ///
            /// Fails, leaving the graph unchanged, if an input has the wrong
            /// width or the inputs disagree on the batch size.
            #[allow(clippy::too_many_arguments)]
            pub fn forward<'t>(
                &self,
                #tape: &'t mut #tape_ty<F>,
                #(#input_names: &(impl #rt::AsBatch<F> + ?Sized),)*
            ) -> #rt::Result<#outputs_ty<'t, F>> {
                #rt::Graph::forward_views(self, #tape, &[#(#input_names.as_batch()),*])?;
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
                #tape: &'t mut #tape_ty<F>,
                #(#output_names: &(impl #rt::AsBatch<F> + ?Sized),)*
            ) -> #rt::Result<#input_grads_ty<'t, F>> {
                #rt::Graph::backward_views(self, #tape, &[#(#output_names.as_batch()),*])?;
                let #tape = &*#tape;
                ::core::result::Result::Ok(#input_grads_ty {
                    #(#input_names: #tape.grads.#input_names.view(),)*
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

            /// The layer of every node.
            pub fn layers(&self) -> &#layers_ty {
                &self.layers
            }

            /// Switches to training mode (torch's `training()`).
            pub fn training(&mut self) {
                self.training = true;
            }

            /// Switches to evaluation mode (torch's `evaluate()`).
            pub fn evaluate(&mut self) {
                self.training = false;
            }

            /// Whether the graph is in training mode.
            pub fn is_training(&self) -> bool {
                self.training
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
        }

        impl<F: #rt::Float> #rt::Graph<F> for #name<F> {
            type Tape = #tape_ty<F>;

            fn name(&self) -> &'static str {
                #name_str
            }

            fn input_names(&self) -> &'static [&'static str] {
                Self::INPUTS
            }

            fn output_names(&self) -> &'static [&'static str] {
                Self::OUTPUTS
            }

            fn input_width(&self, i: usize) -> usize {
                Self::INPUT_WIDTHS[i]
            }

            fn output_width(&self, i: usize) -> usize {
                Self::OUTPUT_WIDTHS[i]
            }

            fn recurrent_pairs(&self) -> &'static [(usize, usize)] {
                Self::RECURRENT
            }

            fn new_tape(&self) -> #tape_ty<F> {
                self.tape()
            }

            fn forward_tape(&self, #tape: &mut #tape_ty<F>) -> #rt::Result<()> {
                let #v = &mut #tape.values;
                #(#forward_steps)*
                ::core::result::Result::Ok(())
            }

            fn backward_tape(&mut self, #tape: &mut #tape_ty<F>) -> #rt::Result<()> {
                let (#v, #gr) = (&#tape.values, &mut #tape.grads);
                #(#backward_steps)*
                ::core::result::Result::Ok(())
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

fn layer_type(rt: &TokenStream, node: &Node) -> TokenStream {
    let ty = Ident::new(node.layer.name, Span::call_site());
    quote!(#rt::layers::#ty)
}

fn layer_ctor(rt: &TokenStream, node: &Node) -> TokenStream {
    let ty = layer_type(rt, node);
    if node.args.is_empty() {
        ty
    } else {
        let args = node.args.iter().map(|&a| lit(a));
        quote!(#ty::new(#(#args),*))
    }
}

fn num_params(node: &Node) -> u64 {
    match node.layer.rule {
        Rule::Linear => (node.args[0] + 1) * node.args[1],
        Rule::SameAsInput | Rule::ElementWise => 0,
    }
}

fn layer_label(node: &Node) -> String {
    let args: Vec<String> = node.args.iter().map(u64::to_string).collect();
    format!("{}({})", node.layer.name, args.join(", "))
}

/// The Graphviz picture: inputs as boxes, outputs doubly outlined, every
/// edge labelled with the width it carries.
fn to_dot(g: &Graph) -> String {
    let mut s = format!(
        "digraph {} {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n",
        g.name
    );
    for i in &g.inputs {
        s += &format!(
            "  \"{}\" [shape=box, label=\"{}\\n[{}]\"];\n",
            i.name, i.name, i.width
        );
    }
    for (k, n) in g.nodes.iter().enumerate() {
        let periph = if g.outputs.iter().any(|&(_, o)| o == k) {
            ", peripheries=2"
        } else {
            ""
        };
        s += &format!(
            "  \"{}\" [shape=ellipse{periph}, label=\"{}\\n{}\"];\n",
            n.name,
            n.name,
            layer_label(n)
        );
    }
    for n in &g.nodes {
        for &src in &n.inputs {
            let (from, w) = match src {
                Source::Input(i) => (&g.inputs[i].name, g.inputs[i].width),
                Source::Node(k) => (&g.nodes[k].name, g.nodes[k].width),
            };
            s += &format!("  \"{from}\" -> \"{}\" [label=\"{w}\"];\n", n.name);
        }
    }
    s += "}\n";
    s
}
