use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (y) {
        x = Tanh()(x);
        y = Linear(2, 1)(x);
    }
}

fn main() {}
