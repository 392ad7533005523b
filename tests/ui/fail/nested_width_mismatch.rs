use nngraph::prelude::*;

graph! {
    pub Head(h: [4]) -> (y) {
        y = Sigmoid()(Linear(5, 1)(Tanh()(h)));
    }
}

fn main() {}
