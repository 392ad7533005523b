use nngraph::prelude::*;

graph! {
    pub Net(x: [8]) -> (y) {
        y = Linear(8, 2)(Dropout(50)(x));
    }
}

fn main() {}
