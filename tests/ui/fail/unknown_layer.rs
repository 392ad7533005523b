use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (y) {
        y = Linaer(2, 4)(x);
    }
}

fn main() {}
