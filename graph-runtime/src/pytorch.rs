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
use crate::spec::GraphSpec;
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


class _Stack(nn.Module):
    """The layers of a `Stack(depth, First, Rest)` node, one step: input 0
    goes through the layers in order; every other input is a group, one
    block of columns per layer. Outputs: the last layer's output 0, then
    each output of every layer as a group. Layer l's tensor `t` is called
    `t_l<l>` in the state dict, as torch's nn.LSTM names them."""

    def __init__(self, depth, first, rest):
        super().__init__()
        self.layers = nn.ModuleList([first()] + [rest() for _ in range(depth - 1)])

        def save(_module, state, prefix, _metadata):
            for key in [k for k in state if k.startswith(prefix + "layers.")]:
                layer, name = key[len(prefix + "layers."):].split(".", 1)
                state[f"{prefix}{name}_l{layer}"] = state.pop(key)

        def load(state, prefix, *_args):
            for l, layer in enumerate(self.layers):
                for name in layer.state_dict():
                    if f"{prefix}{name}_l{l}" in state:
                        state[f"{prefix}layers.{l}.{name}"] = state.pop(f"{prefix}{name}_l{l}")

        self._register_state_dict_hook(save)
        self._register_load_state_dict_pre_hook(load)

    def forward(self, x, *groups):
        depth = len(self.layers)
        outs = []
        for l, layer in enumerate(self.layers):
            blocks = [g[:, l * (g.shape[1] // depth):(l + 1) * (g.shape[1] // depth)] for g in groups]
            out = layer(x, *blocks)
            out = out if isinstance(out, tuple) else (out,)
            x = out[0]
            outs.append(out)
        return (x,) + tuple(torch.cat([o[j] for o in outs], dim=1) for j in range(len(outs[0])))


def _inline(module, node):
    """Hooks that name the tensors of the nested graph or stack `node` as
    the module's own (`#[params(inline)]`): `weight_ih_l0`, not
    `node.weight_ih_l0`."""
    def save(_module, state, prefix, _metadata):
        for key in [k for k in state if k.startswith(prefix + node + ".")]:
            state[prefix + key[len(prefix + node + "."):]] = state.pop(key)

    def load(state, prefix, *_args):
        for name in getattr(module, node).state_dict():
            if prefix + name in state:
                state[prefix + node + "." + name] = state.pop(prefix + name)

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
        // The shipped stacks are torch's own modules.
        let shipped = shipped_class(d.spec);
        let nested = if shipped.is_some() { &[][..] } else { &d.nested[..] };
        let mut text = shipped.unwrap_or_else(|| d.spec.python.to_string());
        for (k, inner) in nested.iter().enumerate() {
            // A stack's layers are two classes at most (the first and the
            // rest): `N<k>` names the first, `R<k>` the rest.
            if let Some(first) = inner.first() {
                let name = self.add(first);
                // A stack of one layer has no upper layer to describe; its
                // factory is never called.
                let upper = match inner.get(1) {
                    Some(upper) => self.add(upper),
                    None => name.clone(),
                };
                text = text.replace(&format!("\u{1}R{k}\u{1}"), &upper);
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

/// The class of a shipped stack (`cells::Lstm`, `Gru`, `Rnn`): torch's
/// `nn.LSTM`, `nn.GRU` or `nn.RNN` itself, stepped as the graph is (one
/// step of `x`, the states grouped `(batch, layers * hidden)`), with the
/// same state dict.
fn shipped_class(spec: &GraphSpec) -> Option<String> {
    use crate::cells::{Gru, Lstm, Rnn};
    use crate::Graph;
    let is = |other: &GraphSpec| spec.name == other.name && spec.python == other.python;
    let (source, name) = if is(<Lstm<f64> as Graph<f64>>::SPEC) {
        (SHIPPED_LSTM, "Lstm")
    } else if is(<Gru<f64> as Graph<f64>>::SPEC) {
        (SHIPPED_GRU, "Gru")
    } else if is(<Rnn<f64> as Graph<f64>>::SPEC) {
        (SHIPPED_RNN, "Rnn")
    } else {
        return None;
    };
    // The class name as a placeholder, as the macro writes it.
    Some(source.replace("{class}", &format!("\u{1}C{name}\u{1}")))
}

const SHIPPED_LSTM: &str = r#"class {class}(nn.LSTM):
    """torch.nn.LSTM itself, stepped as nngraph's `Lstm`: one step of `x`
    (batch, input); each state grouped (batch, layers * hidden), layer l in
    columns l * hidden:(l + 1) * hidden."""

    INPUTS = ("x", "h", "c")
    OUTPUTS = ("y", "h_n", "c_n")
    RECURRENT = {"h": "h_n", "c": "c_n"}

    def __init__(self, input, hidden, layers):
        super().__init__(input, hidden, num_layers=layers)

    def forward(self, x, h, c):
        b = x.shape[0]
        h0, c0 = (s.reshape(b, self.num_layers, self.hidden_size).transpose(0, 1).contiguous() for s in (h, c))
        y, (h_n, c_n) = super().forward(x.unsqueeze(0), (h0, c0))
        return y[0], h_n.transpose(0, 1).reshape(b, -1), c_n.transpose(0, 1).reshape(b, -1)
"#;

const SHIPPED_GRU: &str = r#"class {class}(nn.GRU):
    """torch.nn.GRU itself, stepped as nngraph's `Gru`: one step of `x`
    (batch, input); the state grouped (batch, layers * hidden)."""

    INPUTS = ("x", "h")
    OUTPUTS = ("y", "h_n")
    RECURRENT = {"h": "h_n"}

    def __init__(self, input, hidden, layers):
        super().__init__(input, hidden, num_layers=layers)

    def forward(self, x, h):
        b = x.shape[0]
        h0 = h.reshape(b, self.num_layers, self.hidden_size).transpose(0, 1).contiguous()
        y, h_n = super().forward(x.unsqueeze(0), h0)
        return y[0], h_n.transpose(0, 1).reshape(b, -1)
"#;

const SHIPPED_RNN: &str = r#"class {class}(nn.RNN):
    """torch.nn.RNN (tanh) itself, stepped as nngraph's `Rnn`: one step of
    `x` (batch, input); the state grouped (batch, layers * hidden)."""

    INPUTS = ("x", "h")
    OUTPUTS = ("y", "h_n")
    RECURRENT = {"h": "h_n"}

    def __init__(self, input, hidden, layers):
        super().__init__(input, hidden, num_layers=layers, nonlinearity="tanh")

    def forward(self, x, h):
        b = x.shape[0]
        h0 = h.reshape(b, self.num_layers, self.hidden_size).transpose(0, 1).contiguous()
        y, h_n = super().forward(x.unsqueeze(0), h0)
        return y[0], h_n.transpose(0, 1).reshape(b, -1)
"#;
