//! The syntax tree of a `graph!` invocation, as written by the user.
//!
//! Nothing here is checked yet: names may be unknown, widths may not fit.
//! Every node keeps the spans of its tokens so that `check` can point at them.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Ident, Visibility};

/// A whole `graph! { ... }` invocation: one or more graph declarations.
pub struct Invocation {
    /// Path to the runtime crate, given by the `nngraph` facade as
    /// `#![crate = path]`; `::graph_runtime` when absent.
    pub runtime: Option<TokenStream>,
    pub graphs: Vec<GraphDecl>,
}

/// `#[attrs] vis Name(inputs) -> (outputs) { statements }`
pub struct GraphDecl {
    /// Attributes carried over to the generated struct (doc comments, ...).
    pub attrs: Vec<Attribute>,
    /// `#[recurrent(input = output, ...)]` pairs.
    pub recurrent: Vec<RecurrentPair>,
    pub vis: Visibility,
    pub name: Ident,
    /// `Name<const I: usize, const H: usize>`: sizes known at compile time.
    pub const_sizes: Vec<Ident>,
    /// `Name[vocab, hidden]`: sizes given to `new` at run time.
    pub runtime_sizes: Vec<Ident>,
    pub inputs: Vec<InputDecl>,
    /// The output names, each with the span where it is listed.
    pub outputs: Vec<Ident>,
    pub statements: Vec<Statement>,
}

/// `input = output` inside `#[recurrent(...)]`.
pub struct RecurrentPair {
    pub input: Ident,
    pub output: Ident,
}

/// `name: [width]` or `name: usize`
pub struct InputDecl {
    pub name: Ident,
    pub kind: InputKind,
}

pub enum InputKind {
    /// `[width]`: one row of floats per sample.
    Values(Box<syn::Expr>),
    /// `usize`: one integer id per sample (for `Embedding` and class targets).
    Ids,
}

/// `#[params(..)] name = expr;` or `(a, b) = expr;`
pub struct Statement {
    /// `#[params(weight = weight_ih)]`: the node's parameter tensors renamed.
    pub params: Vec<ParamName>,
    /// `#[params(inline)]` on a nested graph or stack: its tensors named as
    /// the outer graph's own, without the node's name.
    pub inline: Option<Ident>,
    pub names: Vec<Ident>,
    pub value: Expr,
}

/// `tensor = name` inside `#[params(..)]`: the node's tensor `tensor` is
/// called `name` in the graph's parameters, instead of `node.tensor`.
pub struct ParamName {
    pub tensor: Ident,
    pub name: Ident,
}

/// The right-hand side of a statement, or an input of a call.
pub enum Expr {
    /// A reference to an input or a node by name.
    Ref(Ident),
    /// `Layer(args)(inputs)`; nested calls are anonymous nodes.
    Call(Call),
    /// `Graph(inputs)`, `Graph<sizes>(inputs)`, `Graph[sizes](inputs)`,
    /// optionally `.output`: another graph used as a node.
    Graph(GraphCall),
}

/// A graph used as a node of another.
pub struct GraphCall {
    /// The graph's type, without generic arguments.
    pub path: syn::Path,
    /// The last segment of `path`.
    pub name: Ident,
    /// `<I, H>`: the graph's const sizes.
    pub generics: Option<syn::AngleBracketedGenericArguments>,
    /// `[vocab, hidden]`: the graph's run-time sizes.
    pub sizes: Vec<syn::Expr>,
    /// Whether `[..]` was written: the graph's widths are then read when the
    /// outer graph is built rather than from its constants.
    pub dynamic: bool,
    pub inputs: Vec<Expr>,
    /// `Graph(x = a, h = b)`: the input each argument goes to, when named.
    pub input_names: Vec<Option<Ident>>,
    pub inputs_span: Span,
    /// `.name`: the one output taken.
    pub output: Option<Ident>,
    /// `Stack(depth, First, Rest)(inputs)`: `depth` layers, the first of
    /// the graph above (`path`, `generics`, `sizes`), the others of `rest`.
    pub stack: Option<Box<StackOf>>,
}

/// What makes a graph call a stack: `Stack(depth, First[..], Rest[..])`.
pub struct StackOf {
    /// The `Stack` keyword.
    pub keyword: Ident,
    /// The number of layers, a width expression in the graph's sizes.
    pub depth: syn::Expr,
    /// The graph of the layers above the first (the first's when not given).
    pub rest: GraphRef,
}

/// A graph named without inputs: `Lstm`, `LstmCell<3, 4>`, `Inner[4]`.
#[derive(Clone)]
pub struct GraphRef {
    pub path: syn::Path,
    pub name: Ident,
    pub generics: Option<syn::AngleBracketedGenericArguments>,
    pub sizes: Vec<syn::Expr>,
    pub dynamic: bool,
}

/// `Layer(args)(inputs)`
pub struct Call {
    /// The layer as written: a built-in name, or a path to a user type.
    pub path: syn::Path,
    /// The last segment of `path`, for names and messages.
    pub layer: Ident,
    pub args: Vec<syn::Expr>,
    /// Span of the `(args)` group.
    pub args_span: Span,
    pub inputs: Vec<Expr>,
    /// Span of the `(inputs)` group.
    pub inputs_span: Span,
}
