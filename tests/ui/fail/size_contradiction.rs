use nngraph::prelude::*;

graph! {
    pub Project<const H: usize>(x: [H]) -> (y) {
        y = Linear(H + 1, 2)(x);
    }
}

fn main() {}
