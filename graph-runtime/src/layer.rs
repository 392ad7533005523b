//! The contract every layer fulfils, built-in or user-written.
//!
//! A layer maps one or more `(batch, width)` inputs to one `(batch, width)`
//! output. Its parameters live in a slice of the graph's flat parameter
//! buffer, and its gradients in the same slice of the flat gradient buffer.
//! Generated graphs call these methods in topological order (forward) and in
//! reverse (backward); the math of each layer is written once, here.

use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::borrow::Cow;
use std::fmt;

/// One named parameter tensor of a layer, e.g. `weight` with shape `[out, in]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamShape {
    /// Short name, joined to the node's name: `x2h` + `weight` = `x2h.weight`.
    pub name: Cow<'static, str>,
    /// Dimensions, row-major.
    pub shape: Vec<usize>,
}

impl ParamShape {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A differentiable layer.
///
/// Shapes are guaranteed by the caller (generated code checks them once, at
/// the graph's boundary): `inputs[i]` is `(batch, input_widths[i])`, `output`
/// and `d_output` are `(batch, output_width(input_widths))`. Backward methods
/// ACCUMULATE (`+=`) into `grads` and `d_input`, so that fan-out gradients add
/// up as in nngraph.
pub trait Layer<F: Float>: fmt::Debug {
    /// The layer's name as written in `graph!`, for messages and pictures.
    fn kind(&self) -> &'static str;

    /// The parameter tensors, in the order they sit in the flat buffer.
    fn param_shapes(&self) -> Vec<ParamShape> {
        Vec::new()
    }

    /// Total number of parameters.
    fn num_params(&self) -> usize {
        self.param_shapes().iter().map(ParamShape::len).sum()
    }

    /// Fills `params` (length [`num_params`](Layer::num_params)) with initial values.
    fn init(&self, params: &mut [F], rng: &mut dyn rand::RngCore) {
        let _ = (params, rng);
    }

    /// The output width for the given input widths, or a message saying why
    /// the inputs do not fit.
    fn output_width(&self, input_widths: &[usize]) -> Result<usize, String>;

    /// Computes the output, overwriting `output`.
    fn forward(&self, params: &[F], inputs: &[ArrayView2<'_, F>], output: ArrayViewMut2<'_, F>);

    /// Adds the gradient of the loss with respect to the parameters into `grads`.
    fn backward_params(
        &self,
        params: &[F],
        grads: &mut [F],
        inputs: &[ArrayView2<'_, F>],
        output: ArrayView2<'_, F>,
        d_output: ArrayView2<'_, F>,
    ) {
        let _ = (params, grads, inputs, output, d_output);
    }

    /// Adds the gradient of the loss with respect to `inputs[index]` into `d_input`.
    fn backward_input(
        &self,
        index: usize,
        params: &[F],
        inputs: &[ArrayView2<'_, F>],
        output: ArrayView2<'_, F>,
        d_output: ArrayView2<'_, F>,
        d_input: ArrayViewMut2<'_, F>,
    );
}
