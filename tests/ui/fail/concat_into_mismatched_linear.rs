use nngraph::prelude::*;

graph! {
    pub Join(a: [2], b: [2]) -> (y) {
        y = Linear(5, 1)(Concat()(a, b));
    }
}

fn main() {}
