//! # nngraph
//!
//! Declare graph-shaped neural modules in Rust source, the way Torch7's
//! nngraph did (`h = nn.Tanh()(nn.CAddTable()({x2h, h2h}))`), and get
//! statically typed forward and backward passes, checked at compile time.
//!
//! ```
//! use nngraph::prelude::*;
//!
//! graph! {
//!     /// One step of the seed notebook's RNN.
//!     pub RnnCell(x: [2], h: [4]) -> (y, new_h) {
//!         x2h   = Linear(2, 4)(x);
//!         h2h   = Linear(4, 4)(h);
//!         new_h = Tanh()(CAdd()(x2h, h2h));
//!         y     = Sigmoid()(Linear(4, 1)(new_h));
//!     }
//! }
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut cell = RnnCell::<f64>::new(&mut rng);
//! let mut tape = cell.tape();
//! let out = cell.forward(&mut tape, &[0.5, -1.0], &[0.0; 4])?;
//! assert_eq!(out.y.dim(), (1, 1));
//! let grads = cell.backward(&mut tape, &[1.0], &[0.0; 4])?;
//! assert_eq!(grads.h.dim(), (1, 4));
//! assert_eq!(cell.param("x2h.weight")?.shape(), &[4, 2]);
//! # Ok::<(), nngraph::Error>(())
//! ```
//!
//! The crate is a facade: the macro lives in `graph-macros`, everything it
//! runs on in `graph-runtime` (re-exported as [`runtime`]).

pub use graph_runtime as runtime;
pub use graph_runtime::{
    cells, criteria, layers, AsBatch, AsIds, Error, Float, Graph, Input, Layer, ParamShape, ParamSpec,
    ParamStore, Result, Tape,
};
pub use graph_runtime::{ndarray, rand};

#[doc(hidden)]
pub use graph_macros as __macros;

/// Declares one or more graphs.
///
/// ```text
/// graph! {
///     /// doc comments and attributes carry over to the struct
///     #[recurrent(h = new_h)]          // optional: new_h feeds h at the next step
///     pub Name(input: [width], ...) -> (output, ...) {
///         node = Layer(args)(inputs);  // one node per statement
///         ...
///     }
///     ...                              // more graphs
/// }
/// ```
///
/// - Inputs are declared with their per-sample width; the batch dimension is
///   implicit. Outputs are node names.
/// - Calls nest: `y = Sigmoid()(Linear(4, 1)(h))` declares an anonymous node
///   `y_linear` (statement name, `_`, layer in lower case; `_2`, `_3`, ... if
///   a statement nests one layer twice). Its parameters are `y_linear.weight`
///   and `y_linear.bias`.
/// - Nodes may be declared in any order; the graph must be acyclic.
/// - Parameters sit in one flat buffer in declaration order (nested calls
///   before the node that uses them), torch layout.
///
/// Layers: `Linear(in, out)`, `Identity()`, `Tanh()`, `Sigmoid()`, `ReLU()`,
/// `CAdd()` (two or more inputs), `CSub()`, `CMul()` (two or more inputs).
///
/// Every mistake (width mismatch, unknown name or layer, wrong number of
/// arguments or inputs, duplicate, cycle, unused input or node) is a compile
/// error pointing at the offending token.
///
/// For a graph `Name` the macro generates `Name<F = f32>` with `new(&mut rng)`,
/// `zeros()`, `tape()`, `forward(&mut tape, inputs..)`, `backward(&mut tape,
/// output grads..)`, flat and named parameter access, `zero_grad()`,
/// `training()`/`evaluate()`, `to_dot()` and consts describing the graph; and
/// the companion types `NameTape`, `NameValues`, `NameOutputs`,
/// `NameInputGrads` and `NameLayers`.
#[macro_export]
macro_rules! graph {
    ($($body:tt)*) => {
        $crate::__macros::graph! { #![crate = $crate::runtime] $($body)* }
    };
}

/// `use nngraph::prelude::*;` brings the macro, the layers, the criteria and
/// the traits generated graphs implement.
pub mod prelude {
    pub use crate::graph;
    pub use graph_runtime::prelude::*;
}
