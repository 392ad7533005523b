//! For a `#[recurrent]` graph: the typed sequence API over the runtime's
//! planned sequence pass. `forward_seq` takes the initial states and the
//! sequences by name and returns every output as a named `(T, B, width)`
//! view; `backward_seq` takes one gradient per output by name and returns
//! the initial states' and sequences' gradients by name.

use super::{lit, local, Expander};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

impl Expander<'_> {
    pub(super) fn sequence(&self) -> TokenStream {
        let g = self.g;
        if g.recurrent.is_empty() {
            return quote!();
        }
        let rt = self.rt;
        let (name, vis) = (&g.name, &g.vis);
        let name_str = name.to_string();
        let (gen_decl, gen_use) = (&self.gen_decl, &self.gen_use);
        let outputs_ty = format_ident!("{}SeqOutputs", name);
        let grads_ty = format_ident!("{}SeqInputGrads", name);
        let seq = local("seq");
        let is_state = |i: usize| g.recurrent.iter().any(|&(si, _)| si == i);

        let states: Vec<_> = g.recurrent.iter().map(|&(i, _)| &g.inputs[i].name).collect();
        let state_idx = (0..g.recurrent.len()).map(lit);
        let sequences: Vec<usize> = (0..g.inputs.len()).filter(|&i| !is_state(i)).collect();
        let seq_names: Vec<_> = sequences.iter().map(|&i| &g.inputs[i].name).collect();
        let seq_traits: Vec<TokenStream> = sequences
            .iter()
            .map(|&i| match g.inputs[i].width {
                Some(_) => quote!(#rt::AsSequence<F>),
                None => quote!(#rt::AsIdSequence),
            })
            .collect();
        let seq_conv: Vec<TokenStream> = sequences
            .iter()
            .map(|&i| {
                let n = &g.inputs[i].name;
                match g.inputs[i].width {
                    Some(_) => quote!(#rt::SeqInput::Values(#rt::AsSequence::as_sequence(#n))),
                    None => quote!(#rt::SeqInput::Ids(#rt::AsIdSequence::as_id_sequence(#n))),
                }
            })
            .collect();
        let value_seqs: Vec<usize> = sequences
            .iter()
            .copied()
            .filter(|&i| g.inputs[i].width.is_some())
            .collect();
        let value_seq_names: Vec<_> = value_seqs.iter().map(|&i| &g.inputs[i].name).collect();
        let value_seq_idx: Vec<_> = value_seqs.iter().map(|&i| lit(i)).collect();
        let outputs: Vec<_> = g.outputs.iter().map(|(o, _)| o).collect();
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
            let #seq = &*#seq;
            ::core::result::Result::Ok(#outputs_ty { #(#outputs: #seq.output(#output_idx),)* })
        };

        quote! {
            #[doc = concat!("The outputs of [`", #name_str, "::forward_seq`], borrowed from the sequence tape.")]
            #[derive(Debug, Clone, Copy)]
            #vis struct #outputs_ty<'t, F> {
                #(#[doc = #output_docs] pub #outputs: #rt::ndarray::ArrayView3<'t, F>,)*
            }

            #[doc = concat!("The gradients returned by [`", #name_str, "::backward_seq`], borrowed from the sequence tape.")]
            #[derive(Debug, Clone, Copy)]
            #vis struct #grads_ty<'t, F> {
                #(#[doc = #state_docs] pub #states: #rt::ndarray::ArrayView2<'t, F>,)*
                #(#[doc = #seq_docs] pub #value_seq_names: #rt::ndarray::ArrayView3<'t, F>,)*
            }

            impl<#gen_decl F: #rt::Float> #name<#gen_use F> {
                /// A fresh sequence tape to run this graph over sequences with.
                pub fn seq(&self) -> #rt::SeqTape<F> {
                    #rt::Graph::new_seq(self)
                }

                /// Runs the graph over whole sequences from the initial states
                /// (`(batch, width)` each) and the sequences (`(steps, batch,
                /// width)` values or `(steps, batch)` ids), by the macro's plan:
                /// what does not depend on the state runs once over all steps.
                #[allow(clippy::too_many_arguments)]
                pub fn forward_seq<'t>(
                    &self,
                    #seq: &'t mut #rt::SeqTape<F>,
                    #(#states: &(impl #rt::AsBatch<F> + ?::core::marker::Sized),)*
                    #(#seq_names: &(impl #seq_traits + ?::core::marker::Sized),)*
                ) -> #rt::Result<#outputs_ty<'t, F>> {
                    #rt::Graph::forward_seq_inputs(
                        self, #seq, &[#(#rt::AsBatch::as_batch(#states)),*], &[#(#seq_conv),*],
                    )?;
                    #outputs_result
                }

                /// Like [`forward_seq`](Self::forward_seq), starting from the
                /// final state of the previous pass on `seq`, whose gradient is
                /// cut (truncated BPTT); zero before any pass.
                #[allow(clippy::too_many_arguments)]
                pub fn forward_seq_carry<'t>(
                    &self,
                    #seq: &'t mut #rt::SeqTape<F>,
                    #(#seq_names: &(impl #seq_traits + ?::core::marker::Sized),)*
                ) -> #rt::Result<#outputs_ty<'t, F>> {
                    #rt::Graph::forward_seq_carry_inputs(self, #seq, &[#(#seq_conv),*])?;
                    #outputs_result
                }

                /// Backpropagation through time from one `(steps, batch, width)`
                /// gradient per output; returns the gradients for the initial
                /// states and the sequences. Parameter gradients accumulate.
                #[allow(clippy::too_many_arguments)]
                pub fn backward_seq<'t>(
                    &mut self,
                    #seq: &'t mut #rt::SeqTape<F>,
                    #(#outputs: &(impl #rt::AsSequence<F> + ?::core::marker::Sized),)*
                ) -> #rt::Result<#grads_ty<'t, F>> {
                    #rt::Graph::backward_seq_views(self, #seq, &[#(#rt::AsSequence::as_sequence(#outputs)),*])?;
                    let #seq = &*#seq;
                    ::core::result::Result::Ok(#grads_ty {
                        #(#states: #seq.initial_state_grad(#state_idx),)*
                        #(#value_seq_names: #seq.input_grad(#value_seq_idx),)*
                    })
                }
            }
        }
    }
}
