use nngraph::prelude::*;

/// Has `new`, but is no `Layer`.
pub struct Halve;

impl Halve {
    pub fn new() -> Self {
        Halve
    }
}

graph! {
    pub Net(x: [2]) -> (y) {
        y = Halve()(x);
    }
}

fn main() {}
