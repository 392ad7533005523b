//! A graph with a mistake, used everywhere a program would use it: the only
//! error is the mistake itself.
use nngraph::prelude::*;

graph! {
    /// The seed cell, with `x2h` declared for the wrong input width.
    #[recurrent(h = new_h)]
    pub Cell(x: [2], h: [4]) -> (y, new_h) {
        x2h = Linear(3, 4)(x);
        h2h = Linear(4, 4)(h);
        new_h = Tanh()(CAdd()(x2h, h2h));
        y = Sigmoid()(Linear(4, 1)(new_h));
    }
}

fn main() -> Result<(), nngraph::Error> {
    let mut cell = Cell::<f64>::new(&mut StdRng::seed_from_u64(0));
    let mut tape = cell.tape();
    let out = cell.forward(&mut tape, &[0.5, -1.0], &[0.0; 4])?;
    let (y, h) = (out.y.to_owned(), out.new_h.to_owned());
    let grads = cell.backward(&mut tape, &y, &h)?;
    println!("{} {}", grads.x, cell.param("x2h.weight")?);
    cell.zero_grad();
    let mut unroll = Unroll::new(&cell);
    unroll.forward(&cell, &[Array2::zeros((1, 4)).view()], &[Array3::zeros((3, 1, 2)).view()])?;
    unroll.backward(&mut cell)?;
    cell.save("cell.safetensors")
}
