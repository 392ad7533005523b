use nngraph::prelude::*;

mod inner {
    use nngraph::prelude::*;

    graph! {
        pub Odd(x: [5]) -> (u) {
            u = Tanh()(x);
        }
    }
}

graph! {
    pub Halves(x: [5]) -> (a, b) {
        (a, b) = Split(2)(inner::Odd(x).u);
    }
}

fn main() {}
