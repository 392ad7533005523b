//! Recurrent pairs that cannot be right: two states fed by one output, a
//! state fed by an input (itself), each a spanned error, all at once.
use nngraph::prelude::*;

graph! {
    #[recurrent(h = h_next, c = h_next)]
    pub Shared(x: [2], h: [2], c: [2]) -> (h_next) {
        h_next = Tanh()(CAdd()(x, h, c));
    }

    #[recurrent(h = h)]
    pub Itself(x: [2], h: [2]) -> (y) {
        y = CAdd()(x, h);
    }
}

fn main() {}
