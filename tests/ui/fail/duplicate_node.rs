use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (h) {
        h = Linear(2, 4)(x);
        h = Tanh()(h);
    }
}

fn main() {}
