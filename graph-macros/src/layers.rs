//! The catalogue of built-in layers the macro knows: their constructor
//! arguments, how many inputs they take and their shape rule. Every layer
//! is called the same way, through `graph_runtime::Layer`.
//!
//! The runtime type of each layer has the same name under
//! `graph_runtime::layers`; the rule here must agree with its
//! `Layer::output_width` (the runtime's tests check that).

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

/// What a constructor argument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A width: a positive integer or an expression of the graph's sizes.
    Width,
    /// An offset: like a width, but may be zero.
    Offset,
    /// A number, passed to the layer as the graph's float type.
    Float,
    /// A probability: a number in `[0, 1)`.
    Probability,
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
    /// Inputs side by side: the output width is the sum.
    Concat,
    /// `Narrow(offset, length)`: columns `offset..offset + length`.
    Narrow,
    /// `Embedding(vocab, dim)` of integer ids: the output is `dim` wide.
    Embedding,
    /// A criterion of a prediction and a target of the prediction's width:
    /// one loss per sample.
    Criterion,
    /// A criterion of a prediction and integer class ids: one loss per sample.
    ClassCriterion,
}

/// A built-in layer.
#[derive(Debug)]
pub struct LayerDef {
    /// The name written in `graph!` and of the runtime type.
    pub name: &'static str,
    /// Names and kinds of the constructor arguments.
    pub args: &'static [(&'static str, ArgKind)],
    pub arity: Arity,
    pub rule: Rule,
}

impl LayerDef {
    /// Names of the layer's parameter tensors, as the runtime's
    /// `Layer::param_shapes` gives them (and as torch names them).
    pub fn params(&self) -> &'static [&'static str] {
        match self.rule {
            Rule::Linear => &["weight", "bias"],
            Rule::Embedding => &["weight"],
            _ => &[],
        }
    }
}

const fn def(
    name: &'static str,
    args: &'static [(&'static str, ArgKind)],
    arity: Arity,
    rule: Rule,
) -> LayerDef {
    LayerDef {
        name,
        args,
        arity,
        rule,
    }
}

const ONE: Arity = Arity::Exactly(1);
const TWO: Arity = Arity::Exactly(2);
const W: ArgKind = ArgKind::Width;

pub const CATALOG: &[LayerDef] = &[
    def("Linear", &[("in", W), ("out", W)], ONE, Rule::Linear),
    def("Identity", &[], ONE, Rule::SameAsInput),
    def("Tanh", &[], ONE, Rule::SameAsInput),
    def("Sigmoid", &[], ONE, Rule::SameAsInput),
    def("ReLU", &[], ONE, Rule::SameAsInput),
    def("SoftMax", &[], ONE, Rule::SameAsInput),
    def("LogSoftMax", &[], ONE, Rule::SameAsInput),
    def("CAdd", &[], Arity::AtLeast(2), Rule::ElementWise),
    def("CSub", &[], TWO, Rule::ElementWise),
    def("CMul", &[], Arity::AtLeast(2), Rule::ElementWise),
    def("CDiv", &[], TWO, Rule::ElementWise),
    def(
        "MulConstant",
        &[("factor", ArgKind::Float)],
        ONE,
        Rule::SameAsInput,
    ),
    def(
        "AddConstant",
        &[("constant", ArgKind::Float)],
        ONE,
        Rule::SameAsInput,
    ),
    def("Concat", &[], Arity::AtLeast(2), Rule::Concat),
    def(
        "Narrow",
        &[("offset", ArgKind::Offset), ("length", W)],
        ONE,
        Rule::Narrow,
    ),
    def("Dropout", &[("p", ArgKind::Probability)], ONE, Rule::SameAsInput),
    def("Embedding", &[("vocab", W), ("dim", W)], ONE, Rule::Embedding),
    def("Mse", &[], TWO, Rule::Criterion),
    def("Bce", &[], TWO, Rule::Criterion),
    def("ClassNll", &[], TWO, Rule::ClassCriterion),
    def("CrossEntropy", &[], TWO, Rule::ClassCriterion),
];

/// `Split(n)`: not a layer of its own; `(a, b, ..) = Split(n)(x);` declares
/// `n` `Narrow` nodes of `width / n` columns each.
pub const SPLIT: &str = "Split";

/// Other spellings users bring from torch7 and PyTorch, and the layer meant.
pub const ALIASES: &[(&str, &str)] = &[
    ("CAddTable", "CAdd"),
    ("CSubTable", "CSub"),
    ("CMulTable", "CMul"),
    ("CDivTable", "CDiv"),
    ("JoinTable", "Concat"),
    ("SplitTable", "Split"),
    ("LookupTable", "Embedding"),
    ("Relu", "ReLU"),
    ("Softmax", "SoftMax"),
    ("LogSoftmax", "LogSoftMax"),
    ("Dense", "Linear"),
    ("MSECriterion", "Mse"),
    ("MSE", "Mse"),
    ("BCECriterion", "Bce"),
    ("BCE", "Bce"),
    ("ClassNLLCriterion", "ClassNll"),
    ("NLLLoss", "ClassNll"),
    ("CrossEntropyCriterion", "CrossEntropy"),
];

pub fn lookup(name: &str) -> Option<&'static LayerDef> {
    CATALOG.iter().find(|def| def.name == name)
}

/// snake_case of a layer name, for anonymous node names: `CAdd` -> `cadd`,
/// `ReLU` -> `relu`, `LogSoftMax` -> `logsoftmax`.
pub fn snake(name: &str) -> String {
    name.to_ascii_lowercase()
}
