//! Passes: names. Every input and node is declared once (a node may not
//! take an input's name); then every input of a node is found, with a
//! did-you-mean for names that are not.

use super::{all_names, Def, RawInput, RawNode, Scope};
use crate::ir::{Input, Source};
use crate::layers;
use proc_macro2::Span;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use syn::Ident;

pub(super) fn define(
    scope: &mut Scope,
    sizes: &[String],
    inputs: &[Input],
    raw: &[RawNode],
) -> HashMap<String, Def> {
    let graph_name = &scope.graph;
    let mut defs = HashMap::new();
    for (i, input) in inputs.iter().enumerate() {
        let key = input.name.to_string();
        if sizes.contains(&key) {
            scope.errors.push(syn::Error::new(
                input.name.span(),
                format!("input `{key}` has the name of a size of `{graph_name}`"),
            ));
        }
        // The first declaration stands, so that uses see one width.
        match defs.entry(key) {
            Entry::Occupied(first) => scope.errors.push(syn::Error::new(
                input.name.span(),
                format!("`{graph_name}` declares the input `{}` twice", first.key()),
            )),
            Entry::Vacant(slot) => {
                slot.insert(Def::Input(i));
            }
        }
    }
    for (k, node) in raw.iter().enumerate() {
        let key = node.name.to_string();
        match defs.get(&key) {
            Some(Def::Input(_)) => scope.errors.push(syn::Error::new(
                node.name.span(),
                format!(
                    "node `{key}` has the name of an input of `{graph_name}`; give the node another name"
                ),
            )),
            Some(Def::Node(_)) if node.generated => scope.errors.push(syn::Error::new(
                node.name.span(),
                format!(
                    "the nested `{}` call gets the name `{key}`, which is already taken\n\
                     = help: declare it as a node of its own with another name",
                    node.what()
                ),
            )),
            Some(&Def::Node(first)) => scope.errors.push(syn::Error::new(
                node.name.span(),
                format!(
                    "node `{key}` is declared twice in `{graph_name}`\n= note: first declared on line {}",
                    raw[first].name.span().start().line
                ),
            )),
            None => {
                defs.insert(key, Def::Node(k));
            }
        }
    }
    defs
}

/// Per node: its inputs, or `None` where one is unknown (and reported).
pub(super) type Sources = Vec<Option<Vec<(Source, Span)>>>;

pub(super) fn resolve(
    scope: &mut Scope,
    inputs: &[Input],
    raw: &[RawNode],
    defs: &HashMap<String, Def>,
) -> Sources {
    let all_names = all_names(inputs, raw);
    let mut sources = Vec::with_capacity(raw.len());
    for node in raw {
        let mut resolved = Vec::new();
        let mut ok = true;
        for input in &node.inputs {
            match input {
                RawInput::Name(name) => match defs.get(&name.to_string()) {
                    Some(Def::Input(i)) => resolved.push((Source::Input(*i), name.span())),
                    Some(Def::Node(k)) => resolved.push((Source::Node(*k), name.span())),
                    None => {
                        ok = false;
                        if !scope.broken.contains(&name.to_string()) {
                            scope.errors.push(unknown_name(name, &all_names, &scope.graph));
                        }
                    }
                },
                RawInput::Anonymous(k, span) => resolved.push((Source::Node(*k), *span)),
            }
        }
        sources.push(ok.then_some(resolved));
    }
    sources
}

pub(super) fn unknown_name(name: &Ident, known: &[String], graph: &str) -> syn::Error {
    let key = name.to_string();
    let hint = did_you_mean(&key, known.iter().cloned());
    let hint = if hint.is_empty() && layers::lookup(&key).is_some() {
        format!("\n= help: `{key}` is a layer; call it on its inputs: `{key}(..)(input)`")
    } else {
        hint
    };
    syn::Error::new(
        name.span(),
        format!("`{key}` is not an input or a node of `{graph}`{hint}"),
    )
}

/// `\n= help: did you mean `x`?` for the closest candidate, or nothing.
pub fn did_you_mean(name: &str, candidates: impl Iterator<Item = String>) -> String {
    let best = candidates
        .map(|c| (strsim::levenshtein(name, &c), c))
        .filter(|(d, c)| {
            *d > 0 && *d < name.len().min(c.len()).max(2) && *d <= name.len().max(c.len()) / 3 + 1
        })
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!("\n= help: did you mean `{c}`?"),
        None => String::new(),
    }
}
