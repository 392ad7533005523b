//! Widths that differ for every value of the sizes are compile errors
//! under `cargo check`, with const-generic and run-time sizes alike.
use nngraph::prelude::*;

graph! {
    pub Gates<const H: usize>(x: [H]) -> (y) {
        y = Linear(H, 4 * H)(Linear(H, 3 * H)(x));
    }

    pub Past<const H: usize>(x: [H]) -> (y) {
        y = Narrow(0, 5 * H)(Linear(H, 4 * H)(x));
    }

    pub Doubled[hidden](x: [hidden]) -> (y) {
        y = CAdd()(Linear(hidden, 2 * hidden)(x), x);
    }
}

graph! {
    pub Odd[h](x: [2 * h + 1]) -> (a, b) {
        (a, b) = Split(2)(x);
    }

    pub OneMore<const A: usize>(x: [A], b: [A + 1]) -> (y) {
        y = CMul()(x, b);
    }
}

fn main() {}
