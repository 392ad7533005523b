//! What the macro knows about a graph, as constants: its inputs, outputs and
//! nodes in evaluation order, each node's source line and input slots.
//!
//! Generated code emits one [`GraphSpec`] per graph and little else; the
//! runtime reads it to size tapes, check calls, run the passes, name nodes
//! in errors and draw pictures.
//!
//! Values live in *slots*: slot `i < inputs.len()` is input `i`, slot
//! `inputs.len() + k` is node `k`.

/// A graph, as the macro saw it.
#[derive(Debug)]
pub struct GraphSpec {
    /// The graph's name, as declared.
    pub name: &'static str,
    /// The source file it is declared in (for messages).
    pub file: &'static str,
    /// Declared inputs, in order.
    pub inputs: &'static [InputSpec],
    /// Declared outputs, in order.
    pub outputs: &'static [OutputSpec],
    /// Every node (nested calls included), in declaration order.
    pub nodes: &'static [NodeSpec],
    /// Node indices in evaluation (topological) order.
    pub order: &'static [usize],
    /// `(input index, output index)` of each `#[recurrent]` pair.
    pub recurrent: &'static [(usize, usize)],
    /// A Graphviz picture of the graph.
    pub dot: &'static str,
    /// The graph as the Python source of a `torch.nn.Module` class whose
    /// constructor takes the graph's sizes (see `Graph::to_pytorch`). Class
    /// names are placeholders between `\u{1}` characters: `C` and the name
    /// the class would like for its own, `N` and a node index for the class
    /// of the graph nested there; `to_pytorch` writes the names in.
    pub python: &'static str,
    /// The graph's sizes, const generics first, then run-time sizes.
    pub sizes: &'static [&'static str],
    /// Groups of nodes the runtime computes as one fused unit (found by
    /// `graph!`; a hand-written spec may leave this empty).
    pub fusions: &'static [Fusion],
}

/// Nodes the runtime computes as one unit, each keeping its slot on the
/// tape (its value and gradient readable by name).
#[derive(Debug, Clone, Copy)]
pub enum Fusion {
    /// The gate arithmetic of an LSTM cell.
    LstmGates(LstmGates),
}

/// The gate arithmetic of an LSTM cell, by node index: `sum = a + b` (two
/// inputs, `4H` wide), its four `Narrow` parts `i, f, g, o`, then
/// `σ(i)`, `σ(f)`, `tanh(g)`, `σ(o)`, `f_c = σ(f)·c`, `i_g = σ(i)·tanh(g)`,
/// `c_next = f_c + i_g`, `tanh_c = tanh(c_next)`, `h_next = σ(o)·tanh_c`.
/// No node but `c_next` and `h_next` is read outside the group or is an
/// output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmGates {
    /// `a + b`.
    pub sum: usize,
    /// The parts `i, f, g, o` of the sum.
    pub parts: [usize; 4],
    /// `σ(i)`.
    pub sig_i: usize,
    /// `σ(f)`.
    pub sig_f: usize,
    /// `tanh(g)`.
    pub tanh_g: usize,
    /// `σ(o)`.
    pub sig_o: usize,
    /// `σ(f)·c`.
    pub f_c: usize,
    /// `σ(i)·tanh(g)`.
    pub i_g: usize,
    /// `f_c + i_g`.
    pub c_next: usize,
    /// `tanh(c_next)`.
    pub tanh_c: usize,
    /// `σ(o)·tanh(c_next)`.
    pub h_next: usize,
    /// The slot of the cell state `c`.
    pub c: usize,
}

impl LstmGates {
    /// The nodes whose gradient a fused backward pass writes in full (read
    /// by no one outside the group): all but `c_next` and `h_next`.
    pub fn inner(&self) -> [usize; 12] {
        let [p0, p1, p2, p3] = self.parts;
        [
            self.sum,
            p0,
            p1,
            p2,
            p3,
            self.sig_i,
            self.sig_f,
            self.tanh_g,
            self.sig_o,
            self.f_c,
            self.i_g,
            self.tanh_c,
        ]
    }

    /// The old name of [`sole_inputs`](Self::sole_inputs), from when the
    /// fused backward pass wrote those gradients rather than sharing the
    /// sum's.
    #[deprecated(note = "renamed `sole_inputs`")]
    pub fn writes_input_grads(&self, spec: &GraphSpec) -> [bool; 2] {
        self.sole_inputs(spec)
    }

    /// Per input of the sum (`a`, `b`): whether the sum is all that reads
    /// it (a node's slot, not an input's, read once, and not an output of
    /// the graph), so that its gradient is the sum's.
    pub fn sole_inputs(&self, spec: &GraphSpec) -> [bool; 2] {
        let ab = spec.nodes[self.sum].inputs;
        let sole = |slot: usize| {
            let reads: usize = spec
                .nodes
                .iter()
                .map(|n| n.inputs.iter().filter(|&&s| s == slot).count())
                .sum();
            slot >= spec.inputs.len()
                && reads == 1
                && !(0..spec.outputs.len()).any(|o| spec.output_slot(o) == slot)
        };
        [sole(ab[0]), sole(ab[1])]
    }

    /// The group's nodes in an evaluation order.
    pub fn nodes(&self) -> [usize; 14] {
        let [p0, p1, p2, p3] = self.parts;
        [
            self.sum,
            p0,
            p1,
            p2,
            p3,
            self.sig_i,
            self.sig_f,
            self.tanh_g,
            self.sig_o,
            self.f_c,
            self.i_g,
            self.c_next,
            self.tanh_c,
            self.h_next,
        ]
    }
}

/// One declared input.
#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    /// Its name.
    pub name: &'static str,
    /// Whether it takes integer ids (`name: usize`) rather than values.
    pub ids: bool,
}

/// One declared output.
#[derive(Debug, Clone, Copy)]
pub struct OutputSpec {
    /// Its name.
    pub name: &'static str,
    /// The node it reads.
    pub node: usize,
}

/// One node.
#[derive(Debug, Clone, Copy)]
pub struct NodeSpec {
    /// Its name (`x2h`, or a documented name for a nested call: `new_h_cadd`).
    pub name: &'static str,
    /// Its layer as written: `Linear(2, 4)`.
    pub layer: &'static str,
    /// The line it is declared on.
    pub line: u32,
    /// The slots it reads, in order.
    pub inputs: &'static [usize],
    /// What computes it.
    pub kind: NodeKind,
    /// Whether it is a criterion, one loss per sample.
    pub loss: bool,
    /// `(tensor, full name)` of each parameter tensor renamed with
    /// `#[params(tensor = name)]`; the others are called `node.tensor`.
    pub params: &'static [(&'static str, &'static str)],
}

/// What computes a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A layer.
    Layer,
    /// A nested graph; `to[i]` is the nested graph's input that the node's
    /// input `i` feeds. The node holds no value of its own.
    Nested {
        /// The nested input each node input feeds.
        to: &'static [usize],
    },
    /// A stack of nested graphs, one per layer (their number is known when
    /// the graph is built): input 0 feeds layer 0's input 0, layer `l`'s
    /// output 0 feeds layer `l + 1`'s input 0; every other input `j` is a
    /// group, one block of columns per layer (layer `l` reads block `l` as
    /// its input `j`). Output 0 is the last layer's output 0; output
    /// `o + 1` is the group of every layer's output `o`, block `l` from
    /// layer `l` (torch's `h_n`).
    Stack,
    /// Output `output` of the nested graph at node `host`.
    Output {
        /// The nested graph's node.
        host: usize,
        /// Which of its outputs.
        output: usize,
    },
}

impl GraphSpec {
    /// Number of slots: inputs, then nodes.
    pub const fn slots(&self) -> usize {
        self.inputs.len() + self.nodes.len()
    }

    /// The slot of node `k`.
    pub const fn node_slot(&self, k: usize) -> usize {
        self.inputs.len() + k
    }

    /// The slot output `o` reads.
    pub const fn output_slot(&self, o: usize) -> usize {
        self.inputs.len() + self.outputs[o].node
    }

    /// The name of a slot: an input's or a node's.
    pub fn slot_name(&self, slot: usize) -> &'static str {
        match slot.checked_sub(self.inputs.len()) {
            None => self.inputs[slot].name,
            Some(k) => self.nodes[k].name,
        }
    }
}

/// The index of the input named `name` (usable in constants); `usize::MAX`
/// when absent, which generated code reports before using it.
pub const fn input_index(spec: &GraphSpec, name: &str) -> usize {
    let mut i = 0;
    while i < spec.inputs.len() {
        if str_eq(spec.inputs[i].name, name) {
            return i;
        }
        i += 1;
    }
    usize::MAX
}

/// The index of the output named `name` (usable in constants); `usize::MAX`
/// when absent.
pub const fn output_index(spec: &GraphSpec, name: &str) -> usize {
    let mut i = 0;
    while i < spec.outputs.len() {
        if str_eq(spec.outputs[i].name, name) {
            return i;
        }
        i += 1;
    }
    usize::MAX
}

/// The index of `name` in `names` (usable in constants); `usize::MAX` when absent.
pub const fn position(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        if str_eq(names[i], name) {
            return i;
        }
        i += 1;
    }
    usize::MAX
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
