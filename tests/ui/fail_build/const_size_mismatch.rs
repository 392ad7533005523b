use nngraph::prelude::*;

graph! {
    pub Project<const A: usize, const B: usize>(x: [A]) -> (y) {
        y = Linear(B, 2)(x);
    }
}

fn main() {
    let _fits = Project::<3, 3, f32>::zeros();
    let _does_not = Project::<3, 4, f32>::zeros();
}
