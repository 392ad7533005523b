//! Pass: `#[recurrent(input = output)]` pairs. Each names an input and an
//! output of one width (the state carried to the next step), and no input is
//! fed twice.

use super::{names::did_you_mean, Def, Scope};
use crate::ir::{Claim, Deferred, Input};
use crate::width::Decision;
use std::collections::HashMap;
use syn::Ident;

/// The pairs as `(input index, output index)`; claims about their widths
/// the macro cannot decide go to `found.deferred`; a claim that restates a
/// stack group's (the state given to the stack) goes to `moot` with it.
pub(super) fn pairs(
    scope: &mut Scope,
    inputs: &[Input],
    outputs: &[(Ident, usize)],
    defs: &HashMap<String, Def>,
    found: &mut super::widths::Widths,
    moot: &mut Vec<(usize, usize)>,
) -> Vec<(usize, usize)> {
    let super::widths::Widths {
        widths,
        deferred,
        groups,
        ..
    } = found;
    let graph_name = &scope.graph;
    let mut recurrent: Vec<(usize, usize)> = Vec::new();
    for pair in &scope.decl.recurrent {
        let input = inputs.iter().position(|i| i.name == pair.input);
        let output = outputs.iter().position(|(o, _)| *o == pair.output);
        let pair_text = format!("`#[recurrent({} = {})]`", pair.input, pair.output);
        match (input, output) {
            (None, _) => scope.errors.push(syn::Error::new(
                pair.input.span(),
                format!(
                    "{pair_text}: `{}` is not an input of `{graph_name}`{}",
                    pair.input,
                    did_you_mean(&pair.input.to_string(), inputs.iter().map(|i| i.name.to_string()))
                ),
            )),
            (_, None) => {
                let name = pair.output.to_string();
                let hint = if matches!(defs.get(&name), Some(Def::Node(_))) {
                    format!("\n= help: `{name}` is a node: list it among the outputs, `-> (.., {name})`")
                } else if inputs.iter().any(|i| i.name == name) {
                    format!(
                        ", it is an input\n= help: a state is fed by an output, the value it takes at the next \
                         step: `#[recurrent({} = new_{})]` with `new_{} = ..` among the outputs",
                        pair.input, pair.input, pair.input
                    )
                } else {
                    did_you_mean(&name, outputs.iter().map(|(o, _)| o.to_string()))
                };
                scope.errors.push(syn::Error::new(
                    pair.output.span(),
                    format!("{pair_text}: `{name}` is not an output of `{graph_name}`{hint}"),
                ))
            }
            (Some(i), Some(o)) => {
                if let Some(&(other, _)) = recurrent.iter().find(|&&(_, ro)| ro == o) {
                    scope.errors.push(syn::Error::new(
                        pair.output.span(),
                        format!(
                            "{pair_text}: output `{}` already feeds state `{}`; each state needs an output of \
                             its own (two states fed by one output would be one state)",
                            pair.output, inputs[other].name
                        ),
                    ));
                }
                match (&inputs[i].width, &widths[outputs[o].1]) {
                    (None, _) => scope.errors.push(syn::Error::new(
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
                            Decision::No => scope.errors.push(syn::Error::new(pair.output.span(), message)),
                            Decision::Unknown => {
                                // A state given to a stack as a group of the
                                // wrong width is reported by the stack: this
                                // pair's claim is then no mistake of its own.
                                let input = pair.input.to_string();
                                for (_, g) in groups.iter().filter(|(name, _)| *name == input) {
                                    moot.push((deferred.len(), *g));
                                }
                                deferred.push(Deferred {
                                    claim: Claim::Equal(out_w.clone(), in_w.clone()),
                                    message,
                                    span: pair.output.span(),
                                })
                            }
                        }
                    }
                    (Some(_), None) => {}
                }
                if recurrent.iter().any(|&(ri, _)| ri == i) {
                    scope.errors.push(syn::Error::new(
                        pair.input.span(),
                        format!("input `{}` is fed by two recurrent pairs", pair.input),
                    ));
                }
                recurrent.push((i, o));
            }
        }
    }
    recurrent
}
