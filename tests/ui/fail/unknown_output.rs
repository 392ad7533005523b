use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (y, new_h) {
        new_hidden = Tanh()(x);
        y = Linear(2, 1)(new_hidden);
    }
}

fn main() {}
