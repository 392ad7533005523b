use nngraph::prelude::*;

graph! {
    pub Diff(a: [3], b: [5]) -> (y) {
        y = CSub()(a, Linear(5, 4)(b));
    }
}

fn main() {}
