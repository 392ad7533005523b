//! The checked graph: what `check` produces and `expand` reads. Every name
//! is resolved, every width known (perhaps as an expression of sizes), nodes
//! are in declaration order with an evaluation order beside them, and each
//! node says in one place what computes it ([`NodeKind`]).

use crate::layers::LayerDef;
use crate::width::Width;
use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Ident, Visibility};

/// A whole invocation, checked.
pub struct Checked {
    pub runtime: TokenStream,
    pub graphs: Vec<Graph>,
    /// Graphs with mistakes, as their interface only.
    pub stubs: Vec<Stub>,
}

/// A graph whose declaration has mistakes, kept as its interface only: the
/// struct, its constructors, `forward`/`backward` with the declared inputs
/// and outputs, and the `Graph` impl, so that code using the graph reports
/// nothing but the mistakes themselves (as thiserror's fallback does).
pub struct Stub {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub const_sizes: Vec<Ident>,
    pub runtime_sizes: Vec<Ident>,
    /// Input names, and whether each takes ids; each name once.
    pub inputs: Vec<(Ident, bool)>,
    /// Output names, each once.
    pub outputs: Vec<Ident>,
    /// The inputs named as states by `#[recurrent]` (empty: no sequence API).
    pub states: Vec<Ident>,
    /// Whether its constructors would return `Result`.
    pub fallible: bool,
    /// The nested graphs it calls, as written (`path<generics>`): named by
    /// the stub as the real expansion would, so that the user's imports of
    /// them are used and do not warn.
    pub nested: Vec<(syn::Path, Option<syn::AngleBracketedGenericArguments>)>,
    /// Nested graphs given their sizes wrongly (a reported mistake): named
    /// by a `use` only, since a type with those sizes is a second error.
    pub misnamed: Vec<syn::Path>,
}

/// One graph, checked: every name resolved, every width known (perhaps as an
/// expression of sizes), nodes in an order where each comes after its inputs.
pub struct Graph {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub const_sizes: Vec<Ident>,
    pub runtime_sizes: Vec<Ident>,
    pub inputs: Vec<Input>,
    /// In declaration order (the order of the parameters).
    pub nodes: Vec<Node>,
    /// Node indices in evaluation order.
    pub order: Vec<usize>,
    /// Output name (spanned where listed) and node index.
    pub outputs: Vec<(Ident, usize)>,
    /// `(input index, output index)` of each `#[recurrent]` pair.
    pub recurrent: Vec<(usize, usize)>,
    /// Claims about sizes the macro could not decide.
    pub deferred: Vec<Deferred>,
    /// `(d, u)`: deferred claim `d` is not checked when `u` fails (it would
    /// report the same mistake again).
    pub moot: Vec<(usize, usize)>,
    /// Output widths of user layers, known when the graph is built: node
    /// index and the width's atom name.
    pub derived: Vec<(usize, String)>,
    /// Widths of nested graphs' inputs and outputs.
    pub atoms: Vec<Atom>,
    /// Widths that are another width divided by a number (the parts of a
    /// `Split` of a width the macro cannot divide): atom name, numerator,
    /// divisor. A `Deferred` claim checks the division is exact.
    pub quotients: Vec<(String, Width, i64)>,
}

/// A width of a nested graph's input or output, standing in a polynomial.
pub struct Atom {
    /// The atom's name in polynomials and messages: `host.in[0]`.
    pub name: String,
    /// The host node.
    pub host: usize,
    /// An output (true) or an input (false).
    pub output: bool,
    pub select: Select,
    /// For an input: its position among the arguments of the call.
    pub slot: Option<usize>,
    /// Of a stack's upper layers' graph (else of its first layer's, or of
    /// the nested graph).
    pub upper: bool,
}

/// Which input or output of a nested graph.
#[derive(Clone)]
pub enum Select {
    Index(usize),
    Name(Ident),
}

/// A nested graph node's type and sizes.
pub struct Nested {
    pub path: syn::Path,
    pub generics: Option<syn::AngleBracketedGenericArguments>,
    pub sizes: Vec<Arg>,
    /// Widths read when the outer graph is built (`Graph[..](..)`).
    pub dynamic: bool,
    /// For a stack: its depth and the graph of its upper layers (this one
    /// being the first layer's).
    pub stack: Option<(Width, Box<Nested>)>,
}

pub struct Input {
    pub name: Ident,
    /// `None` for an ids input (`name: usize`).
    pub width: Option<Width>,
}

pub struct Node {
    /// The user's name, or a generated one spanned on the nested call.
    pub name: Ident,
    /// The name messages give it: the statement's, which the user wrote.
    pub statement: Ident,
    pub kind: NodeKind,
    pub inputs: Vec<Source>,
    pub width: Width,
    /// Source line of the node's name (0 when unknown), for run-time messages.
    pub line: u32,
    /// `(tensor, full name)` of each parameter tensor renamed by `#[params]`.
    pub params: Vec<(String, String)>,
}

/// What computes a node.
pub enum NodeKind {
    /// A built-in layer, with its checked arguments.
    Builtin {
        layer: &'static LayerDef,
        args: Vec<Arg>,
    },
    /// A user type implementing `graph_runtime::Layer`, built with
    /// `Type::new(args)`; its output width is known when the graph is built.
    Custom { path: syn::Path, args: Vec<Arg> },
    /// Another graph, run on its own tape; its outputs are `Output` nodes.
    Nested(Nested),
    /// Output `select` of the nested graph at node `host`.
    Output { host: usize, select: Select },
}

impl Node {
    pub fn nested(&self) -> Option<&Nested> {
        match &self.kind {
            NodeKind::Nested(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the node holds a layer or a graph (every kind but `Output`).
    pub fn holds_layer(&self) -> bool {
        !matches!(self.kind, NodeKind::Output { .. })
    }
}

/// A checked constructor argument.
pub enum Arg {
    Width(Width),
    Float(Box<syn::Expr>),
    /// An argument of a user layer that is not a width, passed as written.
    Expr(Box<syn::Expr>),
}

/// Where a node's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Input(usize),
    Node(usize),
}

/// A claim checked by generated code: by a const assertion when every size
/// involved is a const generic, by the constructor otherwise.
pub struct Deferred {
    pub claim: Claim,
    /// The message if the claim is false, naming the node and the widths.
    pub message: String,
    pub span: Span,
}

pub enum Claim {
    Equal(Width, Width),
    AtMost(Width, Width),
    /// `width` is a multiple of `by`.
    Divisible {
        width: Width,
        by: i64,
    },
    /// A nested graph (host node) has `n` inputs, or `n` outputs (for a
    /// stack: its first layer's graph, or its upper layers' when `upper`).
    Count {
        host: usize,
        outputs: bool,
        n: usize,
        upper: bool,
    },
    /// A nested graph has an output (or an input) of this name.
    Has {
        host: usize,
        output: bool,
        name: String,
    },
}
