//! Width mistakes in stacks of const-generic layers: each reported at the
//! user's token, with both widths as numbers, all in one compile.
use nngraph::prelude::*;

mod cells {
    use nngraph::prelude::*;

    graph! {
        #[recurrent(h = new_h)]
        pub Elman<const I: usize, const H: usize>(x: [I], h: [H]) -> (new_h) {
            new_h = Tanh()(CAdd()(Linear(I, H)(x), Linear(H, H)(h)));
        }
    }
}

graph! {
    /// A state group of the wrong width: 2 layers of 4 make 8.
    #[recurrent(h = h_n)]
    pub WrongGroup(x: [3], h: [6]) -> (y, h_n) {
        (y, h_n) = Stack(2, cells::Elman<3, 4>, cells::Elman<4, 4>)(x, h);
    }

    /// The upper layers read what the first gives: 4, not 5.
    #[recurrent(h = h_n)]
    pub UpperTakesAnotherWidth(x: [3], h: [8]) -> (y, h_n) {
        (y, h_n) = Stack(2, cells::Elman<3, 4>, cells::Elman<5, 4>)(x, h);
    }

    /// The stack's input is 2 wide, the first layer takes 3.
    #[recurrent(h = h_n)]
    pub WrongInput(x: [2], h: [8]) -> (y, h_n) {
        (y, h_n) = Stack(2, cells::Elman<3, 4>, cells::Elman<4, 4>)(x, h);
    }

    /// Three names for a stack of one-output layers (it gives two).
    pub TooManyNames(x: [3], h: [8]) -> (y, h_n, extra) {
        (y, h_n, extra) = Stack(2, cells::Elman<3, 4>, cells::Elman<4, 4>)(x, h);
    }
}

fn main() {}
