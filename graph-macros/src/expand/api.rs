//! The graph's own API: constants known at compile time, the constructors
//! (`zeros`, `new`, and `__nested` for a graph used inside another), `tape`,
//! and the typed `forward` and `backward` with one argument per declared
//! input or output.

use super::{lit, local, relocate, Expander};
use crate::width::Width;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Ident;

impl Expander<'_> {
    pub(super) fn api(&self) -> TokenStream {
        let rt = self.rt;
        let g = self.g;
        let name = &g.name;
        let name_str = name.to_string();
        let (gen_decl, gen_use) = (&self.gen_decl, &self.gen_use);
        let (layers_ty, outputs_ty, input_grads_ty) =
            (&self.layers_ty, &self.outputs_ty, &self.input_grads_ty);
        let (sizes, sizes_ty) = (&self.sizes, &self.sizes_ty);
        let (tape, layers, rng) = (local("tape"), local("layers"), local("rng"));
        let runtime_sizes = &g.runtime_sizes;

        // Constants.
        let input_strs = g.inputs.iter().map(|i| i.name.to_string());
        let output_strs = g.outputs.iter().map(|(o, _)| o.to_string());
        let input_widths: Vec<TokenStream> = g
            .inputs
            .iter()
            .map(|i| i.width.as_ref().map_or(quote!(1usize), |w| self.width(w)))
            .collect();
        let output_widths = g.outputs.iter().map(|(_, k)| self.width(&g.nodes[*k].width));
        let input_widths_const = runtime_sizes.is_empty().then(|| {
            quote! {
                /// Input widths (per sample; 1 for an ids input), in declaration order.
                pub const INPUT_WIDTHS: &'static [usize] = &[#(#input_widths),*];
            }
        });
        let output_widths_const = (!self.has_sizes_struct()).then(|| {
            quote! {
                /// Output widths (per sample), in declaration order.
                pub const OUTPUT_WIDTHS: &'static [usize] = &[#(#output_widths),*];
            }
        });
        let num_params_const = (!self.has_sizes_struct() && !self.has_hosts()).then(|| {
            let total = g
                .nodes
                .iter()
                .map(num_params)
                .fold(Width::constant(0), |a, b| a.add(&b));
            let total = self.width(&total);
            quote! {
                /// Total number of parameters.
                pub const NUM_PARAMS: usize = #total;
            }
        });
        let (const_checks, runtime_checks) = self.deferred_checks();
        let (size_checks_const, size_checks_use, free_checks) = if const_checks.is_empty() {
            (quote!(), quote!(), quote!())
        } else if g.const_sizes.is_empty() {
            // Nothing generic but the float type, which widths do not depend
            // on: a free constant, evaluated by `cargo check` whether or not
            // the graph is ever built.
            let fixed = Expander {
                float: quote!(f32),
                ..self.clone()
            };
            let (checks, _) = fixed.deferred_checks();
            (
                quote!(),
                quote!(),
                quote! {
                    #(const _: () = { #checks };)*
                },
            )
        } else {
            // One constant per check, so that every failing one is reported.
            let names: Vec<Ident> = (0..const_checks.len())
                .map(|i| format_ident!("SIZE_CHECK_{}", i))
                .collect();
            (
                quote! {
                    #(
                        #[doc(hidden)]
                        const #names: () = { #const_checks };
                    )*
                },
                quote!(#(let () = Self::#names;)*),
                quote!(),
            )
        };

        // Constructors.
        let size_params: Vec<TokenStream> = runtime_sizes.iter().map(|s| quote!(#s: usize)).collect();
        // Sizes known only when built can make the parameter count too large
        // to count or allocate: the fallible constructor says so. (With
        // compile-time sizes it is a constant: a count that large panics.)
        let (ctor_ret, ok, try_, make_store) = if self.is_fallible() {
            (
                quote!(#rt::Result<Self>),
                quote!(::core::result::Result::Ok),
                quote!(?),
                quote!(#rt::ParamStore::try_from_tensors),
            )
        } else {
            (
                quote!(Self),
                quote!(),
                quote!(),
                quote!(#rt::ParamStore::from_tensors),
            )
        };
        let make_sizes = if self.has_sizes_struct() {
            let hidden = &self.sizes_fields()[runtime_sizes.len()..];
            let zero_checks = runtime_sizes.iter().map(|s| {
                let msg = format!("size `{s}` must be at least 1, got 0");
                quote! {
                    if #s == 0 {
                        return ::core::result::Result::Err(#rt::Error::Sizes { graph: #name_str.into(), message: #msg.into() });
                    }
                }
            });
            quote! {
                #(#zero_checks)*
                #[allow(unused_mut)]
                let mut #sizes = #sizes_ty { #(#runtime_sizes,)* #(#hidden: 0,)* };
            }
        } else {
            quote!(let #sizes = ();)
        };
        let size_arithmetic = self.size_arithmetic_checks();
        let layer_nodes = g.nodes.iter().filter(|n| n.holds_layer());
        let layer_fields = layer_nodes.clone().map(|n| &n.name);
        let layer_ctors = layer_nodes.map(|n| self.layer_ctor(n));
        let derive_widths = self.derive_widths(&layers, &input_widths);
        let slot_widths = input_widths
            .iter()
            .cloned()
            .chain(g.nodes.iter().enumerate().map(|(k, n)| {
                if self.is_host(k) {
                    quote!(0)
                } else {
                    self.width(&n.width)
                }
            }));
        let zeros_doc = if self.is_fallible() {
            "A graph with every parameter zero, in training mode; an error if its sizes do not fit its nodes."
        } else {
            "A graph with every parameter zero, in training mode."
        };
        let zeros_args = runtime_sizes.iter();
        let nested_args = (0..runtime_sizes.len()).map(|i| {
            let i = lit(i);
            quote!(sizes[#i])
        });
        let n_sizes = runtime_sizes.len();
        let nested_ctor = if self.is_fallible() {
            quote!(Self::zeros(#(#nested_args),*))
        } else {
            quote!(::core::result::Result::Ok(Self::zeros()))
        };
        let sizes_method = (!runtime_sizes.is_empty()).then(|| {
            quote! {
                /// The sizes this graph was built with.
                pub fn sizes(&self) -> #sizes_ty {
                    self.sizes
                }
            }
        });

        // Typed forward and backward.
        // Each parameter is declared where its input is, the rest of the
        // signature where the graph's name is (see `relocate`).
        let at_name = |tokens: TokenStream| relocate(tokens, g.name.span());
        let input_params = g.inputs.iter().map(|i| {
            let n = &i.name;
            let bound = match i.width {
                Some(_) => quote!(#rt::AsBatch<F>),
                None => quote!(#rt::AsIds),
            };
            relocate(quote!(#n: &(impl #bound + ?::core::marker::Sized),), n.span())
        });
        let input_feeds = g.inputs.iter().map(|i| self.step_feed(i));
        let output_names: Vec<_> = g.outputs.iter().map(|(o, _)| o).collect();
        let output_params = output_names.iter().map(|o| {
            relocate(
                quote!(#o: &(impl #rt::AsBatch<F> + ?::core::marker::Sized),),
                o.span(),
            )
        });
        let forward_head = at_name(quote!(pub fn forward<'t>));
        let forward_ret = at_name(quote!(-> #rt::Result<#outputs_ty<'t, F>>));
        let backward_head = at_name(quote!(pub fn backward<'t>));
        let backward_ret = at_name(quote!(-> #rt::Result<#input_grads_ty<'t, F>>));
        let output_idx = (0..g.outputs.len()).map(lit);
        let value_inputs: Vec<usize> = (0..g.inputs.len())
            .filter(|&i| g.inputs[i].width.is_some())
            .collect();
        let grad_names = value_inputs.iter().map(|&i| &g.inputs[i].name);
        let grad_idx = value_inputs.iter().map(|&i| lit(i));
        let feed = quote!(#rt::__private::to_feed);

        quote! {
            impl<#gen_decl F: #rt::Float> #name<#gen_use F> {
                /// The graph's name.
                pub const NAME: &'static str = #name_str;
                /// Input names, in declaration order.
                pub const INPUTS: &'static [&'static str] = &[#(#input_strs),*];
                /// Output names, in declaration order.
                pub const OUTPUTS: &'static [&'static str] = &[#(#output_strs),*];
                #[doc(hidden)]
                pub const __STUB: bool = false;
                #input_widths_const
                #output_widths_const
                #num_params_const
                #size_checks_const

                #[doc = #zeros_doc]
                #[allow(clippy::let_unit_value)]
                pub fn zeros(#(#size_params),*) -> #ctor_ret {
                    #size_checks_use
                    #make_sizes
                    #(#size_arithmetic)*
                    #[allow(unused_mut)]
                    let mut #layers = #layers_ty {
                        #(#layer_fields: #layer_ctors,)*
                        _float: #rt::__private::PhantomData,
                    };
                    #(#derive_widths)*
                    #(#runtime_checks)*
                    let widths = #rt::__private::vec![#(#slot_widths),*];
                    let store = #make_store(#name_str, &#rt::__private::param_layout::<F, Self>(&#layers))#try_;
                    #ok(Self { core: #rt::GraphCore::new(store, widths), layers: #layers, sizes: #sizes })
                }

                /// A graph with torch-like initial parameters (`Linear`: uniform
                /// in ±1/√in; `Embedding`: standard normal) and a Dropout seed
                /// drawn from `rng`, in training mode.
                pub fn new(#rng: &mut impl #rt::rand::Rng, #(#size_params),*) -> #ctor_ret {
                    let mut graph = Self::zeros(#(#zeros_args),*)#try_;
                    #rt::__private::init_graph(&mut graph, #rng);
                    #ok(graph)
                }

                #sizes_method

                /// A fresh tape to run this graph on (one step or a whole
                /// sequence): [`Graph::tape`](#rt::Graph::tape).
                pub fn tape(&self) -> #rt::Tape<F> {
                    #rt::Graph::tape(self)
                }

                /// Runs the graph on one value per input, in declaration order
                /// (a `(batch, width)` matrix, or a 1-D value for one sample;
                /// ids for a `usize` input; `&Absent` for an input that only
                /// loss nodes read, which are then not computed, or for a
                /// recurrent state, which is then zero), and records the pass
                /// in `tape` (made by `tape()`).
                ///
                /// Fails, leaving the graph unchanged, if an input has the wrong
                /// width, the inputs disagree on the batch size, or the tape was
                /// made by another graph; the error names the input and both
                /// shapes.
                #[allow(clippy::too_many_arguments)]
                #forward_head(
                    &self,
                    #tape: &'t mut #rt::Tape<F>,
                    #(#input_params)*
                ) #forward_ret {
                    #rt::Graph::forward_feeds(self, #tape, &[#(#input_feeds),*])?;
                    let #tape = &*#tape;
                    ::core::result::Result::Ok(#outputs_ty { #(#output_names: #tape.__output(#output_idx),)* })
                }

                /// Propagates one gradient per output, in declaration order
                /// (`(batch, width)`, or `&Absent` for zero), back through the
                /// pass recorded in `tape`, returning the gradient for each
                /// input. Parameter gradients ACCUMULATE until `zero_grad`.
                #[allow(clippy::too_many_arguments)]
                #backward_head(
                    &mut self,
                    #tape: &'t mut #rt::Tape<F>,
                    #(#output_params)*
                ) #backward_ret {
                    #rt::Graph::backward_feeds(self, #tape, &[#(#feed::values(#output_names)),*])?;
                    let #tape = &*#tape;
                    ::core::result::Result::Ok(#input_grads_ty {
                        #(#grad_names: #tape.__input_grad(#grad_idx),)*
                        _tape: #rt::__private::PhantomData,
                    })
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
            }

            #free_checks
        }
    }
}

/// The number of parameters of a built-in layer, as a width: what the
/// `NUM_PARAMS` constant adds up.
fn num_params(node: &crate::ir::Node) -> Width {
    use crate::ir::{Arg, NodeKind};
    use crate::layers::Rule;
    let NodeKind::Builtin { layer, args } = &node.kind else {
        return Width::constant(0);
    };
    let arg = |i: usize| match &args[i] {
        Arg::Width(w) => w.clone(),
        Arg::Float(_) | Arg::Expr(_) => Width::constant(0),
    };
    match layer.rule {
        Rule::Linear => arg(0).add(&Width::constant(1)).mul(&arg(1)),
        Rule::Embedding => arg(0).mul(&arg(1)),
        _ => Width::constant(0),
    }
}

impl Expander<'_> {
    /// The feed of a one-step argument (a value or ids input, or a state's
    /// initial value).
    pub(super) fn step_feed(&self, input: &crate::ir::Input) -> TokenStream {
        let (rt, n) = (self.rt, &input.name);
        match input.width {
            Some(_) => quote!(#rt::__private::to_feed::values(#n)),
            None => quote!(#rt::__private::to_feed::ids(#n, &#rt::AsIds::as_ids(#n))),
        }
    }
}
