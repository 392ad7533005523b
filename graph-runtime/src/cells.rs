//! Recurrent cells declared with `graph!`, with the equations, gate order
//! and weight layout of `torch.nn.LSTMCell` and `torch.nn.GRUCell`:
//!
//! - parameters named as in torch's state dict: `weight_ih` `(G·H, I)`,
//!   `weight_hh` `(G·H, H)`, `bias_ih` `(G·H)`, `bias_hh` `(G·H)`, with the
//!   gates stacked by rows in torch's order, so a checkpoint loads into
//!   torch with `load_state_dict` and back without renaming;
//! - LSTM (`G = 4`, gates i, f, g, o):
//!   `c' = σ(f)·c + σ(i)·tanh(g)`, `h' = σ(o)·tanh(c')`;
//! - GRU (`G = 3`, gates r, z, n): `r = σ(i_r + h_r)`, `z = σ(i_z + h_z)`,
//!   `n = tanh(i_n + r·h_n)`, `h' = (1 - z)·n + z·h`, written
//!   `n + z·(h - n)`.
//!
//! Both declare their state with `#[recurrent]`, so they run over whole
//! sequences with `forward_seq(&mut tape, &xs, &h0, ..)`: the LSTM's
//! states are `h` and `c`, after `x` as declared.

use graph_macros::graph;

graph! {
    /// A long short-term memory cell, `torch.nn.LSTMCell(I, H)`.
    #[recurrent(h = h_next, c = c_next)]
    pub LstmCell<const I: usize, const H: usize>(x: [I], h: [H], c: [H]) -> (h_next, c_next) {
        #[params(weight = weight_ih, bias = bias_ih)]
        ih = Linear(I, 4 * H)(x);
        #[params(weight = weight_hh, bias = bias_hh)]
        hh = Linear(H, 4 * H)(h);
        (i, f, g, o) = Split(4)(CAdd()(ih, hh));
        c_next = CAdd()(CMul()(Sigmoid()(f), c), CMul()(Sigmoid()(i), Tanh()(g)));
        h_next = CMul()(Sigmoid()(o), Tanh()(c_next));
    }

    /// A gated recurrent unit cell, `torch.nn.GRUCell(I, H)`.
    #[recurrent(h = h_next)]
    pub GruCell<const I: usize, const H: usize>(x: [I], h: [H]) -> (h_next) {
        #[params(weight = weight_ih, bias = bias_ih)]
        ih = Linear(I, 3 * H)(x);
        #[params(weight = weight_hh, bias = bias_hh)]
        hh = Linear(H, 3 * H)(h);
        (i_r, i_z, i_n) = Split(3)(ih);
        (h_r, h_z, h_n) = Split(3)(hh);
        r = Sigmoid()(CAdd()(i_r, h_r));
        z = Sigmoid()(CAdd()(i_z, h_z));
        n = Tanh()(CAdd()(i_n, CMul()(r, h_n)));
        h_next = CAdd()(n, CMul()(z, CSub()(h, n)));
    }
}
