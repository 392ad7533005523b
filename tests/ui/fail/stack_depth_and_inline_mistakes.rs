//! A stack of no layers, and `#[params(inline)]` on a layer: both reported
//! in one compile, each at its token.
use nngraph::prelude::*;

graph! {
    #[recurrent(h = new_h)]
    pub Elman[input, hidden](x: [input], h: [hidden]) -> (new_h) {
        new_h = Tanh()(CAdd()(Linear(input, hidden)(x), Linear(hidden, hidden)(h)));
    }

    #[recurrent(h = h_n)]
    pub NoLayers(x: [3], h: [4]) -> (y, h_n) {
        (y, h_n) = Stack(0, Elman[3, 4])(x, h);
    }

    pub InlineOnALayer(x: [3]) -> (y) {
        #[params(inline)]
        y = Linear(3, 4)(x);
    }
}

fn main() {}
