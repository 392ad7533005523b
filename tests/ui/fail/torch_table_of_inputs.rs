use nngraph::prelude::*;

graph! {
    pub Sum(a: [3], b: [3]) -> (y) {
        y = CAdd()({a, b});
    }
}

fn main() {}
