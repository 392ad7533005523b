//! The types a graph brings along (outputs, input gradients, sequence
//! views, the tape alias) are the macro's, not the user's: a crate that
//! denies warnings and uses only `forward` of a private graph builds.
#![deny(warnings)]

mod model {
    use nngraph::prelude::*;

    graph! {
        /// A cell whose sequence API and backward are never called.
        #[recurrent(h = h1)]
        pub Cell[n](x: [n], h: [3]) -> (y, h1) {
            h1 = Tanh()(CAdd()(Linear(n, 3)(x), Linear(3, 3)(h)));
            y = Linear(3, 1)(h1);
        }
    }

    pub fn run() -> f64 {
        let g = Cell::<f64>::new(&mut StdRng::seed_from_u64(0), 2).unwrap();
        let mut tape = g.tape();
        let out = g.forward(&mut tape, &[1.0, -1.0], &[0.0; 3]).unwrap();
        out.y[[0, 0]]
    }
}

fn main() {
    assert!(model::run().is_finite());
}
