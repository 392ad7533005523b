use nngraph::prelude::*;

mod cells {
    use nngraph::prelude::*;

    graph! {
        pub Cell(x: [2], h: [4]) -> (y, new_h) {
            new_h = Tanh()(CAdd()(Linear(2, 4)(x), Linear(4, 4)(h)));
            y = Sigmoid()(Linear(4, 1)(new_h));
        }
    }
}

graph! {
    pub Outer(x: [2], h: [4]) -> (h1) {
        h1 = Identity()(cells::Cell(x, h).next_h);
    }
}

fn main() {
    let _ = Outer::<f32>::zeros();
}
