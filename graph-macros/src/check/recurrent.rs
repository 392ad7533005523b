//! Pass: `#[recurrent(input = output)]` pairs. Each names an input and an
//! output of one width (the state carried to the next step), and no input is
//! fed twice.

use super::{names::did_you_mean, Scope};
use crate::ir::{Claim, Deferred};
use crate::width::Decision;

pub(super) fn pairs(scope: &mut Scope) {
    let (graph_name, inputs, outputs) = (&scope.graph, &scope.inputs, &scope.outputs);
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
                let hint = if matches!(scope.defs.get(&name), Some(super::Def::Node(_))) {
                    format!("\n= help: `{name}` is a node: list it among the outputs, `-> (.., {name})`")
                } else {
                    did_you_mean(&name, outputs.iter().map(|(o, _)| o.to_string()))
                };
                scope.errors.push(syn::Error::new(
                    pair.output.span(),
                    format!("{pair_text}: `{name}` is not an output of `{graph_name}`{hint}"),
                ))
            }
            (Some(i), Some(o)) => {
                match (&inputs[i].width, &scope.widths[outputs[o].1]) {
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
                            Decision::Unknown => scope.deferred.push(Deferred {
                                claim: Claim::Equal(out_w.clone(), in_w.clone()),
                                message,
                                span: pair.output.span(),
                            }),
                        }
                    }
                    (Some(_), None) => {}
                }
                if scope.recurrent.iter().any(|&(ri, _)| ri == i) {
                    scope.errors.push(syn::Error::new(
                        pair.input.span(),
                        format!("input `{}` is fed by two recurrent pairs", pair.input),
                    ));
                }
                scope.recurrent.push((i, o));
            }
        }
    }
}
