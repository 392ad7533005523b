//! `#[params(tensor = name)]` renames a built-in layer's parameters; each
//! mistake in its use is reported, all at once.
use nngraph::prelude::*;

graph! {
    pub Renamed(x: [4], h: [3], c: [3]) -> (y, z, w, v) {
        #[params(weights = w_in)]
        a = Linear(4, 3)(x);
        #[params(weight = w_in)]
        b = Linear(4, 3)(x);
        #[params(weight = w_in, weight = w_other)]
        d = Linear(4, 3)(x);
        #[params(weight = t_weight)]
        y = Tanh()(CAdd()(a, b, d));
        #[params(weight = parts)]
        (z, w) = Split(2)(Linear(3, 4)(y));
        #[params(weight = cell_weight)]
        (v, _c1) = nngraph::cells::LstmCell<4, 3>(x, h, c);
    }
}

graph! {
    pub Annotated(x: [2]) -> (y) {
        /// A doc comment on a node is fine.
        #[inline]
        y = Linear(2, 2)(x);
    }
}

fn main() {}
