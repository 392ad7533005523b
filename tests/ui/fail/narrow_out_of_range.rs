use nngraph::prelude::*;

graph! {
    pub Cell(x: [4]) -> (y) {
        y = Narrow(2, 3)(x);
    }
}

fn main() {}
