//! Graphs whose names would meet in Python: keywords beside their escapes,
//! a ligature beside its letters (`ﬁ`, U+FB01, reads as `fi` there),
//! `nn.Module`'s own names, a private name, two classes of one name, a
//! nested call by names, a size named as a keyword. Exported by
//! `tests/pytorch_export.rs` and by `examples/export_pytorch.rs` (which
//! torch checks).
//! The crates that include this allow `uncommon_codepoints`,
//! `confusable_idents` and `mixed_script_confusables` (crate-level lints).
#![allow(dead_code)]

use nngraph::prelude::*;

/// Two graphs called `Cell`, from two modules.
pub mod one {
    use nngraph::prelude::*;
    graph! {
        pub Cell(x: [3]) -> (y) {
            y = Tanh()(Linear(3, 2)(x));
        }
    }
}

pub mod two {
    use nngraph::prelude::*;
    graph! {
        pub Cell(x: [3], lambda: [2]) -> (y) {
            y = Linear(2, 2)(CAdd()(Linear(3, 2)(x), lambda));
        }
    }
}

graph! {
    /// Every way two names could become one in Python.
    pub Colliding[lambda](lambda_: [3], pass: [2]) -> (y, ﬁ) {
        fi = Linear(3, lambda)(lambda_);
        ﬁ = Linear(2, lambda)(pass);
        training = Linear(lambda, 2)(CAdd()(fi, ﬁ));
        _sizes = Linear(2, 2)(Tanh()(training));
        forward = one::Cell(lambda_).y;
        b = two::Cell(lambda = pass, x = lambda_).y;
        y = CAdd()(_sizes, forward, b);
    }
}
