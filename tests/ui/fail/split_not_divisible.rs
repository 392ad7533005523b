use nngraph::prelude::*;

graph! {
    pub Gates(x: [4]) -> (a, b, c) {
        (a, b, c) = Split(3)(x);
    }
}

fn main() {}
