//! An LSTM layer with run-time sizes, as char_rnn declares it: the layer
//! the stacked models of `allocations.rs` and `stacked.rs` nest twice.
#![allow(dead_code)]

use nngraph::prelude::*;

graph! {
    /// One LSTM layer, torch's gate order.
    #[recurrent(h = h_next, c = c_next)]
    pub Layer[input, hidden](x: [input], h: [hidden], c: [hidden]) -> (h_next, c_next) {
        ih = Linear(input, 4 * hidden)(x);
        hh = Linear(hidden, 4 * hidden)(h);
        (i, f, g, o) = Split(4)(CAdd()(ih, hh));
        c_next = CAdd()(CMul()(Sigmoid()(f), c), CMul()(Sigmoid()(i), Tanh()(g)));
        h_next = CMul()(Sigmoid()(o), Tanh()(c_next));
    }
}
