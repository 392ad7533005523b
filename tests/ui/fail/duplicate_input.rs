use nngraph::prelude::*;

graph! {
    pub Net(x: [2], x: [3]) -> (y) {
        y = Linear(2, 1)(x);
    }
}

fn main() {}
