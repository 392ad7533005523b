use nngraph::prelude::*;

graph! {
    pub Gates(x: [6]) -> (a, b) {
        (a, b) = Split(3)(x);
    }
}

fn main() {}
