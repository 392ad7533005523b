use nngraph::prelude::*;

graph! {
    pub Cell(x: [2]) -> (y) {
        y = nn.Linear(2, 4)(x);
    }
}

fn main() {}
