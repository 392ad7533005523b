//! The outputs of a graph declared earlier in the same invocation are
//! known to the macro: a layer reading one of the wrong width, and an
//! output bound to too many names, are compile errors at the user's token.
use nngraph::prelude::*;

graph! {
    pub Widen[n](x: [n]) -> (y) {
        y = Tanh()(Linear(n, 2 * n)(x));
    }

    /// `y` is `2 * n` wide; the layer takes `n`.
    pub Reads[n](x: [n]) -> (z) {
        z = Linear(n, 1)(Widen[n](x).y);
    }

    /// `Widen` has one output.
    pub Binds[n](x: [n]) -> (a, b) {
        (a, b) = Widen[n](x);
    }
}

fn main() {}
