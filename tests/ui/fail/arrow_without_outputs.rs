use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> {
        y = Linear(2, 1)(x);
    }
}

fn main() {}
