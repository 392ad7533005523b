use nngraph::prelude::*;

graph! {
    pub Cell<T>(x: [2]) -> (y) {
        y = Linear(2, 1)(x);
    }
}

fn main() {}
