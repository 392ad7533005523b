//! A stack of layers: the value of a `Stack(depth, First, Rest)` node, one
//! nested graph for the first layer and `depth - 1` of another type for the
//! layers above it (an LSTM stack's first layer reads the input's width,
//! the others the hidden width).
//!
//! The engine sees each layer as a nested graph of its own (its record,
//! its slice of the parameters), chained through input and output 0, with
//! the other inputs and outputs grouped one block per layer
//! ([`NodeKind::Stack`](crate::NodeKind::Stack)).

/// The layers of a stack node: `first`, then `rest`.
#[derive(Debug, Clone)]
pub struct Stack<A, B> {
    first: A,
    rest: Vec<B>,
    /// A layer above the first, kept for its widths when the stack has one
    /// layer (its parameters are not the stack's).
    template: B,
}

impl<A, B: Clone> Stack<A, B> {
    /// A stack of `depth` layers: `first`, then `depth - 1` copies of
    /// `rest`. An error if `depth` is zero.
    pub fn new(depth: usize, first: A, rest: B) -> Result<Self, String> {
        if depth == 0 {
            return Err("has a depth of 0: a stack needs at least one layer".into());
        }
        Ok(Stack {
            first,
            rest: vec![rest.clone(); depth - 1],
            template: rest,
        })
    }
}

impl<A, B> Stack<A, B> {
    /// The number of layers.
    pub fn depth(&self) -> usize {
        1 + self.rest.len()
    }

    /// The first layer.
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The layers above the first.
    pub fn rest(&self) -> &[B] {
        &self.rest
    }

    /// A layer above the first, whether or not the stack has one: what the
    /// widths of the upper layers are read from.
    pub fn upper(&self) -> &B {
        self.rest.first().unwrap_or(&self.template)
    }
}
