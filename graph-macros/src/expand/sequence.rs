//! For a `#[recurrent]` graph: the typed sequence API. `forward_seq` takes
//! every input in declaration order (a state's initial value `(batch,
//! width)`, a sequence `(steps, batch, width)` or `(steps, batch)` ids) and
//! returns every output as a named `(steps, batch, width)` view;
//! `forward_seq_carry` takes the inputs that are not states and starts each
//! state where the last pass ended; `backward_seq` takes one gradient per
//! output (or `Absent`) and returns the initial states' and sequences'
//! gradients by name. All three are calls of the runtime's one engine.

use super::{lit, local, relocate, Expander};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

impl Expander<'_> {
    pub(super) fn sequence(&self) -> TokenStream {
        let g = self.g;
        if g.recurrent.is_empty() {
            return self.no_sequence();
        }
        let rt = self.rt;
        let (name, vis) = (&g.name, &g.vis);
        let name_str = name.to_string();
        let (gen_decl, gen_use) = (&self.gen_decl, &self.gen_use);
        let outputs_ty = format_ident!("{}SeqOutputs", name);
        let grads_ty = format_ident!("{}SeqInputGrads", name);
        let tape = local("tape");
        let feed = quote!(#rt::__private::to_feed);
        let is_state = |i: usize| g.recurrent.iter().any(|&(si, _)| si == i);

        // Every input, in declaration order: states take their initial
        // value. Each parameter is declared where its input is, the rest of
        // a signature where the graph's name is (see `relocate`).
        let param = |n: &syn::Ident, bound: TokenStream| {
            relocate(quote!(#n: &(impl #bound + ?::core::marker::Sized),), n.span())
        };
        let at_name = |tokens: TokenStream| relocate(tokens, name.span());
        let all_params = g.inputs.iter().enumerate().map(|(i, input)| {
            let bound = match (is_state(i), &input.width) {
                (true, _) => quote!(#rt::AsBatch<F>),
                (false, Some(_)) => quote!(#rt::AsSeq<F>),
                (false, None) => quote!(#rt::AsIdSeq),
            };
            param(&input.name, bound)
        });
        let seq_feed = |i: usize| {
            let n = &g.inputs[i].name;
            match g.inputs[i].width {
                Some(_) => quote!(#feed::seq(#n)),
                None => quote!(#feed::id_seq(#n)),
            }
        };
        let all_feeds = (0..g.inputs.len()).map(|i| {
            if is_state(i) {
                let n = &g.inputs[i].name;
                quote!(#feed::values(#n))
            } else {
                seq_feed(i)
            }
        });
        // The inputs that are not states, for the carry form.
        let sequences: Vec<usize> = (0..g.inputs.len()).filter(|&i| !is_state(i)).collect();
        let seq_params = sequences.iter().map(|&i| {
            let bound = match g.inputs[i].width {
                Some(_) => quote!(#rt::AsSeq<F>),
                None => quote!(#rt::AsIdSeq),
            };
            param(&g.inputs[i].name, bound)
        });
        let carry_feeds = (0..g.inputs.len()).map(|i| {
            if is_state(i) {
                quote!(#rt::Feed::Carry)
            } else {
                seq_feed(i)
            }
        });

        let states: Vec<_> = g.recurrent.iter().map(|&(i, _)| &g.inputs[i].name).collect();
        let state_idx = g.recurrent.iter().map(|&(i, _)| lit(i));
        let value_seqs: Vec<usize> = sequences
            .iter()
            .copied()
            .filter(|&i| g.inputs[i].width.is_some())
            .collect();
        let value_seq_names: Vec<_> = value_seqs.iter().map(|&i| &g.inputs[i].name).collect();
        let value_seq_idx: Vec<_> = value_seqs.iter().map(|&i| lit(i)).collect();
        let outputs: Vec<_> = g.outputs.iter().map(|(o, _)| o).collect();
        let output_params = outputs.iter().map(|o| param(o, quote!(#rt::AsSeq<F>)));
        let forward_head = at_name(quote!(pub fn forward_seq<'t>));
        let carry_head = at_name(quote!(pub fn forward_seq_carry<'t>));
        let outputs_ret = at_name(quote!(-> #rt::Result<#outputs_ty<'t, F>>));
        let backward_head = at_name(quote!(pub fn backward_seq<'t>));
        let grads_ret = at_name(quote!(-> #rt::Result<#grads_ty<'t, F>>));
        let output_idx: Vec<_> = (0..outputs.len()).map(lit).collect();
        let output_docs = outputs
            .iter()
            .map(|o| format!("Output `{o}`, `(steps, batch, width)`."));
        let state_docs = states
            .iter()
            .map(|s| format!("Gradient for the initial state `{s}`, `(batch, width)`."));
        let seq_docs = value_seqs.iter().map(|&i| {
            format!(
                "Gradient for the sequence `{}`, `(steps, batch, width)`.",
                g.inputs[i].name
            )
        });
        let outputs_result = quote! {
            let #tape = &*#tape;
            ::core::result::Result::Ok(#outputs_ty { #(#outputs: #tape.__output_seq(#output_idx),)* })
        };
        let order_doc = g
            .inputs
            .iter()
            .enumerate()
            .map(|(i, input)| match (is_state(i), &input.width) {
                (true, _) => format!("`{}` (a state: its initial value, `(batch, width)`)", input.name),
                (false, Some(_)) => format!("`{}` (`(steps, batch, width)`)", input.name),
                (false, None) => format!("`{}` (ids, `(steps, batch)`)", input.name),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let forward_doc = format!(
            "Runs the graph over a whole sequence, by the plan (what does not depend on a \
             state runs once over all steps), and records the pass in `tape`. Takes every input \
             in declaration order: {order_doc}. `&Absent` starts a state at zero, or leaves out an \
             input that only loss nodes read (they are then not computed)."
        );

        quote! {
            #[doc = concat!("The outputs of [`", #name_str, "::forward_seq`], borrowed from the tape.")]
            #[derive(Debug, Clone, Copy)]
            #[allow(dead_code)]
            #vis struct #outputs_ty<'t, F> {
                #(#[doc = #output_docs] pub #outputs: #rt::ndarray::ArrayView3<'t, F>,)*
            }

            #[doc = concat!("The gradients returned by [`", #name_str, "::backward_seq`], borrowed from the tape.")]
            #[derive(Debug, Clone, Copy)]
            #[allow(dead_code)]
            #vis struct #grads_ty<'t, F> {
                #(#[doc = #state_docs] pub #states: #rt::ndarray::ArrayView2<'t, F>,)*
                #(#[doc = #seq_docs] pub #value_seq_names: #rt::ndarray::ArrayView3<'t, F>,)*
            }

            impl<#gen_decl F: #rt::Float> #name<#gen_use F> {
                #[doc = #forward_doc]
                #[allow(clippy::too_many_arguments)]
                #forward_head(
                    &self,
                    #tape: &'t mut #rt::Tape<F>,
                    #(#all_params)*
                ) #outputs_ret {
                    #rt::Graph::forward_feeds(self, #tape, &[#(#all_feeds),*])?;
                    #outputs_result
                }

                /// Like [`forward_seq`](Self::forward_seq), without the states:
                /// each starts where the last pass on `tape` ended, its gradient
                /// cut (truncated BPTT); zero before any pass.
                #[allow(clippy::too_many_arguments)]
                #carry_head(
                    &self,
                    #tape: &'t mut #rt::Tape<F>,
                    #(#seq_params)*
                ) #outputs_ret {
                    #rt::Graph::forward_feeds(self, #tape, &[#(#carry_feeds),*])?;
                    #outputs_result
                }

                /// Backpropagation through time from one gradient per output, in
                /// declaration order (`(steps, batch, width)`, or `&Absent` for
                /// zero); returns the gradients for the initial states and the
                /// sequences. Parameter gradients accumulate.
                #[allow(clippy::too_many_arguments)]
                #backward_head(
                    &mut self,
                    #tape: &'t mut #rt::Tape<F>,
                    #(#output_params)*
                ) #grads_ret {
                    #rt::Graph::backward_feeds(self, #tape, &[#(#feed::seq(#outputs)),*])?;
                    let #tape = &*#tape;
                    ::core::result::Result::Ok(#grads_ty {
                        #(#states: #tape.__initial_grad(#state_idx),)*
                        #(#value_seq_names: #tape.__input_grad_seq(#value_seq_idx),)*
                    })
                }
            }
        }
    }

    /// For a graph without `#[recurrent]`: `forward_seq`, `forward_seq_carry`
    /// and `backward_seq` taking as many arguments as they would, bound by a trait no type
    /// has, whose message says the graph declares no state and what to do.
    fn no_sequence(&self) -> TokenStream {
        let g = self.g;
        let rt = self.rt;
        let name = &g.name;
        let (gen_decl, gen_use) = (&self.gen_decl, &self.gen_use);
        let at_name = |tokens: TokenStream| relocate(tokens, name.span());
        let args = |names: Vec<&syn::Ident>| -> Vec<(syn::Ident, syn::Ident)> {
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (format_ident!("_{}", n), format_ident!("A{}", i)))
                .collect()
        };
        let inputs = args(g.inputs.iter().map(|i| &i.name).collect());
        let outputs = args(g.outputs.iter().map(|(o, _)| o).collect());
        let method = |head: TokenStream, list: &[(syn::Ident, syn::Ident)]| {
            let (names, types): (Vec<_>, Vec<_>) = list.iter().cloned().unzip();
            at_name(quote! {
                #[doc(hidden)]
                #[allow(clippy::too_many_arguments, dead_code)]
                pub fn #head<T, #(#types),*>(&self, _tape: T, #(#names: #types),*) -> #rt::Result<()>
                where
                    Self: #rt::__private::Recurrent,
                {
                    <Self as #rt::__private::Recurrent>::never()
                }
            })
        };
        let (forward, carry, backward) = (
            method(quote!(forward_seq), &inputs),
            method(quote!(forward_seq_carry), &inputs),
            method(quote!(backward_seq), &outputs),
        );
        quote! {
            impl<#gen_decl F: #rt::Float> #name<#gen_use F> {
                #forward
                #carry
                #backward
            }
        }
    }
}
