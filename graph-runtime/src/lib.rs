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
//! - [`SeqTape`] and [`Unroll`]: a recurrent graph over a sequence with
//!   shared weights, and backpropagation through time, by the macro's plan
//!   (`Unroll` is the same path with a per-step loss closure).
//! - [`optim`]: SGD, Adam, RMSProp and gradient clipping on the flat buffers.
//! - [`ParamStore::save`] and [`ParamStore::load`]: parameters by name, in
//!   safetensors.
//! - [`GradCheck`]: finite-difference gradient checking with a report.
//!
//! Most users depend on the `nngraph` facade and write `use nngraph::prelude::*`.

#![warn(missing_docs)]

// The cells in `cells` are declared with `graph!`, whose code names this
// crate `::graph_runtime`.
extern crate self as graph_runtime;

mod batch;
pub mod cells;
mod checkpoint;
pub mod criteria;
mod error;
mod float;
mod gradcheck;
mod graph;
#[doc(hidden)]
pub mod kernels;
mod layer;
pub mod layers;
pub mod optim;
mod params;
mod pytorch;
mod run;
mod seq;
mod spec;
mod summary;
mod svg;
mod tape;
mod unroll;

pub use batch::{AsBatch, AsIdSequence, AsIds, AsSequence};
pub use checkpoint::LoadOptions;
pub use error::{Error, Pass, Result, Shape};
pub use float::Float;
pub use gradcheck::{GradCheck, GradReport, Objective, SequenceObjective, VariableReport, Worst};
pub use graph::{Graph, GraphCore, Visit};
pub use kernels::pool::{set_threads, threads, with_threads};
pub use layer::{Backward, Forward, Input, Layer, LayerResult, ParamShape};
pub use params::{ParamSpec, ParamStore};
pub use seq::{SeqInput, SeqTape};
pub use spec::{GraphSpec, InputSpec, NodeKind, NodeSpec, OutputSpec, Phase};
pub use tape::Tape;
pub use unroll::{SequenceLoss, Unroll};

/// The crates generated code and users need, re-exported so that versions agree.
pub use ndarray;
pub use rand;

/// Everything a user of generated graphs usually needs.
pub mod prelude {
    pub use crate::criteria::{Bce, ClassNll, CrossEntropy, Mse, Reduction};
    pub use crate::layers::*;
    pub use crate::optim::{clip_grad_norm, clip_grad_value, Adam, RmsProp, Sgd};
    pub use crate::{
        AsBatch, AsIdSequence, AsIds, AsSequence, Backward, Error, Float, Forward, GradCheck, GradReport,
        Graph, Input, Layer, LayerResult, ParamShape, ParamSpec, ParamStore, SeqTape, Tape, Unroll,
    };
    pub use ndarray::{array, Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis};
    pub use rand::{rngs::StdRng, SeedableRng};
}

/// Items used by code that `graph!` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::run::{init_graph, layer_output_width, param_layout};

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
        input_index, output_index, position, InputSpec, NodeKind, NodeSpec, OutputSpec, Phase,
    };
    pub use core::marker::PhantomData;
    pub use std::vec;
    pub use std::vec::Vec;
}
