//! Export to PyTorch: a graph as a Python module defining an equivalent
//! `torch.nn.Module`. Each graph's class is made at compile time by
//! `graph!` (`GraphSpec::python`); this puts the classes of nested graphs
//! first, the imports at the top, and a `build()` that constructs the model
//! with the instance's sizes. Parameter names are the graph's, so a
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
"#;

/// The Python source of a module that defines `G`'s class (and those of the
/// graphs nested in it) and `build()`.
pub(crate) fn to_pytorch(d: &Description) -> String {
    let mut classes = Classes::default();
    classes.add(d);
    let spec = d.spec;
    let mut s = format!(
        "\"\"\"`{}` as a torch.nn.Module, written by nngraph from {}.\n\n\
         The parameter names are the graph's: a checkpoint saved by nngraph\n\
         loads with `build().load_state_dict(safetensors.torch.load_file(path))`.\n\"\"\"\n",
        spec.name, spec.file
    );
    s += HEADER;
    for class in &classes.sources {
        s += "\n\n";
        s += class;
    }
    let args: Vec<String> = spec
        .sizes
        .iter()
        .zip(&d.sizes)
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let _ = write!(
        s,
        "\n\ndef build():\n    \"\"\"`{}` with the sizes it was exported with.\"\"\"\n    return {}({})\n",
        spec.name,
        spec.name,
        args.join(", ")
    );
    s
}

/// Classes in dependency order, each once.
#[derive(Default)]
struct Classes {
    names: Vec<&'static str>,
    sources: Vec<&'static str>,
}

impl Classes {
    fn add(&mut self, d: &Description) {
        if self.names.contains(&d.spec.name) {
            return;
        }
        for inner in d.nested.iter().flatten() {
            self.add(inner);
        }
        self.names.push(d.spec.name);
        self.sources.push(d.spec.python);
    }
}
