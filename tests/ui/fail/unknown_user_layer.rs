use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (y) {
        y = Softplux()(x);
    }
}

fn main() {}
