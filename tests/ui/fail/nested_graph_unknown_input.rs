use nngraph::prelude::*;

mod cells {
    use nngraph::prelude::*;

    graph! {
        pub Cell(x: [2], h: [4]) -> (y) {
            y = Sigmoid()(Linear(4, 1)(Tanh()(CAdd()(Linear(2, 4)(x), h))));
        }
    }
}

graph! {
    pub Outer(a: [2], b: [4]) -> (y) {
        y = cells::Cell(x = a, hidden = b);
    }
}

fn main() {
    let _ = Outer::<f32>::zeros();
}
