//! A stack written with three graphs: it takes the first layer's and the
//! others'.
use nngraph::prelude::*;

graph! {
    #[recurrent(h = new_h)]
    pub Elman[input, hidden](x: [input], h: [hidden]) -> (new_h) {
        new_h = Tanh()(CAdd()(Linear(input, hidden)(x), Linear(hidden, hidden)(h)));
    }

    #[recurrent(h = h_n)]
    pub ThreeGraphs(x: [3], h: [8]) -> (y, h_n) {
        (y, h_n) = Stack(2, Elman[3, 4], Elman[4, 4], Elman[4, 4])(x, h);
    }
}

fn main() {}
