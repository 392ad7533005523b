//! Size parameters, compile-time and run-time, with widths written as
//! expressions of them and checked symbolically.
use nngraph::prelude::*;

graph! {
    /// `4 * H` and `H * 4` are the same width.
    pub Gates<const I: usize, const H: usize>(x: [I], h: [H]) -> (i, f, g, o) {
        (i, f, g, o) = Split(4)(CAdd()(Linear(I, 4 * H)(x), Linear(H, H * 4)(h)));
    }

    pub Model[vocab, hidden](x: [vocab], label: usize) -> (loss) {
        loss = CrossEntropy()(Linear(hidden, vocab)(ReLU()(Linear(vocab, hidden)(x))), label);
    }
}

fn main() -> Result<(), nngraph::Error> {
    let gates = Gates::<3, 5, f32>::zeros();
    assert_eq!(Gates::<3, 5, f32>::OUTPUT_WIDTHS, &[5, 5, 5, 5]);
    let mut tape = gates.tape();
    let out = gates.forward(&mut tape, &[0.0f32; 3], &[0.0f32; 5])?;
    assert_eq!(out.o.dim(), (1, 5));

    let model = Model::<f64>::new(&mut StdRng::seed_from_u64(0), 7, 4)?;
    let mut tape = model.tape();
    let out = model.forward(&mut tape, &Array2::zeros((2, 7)), &[1usize, 6])?;
    assert_eq!(out.loss.dim(), (2, 1));
    Ok(())
}
