//! The shipped cells' inputs are known to the macro: a state of the wrong
//! width, even in run-time sizes, is an error at the argument, under
//! `cargo check`.
use nngraph::prelude::*;

graph! {
    #[recurrent(h = h_next)]
    pub Wrong[hidden](x: [3], h: [hidden]) -> (h_next) {
        h_next = nngraph::cells::GruLayer[3, 2 * hidden](x, h).h_next;
    }

    #[recurrent(h = h_n, c = c_n)]
    pub Wider[layers](x: [3], h: [layers * 5], c: [layers * 4]) -> (y, h_n, c_n) {
        (y, h_n, c_n) = nngraph::cells::Lstm[3, 4, layers](x, h, c);
    }
}

fn main() {}
