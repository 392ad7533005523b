//! A graph with run-time sizes and a misspelt layer, nested in a graph that
//! is right: the misspelling is the only error, in the nested graph and in
//! `main`'s uses of both.
use nngraph::prelude::*;

graph! {
    #[recurrent(h = h1)]
    pub Inner[hidden](x: [hidden], h: [hidden]) -> (y, h1) {
        h1 = Tanh()(CAdd()(Linaer(hidden, hidden)(x), h));
        y = Sigmoid()(h1);
    }

    pub Outer(x: [4], h: [4]) -> (y) {
        (out, h1) = Inner[4](x, h);
        y = CAdd()(out, h1);
    }
}

fn main() -> Result<(), nngraph::Error> {
    let inner = Inner::<f32>::new(&mut StdRng::seed_from_u64(0), 4)?;
    println!("{:?}", inner.sizes());
    let outer = Outer::<f32>::zeros()?;
    let mut tape = outer.tape();
    let y = outer.forward(&mut tape, &[0.0; 4], &[0.0; 4])?.y.to_owned();
    println!("{y} {}", outer.num_params());
    Ok(())
}
