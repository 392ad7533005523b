use nngraph::prelude::*;

graph! {
    pub Cell(x: [0]) -> (y) {
        y = Linear(2, 0)(x);
    }
}

fn main() {}
