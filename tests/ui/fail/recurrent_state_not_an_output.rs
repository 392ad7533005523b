use nngraph::prelude::*;

graph! {
    #[recurrent(h = new_h)]
    pub Cell(x: [2], h: [4]) -> (y) {
        new_h = Tanh()(CAdd()(Linear(2, 4)(x), Linear(4, 4)(h)));
        y = Linear(4, 1)(new_h);
    }
}

fn main() {}
