//! The generated sequence methods called wrongly: a state left out (rustc
//! names it, and its note points at the graph's declaration), and a state
//! and a sequence swapped (each argument's message says what it must be,
//! and the note points at the input it is for).
use nngraph::prelude::*;

graph! {
    #[recurrent(h = h1)]
    pub Cell(x: [2], h: [3]) -> (h1) {
        h1 = Tanh()(CAdd()(Linear(2, 3)(x), Linear(3, 3)(h)));
    }
}

fn main() {
    let g = Cell::<f64>::zeros();
    let mut tape = g.tape();
    let xs = Array3::<f64>::zeros((5, 4, 2));
    let h0 = Array2::<f64>::zeros((4, 3));
    let _ = g.forward_seq(&mut tape, &xs);
    let _ = g.forward_seq(&mut tape, &h0, &xs);
}
