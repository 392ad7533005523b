//! Two independent mistakes in nested graphs: both are reported at once.
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
    pub Outer(x: [3], h: [4], z: [2], g: [5]) -> (a, b) {
        a = cells::Cell(x, h).y;
        b = cells::Cell(z, g).y;
    }
}

fn main() {}
