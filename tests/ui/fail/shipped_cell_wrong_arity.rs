//! A shipped cell given three inputs where it takes two, and one given a
//! width it does not take: counts and widths as numbers, on the user's
//! tokens, and no index panic.
use nngraph::cells::{GruCell, LstmCell};
use nngraph::prelude::*;

graph! {
    pub Three(x: [8], h: [16], c: [16]) -> (y) {
        y = GruCell<8, 16>(x, h, c).h_next;
    }

    pub Narrower(x: [4], h: [16], c: [16]) -> (y) {
        y = LstmCell<8, 16>(x, h, c).h_next;
    }
}

fn main() {}
