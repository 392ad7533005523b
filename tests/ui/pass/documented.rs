//! Generated code documents every public item, so a crate that denies
//! missing docs can declare graphs of every kind.
#![deny(missing_docs)]

use nngraph::prelude::*;

mod inner {
    use nngraph::prelude::*;

    graph! {
        /// A small cell.
        pub Cell(x: [2], h: [3]) -> (y, h1) {
            h1 = Tanh()(CAdd()(Linear(2, 3)(x), Linear(3, 3)(h)));
            y = Linear(3, 1)(h1);
        }
    }
}

graph! {
    /// Sizes, ids, dropout, a loss node and a nested graph.
    #[recurrent(h = h1)]
    pub Everything[vocab](tok: usize, x: [2], h: [3], target: usize) -> (loss, h1) {
        (_y, h1) = inner::Cell(x, h);
        e = Dropout(0.1)(Embedding(vocab, 3)(tok));
        loss = CrossEntropy()(Linear(3, 4)(CAdd()(e, h1)), target);
    }

    /// Const sizes and Split.
    pub Halves<const H: usize>(x: [2 * H]) -> (a, b) {
        (a, b) = Split(2)(x);
    }
}

fn main() {
    let _ = Everything::<f32>::zeros(5).unwrap();
    let _ = Halves::<3, f32>::zeros();
}
