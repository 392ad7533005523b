use nngraph::prelude::*;

graph! {
    #[recurrent(h = new_h)]
    pub Cell(x: [2], h: [4]) -> (y, new_h) {
        new_h = Tanh()(Linear(2, 3)(x));
        y = Linear(4, 1)(h);
    }
}

fn main() {}
