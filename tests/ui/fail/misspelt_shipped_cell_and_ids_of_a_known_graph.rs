// A shipped cell named by its path but misspelt (in a call and as a stack's
// layer) is the macro's error with the closest name, not rustc pointing at
// the library's declarations; ids given where a graph of the block takes
// values, and values where it takes ids, are said as such.
use nngraph::prelude::*;

graph! {
    pub Dense(x: [4]) -> (y) {
        y = Tanh()(x);
    }

    pub Lookup(tok: usize) -> (y) {
        y = Embedding(9, 4)(tok);
    }

    pub Net(tok: usize, v: [4], h: [4], g: [8]) -> (a, b, c, d) {
        a = nngraph::cells::LSTMCell<4, 4>(v, h, h).h_next;
        (b, gn) = Stack(2, nngraph::cells::GRULayer[4, 4])(v, g);
        c = Dense(tok).y;
        d = Lookup(v).y;
    }
}

fn main() {}
