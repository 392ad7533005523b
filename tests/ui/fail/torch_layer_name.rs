use nngraph::prelude::*;

graph! {
    pub Cell(a: [2], b: [2]) -> (y) {
        y = CAddTable()(a, b);
    }
}

fn main() {}
