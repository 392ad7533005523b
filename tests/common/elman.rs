//! A stack of the user's own layers: Elman cells, the first of its own
//! width, their tensors named inline. Exported to PyTorch by the example
//! `export_pytorch` and checked by `tests/pytorch_export.rs`.

use nngraph::prelude::*;

graph! {
    /// One Elman layer, for a stack of the graph's own.
    #[recurrent(h = new_h)]
    pub Elman[input, hidden](x: [input], h: [hidden]) -> (new_h) {
        new_h = Tanh()(CAdd()(Linear(input, hidden)(x), Linear(hidden, hidden)(h)));
    }

    /// A stack of user layers, its first layer of its own, inline names.
    #[recurrent(h = h_n)]
    pub ElmanStack[layers](x: [5], h: [layers * 6]) -> (y, h_n) {
        #[params(inline)]
        (top, h_n) = Stack(layers, Elman[5, 6], Elman[6, 6])(x, h);
        y = Sigmoid()(Linear(6, 2)(top));
    }
}
