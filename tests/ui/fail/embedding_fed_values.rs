use nngraph::prelude::*;

graph! {
    pub Lookup(x: [4]) -> (y) {
        y = Embedding(5, 3)(x);
    }
}

fn main() {}
