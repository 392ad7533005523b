use nngraph::prelude::*;

graph! {
    pub Loop(x: [4]) -> (a) {
        a = CAdd()(x, a);
    }
}

fn main() {}
