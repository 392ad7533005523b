//! The runtime of nngraph: everything a graph declared with `graph!` runs on.
//!
//! - [`layers`]: the built-in layers, forward and backward side by side, and
//!   the [`Layer`] trait they (and user layers) implement.
//! - [`criteria`]: losses with their gradients.
//! - [`cells`]: LSTM and GRU cells, declared with `graph!`.
//! - [`Graph`] and [`Tape`]: the interface every generated graph implements,
//!   on which the rest of the runtime is generic.
//! - [`ParamStore`]: parameters and gradients in two flat buffers, with
//!   named views (torch's `getParameters()`).
//! - [`Tape`] and [`Feed`]: the record of a pass (one step, or a whole
//!   sequence with one set of weights, and backpropagation through time),
//!   and what a pass is given; the engine runs both by one [`Plan`].
//! - [`optim`]: SGD, Adam, RMSProp and gradient clipping on the flat buffers.
//! - [`ParamStore::save`] and [`ParamStore::load`]: parameters by name, in
//!   safetensors.
//! - [`GradCheck`]: finite-difference gradient checking with a report.
//!
//! Most users depend on the `nngraph` facade and write `use nngraph::prelude::*`.
//! Without it, the macro is `graph_macros::graph` and generated code names
//! this crate `::graph_runtime`:
//!
//! ```
//! use graph_macros::graph;
//! use graph_runtime::prelude::*;
//!
//! graph! {
//!     /// An Elman cell with its loss: the target is read by the loss only.
//!     #[recurrent(h = new_h)]
//!     pub Tagger(x: [3], h: [8], tag: usize) -> (loss, new_h) {
//!         new_h = Tanh()(CAdd()(Linear(3, 8)(x), Linear(8, 8)(h)));
//!         loss = CrossEntropy()(Linear(8, 4)(new_h), tag);
//!     }
//! }
//!
//! let mut g = Tagger::<f32>::new(&mut StdRng::seed_from_u64(0));
//! let mut tape = g.tape();
//! let xs = Array3::from_shape_fn((10, 2, 3), |(t, b, j)| (t + b + j) as f32 * 0.1);
//! let tags = Array2::from_shape_fn((10, 2), |(t, b)| (t + b) % 4);
//! // A pass over 10 steps from a zero state, BPTT from the mean loss.
//! g.forward_seq(&mut tape, &xs, &Absent, &tags)?;
//! let loss = g.backward_loss(&mut tape, Reduction::Mean)?;
//! Sgd::new(0.1).step(g.store_mut())?;
//! g.zero_grad();
//! // Without targets: the states are computed, the loss is not.
//! let out = g.forward_seq(&mut tape, &xs, &Absent, &Absent)?;
//! assert!(loss.is_finite() && out.loss.iter().all(|l| l.is_nan()));
//! # Ok::<(), graph_runtime::Error>(())
//! ```

#![warn(missing_docs)]

// The cells in `cells` are declared with `graph!`, whose code names this
// crate `::graph_runtime`.
extern crate self as graph_runtime;

pub mod cells;
mod checkpoint;
mod const_message;
pub mod criteria;
mod describe;
mod engine;
mod error;
mod feed;
mod float;
mod gradcheck;
mod graph;
mod instance;
#[doc(hidden)]
pub mod kernels;
mod layer;
pub mod layers;
pub mod optim;
mod params;
mod pytorch;
mod spec;
mod stack;
mod summary;
mod svg;
mod tape;

pub use checkpoint::LoadOptions;
pub use engine::plan::Plan;
pub use error::{Error, Pass, Result, Shape};
pub use feed::{Absent, AsBatch, AsIdSeq, AsIds, AsSeq, Feed};
pub use float::Float;
pub use gradcheck::{GradCheck, GradReport, GraphObjective, Objective, StepLoss, VariableReport, Worst};
pub use graph::{Graph, GraphCore, Visit};
pub use kernels::pool::{set_threads, threads, with_threads};
pub use layer::{Backward, Forward, Input, Layer, LayerResult, ParamShape};
pub use params::{ParamSpec, ParamStore};
pub use spec::{Fusion, GraphSpec, InputSpec, LstmGates, NodeKind, NodeSpec, OutputSpec};
pub use stack::Stack;
pub use tape::Tape;

/// The crates generated code and users need, re-exported so that versions agree.
pub use ndarray;
pub use rand;

/// Everything a user of generated graphs usually needs.
pub mod prelude {
    pub use crate::criteria::{Bce, ClassNll, CrossEntropy, Mse, Reduction};
    pub use crate::layers::*;
    pub use crate::optim::{clip_grad_norm, clip_grad_value, Adam, RmsProp, Sgd};
    pub use crate::{
        Absent, AsBatch, AsIdSeq, AsIds, AsSeq, Backward, Error, Feed, Float, Forward, GradCheck, GradReport,
        Graph, Input, Layer, LayerResult, ParamShape, ParamSpec, ParamStore, Tape,
    };
    pub use ndarray::{array, Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis};
    pub use rand::{rngs::StdRng, SeedableRng};
}

/// Items used by code that `graph!` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::const_message::{names_in, width_at, Message};

    /// Implemented by no type: the bound of the sequence methods a graph
    /// without `#[recurrent]` has, so that calling them says why they
    /// cannot run instead of "no method".
    #[diagnostic::on_unimplemented(
        message = "`{Self}` has no sequence API: it declares no `#[recurrent]` state",
        label = "`forward_seq` and `backward_seq` run graphs that carry a state from step to step",
        note = "to carry a state, declare it on the graph: `#[recurrent(h = h_next)]`; to run a graph without state on every step at once, give `forward` all T·B rows, `(T * B, width)`"
    )]
    pub trait Recurrent {
        /// Never called: no type implements the trait.
        fn never() -> !;
    }
    pub use crate::feed::to_feed;
    pub use crate::instance::{init_graph, layer_output_width, param_layout};

    /// The width of input `i` of a nested graph (0 past its inputs, which
    /// generated code reports by name).
    pub fn input_width<F: crate::Float, G: crate::Graph<F>>(graph: &G, i: usize) -> usize {
        if i < G::SPEC.inputs.len() {
            graph.parts().1.widths[i]
        } else {
            0
        }
    }

    /// The width of output `o` of a nested graph (0 past its outputs).
    pub fn output_width<F: crate::Float, G: crate::Graph<F>>(graph: &G, o: usize) -> usize {
        if o < G::SPEC.outputs.len() {
            graph.parts().1.widths[G::SPEC.output_slot(o)]
        } else {
            0
        }
    }

    /// A layer that can be cloned: what a graph's layers must be for the
    /// graph to be `Clone`. A bound that names `F` and has no supertraits,
    /// so that a type that is not a layer makes the graph not `Clone`
    /// instead of an error here (it is reported once, where it is used).
    pub trait CloneLayer<F> {
        /// A copy of the layer.
        fn clone_layer(&self) -> Self
        where
            Self: Sized;
    }
    impl<F: crate::Float, L: crate::Layer<F> + Clone> CloneLayer<F> for L {
        fn clone_layer(&self) -> Self {
            self.clone()
        }
    }
    pub use crate::spec::{
        input_index, output_index, position, Fusion, InputSpec, LstmGates, NodeKind, NodeSpec, OutputSpec,
    };
    pub use core::marker::PhantomData;
    pub use std::vec;
    pub use std::vec::Vec;
}
