use nngraph::prelude::*;

graph! {
    pub Cell(a: [2]) -> (y) {
        y = CAdd()(a);
    }
}

fn main() {}
