use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (h) {
        h = x - Linear(2, 4);
    }
}

fn main() {}
