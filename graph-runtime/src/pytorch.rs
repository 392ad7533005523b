//! Export to PyTorch: a graph as a Python module defining an equivalent
//! `torch.nn.Module`. Each graph's class is made at compile time by
//! `graph!` (`GraphSpec::python`), with placeholders for its own class
//! name and those of the graphs nested in it; this gives every distinct
//! graph a distinct class name (two graphs called `Cell` from two modules
//! are two classes), puts the classes of nested graphs first, the imports
//! at the top, and a `build()` that constructs the model with the
//! instance's sizes. Parameter names are the graph's, exactly (names
//! Python would read otherwise are registered by their strings), so a
//! checkpoint saved here loads with `load_state_dict` unchanged.

use crate::describe::Description;
use std::fmt::Write;

const HEADER: &str = r#"import torch
from torch import nn
import torch.nn.functional as F


def _take(module, result, which):
    """Output `which` (an index or a name) of a nested graph's result."""
    if not isinstance(result, tuple):
        return result
    if isinstance(which, str):
        which = module.OUTPUTS.index(which)
    return result[which]


def _call(module, positional, named):
    """Calls a nested graph with inputs given by its names (`INPUTS`) and
    the rest in order, as `graph!` lets a call name them."""
    args = [None] * len(module.INPUTS)
    for name, value in named.items():
        args[module.INPUTS.index(name)] = value
    free = (i for i, a in enumerate(args) if a is None)
    for value in positional:
        args[next(free)] = value
    return module(*args)


def _alias(module, aliases):
    """Hooks that make the state dict say `name` for what is registered as
    `alias` (aliases: alias -> name): torch keeps some names for itself
    (`training`, private names) and refuses a module or parameter there."""
    def rename(state, prefix, old, new):
        for key in [k for k in state if k == prefix + old or k.startswith(prefix + old + ".")]:
            state[prefix + new + key[len(prefix + old):]] = state.pop(key)

    def save(_module, state, prefix, _metadata):
        for alias, name in aliases.items():
            rename(state, prefix, alias, name)

    def load(state, prefix, *_args):
        for alias, name in aliases.items():
            rename(state, prefix, name, alias)

    module._register_state_dict_hook(save)
    module._register_load_state_dict_pre_hook(load)
"#;

/// The Python source of a module that defines `G`'s class (and those of the
/// graphs nested in it) and `build()`.
pub(crate) fn to_pytorch(d: &Description) -> String {
    let mut classes = Classes::default();
    let root = classes.add(d);
    let spec = d.spec;
    let mut s = format!(
        "\"\"\"`{}` as a torch.nn.Module, written by nngraph from {}.\n\n\
         The parameter names are the graph's: a checkpoint saved by nngraph\n\
         loads with `build().load_state_dict(safetensors.torch.load_file(path))`.\n\"\"\"\n",
        spec.name, spec.file
    );
    s += HEADER;
    for (_, _, class) in &classes.done {
        s += "\n\n";
        s += class;
    }
    let values: Vec<String> = d.sizes.iter().map(|v| v.to_string()).collect();
    let named: Vec<String> = spec
        .sizes
        .iter()
        .zip(&d.sizes)
        .map(|(name, value)| format!("{name} = {value}"))
        .collect();
    let comment = if named.is_empty() {
        String::new()
    } else {
        format!("  # {}", named.join(", "))
    };
    let _ = write!(
        s,
        "\n\ndef build():\n    \"\"\"`{}` with the sizes it was exported with.\"\"\"\n    return {root}({}){comment}\n",
        spec.name,
        values.join(", ")
    );
    s
}

/// Classes in dependency order, each once: `(name, source with its own
/// name left as a placeholder, source)`.
#[derive(Default)]
struct Classes {
    done: Vec<(String, String, String)>,
}

impl Classes {
    /// Adds the class of `d` (after those of the graphs nested in it) unless
    /// an identical one is there; returns its name.
    fn add(&mut self, d: &Description) -> String {
        let mut text = d.spec.python.to_string();
        for (k, inner) in d.nested.iter().enumerate() {
            // A stack's layers are two classes at most (the first and the
            // rest): `N<k>` names the first, `R<k>` the rest.
            if let Some(first) = inner.first() {
                let name = self.add(first);
                if let Some(upper) = inner.get(1) {
                    let upper = self.add(upper);
                    text = text.replace(&format!("\u{1}R{k}\u{1}"), &upper);
                }
                text = text.replace(&format!("\u{1}N{k}\u{1}"), &name);
            }
        }
        if let Some((name, _, _)) = self.done.iter().find(|(_, t, _)| *t == text) {
            return name.clone();
        }
        // The placeholder `\u{1}C<wanted name>\u{1}`.
        let (placeholder, wanted) = match text.split('\u{1}').nth(1) {
            Some(inside) if inside.starts_with('C') => {
                (format!("\u{1}{inside}\u{1}"), inside[1..].to_string())
            }
            _ => (String::new(), d.spec.name.to_string()),
        };
        let mut name = wanted.clone();
        let mut n = 1;
        while self.done.iter().any(|(taken, _, _)| *taken == name) {
            n += 1;
            name = format!("{wanted}_{n}");
        }
        let source = if placeholder.is_empty() {
            text.clone()
        } else {
            text.replace(&placeholder, &name)
        };
        self.done.push((name.clone(), text, source));
        name
    }
}
