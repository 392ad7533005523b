use nngraph::prelude::*;

graph! {
    pub Net(x: [2]) -> (y, logits) {
        hidden = Tanh()(Linear(2, 4)(x));
        y = Linear(4, 1)(hidden);
    }
}

fn main() {}
