//! The graph as the Python source of a `torch.nn.Module` class, made at
//! compile time like the DOT text: the same parameter names (a node `x2h`
//! holds `self.x2h = nn.Linear(..)`, so its tensors are `x2h.weight` and
//! `x2h.bias`; `#[params]` names become parameters of their own), the same
//! forward, and for a recurrent graph one step as `forward`. The graph's
//! sizes are the constructor's arguments. The runtime's `to_pytorch` puts
//! the classes of nested graphs before it and the imports at the top.

use super::Expander;
use crate::ir::{Arg, Node, NodeKind, Select, Source};
use crate::layers::Rule;
use crate::width::Width;
use quote::quote;
use std::fmt::Write;

/// Names Python reserves, or that the generated code itself uses.
const RESERVED: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def",
    "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is",
    "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "self",
    "torch", "nn", "F", "_take", "super",
];

/// A local variable for a graph input or node.
fn local(name: &str) -> String {
    if RESERVED.contains(&name) {
        format!("{name}_")
    } else {
        name.to_string()
    }
}

/// A module attribute, `self.name`; spelled with `getattr` when the name is
/// a Python keyword, so the state dict keeps the graph's name.
fn attr(name: &str) -> String {
    if RESERVED.contains(&name) {
        format!("getattr(self, \"{name}\")")
    } else {
        format!("self.{name}")
    }
}

fn set_attr(name: &str, value: &str) -> String {
    if RESERVED.contains(&name) {
        format!("setattr(self, \"{name}\", {value})")
    } else {
        format!("self.{name} = {value}")
    }
}

impl Expander<'_> {
    /// The class's Python source.
    pub(super) fn to_python(&self) -> String {
        let g = self.g;
        let mut s = String::new();
        // User layers: a class to write in PyTorch, raising until it is.
        let mut users: Vec<String> = Vec::new();
        for n in &g.nodes {
            if let NodeKind::Custom { path, .. } = &n.kind {
                let ty = path
                    .segments
                    .last()
                    .map(|s| s.ident.to_string())
                    .unwrap_or_default();
                if !users.contains(&ty) {
                    let _ = writeln!(
                        s,
                        "class {ty}(nn.Module):\n    \"\"\"A user layer of `{}`: write its forward in PyTorch.\"\"\"\n\n    \
                         def __init__(self, *args):\n        super().__init__()\n        \
                         raise NotImplementedError(\"`{ty}` is a user layer: write it in PyTorch\")\n\n",
                        g.name
                    );
                    users.push(ty);
                }
            }
        }
        let _ = writeln!(s, "class {}(nn.Module):", g.name);
        let doc = doc_line(&g.attrs).unwrap_or_else(|| format!("`{}`, from nngraph's graph!.", g.name));
        let _ = writeln!(
            s,
            "    \"\"\"{}\"\"\"\n",
            doc.replace('\\', "\\\\").replace("\"\"\"", "'''")
        );
        let quoted = |names: Vec<String>| {
            let items: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            format!(
                "({}{})",
                items.join(", "),
                if items.len() == 1 { "," } else { "" }
            )
        };
        let _ = writeln!(
            s,
            "    INPUTS = {}",
            quoted(g.inputs.iter().map(|i| i.name.to_string()).collect())
        );
        let _ = writeln!(
            s,
            "    OUTPUTS = {}",
            quoted(g.outputs.iter().map(|(o, _)| o.to_string()).collect())
        );
        if !g.recurrent.is_empty() {
            let pairs: Vec<String> = g
                .recurrent
                .iter()
                .map(|&(i, o)| format!("\"{}\": \"{}\"", g.inputs[i].name, g.outputs[o].0))
                .collect();
            let _ = writeln!(s, "    RECURRENT = {{{}}}", pairs.join(", "));
        }
        let sizes: Vec<String> = g
            .const_sizes
            .iter()
            .chain(&g.runtime_sizes)
            .map(|s| s.to_string())
            .collect();
        let _ = writeln!(
            s,
            "\n    def __init__(self{}):",
            sizes.iter().map(|s| format!(", {s}")).collect::<String>()
        );
        let _ = writeln!(s, "        super().__init__()");
        if !sizes.is_empty() {
            let _ = writeln!(s, "        self._sizes = ({},)", sizes.join(", "));
        }
        for n in &g.nodes {
            for line in self.python_init(n) {
                let _ = writeln!(s, "        {line}");
            }
        }
        let inputs: Vec<String> = g.inputs.iter().map(|i| local(&i.name.to_string())).collect();
        let _ = writeln!(s, "\n    def forward(self, {}):", inputs.join(", "));
        if !sizes.is_empty() {
            let _ = writeln!(s, "        {}, = self._sizes", sizes.join(", "));
        }
        for &k in &g.order {
            let _ = writeln!(
                s,
                "        {} = {}",
                local(&g.nodes[k].name.to_string()),
                self.python_call(k)
            );
        }
        let outputs: Vec<String> = g
            .outputs
            .iter()
            .map(|&(_, k)| local(&g.nodes[k].name.to_string()))
            .collect();
        let _ = writeln!(s, "        return {}", outputs.join(", "));
        s
    }

    /// A width in Python. Sizes are spelled as themselves; in `forward`
    /// (`in_forward`), the width of a nested graph's input or output or of a
    /// user layer's output is read off its tensor, `t.shape[1]`.
    fn python_width(&self, w: &Width, in_forward: bool) -> Option<String> {
        let g = self.g;
        let mut text = w.to_string();
        let mut atoms: Vec<&String> = w.atoms().collect();
        // Longest first, so that no atom is replaced inside another.
        atoms.sort_by_key(|a| std::cmp::Reverse(a.len()));
        atoms.dedup();
        for a in atoms {
            if g.const_sizes.iter().chain(&g.runtime_sizes).any(|s| s == a) {
                continue;
            }
            let value = if let Some((_, numerator, by)) = g.quotients.iter().find(|(q, _, _)| q == a) {
                format!("(({}) // {by})", self.python_width(numerator, in_forward)?)
            } else if !in_forward {
                return None;
            } else {
                format!("{}.shape[1]", self.python_atom_tensor(a)?)
            };
            text = text.replace(a.as_str(), &value);
        }
        Some(text)
    }

    /// The tensor whose width is atom `a`, in `forward`.
    fn python_atom_tensor(&self, a: &str) -> Option<String> {
        let g = self.g;
        if let Some(node) = g.nodes.iter().find(|n| crate::check::derived_atom(&n.name) == a) {
            return Some(local(&node.name.to_string()));
        }
        let (_, atom) = self.atom(a)?;
        let host = &g.nodes[atom.host];
        if atom.output {
            let which = match &atom.select {
                Select::Index(j) => j.to_string(),
                Select::Name(o) => format!("\"{o}\""),
            };
            let host_name = host.name.to_string();
            Some(format!(
                "_take({}, {}, {which})",
                attr(&host_name),
                local(&host_name)
            ))
        } else {
            let source = *host.inputs.get(atom.slot?)?;
            Some(match source {
                Source::Input(i) => local(&g.inputs[i].name.to_string()),
                Source::Node(j) => local(&g.nodes[j].name.to_string()),
            })
        }
    }

    fn python_args(&self, args: &[Arg], in_forward: bool) -> Vec<String> {
        args.iter()
            .map(|a| match a {
                Arg::Width(w) => self
                    .python_width(w, in_forward)
                    .unwrap_or_else(|| format!("None  # nngraph: the width {w} is not written in sizes")),
                Arg::Float(e) | Arg::Expr(e) => python_number(&quote!(#e).to_string()),
            })
            .collect()
    }

    /// What `__init__` holds for node `n`: its module, or its parameters
    /// when `#[params]` renames them.
    fn python_init(&self, n: &Node) -> Vec<String> {
        let name = n.name.to_string();
        match &n.kind {
            NodeKind::Builtin { layer, args } => {
                let args = self.python_args(args, false);
                let module = match layer.rule {
                    Rule::Linear => format!("nn.Linear({}, {})", args[0], args[1]),
                    Rule::Embedding => format!("nn.Embedding({}, {})", args[0], args[1]),
                    _ if layer.name == "Dropout" => format!("nn.Dropout({})", args[0]),
                    _ => return Vec::new(),
                };
                if n.params.is_empty() {
                    return vec![set_attr(&name, &module)];
                }
                // Renamed tensors: the module's tensors, registered one by one
                // under their names (`torch.empty` with the module's shapes).
                let shapes: Vec<(&str, String)> = match layer.rule {
                    Rule::Linear => vec![
                        ("weight", format!("{}, {}", args[1], args[0])),
                        ("bias", args[1].clone()),
                    ],
                    _ => vec![("weight", format!("{}, {}", args[0], args[1]))],
                };
                let mut lines = Vec::new();
                for (tensor, shape) in shapes {
                    let parameter = format!("nn.Parameter(torch.empty({shape}))");
                    match n.params.iter().find(|(t, _)| t == tensor) {
                        Some((_, full)) => lines.push(set_attr(full, &parameter)),
                        // A tensor left as `node.tensor`: under an empty
                        // module named after the node.
                        None => {
                            let holder = set_attr(&name, "nn.Module()");
                            if !lines.contains(&holder) {
                                lines.push(holder);
                            }
                            lines.push(format!("{}.{tensor} = {parameter}", attr(&name)));
                        }
                    }
                }
                lines
            }
            NodeKind::Custom { path, args } => {
                let ty = path
                    .segments
                    .last()
                    .map(|s| s.ident.to_string())
                    .unwrap_or_default();
                vec![set_attr(
                    &name,
                    &format!("{ty}({})", self.python_args(args, false).join(", ")),
                )]
            }
            NodeKind::Nested(nested) => {
                let ty = nested
                    .path
                    .segments
                    .last()
                    .map(|s| s.ident.to_string())
                    .unwrap_or_default();
                let mut args: Vec<String> = nested
                    .generics
                    .iter()
                    .flat_map(|g| g.args.iter())
                    .map(|a| python_number(&quote!(#a).to_string()))
                    .collect();
                args.extend(self.python_args(&nested.sizes, false));
                vec![set_attr(&name, &format!("{ty}({})", args.join(", ")))]
            }
            NodeKind::Output { .. } => Vec::new(),
        }
    }

    /// `self.x2h.weight`, or `self.weight_ih` when renamed.
    fn python_param(&self, n: &Node, tensor: &str) -> String {
        match n.params.iter().find(|(t, _)| t == tensor) {
            Some((_, full)) => full.clone(),
            None => format!("{}.{tensor}", n.name),
        }
    }

    /// The expression computing node `k` in `forward`.
    fn python_call(&self, k: usize) -> String {
        let g = self.g;
        let n = &g.nodes[k];
        let ins: Vec<String> = n
            .inputs
            .iter()
            .map(|&s| match s {
                Source::Input(i) => local(&g.inputs[i].name.to_string()),
                Source::Node(j) => local(&g.nodes[j].name.to_string()),
            })
            .collect();
        let name = n.name.to_string();
        match &n.kind {
            NodeKind::Builtin { layer, args } => {
                let args = self.python_args(args, true);
                let x = &ins[0];
                match (layer.rule, layer.name) {
                    (Rule::Linear, _) if !n.params.is_empty() => {
                        let (w, b) = (self.python_param(n, "weight"), self.python_param(n, "bias"));
                        format!("F.linear({x}, {}, {})", attr_path(&w), attr_path(&b))
                    }
                    (Rule::Embedding, _) if !n.params.is_empty() => {
                        format!("F.embedding({x}, {})", attr_path(&self.python_param(n, "weight")))
                    }
                    (Rule::Linear | Rule::Embedding, _) | (_, "Dropout") => format!("{}({x})", attr(&name)),
                    (_, "Identity") => x.clone(),
                    (_, "Tanh") => format!("torch.tanh({x})"),
                    (_, "Sigmoid") => format!("torch.sigmoid({x})"),
                    (_, "ReLU") => format!("torch.relu({x})"),
                    (_, "SoftMax") => format!("torch.softmax({x}, dim=1)"),
                    (_, "LogSoftMax") => format!("torch.log_softmax({x}, dim=1)"),
                    (_, "CAdd") => ins.join(" + "),
                    (_, "CSub") => ins.join(" - "),
                    (_, "CMul") => ins.join(" * "),
                    (_, "CDiv") => ins.join(" / "),
                    (_, "MulConstant") => format!("{x} * {}", args[0]),
                    (_, "AddConstant") => format!("{x} + {}", args[0]),
                    (_, "Concat") => format!("torch.cat([{}], dim=1)", ins.join(", ")),
                    (_, "Narrow") => format!("{x}[:, {}:{}]", args[0], python_sum(&args[0], &args[1])),
                    (_, "Mse") => format!(
                        "F.mse_loss({x}, {}, reduction=\"none\").mean(dim=1, keepdim=True)",
                        ins[1]
                    ),
                    (_, "Bce") => format!(
                        "F.binary_cross_entropy({x}, {}, reduction=\"none\").mean(dim=1, keepdim=True)",
                        ins[1]
                    ),
                    (_, "ClassNll") => {
                        format!("F.nll_loss({x}, {}, reduction=\"none\").unsqueeze(1)", ins[1])
                    }
                    (_, "CrossEntropy") => {
                        format!(
                            "F.cross_entropy({x}, {}, reduction=\"none\").unsqueeze(1)",
                            ins[1]
                        )
                    }
                    (_, other) => format!("None  # nngraph: no PyTorch form for `{other}`"),
                }
            }
            NodeKind::Custom { .. } => format!("{}({})", attr(&name), ins.join(", ")),
            NodeKind::Nested(_) => {
                // Inputs by the nested graph's names where the call named them.
                let mut named: Vec<Option<String>> = vec![None; ins.len()];
                for a in g.atoms.iter().filter(|a| a.host == k && !a.output) {
                    if let (Select::Name(input), Some(slot)) = (&a.select, a.slot) {
                        named[slot] = Some(input.to_string());
                    }
                }
                let args: Vec<String> = ins
                    .iter()
                    .zip(named)
                    .map(|(v, name)| match name {
                        Some(name) => format!("{name}={v}"),
                        None => v.clone(),
                    })
                    .collect();
                format!("{}({})", attr(&name), args.join(", "))
            }
            NodeKind::Output { host, select } => {
                let host_name = g.nodes[*host].name.to_string();
                let which = match select {
                    Select::Index(j) => j.to_string(),
                    Select::Name(o) => format!("\"{o}\""),
                };
                format!("_take({}, {}, {which})", attr(&host_name), local(&host_name))
            }
        }
    }
}

/// `self.name` for a dotted or plain attribute path (`x2h.weight`).
fn attr_path(path: &str) -> String {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default();
    parts.fold(attr(first), |acc, p| format!("{acc}.{p}"))
}

/// `a + b`, computed when both are numbers.
fn python_sum(a: &str, b: &str) -> String {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(a), Ok(b)) => (a + b).to_string(),
        (Ok(0), _) => b.to_string(),
        _ => format!("{a} + {b}"),
    }
}

/// A Rust numeric literal or size expression as Python: literal suffixes
/// and digit separators dropped, braces as parentheses, `/` as `//`.
fn python_number(rust: &str) -> String {
    rust.split_whitespace()
        .map(|token| match token {
            "{" => "(".to_string(),
            "}" => ")".to_string(),
            "/" => "//".to_string(),
            t if t.starts_with(|c: char| c.is_ascii_digit()) => {
                let t = t.replace('_', "");
                let end = ["f32", "f64", "usize", "u32", "u64", "i32", "i64"]
                    .iter()
                    .find_map(|suffix| t.strip_suffix(suffix))
                    .unwrap_or(&t);
                end.to_string()
            }
            t => t.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first line of the graph's doc comment.
fn doc_line(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value().trim().to_string()),
            _ => None,
        },
        _ => None,
    })
}
