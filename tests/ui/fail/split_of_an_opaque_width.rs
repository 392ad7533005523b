use nngraph::prelude::*;

graph! {
    pub Halves<const H: usize>(x: [H]) -> (a, b) {
        (a, b) = Split(2)(x);
    }
}

fn main() {}
