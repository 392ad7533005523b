//! What every generated graph is, seen from the runtime: the [`Graph`] trait
//! and the per-instance [`GraphCore`].
//!
//! The macro emits only what depends on the graph: its [`GraphSpec`], a
//! struct of layers, constructors, typed `forward`/`backward`, and
//! [`Graph::node`], which dispatches node `k` to its layer. Everything else
//! (parameter access, modes, checkpoints, tapes, the checked entry points
//! and the pass loops of `run.rs`) is written once here, as the
//! trait's provided methods.
//!
//! A call flows like this: [`Graph::forward_inputs`] checks the inputs'
//! shapes against the graph's widths, sizes the tape for the batch, copies
//! the inputs in and runs [`Graph::forward_tape`], which loops over the
//! nodes in evaluation order. [`Graph::backward_views`] checks the output
//! gradients, clears the tape's gradients, adds the output gradients in and
//! runs [`Graph::backward_tape`], the same loop in reverse.

use crate::error::{Error, Pass, Result, Shape};
use crate::layer::{Input, Layer};
use crate::params::{ParamSpec, ParamStore};
use crate::run::{self, Mode};
use crate::spec::GraphSpec;
use crate::tape::Tape;
use crate::Float;
use ndarray::{ArrayView2, ArrayViewD, ArrayViewMutD};
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
    /// Node `k` is the nested graph `graph`.
    fn nested<G: Graph<F>>(&mut self, k: usize, graph: &G) -> Result<()>;
}

/// A graph declared with `graph!`.
///
/// Generated code implements the required items; every other method is
/// provided here, the same for all graphs. `use nngraph::prelude::*` brings
/// the trait into scope, so these read as methods of the graph:
/// `cell.param("x2h.weight")`, `cell.zero_grad()`, `cell.save(path)`.
pub trait Graph<F: Float>: Sized {
    /// What the macro knows about the graph.
    const SPEC: &'static GraphSpec;
    /// The struct holding one layer (or nested graph) per node.
    type Layers;

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
    /// Width of input `i` (1 for an ids input).
    ///
    /// # Panics
    /// If `i` is not an input, as slice indexing does.
    fn input_width(&self, i: usize) -> usize {
        self.parts().1.widths[i]
    }
    /// Whether input `i` holds integer ids (`name: usize`) rather than values.
    ///
    /// # Panics
    /// If `i` is not an input, as slice indexing does.
    fn input_is_ids(&self, i: usize) -> bool {
        Self::SPEC.inputs[i].ids
    }
    /// Width of output `o`.
    ///
    /// # Panics
    /// If `o` is not an output, as slice indexing does.
    fn output_width(&self, o: usize) -> usize {
        self.parts().1.widths[Self::SPEC.output_slot(o)]
    }
    /// Recurrent state pairs `(input index, output index)`: the output feeds
    /// the input at the next step. Empty for a graph without `#[recurrent]`.
    fn recurrent_pairs(&self) -> &'static [(usize, usize)] {
        Self::SPEC.recurrent
    }
    /// A Graphviz picture of the graph (`dot -Tsvg`).
    fn to_dot(&self) -> &'static str {
        Self::SPEC.dot
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
        crate::pytorch::to_pytorch(self)
    }
    /// The graph as a table (as Keras' `summary()`): each node with its
    /// layer, input and output widths, parameter count and source line;
    /// nested graphs indented under their node; totals. Generated graphs
    /// also print it with `{}`.
    fn summary(&self) -> String {
        crate::summary::summary(self)
    }
    /// The graph drawn as an SVG document, without graphviz: each node with
    /// its name, layer and width; nested graphs as boxed clusters; recurrent
    /// pairs as dashed edges back from the output to the input.
    fn svg(&self) -> String {
        crate::svg::to_svg(self, None)
    }
    /// [`svg`](Self::svg) with the node that `error` names (a checked-mode
    /// error, or a node's failure) in red and the error as a caption.
    fn svg_with_error(&self, error: &Error) -> String {
        crate::svg::to_svg(self, Some(error))
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

    /// A fresh, empty tape to run this graph on.
    fn new_tape(&self) -> Tape<F> {
        Tape::new(Self::SPEC, self.parts().1.widths.clone())
    }

    /// Checks `inputs` (one per declared input: values, or ids for an ids
    /// input), records them in `tape` and runs the forward pass.
    ///
    /// Fails, leaving the graph unchanged, if the tape was made by another
    /// graph, an input has the wrong kind or width, or the inputs disagree
    /// on the batch size; fails at the first node that fails (an id outside
    /// a table, or a NaN in checked mode), leaving the tape marked invalid.
    fn forward_inputs(&self, tape: &mut Tape<F>, inputs: &[Input<'_, F>]) -> Result<()> {
        tape.check_owner(Self::SPEC, &self.parts().1.widths)?;
        let batch = check_inputs(self, inputs)?;
        tape.resize(batch);
        for (i, x) in inputs.iter().enumerate() {
            match x {
                Input::Values(v) => tape.input_mut(i).assign(v),
                Input::Ids(ids) => tape.set_ids(i, ids),
            }
        }
        self.forward_tape(tape)
    }

    /// [`forward_inputs`](Self::forward_inputs) for a graph whose inputs all
    /// hold values.
    fn forward_views(&self, tape: &mut Tape<F>, inputs: &[ArrayView2<'_, F>]) -> Result<()> {
        // One input per slot at most; graphs have few inputs, and a small
        // fixed buffer keeps this free of allocation.
        const MAX: usize = 16;
        if inputs.len() > MAX {
            let owned: Vec<Input<'_, F>> = inputs.iter().map(|x| Input::Values(x.view())).collect();
            return self.forward_inputs(tape, &owned);
        }
        let mut buffer = [Input::Ids(&[][..]); MAX];
        for (b, x) in buffer.iter_mut().zip(inputs) {
            *b = Input::Values(x.view());
        }
        self.forward_inputs(tape, &buffer[..inputs.len()])
    }

    /// Runs every node on the inputs already in `tape` (sized by
    /// [`Tape::resize`]).
    fn forward_tape(&self, tape: &mut Tape<F>) -> Result<()> {
        let (layers, core) = self.parts();
        tape.check_owner(Self::SPEC, &core.widths)?;
        let mode = Mode {
            training: core.training,
            checked: core.checked,
            seed: core.seed,
            dropout: core.dropout,
        };
        run::forward::<F, Self>(layers, &core.store, mode, tape)
    }

    /// Checks `d_outputs` (one per declared output, each of its output's
    /// shape), and propagates them back through the pass recorded in `tape`.
    /// Parameter gradients accumulate until [`zero_grad`](Self::zero_grad):
    /// calling it twice after one forward adds the same increment twice.
    fn backward_views(&mut self, tape: &mut Tape<F>, d_outputs: &[ArrayView2<'_, F>]) -> Result<()> {
        let spec = Self::SPEC;
        tape.check_owner(spec, &self.parts().1.widths)?;
        let batch = forward_batch(spec, tape)?;
        check_gradient_count(spec, d_outputs.len())?;
        for (o, d) in d_outputs.iter().enumerate() {
            let expected = [batch, self.output_width(o)];
            if d.shape() != expected {
                return Err(Error::GradShape {
                    graph: spec.name.to_string(),
                    output: spec.outputs[o].name.to_string(),
                    expected: Shape::from(&expected[..]),
                    found: Shape::from(d.shape()),
                });
            }
        }
        tape.clear_grads();
        for (o, d) in d_outputs.iter().enumerate() {
            let mut seed = tape.output_grad_mut(o);
            seed += d;
        }
        self.backward_tape(tape)
    }

    /// A fresh, empty sequence tape to run this (recurrent) graph over
    /// sequences with.
    fn new_seq(&self) -> crate::SeqTape<F> {
        crate::SeqTape::new(Self::SPEC, self.parts().1.widths.clone())
    }

    /// Runs the graph over whole sequences by the macro's plan (see
    /// [`Phase`](crate::Phase)): `initial` holds one `(B, width)` state per
    /// recurrent pair, `sequences` one `(T, B, width)` values or `(T, B)`
    /// ids per other input, in declaration order.
    fn forward_seq_inputs(
        &self,
        seq: &mut crate::SeqTape<F>,
        initial: &[ArrayView2<'_, F>],
        sequences: &[crate::SeqInput<'_, F>],
    ) -> Result<()> {
        crate::seq::forward(
            self,
            seq,
            crate::seq::Start::Given(initial),
            crate::seq::Sequences::Mixed(sequences),
        )
    }

    /// [`forward_seq_inputs`](Self::forward_seq_inputs) starting from the
    /// final state of the previous pass on `seq`, whose gradient is cut:
    /// truncated BPTT. Before any pass the state is zero.
    fn forward_seq_carry_inputs(
        &self,
        seq: &mut crate::SeqTape<F>,
        sequences: &[crate::SeqInput<'_, F>],
    ) -> Result<()> {
        crate::seq::forward(
            self,
            seq,
            crate::seq::Start::Carry,
            crate::seq::Sequences::Mixed(sequences),
        )
    }

    /// Backpropagation through time over the pass recorded in `seq`, from
    /// one `(T, B, width)` gradient per output. Parameter gradients
    /// accumulate until [`zero_grad`](Self::zero_grad).
    fn backward_seq_views(
        &mut self,
        seq: &mut crate::SeqTape<F>,
        d_outputs: &[ndarray::ArrayView3<'_, F>],
    ) -> Result<()> {
        seq.check_owner(Self::SPEC, &self.parts().1.widths)?;
        crate::seq::seed(Self::SPEC, seq, d_outputs)?;
        crate::seq::backward(self, seq)
    }

    /// For a graph with loss outputs (criterion nodes): the loss of the pass
    /// recorded in `seq`, reduced over all `T·B` samples, and its gradients,
    /// propagated back through time. One call per training step; no closure.
    fn backward_seq_loss(
        &mut self,
        seq: &mut crate::SeqTape<F>,
        reduction: crate::criteria::Reduction,
    ) -> Result<F> {
        seq.check_owner(Self::SPEC, &self.parts().1.widths)?;
        let loss = crate::seq::seed_loss(Self::SPEC, seq, reduction)?;
        crate::seq::backward(self, seq)?;
        Ok(loss)
    }

    /// Propagates the gradients already in `tape`'s output buffers to every
    /// node and input, adding parameter gradients into the gradient buffer.
    /// Fails if the last forward on `tape` did not complete, and in checked
    /// mode at the first node whose gradient (of its output or of its
    /// parameters) is not finite, leaving the parameter gradients as they
    /// were before the call.
    fn backward_tape(&mut self, tape: &mut Tape<F>) -> Result<()> {
        let (layers, core) = self.parts_mut();
        tape.check_owner(Self::SPEC, &core.widths)?;
        forward_batch(Self::SPEC, tape)?;
        let checked = core.checked;
        if checked {
            core.saved_grads.clear();
            core.saved_grads.extend_from_slice(core.store.grads());
        }
        let result = run::backward::<F, Self>(layers, &mut core.store, checked, tape);
        if checked && result.is_err() {
            core.store.grads_mut().copy_from_slice(&core.saved_grads);
        }
        result
    }
}

/// One output gradient per declared output.
pub(crate) fn check_gradient_count(spec: &GraphSpec, found: usize) -> Result<()> {
    if found == spec.outputs.len() {
        return Ok(());
    }
    Err(Error::Arity {
        graph: spec.name.to_string(),
        what: "output gradients",
        expected: spec.outputs.len(),
        found,
    })
}

/// The batch size of the completed forward pass recorded in `tape`.
fn forward_batch(spec: &GraphSpec, tape: &Tape<impl Float>) -> Result<usize> {
    match (tape.batch, tape.valid) {
        (Some(batch), true) => Ok(batch),
        (None, _) => Err(Error::NoForward {
            graph: spec.name.to_string(),
        }),
        (Some(_), false) => Err(Error::InvalidInput {
            graph: spec.name.to_string(),
            message: "the last forward pass on this tape failed; run a forward pass that succeeds \
                      before backward"
                .to_string(),
        }),
    }
}

/// Checks the number, kinds, widths and batch sizes of a graph's inputs and
/// returns the batch size.
pub(crate) fn check_inputs<F: Float, G: Graph<F>>(graph: &G, inputs: &[Input<'_, F>]) -> Result<usize> {
    let spec = G::SPEC;
    if inputs.len() != spec.inputs.len() {
        return Err(Error::Arity {
            graph: spec.name.to_string(),
            what: "inputs",
            expected: spec.inputs.len(),
            found: inputs.len(),
        });
    }
    let mut batch: Option<(usize, usize)> = None;
    for (i, (input, declared)) in inputs.iter().zip(spec.inputs).enumerate() {
        let name = declared.name;
        match (input, declared.ids) {
            (Input::Values(x), false) => {
                let width = graph.input_width(i);
                if x.ncols() != width {
                    return Err(Error::InputWidth {
                        graph: spec.name.to_string(),
                        input: name.to_string(),
                        expected: width,
                        found: x.ncols(),
                    });
                }
            }
            (Input::Ids(_), true) => {}
            (_, ids) => {
                return Err(Error::InvalidInput {
                    graph: spec.name.to_string(),
                    message: format!(
                        "input `{name}` takes {}",
                        if ids { "integer ids" } else { "values, not ids" }
                    ),
                })
            }
        }
        let rows = input.rows();
        match batch {
            None => batch = Some((i, rows)),
            Some((first, expected)) if expected != rows => {
                return Err(Error::BatchMismatch {
                    graph: spec.name.to_string(),
                    first: spec.inputs[first].name.to_string(),
                    expected,
                    input: name.to_string(),
                    found: rows,
                })
            }
            Some(_) => {}
        }
    }
    Ok(batch.map_or(0, |(_, rows)| rows))
}

/// Checked mode: the first NaN or infinity in `values` as an error naming
/// the node and where it is declared.
#[cold]
pub(crate) fn check_finite<F: Float>(
    spec: &GraphSpec,
    k: usize,
    pass: Pass,
    values: ArrayView2<'_, F>,
) -> Result<()> {
    match values.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, v)) => Err(Error::NonFinite {
            graph: spec.name.to_string(),
            node: spec.nodes[k].name.to_string(),
            file: spec.file.to_string(),
            line: spec.nodes[k].line,
            pass,
            step: None,
            index,
            value: Float::to_f64(*v),
        }),
    }
}
