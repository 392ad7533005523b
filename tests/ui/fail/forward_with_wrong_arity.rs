use nngraph::prelude::*;

graph! {
    pub Cell(x: [2], h: [4]) -> (y) {
        y = CAdd()(Linear(2, 1)(x), Linear(4, 1)(h));
    }
}

fn main() {
    let cell = Cell::<f32>::zeros();
    let mut tape = cell.tape();
    // `forward` takes one argument per input: x and h.
    let _ = cell.forward(&mut tape, &[1.0, 2.0]);
}
