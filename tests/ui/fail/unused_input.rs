use nngraph::prelude::*;

graph! {
    pub Cell(x: [2], h: [4]) -> (y) {
        y = Linear(2, 1)(x);
    }
}

fn main() {}
