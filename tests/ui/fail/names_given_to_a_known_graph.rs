// Inputs and outputs named in a call to a graph the macro knows (of the
// same block, or shipped): a misspelt input (with what is then missing),
// an input left out, an output that does not exist, and two wrong widths
// in one call are all spanned errors of one `cargo check`.
use nngraph::prelude::*;

graph! {
    pub Inner(x: [2], h: [3]) -> (y) {
        y = Tanh()(CAdd()(Linear(2, 3)(x), h));
    }

    pub Outer(a: [2], b: [3], c: [5], d: [7], g: [8]) -> (p, q, r, s) {
        p = Inner(x = a, hidden = b).y;
        q = Inner(x = a).y;
        r = Inner(c, d).y;
        s = nngraph::cells::GruCell<2, 8>(a, g).h;
    }
}

fn main() {}
