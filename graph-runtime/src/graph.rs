//! What every generated graph is, seen from the runtime: the [`Graph`] trait
//! and the per-instance [`GraphCore`].
//!
//! The macro emits only what depends on the graph: its [`GraphSpec`], a
//! struct of layers, constructors, the typed `forward`/`backward` (and for a
//! recurrent graph `forward_seq`/`backward_seq`), and [`Graph::node`], which
//! hands node `k` to a [`Visit`]or. Everything else (parameter access,
//! modes, checkpoints, tapes and passes) is written once here, as the
//! trait's provided methods, each a short call into the module that does
//! the work (`engine` for passes, `instance` for walks over the layers).
//!
//! A call flows like this: [`Graph::forward_feeds`] checks that the tape was
//! made by this graph, checks the feeds and copies them into the tape
//! (`engine::load`), and runs the plan forward (`engine`);
//! [`Graph::backward_feeds`] seeds the output gradients and runs the plan
//! backward.

use crate::criteria::Reduction;
use crate::describe::Description;
use crate::engine::{self, load, plan::Plan};
use crate::error::{Error, Result};
use crate::feed::Feed;
use crate::instance;
use crate::layer::Layer;
use crate::params::{ParamSpec, ParamStore};
use crate::spec::GraphSpec;
use crate::stack::Stack;
use crate::tape::{input_named, output_named, Tape};
use crate::Float;
use ndarray::{ArrayViewD, ArrayViewMutD};
use std::path::Path;

/// The run-time part of a graph that does not depend on its shape: the
/// parameters, the width of every slot, the modes and the Dropout seed.
#[derive(Debug, Clone)]
pub struct GraphCore<F> {
    pub(crate) store: ParamStore<F>,
    pub(crate) widths: Vec<usize>,
    pub(crate) training: bool,
    pub(crate) checked: bool,
    pub(crate) seed: u64,
    /// `set_dropout`: the probability every Dropout node uses instead of
    /// its own.
    pub(crate) dropout: Option<f64>,
    /// The parameter gradients before a checked backward pass, restored if
    /// it fails (kept to reuse its capacity).
    pub(crate) saved_grads: Vec<F>,
}

impl<F: Float> GraphCore<F> {
    /// A core for a graph of this spec, slot widths and parameter store, in
    /// training mode.
    pub fn new(store: ParamStore<F>, widths: Vec<usize>) -> Self {
        GraphCore {
            store,
            widths,
            training: true,
            checked: false,
            seed: 0,
            dropout: None,
            saved_grads: Vec::new(),
        }
    }
}

/// What [`Graph::node`] hands each node to: a layer, or a nested graph.
/// The passes (forward, backward, layout, initialisation) are visitors.
pub trait Visit<F: Float> {
    /// Node `k` is computed by `layer`, with `N` inputs.
    fn layer<L: Layer<F>, const N: usize>(&mut self, k: usize, layer: &L) -> Result<()>;
    /// Node `k` holds the nested graph `graph`, its `index`-th (0 for a
    /// nested graph, the layer for a stack).
    fn nested_at<G: Graph<F>>(&mut self, k: usize, index: usize, graph: &G) -> Result<()>;

    /// Node `k` is the nested graph `graph`.
    fn nested<G: Graph<F>>(&mut self, k: usize, graph: &G) -> Result<()> {
        self.nested_at(k, 0, graph)
    }

    /// Node `k` is a stack of nested graphs: visits each layer, first to
    /// last (the passes override this to visit the layer they run).
    fn stack<A: Graph<F>, B: Graph<F>>(&mut self, k: usize, stack: &Stack<A, B>) -> Result<()> {
        self.nested_at(k, 0, stack.first())?;
        for (l, layer) in stack.rest().iter().enumerate() {
            self.nested_at(k, l + 1, layer)?;
        }
        Ok(())
    }
}

/// A graph declared with `graph!`.
///
/// Generated code implements the required items; every other method is
/// provided here, the same for all graphs. `use nngraph::prelude::*` brings
/// the trait into scope, so these read as methods of the graph:
/// `cell.param("x2h.weight")`, `cell.zero_grad()`, `cell.save(path)`.
///
/// ```
/// use graph_macros::graph;
/// use graph_runtime::prelude::*;
///
/// graph! {
///     #[recurrent(h = new_h)]
///     pub Cell(x: [2], h: [3]) -> (y, new_h) {
///         x2h = Linear(2, 3)(x);
///         new_h = Tanh()(CAdd()(x2h, Linear(3, 3)(h)));
///         y = Linear(3, 1)(new_h);
///     }
/// }
///
/// let mut cell = Cell::<f64>::new(&mut StdRng::seed_from_u64(0));
/// // Parameters: one flat buffer, named views in torch's layout.
/// assert_eq!(cell.num_params(), 3 * 2 + 3 + 3 * 3 + 3 + 3 + 1);
/// assert_eq!(cell.param("x2h.weight")?.shape(), &[3, 2]);
/// // A pass, and the recorded values by name.
/// let mut tape = cell.tape();
/// cell.forward(&mut tape, &[1.0, -1.0], &[0.0; 3])?;
/// assert_eq!(tape.value("x2h")?.dim(), (1, 3));
/// cell.backward(&mut tape, &[1.0], &Absent)?;
/// assert!(cell.grads().iter().any(|&g| g != 0.0));
/// cell.zero_grad();
/// // Untyped, for code generic over graphs: one feed per input, in order.
/// let xs = Array3::<f64>::zeros((4, 1, 2));
/// cell.forward_feeds(&mut tape, &[Feed::Seq(xs.view()), Feed::Absent])?;
/// assert_eq!(tape.value_seq("y")?.dim(), (4, 1, 1));
/// // The plan of a pass over a sequence: x2h once over all steps, the
/// // recurrence step by step, the output layer once.
/// let plan = cell.plan();
/// assert!(!plan.is_loop(plan.segment_of("x2h").unwrap()));
/// assert!(plan.is_loop(plan.segment_of("new_h").unwrap()));
/// // Checkpoints by name, in safetensors.
/// let path = std::env::temp_dir().join("graph_doc_cell.safetensors");
/// cell.save(&path)?;
/// let mut copy = Cell::<f64>::zeros();
/// copy.load(&path)?;
/// assert_eq!(copy.params(), cell.params());
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), graph_runtime::Error>(())
/// ```
pub trait Graph<F: Float>: Sized {
    /// What the macro knows about the graph.
    const SPEC: &'static GraphSpec;
    /// The struct holding one layer (or nested graph) per node; shared by
    /// the threads a loop is split across.
    type Layers: Sync;

    /// The layers and the core.
    fn parts(&self) -> (&Self::Layers, &GraphCore<F>);
    /// The layers and the core, the core writable.
    fn parts_mut(&mut self) -> (&Self::Layers, &mut GraphCore<F>);
    /// Hands node `k` to `visit`: its layer, or its nested graph. Nodes that
    /// take an output of a nested graph have nothing to hand.
    fn node<V: Visit<F>>(layers: &Self::Layers, k: usize, visit: &mut V) -> Result<()>;

    // ---- Description -------------------------------------------------------

    /// The graph's name, as declared.
    fn name(&self) -> &'static str {
        Self::SPEC.name
    }
    /// Input names, in declaration order.
    fn input_names(&self) -> Vec<&'static str> {
        Self::SPEC.inputs.iter().map(|i| i.name).collect()
    }
    /// Output names, in declaration order.
    fn output_names(&self) -> Vec<&'static str> {
        Self::SPEC.outputs.iter().map(|o| o.name).collect()
    }
    /// Number of inputs.
    fn num_inputs(&self) -> usize {
        Self::SPEC.inputs.len()
    }
    /// Number of outputs.
    fn num_outputs(&self) -> usize {
        Self::SPEC.outputs.len()
    }
    /// Width of the input named `name` (1 for an ids input), or an error
    /// naming the graph's inputs.
    fn input_width(&self, name: &str) -> Result<usize> {
        let i = input_named(Self::SPEC, name)?;
        Ok(if Self::SPEC.inputs[i].ids {
            1
        } else {
            self.parts().1.widths[i]
        })
    }
    /// Width of the output named `name`, or an error naming the graph's
    /// outputs.
    fn output_width(&self, name: &str) -> Result<usize> {
        let o = output_named(Self::SPEC, name)?;
        Ok(self.parts().1.widths[Self::SPEC.output_slot(o)])
    }
    /// Recurrent state pairs `(input index, output index)`: the output feeds
    /// the input at the next step. Empty for a graph without `#[recurrent]`.
    fn recurrent_pairs(&self) -> &'static [(usize, usize)] {
        Self::SPEC.recurrent
    }
    /// A Graphviz picture of the graph (`dot -Tsvg`), made at compile
    /// time; where the plan has loops, its segments are clusters. A nested
    /// graph or a stack is one node, as in [`svg`](Self::svg): the macro
    /// that writes the picture cannot see inside another graph.
    fn to_dot(&self) -> String {
        crate::describe::dot(&Description::of(self))
    }
    /// The graph's sizes (const generics, then run-time sizes) with the
    /// values this instance has, in the order of `SPEC.sizes`.
    fn size_values(&self) -> Vec<usize> {
        Vec::new()
    }
    /// The graph as a Python module defining an equivalent
    /// `torch.nn.Module` (a recurrent graph's step as `forward`), the classes
    /// of nested graphs first, and `build()`, which constructs it with this
    /// instance's sizes. Its parameter names are the graph's, so a
    /// checkpoint saved with [`save`](Self::save) loads into it with
    /// `load_state_dict(safetensors.torch.load_file(path))`. A user layer
    /// becomes a call of a Python class of its name, which you write.
    fn to_pytorch(&self) -> String {
        crate::pytorch::to_pytorch(&Description::of(self))
    }
    /// The graph as a table (as Keras' `summary()`): each node with its
    /// layer, input and output widths, parameter count and source line; a
    /// nested graph or stack as one row (its graph and sizes, `Stack ×N`,
    /// its parameters); the total, the sum of the rows. Generated graphs
    /// also print it with `{}`.
    fn summary(&self) -> String {
        crate::summary::summary(&Description::of(self), false)
    }
    /// [`summary`](Self::summary) with each nested graph's rows indented
    /// under its node (each layer of a stack), their lines with their file.
    fn summary_expanded(&self) -> String {
        crate::summary::summary(&Description::of(self), true)
    }
    /// The graph drawn as an SVG document, without graphviz: each node with
    /// its name, layer and width; a nested graph or a stack as one box (its
    /// graph and sizes, `×N` for a stack, its parameter count) with a
    /// labelled port per input and output; recurrent pairs as dashed edges
    /// back from the output to the input. Edges run in the gaps between
    /// columns and never cross a box.
    fn svg(&self) -> String {
        crate::svg::to_svg(&Description::of(self), None, false)
    }
    /// [`svg`](Self::svg) with every nested graph drawn inside its box, as
    /// a cluster of its own nodes (a stack: its first layer's).
    fn svg_expanded(&self) -> String {
        crate::svg::to_svg(&Description::of(self), None, true)
    }
    /// [`svg_expanded`](Self::svg_expanded) with the node that `error`
    /// names (a checked-mode error, or a node's failure, nested graphs
    /// included) in red and the error as a caption.
    fn svg_with_error(&self, error: &Error) -> String {
        crate::svg::to_svg(&Description::of(self), Some(error), true)
    }

    /// The plan passes follow (see [`Plan`]): which nodes run once over all
    /// steps and which step by step, in one loop per recurrence, through
    /// nested graphs. `{}` prints it.
    fn plan(&self) -> Plan {
        Description::of(self).plan()
    }

    /// The layer (or nested graph) of every node, one field per node.
    fn layers(&self) -> &Self::Layers {
        self.parts().0
    }

    // ---- Parameters ----------------------------------------------------------

    /// The parameters and their gradients.
    fn store(&self) -> &ParamStore<F> {
        &self.parts().1.store
    }
    /// The parameters and their gradients, writable.
    fn store_mut(&mut self) -> &mut ParamStore<F> {
        &mut self.parts_mut().1.store
    }
    /// All parameters in one flat buffer, in declaration order.
    fn params(&self) -> &[F] {
        self.store().values()
    }
    /// All parameters, writable.
    fn params_mut(&mut self) -> &mut [F] {
        self.store_mut().values_mut()
    }
    /// All accumulated gradients, in the layout of [`params`](Self::params).
    fn grads(&self) -> &[F] {
        self.store().grads()
    }
    /// All accumulated gradients, writable.
    fn grads_mut(&mut self) -> &mut [F] {
        self.store_mut().grads_mut()
    }
    /// Total number of parameters.
    fn num_params(&self) -> usize {
        self.store().len()
    }
    /// Sets every parameter gradient to zero.
    fn zero_grad(&mut self) {
        self.store_mut().zero_grad();
    }
    /// The named parameter tensor, e.g. `"x2h.weight"` (`(out, in)`).
    fn param(&self, name: &str) -> Result<ArrayViewD<'_, F>> {
        self.store().param(name)
    }
    /// The named parameter tensor, writable.
    fn param_mut(&mut self, name: &str) -> Result<ArrayViewMutD<'_, F>> {
        self.store_mut().param_mut(name)
    }
    /// The accumulated gradient of the named parameter tensor.
    fn grad(&self, name: &str) -> Result<ArrayViewD<'_, F>> {
        self.store().grad(name)
    }
    /// Name, shape and offset of every parameter tensor.
    fn param_specs(&self) -> &[ParamSpec] {
        self.store().specs()
    }
    /// Writes every parameter, by name, to a safetensors file.
    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.store().save(path)
    }
    /// Sets every parameter from a safetensors file written by
    /// [`save`](Self::save) (or by torch, with the same names and shapes).
    /// On error nothing changes.
    fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.store_mut().load(path)
    }
    /// [`load`](Self::load) with options (to accept non-finite values).
    fn load_with(&mut self, path: impl AsRef<Path>, options: crate::LoadOptions) -> Result<()> {
        self.store_mut().load_with(path, options)
    }

    // ---- Modes -------------------------------------------------------------

    /// Switches to training mode (torch's `training()`): Dropout drops.
    fn training(&mut self) {
        self.set_training(true);
    }
    /// Switches to evaluation mode (torch's `evaluate()`): Dropout is the identity.
    fn evaluate(&mut self) {
        self.set_training(false);
    }
    /// Sets the probability every Dropout node of the graph uses in training
    /// mode instead of the one it was declared with (`None`: each its own),
    /// as torch users set `module.p` on each `nn.Dropout`. An error if `p` is
    /// not in `[0, 1)`; nothing changes then.
    fn set_dropout(&mut self, p: Option<f64>) -> Result<()> {
        if let Some(p) = p {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::InvalidInput {
                    graph: Self::SPEC.name.into(),
                    message: format!("a dropout probability is in [0, 1), got {p}"),
                });
            }
        }
        self.parts_mut().1.dropout = p;
        Ok(())
    }
    /// The probability set by [`set_dropout`](Self::set_dropout).
    fn dropout(&self) -> Option<f64> {
        self.parts().1.dropout
    }
    /// Whether the graph is in training mode.
    fn is_training(&self) -> bool {
        self.parts().1.training
    }
    /// Switches between training and evaluation mode.
    fn set_training(&mut self, training: bool) {
        self.parts_mut().1.training = training;
    }
    /// Whether checked mode is on.
    fn is_checked(&self) -> bool {
        self.parts().1.checked
    }
    /// Turns checked mode on or off: when on, the first node whose output or
    /// gradient holds a NaN or an infinity makes `forward` or `backward` fail
    /// with an error naming the node, its source line and the value. Off by
    /// default; off costs one branch per node.
    fn set_checked(&mut self, checked: bool) {
        self.parts_mut().1.checked = checked;
    }
    /// The seed Dropout masks are drawn from.
    fn seed(&self) -> u64 {
        self.parts().1.seed
    }
    /// Sets the seed Dropout masks are drawn from (`new` draws one from its
    /// generator). Masks depend only on this seed, the tape and the number
    /// of calls made on it.
    fn set_seed(&mut self, seed: u64) {
        self.parts_mut().1.seed = seed;
    }

    // ---- Passes --------------------------------------------------------------

    /// A fresh, empty tape to run this graph on, for single steps and whole
    /// sequences alike. Reuse it: it reallocates only when the number of
    /// steps or the batch size changes.
    fn tape(&self) -> Tape<F> {
        let record = instance::record(self);
        let plan = Plan::of(&record.spec_tree());
        Tape::new(record, plan)
    }

    /// Runs the graph forward on `feeds`, one per declared input in
    /// declaration order (see [`Feed`]): `(batch, width)` values and ids for
    /// one step, or `(steps, batch, width)` sequences with each state's
    /// initial value for a pass over a sequence, by the plan. The generated
    /// `forward` and `forward_seq` call this.
    ///
    /// Fails, leaving the graph unchanged and the tape holding no pass, if
    /// the tape was made by another graph or the feeds do not fit the graph
    /// (count, kind, width, steps, batch size: the error names the input and
    /// both shapes); fails at the first node that fails (an id outside a
    /// table, or a NaN in checked mode), naming it.
    fn forward_feeds(&self, tape: &mut Tape<F>, feeds: &[Feed<'_, F>]) -> Result<()> {
        instance::check_owner(self, tape)?;
        load::feeds(tape, &self.parts().1.widths, feeds)?;
        engine::forward(self, tape)
    }

    /// Propagates `grads`, one per declared output in declaration order
    /// (`(T·B, width)` or `(steps, batch, width)` values, or
    /// [`Feed::Absent`] for zero), back through the pass recorded in
    /// `tape`. Parameter gradients ACCUMULATE until
    /// [`zero_grad`](Self::zero_grad): calling it twice after one forward
    /// adds the same increment twice. The generated `backward` and
    /// `backward_seq` call this.
    ///
    /// Fails if the last forward on `tape` did not complete, or a gradient
    /// has the wrong shape; in checked mode at the first node whose
    /// gradient is not finite, leaving the parameter gradients as they were.
    fn backward_feeds(&mut self, tape: &mut Tape<F>, grads: &[Feed<'_, F>]) -> Result<()> {
        instance::check_owner(self, tape)?;
        load::output_grads(tape, grads)?;
        engine::backward(self, tape)
    }

    /// For a graph with loss outputs (criterion nodes): the loss of the pass
    /// recorded in `tape`, reduced over all its `T·B` samples, and its
    /// gradients, propagated back (through time, for a sequence). One call
    /// per training step. Parameter gradients accumulate.
    fn backward_loss(&mut self, tape: &mut Tape<F>, reduction: Reduction) -> Result<F> {
        instance::check_owner(self, tape)?;
        let loss = load::loss_grads(tape, reduction)?;
        engine::backward(self, tape)?;
        Ok(loss)
    }
}
