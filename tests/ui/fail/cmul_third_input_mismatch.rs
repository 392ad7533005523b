use nngraph::prelude::*;

graph! {
    pub Gate(a: [4], b: [4], c: [2]) -> (y) {
        y = CMul()(a, b, c);
    }
}

fn main() {}
