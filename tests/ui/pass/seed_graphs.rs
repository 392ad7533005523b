//! Several graphs in one invocation, doc comments, visibility, nesting,
//! recurrence, nodes in any order, and both float types.
use nngraph::prelude::*;

mod model {
    use nngraph::prelude::*;

    graph! {
        /// Two inputs, one output.
        pub TwoToOne(x1: [3], x2: [2]) -> out {
            out = Linear(2, 1)(Tanh()(CAdd()(Linear(3, 2)(x1), Linear(2, 2)(x2))));
        }

        /// Declared out of order: `y` uses `h`, declared after it.
        #[recurrent(h = new_h)]
        pub(crate) Rnn(x: [2], h: [4], _unused_on_purpose: [1]) -> (y, new_h) {
            y = Sigmoid()(Linear(4, 1)(new_h));
            new_h = Tanh()(CAdd()(Linear(2, 4)(x), Linear(4, 4)(h)));
        }
    }
}

fn main() -> Result<(), nngraph::Error> {
    let mut rng = StdRng::seed_from_u64(1);
    let g = model::TwoToOne::<f64>::new(&mut rng);
    let mut tape = g.tape();
    let out = g.forward(&mut tape, &[0.1, 1.5, -1.0], &[-1.0, 0.0])?;
    assert_eq!(out.out.dim(), (1, 1));

    let mut rnn = model::Rnn::<f32>::new(&mut rng);
    let mut tape = rnn.tape();
    let out = rnn.forward(&mut tape, &array![[0.5f32, 0.5]], &Array2::zeros((1, 4)), &[0.0f32])?;
    let (y, h) = (out.y.to_owned(), out.new_h.to_owned());
    let grads = rnn.backward(&mut tape, &y, &h)?;
    assert_eq!(grads.h.dim(), (1, 4));
    assert_eq!(<model::Rnn<f32> as Graph<f32>>::SPEC.nodes[0].name, "y_linear");
    Ok(())
}
