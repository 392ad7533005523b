use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (y) {
        y = Tanh(2)(x);
    }
}

fn main() {}
