use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (y) {
        hidden = Linear(2, 4)(x);
        y = Tanh()(hiden);
    }
}

fn main() {}
