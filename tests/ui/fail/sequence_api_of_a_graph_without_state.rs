// `forward_seq` on a graph that declares no `#[recurrent]` state: the error
// says why there is no sequence API and what to do, rather than "no method
// named `forward_seq`" with a hint to call `forward`.
use nngraph::prelude::*;

graph! {
    pub Readout(x: [3]) -> (y) {
        y = Linear(3, 2)(x);
    }
}

fn main() {
    let net = Readout::<f32>::zeros();
    let mut tape = net.tape();
    let xs = Array3::<f32>::zeros((5, 4, 3));
    let _ = net.forward_seq(&mut tape, &xs);
}
