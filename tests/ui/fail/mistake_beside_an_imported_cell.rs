//! A graph with a mistake still names the cells it calls, so their imports
//! are used: the mistake is the only diagnostic.
use nngraph::cells::GruCell;
use nngraph::prelude::*;

graph! {
    pub A(x: [3], h: [4]) -> (y) {
        y = GruCell<3, 4>(x).h_next;
    }
}

fn main() {}
