//! A graph nested in another of the same invocation: the macro reads its
//! inputs, so a width that can never fit, with run-time sizes too, and a
//! wrong number of inputs are compile errors at the user's token.
use nngraph::prelude::*;

graph! {
    #[recurrent(h = h_next)]
    pub Layer[input, hidden](x: [input], h: [hidden]) -> (h_next) {
        h_next = Tanh()(CAdd()(Linear(input, hidden)(x), Linear(hidden, hidden)(h)));
    }

    /// `h` is twice as wide as the layer's state, for every `hidden`.
    #[recurrent(h = h_next)]
    pub Twice[hidden](x: [hidden], h: [2 * hidden]) -> (h_next) {
        h_next = Layer[hidden, hidden](x, h);
    }

    /// The layer takes two inputs, given three.
    pub ThreeInputs[hidden](x: [hidden], h: [hidden]) -> (y) {
        y = Layer[hidden, hidden](x, h, x);
    }
}

fn main() {}
