// A graph's sizes in the wrong brackets, or too few: const generics go in
// `<..>`, run-time sizes in `[..]`. The macro knows the shipped cells (by
// their path, or an imported const-generic cell by its name) and the graphs
// of its own block, so each is a spanned error that says what to write, and
// nothing points into the library.
use nngraph::cells::GruCell;
use nngraph::prelude::*;

graph! {
    pub Inner[n](x: [n]) -> (y) {
        y = Tanh()(x);
    }

    pub Net(x: [3], h: [4], c: [8], g: [8]) -> (a, b, d, e) {
        a = GruCell[3, 4](x, h).h_next;
        (b, hn, cn) = nngraph::cells::Lstm<3, 4, 2>(x, c, c);
        (d, gn) = nngraph::cells::Gru[3, 4](x, g);
        e = Inner[3, 2](x);
    }
}

fn main() {}
