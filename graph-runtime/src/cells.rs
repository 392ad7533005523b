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
//!
//! The stacks [`Lstm`], [`Gru`] and [`Rnn`] are `torch.nn.LSTM`, `nn.GRU`
//! and `nn.RNN` (tanh) with `num_layers`, their sizes given at run time:
//! a [`Stack`](crate::Stack) of layers (`LstmLayer`, ..., the cells'
//! equations with run-time sizes; the upper layers take dropout on their
//! input, as torch's `dropout=` drops the output of every layer but the
//! last; [`Graph::set_dropout`](crate::Graph::set_dropout) sets it), with
//! torch's parameter names (`weight_ih_l0`, `bias_hh_l1`, ...), so a state
//! dict of `nn.LSTM(input, hidden, num_layers)` loads unchanged. The
//! states of all layers are one group each, `layers * hidden` wide: layer
//! `l` is columns `l·hidden..(l+1)·hidden` (torch's `h_0[l]`).
//!
//! ```
//! use graph_runtime::cells::Lstm;
//! use graph_runtime::prelude::*;
//!
//! // torch.nn.LSTM(4, 8, num_layers=2): a state dict of it loads with `load`.
//! let mut lstm = Lstm::<f32>::new(&mut StdRng::seed_from_u64(0), 4, 8, 2)?;
//! assert_eq!(lstm.param("weight_ih_l1")?.shape(), &[32, 8]);
//! let mut tape = lstm.tape();
//! let xs = Array3::<f32>::zeros((3, 1, 4)); // 3 steps of 1 sample
//! let out = lstm.forward_seq(&mut tape, &xs, &Absent, &Absent)?;
//! assert_eq!((out.y.dim(), out.h_n.dim()), ((3, 1, 8), (3, 1, 16)));
//! # Ok::<(), graph_runtime::Error>(())
//! ```

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

graph! {
    /// One layer of [`Lstm`]: [`LstmCell`]'s equations and names, its
    /// sizes given at run time.
    #[recurrent(h = h_next, c = c_next)]
    pub LstmLayer[input, hidden](x: [input], h: [hidden], c: [hidden]) -> (h_next, c_next) {
        #[params(weight = weight_ih, bias = bias_ih)]
        ih = Linear(input, 4 * hidden)(x);
        #[params(weight = weight_hh, bias = bias_hh)]
        hh = Linear(hidden, 4 * hidden)(h);
        (i, f, g, o) = Split(4)(CAdd()(ih, hh));
        c_next = CAdd()(CMul()(Sigmoid()(f), c), CMul()(Sigmoid()(i), Tanh()(g)));
        h_next = CMul()(Sigmoid()(o), Tanh()(c_next));
    }

    /// A layer of [`Lstm`] above the first: dropout on its input, then an
    /// [`LstmLayer`] (its tensors named as the layer's own; the plan copies
    /// nothing into or out of this graph that it only passes on).
    #[recurrent(h = h_next, c = c_next)]
    pub LstmUpper[hidden](x: [hidden], h: [hidden], c: [hidden]) -> (h_next, c_next) {
        #[params(inline)]
        (h_next, c_next) = LstmLayer[hidden, hidden](Dropout(0.0)(x), h, c);
    }

    /// `torch.nn.LSTM(input, hidden, num_layers = layers)`, one step: the
    /// top layer's output `y` and every layer's states, `h_n` and `c_n`
    /// (`layers * hidden` wide, layer by layer).
    #[recurrent(h = h_n, c = c_n)]
    pub Lstm[input, hidden, layers](x: [input], h: [layers * hidden], c: [layers * hidden]) -> (y, h_n, c_n) {
        #[params(inline)]
        (y, h_n, c_n) = Stack(layers, LstmLayer[input, hidden], LstmUpper[hidden])(x, h, c);
    }

    /// One layer of [`Gru`]: [`GruCell`]'s equations and names, its sizes
    /// given at run time.
    #[recurrent(h = h_next)]
    pub GruLayer[input, hidden](x: [input], h: [hidden]) -> (h_next) {
        #[params(weight = weight_ih, bias = bias_ih)]
        ih = Linear(input, 3 * hidden)(x);
        #[params(weight = weight_hh, bias = bias_hh)]
        hh = Linear(hidden, 3 * hidden)(h);
        (i_r, i_z, i_n) = Split(3)(ih);
        (h_r, h_z, h_n) = Split(3)(hh);
        r = Sigmoid()(CAdd()(i_r, h_r));
        z = Sigmoid()(CAdd()(i_z, h_z));
        n = Tanh()(CAdd()(i_n, CMul()(r, h_n)));
        h_next = CAdd()(n, CMul()(z, CSub()(h, n)));
    }

    /// A layer of [`Gru`] above the first: dropout on its input, then a
    /// [`GruLayer`].
    #[recurrent(h = h_next)]
    pub GruUpper[hidden](x: [hidden], h: [hidden]) -> (h_next) {
        #[params(inline)]
        h_next = GruLayer[hidden, hidden](Dropout(0.0)(x), h);
    }

    /// `torch.nn.GRU(input, hidden, num_layers = layers)`, one step: the
    /// top layer's output `y` and every layer's state `h_n`.
    #[recurrent(h = h_n)]
    pub Gru[input, hidden, layers](x: [input], h: [layers * hidden]) -> (y, h_n) {
        #[params(inline)]
        (y, h_n) = Stack(layers, GruLayer[input, hidden], GruUpper[hidden])(x, h);
    }

    /// One layer of [`Rnn`], `h' = tanh(W_ih·x + b_ih + W_hh·h + b_hh)`,
    /// with torch's names.
    #[recurrent(h = h_next)]
    pub RnnLayer[input, hidden](x: [input], h: [hidden]) -> (h_next) {
        #[params(weight = weight_ih, bias = bias_ih)]
        ih = Linear(input, hidden)(x);
        #[params(weight = weight_hh, bias = bias_hh)]
        hh = Linear(hidden, hidden)(h);
        h_next = Tanh()(CAdd()(ih, hh));
    }

    /// A layer of [`Rnn`] above the first: dropout on its input, then an
    /// [`RnnLayer`].
    #[recurrent(h = h_next)]
    pub RnnUpper[hidden](x: [hidden], h: [hidden]) -> (h_next) {
        #[params(inline)]
        h_next = RnnLayer[hidden, hidden](Dropout(0.0)(x), h);
    }

    /// `torch.nn.RNN(input, hidden, num_layers = layers)` (tanh), one step:
    /// the top layer's output `y` and every layer's state `h_n`.
    #[recurrent(h = h_n)]
    pub Rnn[input, hidden, layers](x: [input], h: [layers * hidden]) -> (y, h_n) {
        #[params(inline)]
        (y, h_n) = Stack(layers, RnnLayer[input, hidden], RnnUpper[hidden])(x, h);
    }
}
