use nngraph::prelude::*;

graph! {
    pub Cell(x: [2], h: [4]) -> (y) {
        x2h = Linear(3, 4)(x);
        y = CAdd()(x2h, Linear(4, 4)(h));
    }
}

fn main() {}
