use nngraph::prelude::*;

graph! {
    pub Cell(x: [2], h: [4]) -> (y) {
        x2h = Linear(3, 4)(x);
        h2h = Linaer(4, 4)(h);
        y = Sigmoid()(Linear(4, 1)(CAdd()(x2h, hh)));
    }
}

fn main() {}
