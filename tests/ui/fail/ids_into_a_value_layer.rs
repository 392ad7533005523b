use nngraph::prelude::*;

graph! {
    pub Lookup(ids: usize) -> (y) {
        y = Tanh()(ids);
    }
}

fn main() {}
