//! An LSTM cell given two of its three inputs: the unused input says which
//! call may be missing it.
use nngraph::prelude::*;

graph! {
    #[recurrent(h = h1, c = c1)]
    pub Missing(x: [3], h: [2], c: [2]) -> (h1, c1) {
        (h1, c1) = nngraph::cells::LstmCell<3, 2>(x, h);
    }
}

fn main() {}
