//! Run-time errors: what went wrong, which graph, input, node or parameter,
//! and both shapes.

use std::fmt;

/// A `(rows, columns)` or general shape, printed the way users write it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<usize>);

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.0.len() == 1 {
            write!(f, ",")?;
        }
        write!(f, ")")
    }
}

impl From<&[usize]> for Shape {
    fn from(dims: &[usize]) -> Self {
        Shape(dims.to_vec())
    }
}

/// Everything that can go wrong at run time.
///
/// Every variant names the graph and the input, output, node or parameter
/// involved, and where shapes are concerned both the expected and the found
/// shape.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value handed to `forward` has the wrong number of columns.
    #[error("{graph}: input `{input}` has width {found}, but the graph declares `{input}: [{expected}]`")]
    InputWidth {
        /// The graph (or criterion) the error is about.
        graph: String,
        /// The input's name.
        input: String,
        /// What the graph declares.
        expected: usize,
        /// What was handed in.
        found: usize,
    },
    /// Two inputs of one call disagree on the batch size (number of rows).
    #[error(
        "{graph}: input `{input}` has batch size {found}, but `{first}` has batch size {expected}; \
         all inputs of one call must have the same number of rows"
    )]
    BatchMismatch {
        /// The graph (or criterion) the error is about.
        graph: String,
        /// The first input, whose batch size the others must have.
        first: String,
        /// What the graph declares.
        expected: usize,
        /// The input's name.
        input: String,
        /// What was handed in.
        found: usize,
    },
    /// A gradient handed to `backward` does not have its output's shape.
    #[error(
        "{graph}: the gradient for output `{output}` has shape {found}, but `{output}` has shape {expected}"
    )]
    GradShape {
        /// The graph (or criterion) the error is about.
        graph: String,
        /// The output's name.
        output: String,
        /// What the graph declares.
        expected: Shape,
        /// What was handed in.
        found: Shape,
    },
    /// `backward` was called on a tape that no `forward` has filled.
    #[error("{graph}: backward called on a tape that holds no forward pass; call forward first")]
    NoForward {
        /// The graph.
        graph: String,
    },
    /// The wrong number of values was passed to a slice-based call.
    #[error("{graph}: expected {expected} {what}, got {found}")]
    Arity {
        /// The graph (or criterion) the error is about.
        graph: String,
        /// What was counted.
        what: &'static str,
        /// What the graph declares.
        expected: usize,
        /// What was handed in.
        found: usize,
    },
    /// No parameter has the given name.
    #[error("{graph}: no parameter named `{name}`{hint}")]
    UnknownParam {
        /// The graph (or criterion) the error is about.
        graph: String,
        /// The name asked for.
        name: String,
        /// `; did you mean ...?` or a list of the names, ready to print.
        hint: String,
    },
    /// A buffer handed in has the wrong length or shape.
    #[error("{context}: expected shape {expected}, found {found}")]
    ShapeMismatch {
        /// What the buffer is for.
        context: String,
        /// What the graph declares.
        expected: Shape,
        /// What was handed in.
        found: Shape,
    },
    /// Checked mode found a NaN or an infinity.
    #[error(
        "{graph}: {}node `{node}` ({file}:{line}) holds {value} at [{}, {}]{}",
        match pass {
            Pass::Forward => "the output of ",
            Pass::Backward => "the gradient arriving at ",
            Pass::Parameters => "the parameter gradient of ",
        },
        index.0, index.1,
        match step { Some(t) => format!(" at step {t}"), None => String::new() }
    )]
    NonFinite {
        /// The graph (or criterion) the error is about.
        graph: String,
        /// The node's name.
        node: String,
        /// Where the node is declared.
        file: String,
        /// The line where the node is declared.
        line: u32,
        /// Forward or backward.
        pass: Pass,
        /// The step of a sequence, if any.
        step: Option<usize>,
        /// `(row, column)` of the first offending value.
        index: (usize, usize),
        /// The offending value.
        value: f64,
    },
    /// An input holds something the graph cannot take (an id outside a
    /// table, values where ids are expected, ...).
    #[error("{graph}: {message}")]
    InvalidInput {
        /// The graph.
        graph: String,
        /// What is wrong, in words.
        message: String,
    },
    /// A node failed: an id outside an Embedding table, a class id outside
    /// the classes, a value outside a criterion's domain, a user layer's
    /// own error.
    #[error("{graph}: node `{node}` ({file}:{line}): {message}")]
    Node {
        /// The graph.
        graph: String,
        /// The node's name.
        node: String,
        /// Where the node is declared.
        file: String,
        /// The line where the node is declared.
        line: u32,
        /// What is wrong, in words.
        message: String,
    },
    /// The sizes given to a size-parameterised graph do not fit its nodes.
    #[error("{graph}: {message}")]
    Sizes {
        /// The graph.
        graph: String,
        /// What is wrong, in words.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{graph}: cannot {action} {path}: {message}")]
    Io {
        /// The graph.
        graph: String,
        /// What was being done: `read`, `write`.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The system's reason.
        message: String,
    },
    /// A parameter file cannot be read or does not fit the graph.
    #[error("{graph}: {message}")]
    Checkpoint {
        /// The graph.
        graph: String,
        /// What is wrong, in words.
        message: String,
    },
    /// A sequence handed to a graph is malformed.
    #[error("{graph}: {message}")]
    Sequence {
        /// The graph.
        graph: String,
        /// What is wrong, in words.
        message: String,
    },
    /// A setting or a state that cannot be right: an optimizer's learning
    /// rate that is NaN, a clipping threshold below 0, moments restored
    /// into a model of another layout, a thread count of 0.
    #[error("{owner}: {message}")]
    Setting {
        /// What it is set on: `Adam`, `clip_grad_norm`, `set_threads`.
        owner: String,
        /// What is wrong, with the value given.
        message: String,
    },
}

/// Which pass a checked-mode error comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// The forward pass: a node's output.
    Forward,
    /// The backward pass: the gradient of the loss with respect to a node's output.
    Backward,
    /// The backward pass: the gradient of the loss with respect to a node's
    /// parameters (the index is `[0, i]` in the node's slice of the buffer).
    Parameters,
}

impl Error {
    /// Attaches the step of a sequence to an error of a node: a checked-mode
    /// error's `step`, the start of a layer's message (`at step 3: ...`).
    pub fn at_step(mut self, t: usize) -> Self {
        match &mut self {
            Error::NonFinite { step, .. } => *step = Some(t),
            Error::Node { message, .. } if !message.starts_with("at step ") => {
                *message = format!("at step {t}: {message}");
            }
            _ => {}
        }
        self
    }
}

/// Shorthand for `Result<T, nngraph::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
