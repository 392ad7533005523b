// A stack of layers the macro knows (shipped, or declared in the same
// block) is checked by the macro, with run-time sizes too: its input, its
// state groups (`layers * hidden`) and the widths of its outputs further
// on are spanned errors of `cargo check`, not constructor errors.
use nngraph::prelude::*;

graph! {
    #[recurrent(h = h_next)]
    pub Elman[input, hidden](x: [input], h: [hidden]) -> (y, h_next) {
        h_next = Tanh()(CAdd()(Linear(input, hidden)(x), Linear(hidden, hidden)(h)));
        y = Identity()(h_next);
    }

    pub Shipped[hidden](x: [4], h: [2 * hidden]) -> (y, hn) {
        (y, hn) = Stack(2, nngraph::cells::GruLayer[3, hidden], nngraph::cells::GruUpper[hidden])(x, h);
    }

    pub Mine[hidden](x: [3], h: [hidden]) -> (z, hn, yn) {
        (y, yn, hn) = Stack(3, Elman[3, hidden], Elman[hidden, hidden])(x, h);
        z = Linear(hidden, 1)(y);
    }

    pub Further[hidden](x: [3], h: [3 * hidden]) -> (z, hn, yn) {
        (y, yn, hn) = Stack(3, Elman[3, hidden], Elman[hidden, hidden])(x, h);
        z = Linear(3 * hidden, 1)(y);
    }
}

fn main() {}
