//! A state fed by a nested graph's output of another width: the widths as
//! numbers, on the pair.
use nngraph::cells::GruCell;
use nngraph::prelude::*;

graph! {
    #[recurrent(h = h1)]
    pub Wrapper(x: [3], h: [5]) -> (h1) {
        h1 = Identity()(GruCell<3, 4>(x, Narrow(0, 4)(h)).h_next);
    }
}

fn main() {}
