//! The contract every layer fulfils, built-in or user-written.
//!
//! A layer maps one or more inputs (`(batch, width)` values, or one integer
//! id per sample) to one `(batch, width)` output. Its parameters live in a
//! slice of the graph's flat parameter buffer, its gradients in the same
//! slice of the flat gradient buffer, and anything it must remember between
//! forward and backward (Dropout's mask) in a per-node state matrix that the
//! tape keeps. Generated graphs call these methods in topological order
//! (forward) and in reverse (backward) through the runtime's pass loops; the math of
//! each layer is written once, in its family's file.

use crate::Float;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
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
    /// A tensor named `name` of the given dimensions.
    pub fn new(name: &'static str, shape: Vec<usize>) -> Self {
        ParamShape {
            name: name.into(),
            shape,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One input of a layer (or of a graph's forward call): values, or integer ids.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a, F> {
    /// A `(batch, width)` matrix.
    Values(ArrayView2<'a, F>),
    /// One id per sample.
    Ids(&'a [usize]),
}

impl<'a, F> Input<'a, F> {
    /// The values, or an error saying this input holds ids.
    pub fn values(&self) -> LayerResult<ArrayView2<'a, F>> {
        match self {
            Input::Values(v) => Ok(v.reborrow()),
            Input::Ids(_) => Err("this input holds integer ids, but the layer takes values".into()),
        }
    }

    /// The ids, or an error saying this input holds values.
    pub fn ids(&self) -> LayerResult<&'a [usize]> {
        match self {
            Input::Ids(ids) => Ok(ids),
            Input::Values(_) => Err("this input holds values, but the layer takes integer ids".into()),
        }
    }

    /// Number of samples.
    pub fn rows(&self) -> usize {
        match self {
            Input::Values(v) => v.nrows(),
            Input::Ids(ids) => ids.len(),
        }
    }

    /// Width per sample (1 for ids).
    pub fn width(&self) -> usize {
        match self {
            Input::Values(v) => v.ncols(),
            Input::Ids(_) => 1,
        }
    }
}

/// What a layer's `forward` and `backward` may fail with: a message that the
/// graph turns into an [`Error`](crate::Error) naming the graph, the node and
/// its source line.
pub type LayerResult<T = ()> = std::result::Result<T, String>;

/// What a layer's [`forward`](Layer::forward) sees.
#[derive(Debug)]
pub struct Forward<'a, F> {
    /// The layer's slice of the flat parameter buffer.
    pub params: &'a [F],
    /// One entry per input, in the order the node lists them.
    pub inputs: &'a [Input<'a, F>],
    /// Training mode (Dropout drops) or evaluation mode.
    pub training: bool,
    /// Set by [`Graph::set_dropout`](crate::Graph::set_dropout): the
    /// probability a Dropout layer uses instead of its own (`None` for most
    /// layers, which ignore it).
    pub dropout: Option<f64>,
    /// A seed for anything random in this call, reproducible: it depends only
    /// on the graph's seed, the tape and the number of calls made on it.
    pub seed: u64,
    /// State kept in the tape for backward (Dropout's mask). Empty until the
    /// layer shapes it; it keeps its size between calls, so reshaping it
    /// only when its shape changes allocates nothing once warm.
    pub state: &'a mut Array2<F>,
}

/// What a layer's backward methods see.
#[derive(Debug, Clone, Copy)]
pub struct Backward<'a, F> {
    /// The layer's slice of the flat parameter buffer.
    pub params: &'a [F],
    /// The inputs of the recorded forward pass.
    pub inputs: &'a [Input<'a, F>],
    /// The recorded output.
    pub output: ArrayView2<'a, F>,
    /// The gradient of the loss with respect to the output.
    pub d_output: ArrayView2<'a, F>,
    /// The state the forward pass left.
    pub state: ArrayView2<'a, F>,
}

/// A differentiable layer.
///
/// Layers are `Send + Sync`: a pass may run a layer on several threads at
/// once, over different rows (see
/// [`rows_independent`](Layer::rows_independent)).
///
/// Shapes are guaranteed by the caller (the macro checks built-in layers at
/// compile time, and generated code runs [`output_width`](Layer::output_width)
/// of user layers when the graph is built): every input has `batch` rows, the
/// output has `(batch, output_width(..))`. Backward methods ACCUMULATE (`+=`)
/// into `grads` and `d_input`, so that fan-out gradients add up as in
/// nngraph.
///
/// A layer of your own is used in `graph!` like a built-in: `Square()(x)`
/// builds `Square::new()`, and its parameters join the graph's buffer.
///
/// ```
/// use graph_macros::graph;
/// use graph_runtime::prelude::*;
///
/// /// `y = x²`, element by element.
/// #[derive(Debug, Clone)]
/// pub struct Square;
///
/// impl Square {
///     pub fn new() -> Self {
///         Square
///     }
/// }
///
/// impl<F: Float> Layer<F> for Square {
///     fn kind(&self) -> &'static str {
///         "Square"
///     }
///     // Each output row is its input row squared, nothing kept or random:
///     // a recurrent loop through it may run on several threads by samples.
///     fn rows_independent(&self) -> bool {
///         true
///     }
///     fn output_width(&self, inputs: &[usize]) -> LayerResult<usize> {
///         match inputs {
///             [w] => Ok(*w),
///             _ => Err(format!("Square takes one input, got {}", inputs.len())),
///         }
///     }
///     fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
///         output.zip_mut_with(&cx.inputs[0].values()?, |y, &x| *y = x * x);
///         Ok(())
///     }
///     fn backward_input(&self, _: usize, cx: &Backward<'_, F>, mut d_input: ArrayViewMut2<'_, F>) -> LayerResult {
///         let x = cx.inputs[0].values()?;
///         ndarray::Zip::from(&mut d_input).and(&x).and(&cx.d_output).for_each(|d, &x, &dy| *d += dy * (x + x));
///         Ok(())
///     }
/// }
///
/// graph! {
///     pub Net(x: [2]) -> (y) {
///         y = Square()(Linear(2, 2)(x));
///     }
/// }
///
/// let mut net = Net::<f64>::new(&mut StdRng::seed_from_u64(0))?;
/// let x = Array2::from_elem((3, 2), 0.5);
/// let target = Array2::<f64>::zeros((3, 2));
/// let loss = |_t: usize, _o: usize, y: ArrayView2<f64>, g: Option<ArrayViewMut2<f64>>| {
///     if let Some(g) = g {
///         Mse::new().backward(&y, &target, g)?;
///     }
///     Mse::new().forward(&y, &target)
/// };
/// let report = GradCheck::new().check_graph(&mut net, &[Feed::Values(x.view())], loss)?;
/// assert!(report.passed(), "{report}");
/// # Ok::<(), graph_runtime::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a layer: it does not implement `Layer<{F}>`",
    label = "used as a layer here",
    note = "a type called as a layer in `graph!` implements `nngraph::Layer<F>` (its forward, backward and parameter shapes) and has a `new` taking the arguments written in `()`"
)]
pub trait Layer<F: Float>: fmt::Debug + Send + Sync {
    /// The layer's name as written in `graph!`, for messages and pictures.
    fn kind(&self) -> &'static str;

    /// Whether each row of the output depends only on the same row of the
    /// inputs (and each row of an input's gradient only on that row of the
    /// output's gradient), computed the same way whatever the number of
    /// rows in a call, with no state kept for backward and nothing random:
    /// then a recurrent loop through this layer may run on several threads
    /// at once, each over its own samples of the batch, with the same
    /// results. `false` unless a layer says so; the built-in layers do, but
    /// Dropout. (The crate's matrix products qualify: a product's rows have
    /// the same bits whatever its number of rows.)
    fn rows_independent(&self) -> bool {
        false
    }

    /// The parameter tensors, in the order they sit in the flat buffer.
    fn param_shapes(&self) -> Vec<ParamShape> {
        Vec::new()
    }

    /// Total number of parameters.
    fn num_params(&self) -> usize {
        self.param_shapes().iter().map(ParamShape::len).sum()
    }

    /// Fills `params` (length [`num_params`](Layer::num_params)) with initial values.
    fn init(&self, params: &mut [F], rng: &mut dyn rand::Rng) {
        let _ = (params, rng);
    }

    /// The output width for the given input widths (an ids input counts as
    /// width 1), or a message saying why the inputs do not fit. Built-in
    /// layers are checked by the macro; this runs for user layers when the
    /// graph is built.
    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize>;

    /// Computes the output, overwriting `output`.
    fn forward(&self, cx: Forward<'_, F>, output: ArrayViewMut2<'_, F>) -> LayerResult;

    /// Adds the gradient of the loss with respect to the parameters into `grads`.
    fn backward_params(&self, cx: &Backward<'_, F>, grads: &mut [F]) -> LayerResult {
        let _ = (cx, grads);
        Ok(())
    }

    /// Adds the gradient of the loss with respect to input `index` into
    /// `d_input`. Not called for ids inputs, which have no gradient.
    fn backward_input(
        &self,
        index: usize,
        cx: &Backward<'_, F>,
        d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult;
}
