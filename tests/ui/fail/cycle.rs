use nngraph::prelude::*;

graph! {
    pub Loop(x: [4]) -> (c) {
        a = CAdd()(x, c);
        b = Tanh()(a);
        c = Linear(4, 4)(b);
    }
}

fn main() {}
