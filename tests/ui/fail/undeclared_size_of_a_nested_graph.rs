// A nested graph given a size its host does not declare: one error, on the
// name, that says it is not found (not a hint to rename it to the hidden
// float parameter).
use nngraph::prelude::*;

mod cells {
    use nngraph::prelude::*;

    graph! {
        pub Encoder<const H: usize>(x: [H]) -> (y) {
            y = Tanh()(x);
        }
    }
}

graph! {
    pub Net(x: [4]) -> (y) {
        y = cells::Encoder<H>(x).y;
    }
}

fn main() {}
