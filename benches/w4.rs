//! W4, char_rnn's default model, for the benches that time it
//! (`iteration`, `w4_vs_gemm`): the model in both forms and one training
//! iteration.

use nngraph::ndarray::Array2;
use nngraph::prelude::*;

graph! {
    /// W4: char_rnn's model as it was declared before stacks, two nested
    /// LSTM layers (the shipped `LstmLayer`, torch's gate order) with
    /// dropout (0 here) between them and before the output layer, and the
    /// loss.
    #[recurrent(h1 = h1_next, c1 = c1_next, h2 = h2_next, c2 = c2_next)]
    pub CharLstm[vocab, hidden](x: usize, h1: [hidden], c1: [hidden], h2: [hidden], c2: [hidden], target: usize)
        -> (loss, h1_next, c1_next, h2_next, c2_next)
    {
        (h1_next, c1_next) = nngraph::cells::LstmLayer[hidden, hidden](Embedding(vocab, hidden)(x), h1, c1);
        (h2_next, c2_next) = nngraph::cells::LstmLayer[hidden, hidden](Dropout(0.0)(h1_next), h2, c2);
        loss = CrossEntropy()(Linear(hidden, vocab)(Dropout(0.0)(h2_next)), target);
    }

    /// W4 as char_rnn declares it now: the shipped stack `Lstm` of
    /// `layers` layers, the states grouped.
    #[recurrent(h = h_n, c = c_n)]
    pub CharStack[vocab, hidden, layers](x: usize, h: [layers * hidden], c: [layers * hidden], target: usize)
        -> (loss, h_n, c_n)
    {
        (y, h_n, c_n) = nngraph::cells::Lstm[hidden, hidden, layers](Embedding(vocab, hidden)(x), h, c);
        loss = CrossEntropy()(Linear(hidden, vocab)(Dropout(0.0)(y)), target);
    }
}

/// W4, one training iteration of char_rnn's default model: the sequence
/// from zero states, the mean cross-entropy over T·B characters, BPTT,
/// gradients clipped to [-5, 5], one Adam step (lr 2e-3), zero grads.
pub struct CharIteration<G> {
    model: G,
    tape: Tape<f32>,
    adam: Adam<f32>,
    xs: Array2<usize>,
    ys: Array2<usize>,
}

/// W4's sizes: vocabulary, hidden units, steps, batch.
pub const W4: (usize, usize, usize, usize) = (65, 128, 50, 50);

impl<G: Graph<f32>> CharIteration<G> {
    /// `model` with its tape, an Adam optimiser and W4's text (a fixed
    /// pattern over the vocabulary: inputs and their next characters).
    pub fn new(model: G) -> Self {
        let (vocab, _, steps, batch) = W4;
        let tape = model.tape();
        let text = |t: usize, b: usize| (t * 31 + b * 17 + (t * b) % 7) % vocab;
        CharIteration {
            model,
            tape,
            adam: Adam::new(2e-3),
            xs: Array2::from_shape_fn((steps, batch), |(t, b)| text(t, b)),
            ys: Array2::from_shape_fn((steps, batch), |(t, b)| text(t + 1, b)),
        }
    }

    /// Multiply-adds x 2 of the products: forward, and in backward the
    /// weight and the input gradients (6·B·T·(2·4H·2H + H·V)).
    pub fn flops(&self) -> u64 {
        let (vocab, hidden, steps, batch) = W4;
        (6 * batch * steps * (2 * 4 * hidden * 2 * hidden + hidden * vocab)) as u64
    }

    /// One training iteration; its loss.
    pub fn iteration(&mut self) -> f32 {
        let CharIteration {
            model,
            tape,
            adam,
            xs,
            ys,
        } = self;
        // `x`, zero states, `target`.
        let spec = G::SPEC;
        let feeds: Vec<Feed<'_, f32>> = (0..spec.inputs.len())
            .map(|i| match spec.inputs[i].name {
                "x" => Feed::IdSeq(xs.view()),
                "target" => Feed::IdSeq(ys.view()),
                _ => Feed::Absent,
            })
            .collect();
        model.forward_feeds(tape, &feeds).unwrap();
        let loss = model.backward_loss(tape, Reduction::Mean).unwrap();
        clip_grad_value(model.store_mut(), 5.0).unwrap();
        adam.step(model.store_mut()).unwrap();
        model.zero_grad();
        loss
    }
}
