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
    "torch", "nn", "F", "_take", "_call", "super", "match", "case", "type",
];

/// Attributes every `nn.Module` has (or that the class defines): a node
/// of one of these names is registered under it by `_modules[..]`, never
/// as `self.name`, which would replace the attribute.
const MODULE_ATTRS: &[&str] = &[
    "INPUTS",
    "OUTPUTS",
    "RECURRENT",
    "T_destination",
    "add_module",
    "apply",
    "bfloat16",
    "buffers",
    "call_super_init",
    "children",
    "compile",
    "cpu",
    "cuda",
    "double",
    "dump_patches",
    "eval",
    "extra_repr",
    "float",
    "forward",
    "get_buffer",
    "get_extra_state",
    "get_parameter",
    "get_submodule",
    "half",
    "ipu",
    "load_state_dict",
    "modules",
    "mtia",
    "named_buffers",
    "named_children",
    "named_modules",
    "named_parameters",
    "parameters",
    "register_backward_hook",
    "register_buffer",
    "register_forward_hook",
    "register_forward_pre_hook",
    "register_full_backward_hook",
    "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook",
    "register_module",
    "register_parameter",
    "register_state_dict_post_hook",
    "register_state_dict_pre_hook",
    "requires_grad_",
    "set_extra_state",
    "set_submodule",
    "share_memory",
    "state_dict",
    "to",
    "to_empty",
    "train",
    "training",
    "type",
    "xpu",
    "zero_grad",
];

/// A name Python reads as the same identifier we wrote: ASCII (Python
/// NFKC-normalises other identifiers, so `ﬁ` would read as `fi`), and
/// not a keyword or a name the module uses.
fn plain(name: &str) -> bool {
    name.is_ascii() && !RESERVED.contains(&name)
}

/// How a node's module or a renamed parameter is registered, so that the
/// state dict says the graph's name exactly whatever it is.
#[derive(Clone, Debug, PartialEq)]
enum Attr {
    /// `self.name`: plain, not one of `nn.Module`'s, not private.
    Plain,
    /// `self._modules["name"]` / `self._parameters["name"]`: a name Python
    /// would read as another (`ﬁ`), a keyword, a method of `nn.Module`.
    Exact,
    /// Registered as `self.<alias>`, with state-dict hooks that say `name`:
    /// names torch assigns itself (`training`, private `_` names), under
    /// which it refuses a module or a parameter.
    Alias(String),
}

/// The attributes of a graph's modules and renamed parameters.
struct Attrs {
    names: Vec<(String, Attr)>,
}

impl Attrs {
    fn new(names: &[String]) -> Self {
        let mut used: Vec<String> = names.to_vec();
        let mut out = Vec::new();
        for name in names {
            let attr = if plain(name) && !MODULE_ATTRS.contains(&name.as_str()) && !name.starts_with('_') {
                Attr::Plain
            } else if name == "training" || name.starts_with('_') {
                let ascii = Locals::new(std::iter::once(name.clone())).get(name);
                let mut alias = format!("{}_alias", ascii.trim_start_matches('_'));
                while used.contains(&alias) || !plain(&alias) {
                    alias.push('_');
                }
                used.push(alias.clone());
                Attr::Alias(alias)
            } else {
                Attr::Exact
            };
            out.push((name.clone(), attr));
        }
        Attrs { names: out }
    }

    /// `self.name`, `self.<alias>`, or `self.<table>["name"]`.
    fn get(&self, name: &str, table: &str) -> String {
        let attr = self
            .names
            .iter()
            .find(|(n, _)| n == name)
            .map_or(Attr::Exact, |(_, a)| a.clone());
        match attr {
            Attr::Plain => format!("self.{name}"),
            Attr::Alias(alias) => format!("self.{alias}"),
            Attr::Exact => format!("self.{table}[\"{name}\"]"),
        }
    }

    fn module_get(&self, name: &str) -> String {
        self.get(name, "_modules")
    }

    fn module_set(&self, name: &str, value: &str) -> String {
        format!("{} = {value}", self.get(name, "_modules"))
    }

    fn param_get(&self, name: &str) -> String {
        self.get(name, "_parameters")
    }

    fn param_set(&self, name: &str, value: &str) -> String {
        format!("{} = {value}", self.get(name, "_parameters"))
    }

    /// The key under which `name` is registered in `_modules`.
    fn key(&self, name: &str) -> String {
        match self.names.iter().find(|(n, _)| n == name) {
            Some((_, Attr::Alias(alias))) => alias.clone(),
            _ => name.to_string(),
        }
    }

    /// `_alias(self, {"<alias>": "name", ..})` when any name is aliased.
    fn hooks(&self) -> Option<String> {
        let pairs: Vec<String> = self
            .names
            .iter()
            .filter_map(|(n, a)| match a {
                Attr::Alias(alias) => Some(format!("\"{alias}\": \"{n}\"")),
                _ => None,
            })
            .collect();
        (!pairs.is_empty()).then(|| format!("_alias(self, {{{}}})", pairs.join(", ")))
    }
}

/// What a graph's Python calls its things: locals, and attributes.
struct Names {
    locals: Locals,
    attrs: Attrs,
}

/// The Python locals of a graph's sizes, inputs and nodes: a plain name
/// is itself; any other is spelled in ASCII (`lambda` → `lambda_`, `ﬁ` →
/// `ufb01_`) and lengthened with `_` until it is no other name's, so
/// that distinct names never meet in Python.
struct Locals {
    names: Vec<(String, String)>,
}

impl Locals {
    fn new(names: impl Iterator<Item = String> + Clone) -> Self {
        let mut used: Vec<String> = names.clone().filter(|n| plain(n)).collect();
        let mut out = Vec::new();
        for name in names {
            if plain(&name) {
                out.push((name.clone(), name));
                continue;
            }
            let mut local: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii() {
                        c.to_string()
                    } else {
                        format!("u{:x}", c as u32)
                    }
                })
                .collect();
            local.push('_');
            while used.contains(&local) || RESERVED.contains(&local.as_str()) {
                local.push('_');
            }
            used.push(local.clone());
            out.push((name, local));
        }
        Locals { names: out }
    }

    fn get(&self, name: &str) -> String {
        self.names
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(|| name.to_string(), |(_, l)| l.clone())
    }
}

/// The placeholder of this graph's class name, holding the name it would
/// like (the graph's, spelled as a local if it is not plain; `build` is
/// the module's function), and of the class of the graph nested at node
/// `k`: `to_pytorch` gives every distinct graph a distinct class name (two
/// graphs called `Cell` from two modules are two classes) and writes it in.
fn class_placeholder(name: &str) -> String {
    let mut base = Locals::new(std::iter::once(name.to_string())).get(name);
    if base == "build" {
        base.push('_');
    }
    format!("\u{1}C{base}\u{1}")
}

fn nested_class(k: usize) -> String {
    format!("\u{1}N{k}\u{1}")
}

impl Expander<'_> {
    /// The class's Python source.
    pub(super) fn to_python(&self) -> String {
        let g = self.g;
        let names = self.python_names();
        let local = |name: &str| names.locals.get(name);
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
        let _ = writeln!(s, "class {}(nn.Module):", class_placeholder(&g.name.to_string()));
        let doc = doc_line(&g.attrs).unwrap_or_else(|| format!("`{}`, from nngraph's graph!.", g.name));
        let doc: String = doc.chars().filter(|c| !c.is_control()).collect();
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
            .map(|s| local(&s.to_string()))
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
        for (k, n) in g.nodes.iter().enumerate() {
            for line in self.python_init(k, n, &names) {
                let _ = writeln!(s, "        {line}");
            }
        }
        if let Some(hooks) = names.attrs.hooks() {
            let _ = writeln!(s, "        {hooks}");
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
                self.python_call(k, &names)
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

    /// The locals of this graph (sizes, inputs, nodes) and the attributes
    /// (nodes, renamed parameters).
    fn python_names(&self) -> Names {
        let g = self.g;
        let locals = g
            .const_sizes
            .iter()
            .chain(&g.runtime_sizes)
            .map(|s| s.to_string())
            .chain(g.inputs.iter().map(|i| i.name.to_string()))
            .chain(g.nodes.iter().map(|n| n.name.to_string()));
        // Nodes that register a module: layers with parameters, Dropout,
        // user layers, nested graphs.
        let registers = |n: &&Node| match &n.kind {
            NodeKind::Builtin { layer, .. } => {
                matches!(layer.rule, Rule::Linear | Rule::Embedding) || layer.name == "Dropout"
            }
            NodeKind::Custom { .. } | NodeKind::Nested(_) => true,
            NodeKind::Output { .. } => false,
        };
        let attrs: Vec<String> = g
            .nodes
            .iter()
            .filter(registers)
            .map(|n| n.name.to_string())
            .chain(g.nodes.iter().flat_map(|n| {
                n.params
                    .iter()
                    .filter(|(tensor, _)| tensor != "*")
                    .map(|(_, full)| full.clone())
            }))
            .collect();
        Names {
            locals: Locals::new(locals),
            attrs: Attrs::new(&attrs),
        }
    }

    /// A width in Python. Sizes are spelled as their locals; in `forward`
    /// (`in_forward`), the width of a nested graph's input or output or of a
    /// user layer's output is read off its tensor, `t.shape[1]`.
    fn python_width(&self, w: &Width, in_forward: bool, names: &Names) -> Option<String> {
        let g = self.g;
        let is_size = |a: &str| g.const_sizes.iter().chain(&g.runtime_sizes).any(|s| s == a);
        // Atoms that are not sizes (`LstmCell<8,16>.out[0]`) are replaced
        // whole, longest first so that none is replaced inside another, by
        // markers; then sizes, identifier by identifier, by their locals;
        // then the markers by the expressions that give the atoms.
        let mut text = w.to_string();
        let mut atoms: Vec<&String> = w.atoms().filter(|a| !is_size(a)).collect();
        atoms.sort_by_key(|a| std::cmp::Reverse(a.len()));
        atoms.dedup();
        let mut values = Vec::new();
        for a in atoms {
            let value = if let Some((_, numerator, by)) = g.quotients.iter().find(|(q, _, _)| q == a) {
                format!("(({}) // {by})", self.python_width(numerator, in_forward, names)?)
            } else if !in_forward {
                return None;
            } else {
                format!("{}.shape[1]", self.python_atom_tensor(a, names)?)
            };
            text = text.replace(a.as_str(), &format!("\u{2}{}\u{2}", values.len()));
            values.push(value);
        }
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find(|c: char| c.is_alphabetic() || c == '_') {
            out.push_str(&rest[..start]);
            let len = rest[start..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - start);
            out.push_str(&names.locals.get(&rest[start..start + len]));
            rest = &rest[start + len..];
        }
        out.push_str(rest);
        for (i, value) in values.iter().enumerate() {
            out = out.replace(&format!("\u{2}{i}\u{2}"), value);
        }
        Some(out)
    }

    /// The tensor whose width is atom `a`, in `forward`.
    fn python_atom_tensor(&self, a: &str, names: &Names) -> Option<String> {
        let g = self.g;
        if let Some(node) = g.nodes.iter().find(|n| crate::check::derived_atom(&n.name) == a) {
            return Some(names.locals.get(&node.name.to_string()));
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
                names.attrs.module_get(&host_name),
                names.locals.get(&host_name)
            ))
        } else {
            let source = *host.inputs.get(atom.slot?)?;
            Some(match source {
                Source::Input(i) => names.locals.get(&g.inputs[i].name.to_string()),
                Source::Node(j) => names.locals.get(&g.nodes[j].name.to_string()),
            })
        }
    }

    fn python_args(&self, args: &[Arg], in_forward: bool, names: &Names) -> Vec<String> {
        args.iter()
            .map(|a| match a {
                Arg::Width(w) => self
                    .python_width(w, in_forward, names)
                    .unwrap_or_else(|| format!("None  # nngraph: the width {w} is not written in sizes")),
                Arg::Float(e) | Arg::Expr(e) => python_number(&quote!(#e).to_string()),
            })
            .collect()
    }

    /// What `__init__` holds for node `k`: its module, or its parameters
    /// when `#[params]` renames them.
    fn python_init(&self, k: usize, n: &Node, names: &Names) -> Vec<String> {
        let name = n.name.to_string();
        match &n.kind {
            NodeKind::Builtin { layer, args } => {
                let args = self.python_args(args, false, names);
                let module = match layer.rule {
                    Rule::Linear => format!("nn.Linear({}, {})", args[0], args[1]),
                    Rule::Embedding => format!("nn.Embedding({}, {})", args[0], args[1]),
                    _ if layer.name == "Dropout" => format!("nn.Dropout({})", args[0]),
                    _ => return Vec::new(),
                };
                if n.params.is_empty() {
                    return vec![names.attrs.module_set(&name, &module)];
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
                        Some((_, full)) => lines.push(names.attrs.param_set(full, &parameter)),
                        // A tensor left as `node.tensor`: under an empty
                        // module named after the node.
                        None => {
                            let holder = names.attrs.module_set(&name, "nn.Module()");
                            if !lines.contains(&holder) {
                                lines.push(holder);
                            }
                            lines.push(format!(
                                "{}.{tensor} = {parameter}",
                                names.attrs.module_get(&name)
                            ));
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
                vec![names.attrs.module_set(
                    &name,
                    &format!("{ty}({})", self.python_args(args, false, names).join(", ")),
                )]
            }
            NodeKind::Nested(nested) => {
                let construct = |nested: &crate::ir::Nested, class: String| {
                    let mut args: Vec<String> = nested
                        .generics
                        .iter()
                        .flat_map(|g| g.args.iter())
                        .map(|a| python_number(&quote!(#a).to_string()))
                        .collect();
                    args.extend(self.python_args(&nested.sizes, false, names));
                    format!("{class}({})", args.join(", "))
                };
                let first = construct(nested, nested_class(k));
                let mut lines = vec![match &nested.stack {
                    None => names.attrs.module_set(&name, &first),
                    Some((depth, upper)) => {
                        let depth = self
                            .python_width(depth, false, names)
                            .unwrap_or_else(|| "None  # nngraph: a depth not written in sizes".into());
                        let upper = construct(upper, format!("\u{1}R{k}\u{1}"));
                        names.attrs.module_set(
                            &name,
                            &format!("_Stack({depth}, lambda: {first}, lambda: {upper})"),
                        )
                    }
                }];
                if n.params.iter().any(|(tensor, _)| tensor == "*") {
                    lines.push(format!("_inline(self, \"{}\")", names.attrs.key(&name)));
                }
                lines
            }
            NodeKind::Output { .. } => Vec::new(),
        }
    }

    /// `self.x2h.weight`, or the renamed parameter (`self.weight_ih`).
    fn python_param(&self, n: &Node, tensor: &str, names: &Names) -> String {
        match n.params.iter().find(|(t, _)| t == tensor) {
            Some((_, full)) => names.attrs.param_get(full),
            None => format!("{}.{tensor}", names.attrs.module_get(&n.name.to_string())),
        }
    }

    /// The expression computing node `k` in `forward`.
    fn python_call(&self, k: usize, names: &Names) -> String {
        let g = self.g;
        let n = &g.nodes[k];
        let ins: Vec<String> = n
            .inputs
            .iter()
            .map(|&s| match s {
                Source::Input(i) => names.locals.get(&g.inputs[i].name.to_string()),
                Source::Node(j) => names.locals.get(&g.nodes[j].name.to_string()),
            })
            .collect();
        let name = n.name.to_string();
        match &n.kind {
            NodeKind::Builtin { layer, args } => {
                let args = self.python_args(args, true, names);
                let x = &ins[0];
                match (layer.rule, layer.name) {
                    (Rule::Linear, _) if !n.params.is_empty() => {
                        let (w, b) = (
                            self.python_param(n, "weight", names),
                            self.python_param(n, "bias", names),
                        );
                        format!("F.linear({x}, {w}, {b})")
                    }
                    (Rule::Embedding, _) if !n.params.is_empty() => {
                        format!("F.embedding({x}, {})", self.python_param(n, "weight", names))
                    }
                    (Rule::Linear | Rule::Embedding, _) | (_, "Dropout") => {
                        format!("{}({x})", names.attrs.module_get(&name))
                    }
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
            NodeKind::Custom { .. } => format!("{}({})", names.attrs.module_get(&name), ins.join(", ")),
            NodeKind::Nested(_) => {
                // Inputs the call named go by the nested graph's names, which
                // `_call` orders by the class's INPUTS (its locals may differ).
                let mut named: Vec<Option<String>> = vec![None; ins.len()];
                for a in g.atoms.iter().filter(|a| a.host == k && !a.output) {
                    if let (Select::Name(input), Some(slot)) = (&a.select, a.slot) {
                        named[slot] = Some(input.to_string());
                    }
                }
                if named.iter().all(Option::is_none) {
                    return format!("{}({})", names.attrs.module_get(&name), ins.join(", "));
                }
                let (mut positional, mut by_name) = (Vec::new(), Vec::new());
                for (v, input) in ins.iter().zip(named) {
                    match input {
                        Some(input) => by_name.push(format!("\"{input}\": {v}")),
                        None => positional.push(v.clone()),
                    }
                }
                format!(
                    "_call({}, [{}], {{{}}})",
                    names.attrs.module_get(&name),
                    positional.join(", "),
                    by_name.join(", ")
                )
            }
            NodeKind::Output { host, select } => {
                let host_name = g.nodes[*host].name.to_string();
                let which = match select {
                    Select::Index(j) => j.to_string(),
                    Select::Name(o) => format!("\"{o}\""),
                };
                format!(
                    "_take({}, {}, {which})",
                    names.attrs.module_get(&host_name),
                    names.locals.get(&host_name)
                )
            }
        }
    }
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
