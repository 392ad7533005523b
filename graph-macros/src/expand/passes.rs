//! `impl Graph for G`: the graph's `GraphSpec` constant (inputs, outputs,
//! nodes with their lines and input slots, evaluation order) and `node`,
//! which hands node `k` to whichever pass the runtime is running. The pass
//! loops themselves are runtime source (`graph_runtime`'s engine).

use super::{dot::to_dot, layer_label, lit, relocate, Expander};
use crate::ir::NodeKind;
use crate::layers::Rule;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

impl Expander<'_> {
    pub(super) fn passes(&self) -> TokenStream {
        let rt = self.rt;
        let g = self.g;
        let name = &g.name;
        let name_str = name.to_string();
        let (gen_decl, gen_use, layers_ty) = (&self.gen_decl, &self.gen_use, &self.layers_ty);

        let inputs = g.inputs.iter().map(|i| {
            let (n, ids) = (i.name.to_string(), i.width.is_none());
            quote!(#rt::__private::InputSpec { name: #n, ids: #ids })
        });
        let outputs = g.outputs.iter().map(|(o, k)| {
            let (o, k) = (o.to_string(), lit(*k));
            quote!(#rt::__private::OutputSpec { name: #o, node: #k })
        });
        let nodes = g.nodes.iter().enumerate().map(|(k, n)| {
            let (node, layer, line) = (n.name.to_string(), layer_label(n), n.line);
            let slots = n.inputs.iter().map(|&s| lit(self.slot(s)));
            let kind = match &n.kind {
                NodeKind::Output { host, select } => {
                    let output = self.select_index(*host, select, true);
                    let host = lit(*host);
                    quote!(Output { host: #host, output: #output })
                }
                NodeKind::Nested(nested) if nested.stack.is_some() => quote!(Stack),
                NodeKind::Nested(_) => {
                    let to = self.host_input_indices(k);
                    quote!(Nested { to: &[#(#to),*] })
                }
                NodeKind::Builtin { .. } | NodeKind::Custom { .. } => quote!(Layer),
            };
            let loss = matches!(&n.kind, NodeKind::Builtin { layer, .. } if matches!(layer.rule, Rule::Criterion | Rule::ClassCriterion));
            let params = n.params.iter().map(|(tensor, name)| quote!((#tensor, #name)));
            quote! {
                #rt::__private::NodeSpec {
                    name: #node, layer: #layer, line: #line, inputs: &[#(#slots),*],
                    kind: #rt::__private::NodeKind::#kind, loss: #loss,
                    params: &[#(#params),*],
                }
            }
        });
        let order = g.order.iter().map(|&k| lit(k));
        let recurrent = g.recurrent.iter().map(|&(i, o)| {
            let (i, o) = (lit(i), lit(o));
            quote!((#i, #o))
        });
        let dot = to_dot(g);
        let python = self.to_python();
        let fusions = self.fusions();
        let size_names = g
            .const_sizes
            .iter()
            .chain(&g.runtime_sizes)
            .map(|s| s.to_string());
        let size_values = (!g.const_sizes.is_empty() || !g.runtime_sizes.is_empty()).then(|| {
            let consts = &g.const_sizes;
            let runtime = &g.runtime_sizes;
            quote! {
                fn size_values(&self) -> ::std::vec::Vec<usize> {
                    ::std::vec![#(#consts,)* #(self.sizes.#runtime,)*]
                }
            }
        });

        // `node`: one arm per node that holds a layer or a nested graph.
        let visit = quote!(visit);
        let arms = g
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.holds_layer())
            .map(|(k, n)| {
                let (f, host, k) = (&n.name, self.is_host(k), lit(k));
                let arity = lit(n.inputs.len());
                match &n.kind {
                    NodeKind::Nested(nested) if nested.stack.is_some() => {
                        quote!(#k => #visit.stack(#k, &layers.#f),)
                    }
                    _ if host => quote!(#k => #visit.nested(#k, &layers.#f),),
                    // On the user's type: a type that is no `Layer` is reported
                    // there, and the bound it misses is this local function's,
                    // spanned there too, not `Visit::layer`'s in the library.
                    NodeKind::Custom { path, .. } => {
                        let at = Span::call_site().located_at(path.span());
                        let rt = relocate(rt.clone(), at);
                        quote_spanned!(at=> #k => {
                            fn a_layer<F: #rt::Float, L: #rt::Layer<F>>(layer: &L) -> &L {
                                layer
                            }
                            #visit.layer::<_, #arity>(#k, a_layer::<F, _>(&layers.#f))
                        })
                    }
                    _ => quote!(#k => #visit.layer::<_, #arity>(#k, &layers.#f),),
                }
            });

        quote! {
            impl<#gen_decl F: #rt::Float> #rt::Graph<F> for #name<#gen_use F> {
                const SPEC: &'static #rt::GraphSpec = &#rt::GraphSpec {
                    name: #name_str,
                    file: ::core::file!(),
                    inputs: &[#(#inputs),*],
                    outputs: &[#(#outputs),*],
                    nodes: &[#(#nodes),*],
                    order: &[#(#order),*],
                    recurrent: &[#(#recurrent),*],
                    dot: #dot,
                    python: #python,
                    sizes: &[#(#size_names),*],
                    fusions: #fusions,
                };
                type Layers = #layers_ty<#gen_use F>;

                fn parts(&self) -> (&Self::Layers, &#rt::GraphCore<F>) {
                    (&self.layers, &self.core)
                }

                fn parts_mut(&mut self) -> (&Self::Layers, &mut #rt::GraphCore<F>) {
                    (&self.layers, &mut self.core)
                }

                #size_values

                fn node<V: #rt::Visit<F>>(layers: &Self::Layers, k: usize, #visit: &mut V) -> #rt::Result<()> {
                    match k {
                        #(#arms)*
                        _ => ::core::result::Result::Ok(()),
                    }
                }
            }
        }
    }
}
