use nngraph::prelude::*;

graph! {
    pub Cell(a: [2], b: [2]) -> (y) {
        y = Tanh()(a, b);
    }
}

fn main() {}
