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
//! ## Training over sequences
//!
//! A graph with `#[recurrent(state = output)]` pairs runs over whole
//! sequences with one set of weights: `forward_seq` takes every input in
//! declaration order (a `(T, B, width)` sequence, `(T, B)` ids, or a
//! state's initial value `(B, width)`), and backpropagation through time is
//! one call. A graph with loss nodes seeds its own gradient
//! ([`backward_loss`](runtime::Graph::backward_loss)). Below, a character
//! model is trained chunk by chunk, its states carried from one chunk to
//! the next with their gradient cut (truncated BPTT, as char-rnn does),
//! then sampled one step at a time without a target.
//!
//! ```
//! use nngraph::prelude::*;
//!
//! graph! {
//!     #[recurrent(h = h1, c = c1)]
//!     pub CharModel(x: usize, h: [32], c: [32], target: usize) -> (loss, logits, h1, c1) {
//!         (h1, c1) = nngraph::cells::LstmCell<16, 32>(Embedding(20, 16)(x), h, c);
//!         logits = Linear(32, 20)(h1);
//!         loss = CrossEntropy()(logits, target);
//!     }
//! }
//!
//! let text: Vec<usize> = (0..1000).map(|i| (i * i + i / 7) % 20).collect();
//! let (steps, batch) = (25, 4);
//! let mut model = CharModel::<f32>::new(&mut StdRng::seed_from_u64(0))?;
//! let (mut adam, mut tape) = (Adam::new(2e-3), model.tape());
//! for chunk in 0..8 {
//!     // Sequence b reads the text from b·250; the target is the next id.
//!     let at = |t: usize, b: usize, shift: usize| text[b * 250 + chunk * steps + t + shift];
//!     let xs = Array2::from_shape_fn((steps, batch), |(t, b)| at(t, b, 0));
//!     let ys = Array2::from_shape_fn((steps, batch), |(t, b)| at(t, b, 1));
//!     model.forward_seq_carry(&mut tape, &xs, &ys)?; // states: where the last chunk ended
//!     let loss = model.backward_loss(&mut tape, Reduction::Mean)?;
//!     assert!(loss.is_finite());
//!     clip_grad_norm(model.store_mut(), 5.0)?;
//!     adam.step(model.store_mut())?;
//!     model.zero_grad();
//! }
//! // Sampling: one step at a time, states carried by hand, no target.
//! model.evaluate();
//! let (mut x, mut h, mut c) = (0, Array2::zeros((1, 32)), Array2::zeros((1, 32)));
//! for _ in 0..10 {
//!     let out = model.forward(&mut tape, &[x], &h, &c, &Absent)?;
//!     let scores = out.logits.row(0);
//!     x = (0..20).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap();
//!     (h, c) = (out.h1.to_owned(), out.c1.to_owned());
//! }
//! # Ok::<(), nngraph::Error>(())
//! ```
//!
//! The crate is a facade: the macro lives in `graph-macros`, everything it
//! runs on in `graph-runtime` (re-exported as [`runtime`]). See [`graph!`]
//! for the DSL and every generated method, [`Graph`](runtime::Graph) for
//! what every graph can do, and the examples: `seed_tour` (the notebook
//! this project comes from, replayed), `custom_layer` and `char_rnn`.

#![warn(missing_docs)]

pub use graph_runtime as runtime;
pub use graph_runtime::{cells, Error, Result};
pub use graph_runtime::{ndarray, rand};

#[doc(hidden)]
pub use graph_macros as __macros;

/// Declares one or more graphs.
///
/// ```text
/// graph! {
///     /// doc comments and attributes carry over to the struct
///     #[recurrent(h = new_h)]            // optional: new_h feeds h at the next step
///     pub Name(input: [width], ...) -> (output, ...) {
///         node = Layer(args)(inputs);    // one node per statement
///         ...
///     }
///     ...                                // more graphs
/// }
/// ```
///
/// **Inputs and outputs.** Inputs are declared with their per-sample width,
/// `x: [4]`, or as integer ids, `tokens: usize` (one id per sample, for
/// `Embedding` and class targets). The batch dimension is implicit. Outputs
/// are node names.
///
/// **Nodes.** `name = Layer(args)(inputs);`. Calls nest: `y =
/// Sigmoid()(Linear(4, 1)(h))` declares an anonymous node `y_linear`
/// (statement name, `_`, layer in lower case; `_2`, `_3`, ... if a statement
/// nests one layer twice). `(a, b, c) = Split(3)(x);` cuts `x` into equal
/// parts. Nodes may be declared in any order; the graph must be acyclic.
///
/// **Sizes.** `pub Lstm<const I: usize, const H: usize>(x: [I], h: [H])` takes
/// sizes at compile time, `pub CharRnn[vocab, hidden](x: [vocab], ...)` at run
/// time (`CharRnn::new(&mut rng, vocab, hidden)`). Widths are expressions of
/// sizes with `+`, `-`, `*` (`Linear(I, 4 * H)`), compared symbolically;
/// what the macro cannot decide is a const assertion (compile-time sizes) or
/// a check when the graph is built.
///
/// **Built-in layers.** `Linear(in, out)`, `Identity()`, `Tanh()`,
/// `Sigmoid()`, `ReLU()`, `SoftMax()`, `LogSoftMax()`, `CAdd()` and `CMul()`
/// (two or more inputs), `CSub()`, `CDiv()`, `MulConstant(c)`,
/// `AddConstant(c)`, `Concat()` (two or more inputs), `Narrow(offset,
/// length)` (0-based), `Split(n)`, `Dropout(p)`, `Embedding(vocab, dim)` (on
/// ids); criteria as nodes, one loss per sample: `Mse()(y, target)`,
/// `Bce()(p, target)`, `ClassNll()(log_p, ids)`, `CrossEntropy()(logits,
/// ids)`.
///
/// **Your own layers.** Any other name (or a path, `my::Layer`) is a type of
/// yours implementing [`Layer`](runtime::Layer): `Gain(4)(x)` builds
/// `Gain::new(4)`. It may take values or ids (`cx.inputs[i].ids()`) and keep
/// state in the tape between forward and backward. Its shape rule runs when
/// the graph is built. A name one or two edits from a built-in
/// is reported as a typo; write a path to use such a type anyway.
///
/// **Nested graphs.** A graph is called with one argument list, as it is
/// declared: `(y, h1) = RnnCell(x, h0);`, one output by name with
/// `RnnCell(x, h0).new_h`, sizes with `LstmCell<I, H>(x, h, c)` or
/// `CharRnn[v, h](x, h0)`. Its parameters join the outer buffer under the
/// host node's name (`y_rnncell.x2h.weight`). A graph of the same `graph!`
/// block, or a shipped cell named by its path (`nngraph::cells::LstmCell`),
/// is checked by the macro itself; one from elsewhere by const assertions
/// on your tokens when the outer graph is instantiated.
///
/// **Stacks.** `Stack(depth, First, Rest)(x, h, ..)` is `depth` layers (a
/// run-time size, a const generic or a number): the first of graph `First`,
/// the others of `Rest` (`Stack(depth, Layer)` when they are alike). Input 0
/// goes through the layers in order; every other input is a group, one
/// block of columns per layer (`h: [layers * hidden]`); the outputs are the
/// top layer's output 0, then each output of every layer as a group. Layer
/// `l`'s tensor `t` is named `node.t_l<l>` (`#[params(inline)]` drops
/// `node.`), as `torch.nn.LSTM` names them. Each layer runs as a loop of its
/// own over a sequence. The shipped `cells::Lstm`, `Gru` and `Rnn` are such
/// stacks, equal to torch's with `num_layers`:
///
/// ```
/// use nngraph::prelude::*;
///
/// graph! {
///     #[recurrent(h = new_h)]
///     pub Elman[input, hidden](x: [input], h: [hidden]) -> (new_h) {
///         new_h = Tanh()(CAdd()(Linear(input, hidden)(x), Linear(hidden, hidden)(h)));
///     }
///
///     /// `layers` Elman layers: the first reads 3 wide, the others 8.
///     #[recurrent(h = h_n)]
///     pub Deep[layers](x: [3], h: [layers * 8]) -> (y, h_n) {
///         (y, h_n) = Stack(layers, Elman[3, 8], Elman[8, 8])(x, h);
///     }
/// }
///
/// let mut g = Deep::<f32>::new(&mut StdRng::seed_from_u64(0), 3)?;
/// assert!(g.param("y_elman.new_h_linear.weight_l2").is_ok());
/// let mut tape = g.tape();
/// let xs = Array3::from_elem((5, 2, 3), 0.5);             // 5 steps of 2 samples
/// let out = g.forward_seq(&mut tape, &xs, &Absent)?;      // every layer from zero
/// assert_eq!((out.y.dim(), out.h_n.dim()), ((5, 2, 8), (5, 2, 24)));
/// # Ok::<(), nngraph::Error>(())
/// ```
///
/// **Parameters** sit in one flat buffer in declaration order (nested calls
/// before the node that uses them), torch layout (`Linear`: `weight`
/// `(out, in)` row-major, then `bias`), named `node.tensor`. A node's
/// tensors can take names of their own, as in a torch module's state dict:
/// `#[params(weight = weight_ih, bias = bias_ih)] ih = Linear(I, 4 * H)(x);`
/// names them `weight_ih` and `bias_ih` (the shipped `LstmCell` and
/// `GruCell` do this, so their checkpoints load into `torch.nn.LSTMCell` and
/// `GRUCell` unchanged). Doc comments on nodes are allowed.
///
/// **Export to PyTorch.** `g.to_pytorch()` is the Python source of an
/// equivalent `torch.nn.Module` (the class is made at compile time; nested
/// graphs' classes come first; `build()` constructs it with the instance's
/// sizes), with the same parameter names, so `g.save(path)` loads into it
/// with `load_state_dict`. A recurrent graph's step is its `forward`.
///
/// **Mistakes** (width mismatch, unknown name or layer, wrong number of
/// arguments or inputs, duplicate, cycle, unused input or node, misuse of ids)
/// are compile errors pointing at the offending token, all reported at once.
///
/// **Mistakes** in one graph do not hide the others, and a graph with
/// mistakes still defines its type and API (with bodies that never run), so
/// code that uses it shows the mistakes alone.
///
/// **Generated API** for a graph `Name` (`Name<F = f32>`; const sizes come
/// first: `Lstm<3, 4, f64>`). Inputs are always taken in declaration order,
/// outputs' gradients in the order of `-> (..)`:
///
/// | method | takes | returns |
/// |---|---|---|
/// | `Name::new(&mut rng, sizes..)` | a generator, then the run-time sizes | the graph, torch-like initial values (a `Result` when something is checked when the graph is built: run-time sizes, user layers, nested graphs) |
/// | `Name::zeros(sizes..)` | the run-time sizes | the graph, every parameter zero |
/// | `g.tape()` | | a [`Tape`](runtime::Tape) for one step or a whole sequence |
/// | `g.forward(&mut tape, inputs..)` | one value per input: `(B, width)` (a 1-D value for one sample), ids for a `usize` input | `NameOutputs`: one `(B, width)` view per output |
/// | `g.backward(&mut tape, grads..)` | one `(B, width)` gradient per output | `NameInputGrads`: one view per value input; parameter gradients accumulate |
/// | `g.forward_seq(&mut tape, inputs..)` | for `#[recurrent]` graphs: `(T, B, width)` or `(T, B)` ids per input, a state's initial value `(B, width)` | `NameSeqOutputs`: one `(T, B, width)` view per output |
/// | `g.forward_seq_carry(&mut tape, inputs..)` | the inputs that are not states; each state starts where the last pass ended (truncated BPTT) | `NameSeqOutputs` |
/// | `g.backward_seq(&mut tape, grads..)` | one `(T, B, width)` gradient per output | `NameSeqInputGrads`: the initial states' `(B, width)` and the sequences' gradients |
///
/// Any argument may be [`&Absent`](runtime::Absent): a missing output
/// gradient is zero, a missing state starts at zero (as torch's `h_0`), and
/// a missing input that only loss nodes read leaves them out (evaluation
/// and sampling without targets; their values are NaN). Errors name the
/// input or output and both shapes. Consts: `NAME`, `INPUTS`, `OUTPUTS` and,
/// when known at compile time, `INPUT_WIDTHS`, `OUTPUT_WIDTHS`,
/// `NUM_PARAMS`; companion types `NameLayers`, `NameOutputs`,
/// `NameInputGrads`, `NameSeqOutputs`, `NameSeqInputGrads` (and `NameSizes`
/// for run-time sizes).
///
/// Everything else is a method of the [`Graph`](runtime::Graph) trait, which
/// the prelude brings in scope: `backward_loss(&mut tape, reduction)` for a
/// graph with loss nodes, the untyped `forward_feeds`/`backward_feeds` (one
/// [`Feed`](runtime::Feed) per input or output, for code generic over
/// graphs), `zero_grad()`, flat `params()`/`grads()`, named
/// `param("x2h.weight")`/`param_mut`/`grad`, `param_specs()`,
/// `training()`/`evaluate()`, `set_dropout`, `set_checked(true)` (NaN/inf
/// detection naming the node), `set_seed`, `save`/`load`, `plan()`,
/// `to_dot()`, `svg()`, `summary()`, `to_pytorch()`, and the graph's
/// [`GraphSpec`](runtime::GraphSpec) (`SPEC`: inputs, outputs, nodes with
/// their lines, evaluation order, recurrent pairs). The recorded values
/// are on the tape by name: `tape.value("x2h")`, `tape.value_seq("h1")`,
/// `tape.grad("x")`, `tape.final_state("h")`. [`GradCheck`](runtime::GradCheck)
/// works with any graph.
///
/// ```
/// use nngraph::prelude::*;
///
/// graph! {
///     #[recurrent(h = new_h)]
///     pub Cell(x: [2], h: [3]) -> (y, new_h) {
///         new_h = Tanh()(CAdd()(Linear(2, 3)(x), Linear(3, 3)(h)));
///         y = Linear(3, 1)(new_h);
///     }
/// }
///
/// let mut cell = Cell::<f64>::new(&mut StdRng::seed_from_u64(1));
/// let mut tape = cell.tape();
/// let xs = Array3::from_elem((6, 2, 2), 0.5);            // 6 steps of 2 samples
/// let h0 = Array2::zeros((2, 3));
/// let out = cell.forward_seq(&mut tape, &xs, &h0)?;      // x, then h: as declared
/// assert_eq!(out.y.dim(), (6, 2, 1));
/// let dy = Array3::from_elem((6, 2, 1), 1.0);
/// let grads = cell.backward_seq(&mut tape, &dy, &Absent)?; // no gradient for new_h
/// assert_eq!((grads.x.dim(), grads.h.dim()), ((6, 2, 2), (2, 3)));
/// # Ok::<(), nngraph::Error>(())
/// ```
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
