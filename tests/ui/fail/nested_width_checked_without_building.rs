//! A nested graph's widths are checked by `cargo check`, even in code that
//! never builds the outer graph.
use nngraph::prelude::*;

mod cells {
    use nngraph::prelude::*;

    graph! {
        pub Cell(x: [2], h: [4]) -> (y, new_h) {
            new_h = Tanh()(CAdd()(Linear(2, 4)(x), Linear(4, 4)(h)));
            y = Sigmoid()(Linear(4, 1)(new_h));
        }
    }
}

graph! {
    pub Outer(x: [2], h: [5]) -> (y, h1) {
        (y, h1) = cells::Cell(x, h);
    }
}

fn main() {}
