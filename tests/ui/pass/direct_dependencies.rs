//! A user who depends on graph-macros and graph-runtime directly, without
//! the nngraph facade.
use graph_macros::graph;
use graph_runtime::rand::{rngs::StdRng, SeedableRng};

graph! {
    pub Tiny(x: [2]) -> (y) {
        y = ReLU()(Linear(2, 3)(x));
    }
}

fn main() {
    let mut rng = StdRng::seed_from_u64(0);
    let g = Tiny::<f64>::new(&mut rng);
    let mut tape = g.tape();
    let out = g.forward(&mut tape, &[1.0, -1.0]).unwrap();
    assert!(out.y.iter().all(|&v| v >= 0.0));
}
