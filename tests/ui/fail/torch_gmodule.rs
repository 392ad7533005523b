use nngraph::prelude::*;

graph! {
    pub Model(x: [2]) -> (y) {
        y = Linear(2, 1)(x);
        model = nn.gModule({x}, {y});
    }
}

fn main() {}
