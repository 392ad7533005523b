//! `H - 8` with `H = 4`: an error when the graph is built, with the value
//! and the size, not an overflow when it runs.
use nngraph::prelude::*;

graph! {
    pub Small<const H: usize>(x: [H]) -> (y) {
        y = Narrow(0, H - 8)(x);
    }
}

fn main() {
    let _ = Small::<4, f32>::zeros();
}
