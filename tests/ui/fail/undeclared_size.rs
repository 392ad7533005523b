use nngraph::prelude::*;

graph! {
    pub Project<const H: usize>(x: [I]) -> (y) {
        y = Linear(H, 2)(x);
    }
}

fn main() {}
