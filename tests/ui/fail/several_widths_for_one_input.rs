use nngraph::prelude::*;

graph! {
    pub Cell(x: [3, 2]) -> (y) {
        y = Linear(2, 1)(x);
    }
}

fn main() {}
