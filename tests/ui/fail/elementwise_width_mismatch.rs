use nngraph::prelude::*;

graph! {
    pub Cell(x: [2], h: [4]) -> (y) {
        x2h = Linear(2, 4)(x);
        h2h = Linear(4, 3)(h);
        y = CAdd()(x2h, h2h);
    }
}

fn main() {}
