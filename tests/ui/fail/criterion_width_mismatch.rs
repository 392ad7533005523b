use nngraph::prelude::*;

graph! {
    pub Regressor(x: [4], target: [2]) -> (loss) {
        loss = Mse()(Linear(4, 3)(x), target);
    }
}

fn main() {}
