//! The catalogue of built-in layers the macro knows: their constructor
//! arguments, how many inputs they take and their shape rule.
//!
//! The runtime type of each layer has the same name under
//! `graph_runtime::layers`; the rule here must agree with its
//! `Layer::output_width` (a test in the root crate checks that).

/// How many inputs a layer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

impl Arity {
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Arity::Exactly(1) => "exactly one input".to_string(),
            Arity::Exactly(k) => format!("exactly {k} inputs"),
            Arity::AtLeast(k) => format!("{k} or more inputs"),
        }
    }
}

/// How a layer's output width follows from its arguments and input widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `Linear(in, out)`: the input must be `in` wide; the output is `out`.
    Linear,
    /// One input; the output has its width.
    SameAsInput,
    /// Several inputs of one width; the output has that width.
    ElementWise,
}

/// A built-in layer.
#[derive(Debug)]
pub struct LayerDef {
    /// The name written in `graph!` and of the runtime type.
    pub name: &'static str,
    /// Names of the constructor arguments, all widths.
    pub args: &'static [&'static str],
    pub arity: Arity,
    pub rule: Rule,
}

pub const CATALOG: &[LayerDef] = &[
    LayerDef {
        name: "Linear",
        args: &["in", "out"],
        arity: Arity::Exactly(1),
        rule: Rule::Linear,
    },
    LayerDef {
        name: "Identity",
        args: &[],
        arity: Arity::Exactly(1),
        rule: Rule::SameAsInput,
    },
    LayerDef {
        name: "Tanh",
        args: &[],
        arity: Arity::Exactly(1),
        rule: Rule::SameAsInput,
    },
    LayerDef {
        name: "Sigmoid",
        args: &[],
        arity: Arity::Exactly(1),
        rule: Rule::SameAsInput,
    },
    LayerDef {
        name: "ReLU",
        args: &[],
        arity: Arity::Exactly(1),
        rule: Rule::SameAsInput,
    },
    LayerDef {
        name: "CAdd",
        args: &[],
        arity: Arity::AtLeast(2),
        rule: Rule::ElementWise,
    },
    LayerDef {
        name: "CSub",
        args: &[],
        arity: Arity::Exactly(2),
        rule: Rule::ElementWise,
    },
    LayerDef {
        name: "CMul",
        args: &[],
        arity: Arity::AtLeast(2),
        rule: Rule::ElementWise,
    },
];

/// Other spellings users bring from torch7 and PyTorch, and the layer meant.
pub const ALIASES: &[(&str, &str)] = &[
    ("CAddTable", "CAdd"),
    ("CSubTable", "CSub"),
    ("CMulTable", "CMul"),
    ("Relu", "ReLU"),
    ("Dense", "Linear"),
];

pub fn lookup(name: &str) -> Option<&'static LayerDef> {
    CATALOG.iter().find(|def| def.name == name)
}

/// snake_case of a layer name, for anonymous node names: `CAdd` -> `cadd`,
/// `ReLU` -> `relu`, `LogSoftMax` -> `logsoftmax`.
pub fn snake(name: &str) -> String {
    name.to_ascii_lowercase()
}
