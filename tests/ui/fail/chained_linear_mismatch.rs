use nngraph::prelude::*;

graph! {
    pub Mlp(x: [8]) -> (y) {
        h1 = ReLU()(Linear(8, 16)(x));
        h2 = ReLU()(Linear(16, 32)(h1));
        y = Linear(16, 10)(h2);
    }
}

fn main() {}
