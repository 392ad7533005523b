use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (y) {
        h = Linear(2, 4)(x);
        y = Tanh(h);
    }
}

fn main() {}
