//! The stand-in for a graph with mistakes: its interface with bodies that
//! never run (the compile fails on the mistakes), so that code using the
//! graph type-checks and the user sees the mistakes alone.

use crate::ir::Stub;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

pub(super) fn stub(rt: &TokenStream, s: &Stub) -> TokenStream {
    let (attrs, vis, name) = (&s.attrs, &s.vis, &s.name);
    let name_str = name.to_string();
    let consts = &s.const_sizes;
    let (gen_decl, gen_use) = (quote!(#(const #consts: usize,)*), quote!(#(#consts,)*));
    let outputs_ty = format_ident!("{}Outputs", name);
    let input_grads_ty = format_ident!("{}InputGrads", name);
    let tape_ty = format_ident!("{}Tape", name);
    let sizes_ty = format_ident!("{}Sizes", name);
    let runtime_sizes = &s.runtime_sizes;
    let size_params: Vec<TokenStream> = runtime_sizes.iter().map(|s| quote!(#s: usize)).collect();
    let ctor_ret = if s.fallible {
        quote!(#rt::Result<Self>)
    } else {
        quote!(Self)
    };
    let never = quote!(::core::unreachable!(
        concat!("`", #name_str, "` has mistakes that graph! reported")
    ));
    let input_names = s.inputs.iter().map(|(n, _)| n);
    let input_traits = s.inputs.iter().map(|(_, ids)| {
        if *ids {
            quote!(#rt::AsIds)
        } else {
            quote!(#rt::AsBatch<F>)
        }
    });
    let input_specs = s.inputs.iter().map(|(n, ids)| {
        let n = n.to_string();
        quote!(#rt::__private::InputSpec { name: #n, ids: #ids })
    });
    let input_strs = s.inputs.iter().map(|(n, _)| n.to_string());
    let output_strs = s.outputs.iter().map(|o| o.to_string());
    let outputs = &s.outputs;
    let output_specs = outputs.iter().map(|o| {
        let o = o.to_string();
        quote!(#rt::__private::OutputSpec { name: #o, node: 0 })
    });
    let zero_inputs = s.inputs.iter().map(|_| quote!(0));
    let zero_outputs = outputs.iter().map(|_| quote!(0));
    let grads: Vec<_> = s.inputs.iter().filter(|(_, ids)| !ids).map(|(n, _)| n).collect();
    let sizes = (!runtime_sizes.is_empty()).then(|| {
        quote! {
            #[doc = concat!("The sizes of [`", #name_str, "`].")]
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            #[allow(dead_code)]
            #vis struct #sizes_ty { #(#[doc = "A size."] pub #runtime_sizes: usize,)* }

            impl<#gen_decl F: #rt::Float> #name<#gen_use F> {
                /// The sizes this graph was built with.
                pub fn sizes(&self) -> #sizes_ty { #never }
            }
        }
    });

    let sequence = sequence(rt, s, &never);
    // The nested graphs, named as the real expansion names them.
    let nested = s.nested.iter().enumerate().map(|(i, (path, generics))| {
        let alias = format_ident!("__{}Nested{}", name, i);
        let args = generics.iter().flat_map(|g| g.args.iter());
        quote! {
            #[allow(dead_code, non_camel_case_types)]
            type #alias = #path<#(#args,)* f32>;
        }
    });

    let misnamed = s.misnamed.iter().map(|path| {
        quote! {
            const _: () = {
                #[allow(unused_imports)]
                use #path as _;
            };
        }
    });

    quote! {
        #sequence
        #(#nested)*
        #(#misnamed)*

        #(#attrs)*
        #[derive(Debug, Clone)]
        #vis struct #name<#gen_decl F: #rt::Float = f32> {
            core: #rt::GraphCore<F>,
        }

        #[doc = concat!("The outputs of [`", #name_str, "::forward`].")]
        #[derive(Debug, Clone, Copy)]
        #[allow(dead_code)]
        #vis struct #outputs_ty<'t, F> {
            #(#[doc = "An output."] pub #outputs: #rt::ndarray::ArrayView2<'t, F>,)*
        }

        #[doc = concat!("The input gradients returned by [`", #name_str, "::backward`].")]
        #[derive(Debug, Clone, Copy)]
        #[allow(dead_code)]
        #vis struct #input_grads_ty<'t, F> {
            #(#[doc = "An input's gradient."] pub #grads: #rt::ndarray::ArrayView2<'t, F>,)*
            _tape: #rt::__private::PhantomData<#rt::ndarray::ArrayView2<'t, F>>,
        }

        #[doc = concat!("The tape [`", #name_str, "`] records its passes on.")]
        #[allow(dead_code)]
        #vis type #tape_ty<F = f32> = #rt::Tape<F>;

        #sizes

        impl<#gen_decl F: #rt::Float> #name<#gen_use F> {
            /// The graph's name.
            pub const NAME: &'static str = #name_str;
            /// Input names, in declaration order.
            pub const INPUTS: &'static [&'static str] = &[#(#input_strs),*];
            /// Output names, in declaration order.
            pub const OUTPUTS: &'static [&'static str] = &[#(#output_strs),*];
            /// Unknown: the graph has mistakes.
            pub const INPUT_WIDTHS: &'static [usize] = &[#(#zero_inputs),*];
            /// Unknown: the graph has mistakes.
            pub const OUTPUT_WIDTHS: &'static [usize] = &[#(#zero_outputs),*];
            #[doc(hidden)]
            pub const __STUB: bool = true;

            /// A graph with every parameter zero.
            #[allow(unused_variables)]
            pub fn zeros(#(#size_params),*) -> #ctor_ret { #never }

            /// A graph with torch-like initial parameters.
            #[allow(unused_variables)]
            pub fn new(rng: &mut impl #rt::rand::Rng, #(#size_params),*) -> #ctor_ret {
                #never
            }

            /// A fresh tape to run this graph on.
            pub fn tape(&self) -> #rt::Tape<F> { #never }

            /// Runs the graph.
            #[allow(clippy::too_many_arguments, unused_variables)]
            pub fn forward<'t>(
                &self,
                tape: &'t mut #rt::Tape<F>,
                #(#input_names: &(impl #input_traits + ?::core::marker::Sized),)*
            ) -> #rt::Result<#outputs_ty<'t, F>> { #never }

            /// Propagates gradients back.
            #[allow(clippy::too_many_arguments, unused_variables)]
            pub fn backward<'t>(
                &mut self,
                tape: &'t mut #rt::Tape<F>,
                #(#outputs: &(impl #rt::AsBatch<F> + ?::core::marker::Sized),)*
            ) -> #rt::Result<#input_grads_ty<'t, F>> { #never }

            #[doc(hidden)]
            pub fn __nested(sizes: &[usize]) -> #rt::Result<Self> {
                let _ = sizes;
                #never
            }
        }

        impl<#gen_decl F: #rt::Float> #rt::Graph<F> for #name<#gen_use F> {
            const SPEC: &'static #rt::GraphSpec = &#rt::GraphSpec {
                name: #name_str,
                file: ::core::file!(),
                inputs: &[#(#input_specs),*],
                outputs: &[#(#output_specs),*],
                nodes: &[],
                order: &[],
                recurrent: &[],
                dot: "",
                python: "",
                sizes: &[],
                fusions: &[],
            };
            type Layers = ();

            fn parts(&self) -> (&(), &#rt::GraphCore<F>) {
                (&(), &self.core)
            }

            fn parts_mut(&mut self) -> (&(), &mut #rt::GraphCore<F>) {
                (&(), &mut self.core)
            }

            fn node<V: #rt::Visit<F>>(_: &(), _: usize, _: &mut V) -> #rt::Result<()> {
                ::core::result::Result::Ok(())
            }
        }
    }
}

/// The sequence API of a recurrent graph with mistakes.
fn sequence(rt: &TokenStream, s: &Stub, never: &TokenStream) -> TokenStream {
    if s.states.is_empty() {
        return quote!();
    }
    let (vis, name) = (&s.vis, &s.name);
    let consts = &s.const_sizes;
    let (gen_decl, gen_use) = (quote!(#(const #consts: usize,)*), quote!(#(#consts,)*));
    let outputs_ty = format_ident!("{}SeqOutputs", name);
    let grads_ty = format_ident!("{}SeqInputGrads", name);
    let is_state = |n: &syn::Ident| s.states.contains(n);
    let all_names = s.inputs.iter().map(|(n, _)| n);
    let all_traits = s.inputs.iter().map(|(n, ids)| match (is_state(n), ids) {
        (true, _) => quote!(#rt::AsBatch<F>),
        (false, false) => quote!(#rt::AsSeq<F>),
        (false, true) => quote!(#rt::AsIdSeq),
    });
    let sequences: Vec<_> = s.inputs.iter().filter(|(n, _)| !is_state(n)).collect();
    let seq_names = sequences.iter().map(|(n, _)| n);
    let seq_traits = sequences.iter().map(|(_, ids)| {
        if *ids {
            quote!(#rt::AsIdSeq)
        } else {
            quote!(#rt::AsSeq<F>)
        }
    });
    let value_seqs = sequences.iter().filter(|(_, ids)| !ids).map(|(n, _)| n);
    let states = &s.states;
    let outputs = &s.outputs;
    quote! {
        #[doc = "The outputs of `forward_seq`."]
        #[derive(Debug, Clone, Copy)]
        #[allow(dead_code)]
        #vis struct #outputs_ty<'t, F> {
            #(#[doc = "An output."] pub #outputs: #rt::ndarray::ArrayView3<'t, F>,)*
        }

        #[doc = "The gradients returned by `backward_seq`."]
        #[derive(Debug, Clone, Copy)]
        #[allow(dead_code)]
        #vis struct #grads_ty<'t, F> {
            #(#[doc = "A state's gradient."] pub #states: #rt::ndarray::ArrayView2<'t, F>,)*
            #(#[doc = "A sequence's gradient."] pub #value_seqs: #rt::ndarray::ArrayView3<'t, F>,)*
        }

        impl<#gen_decl F: #rt::Float> #name<#gen_use F> {
            /// Runs the graph over a sequence.
            #[allow(clippy::too_many_arguments, unused_variables)]
            pub fn forward_seq<'t>(
                &self,
                tape: &'t mut #rt::Tape<F>,
                #(#all_names: &(impl #all_traits + ?::core::marker::Sized),)*
            ) -> #rt::Result<#outputs_ty<'t, F>> { #never }

            /// Runs the graph over a sequence from the carried states.
            #[allow(clippy::too_many_arguments, unused_variables)]
            pub fn forward_seq_carry<'t>(
                &self,
                tape: &'t mut #rt::Tape<F>,
                #(#seq_names: &(impl #seq_traits + ?::core::marker::Sized),)*
            ) -> #rt::Result<#outputs_ty<'t, F>> { #never }

            /// Backpropagation through time.
            #[allow(clippy::too_many_arguments, unused_variables)]
            pub fn backward_seq<'t>(
                &mut self,
                tape: &'t mut #rt::Tape<F>,
                #(#outputs: &(impl #rt::AsSeq<F> + ?::core::marker::Sized),)*
            ) -> #rt::Result<#grads_ty<'t, F>> { #never }
        }
    }
}
