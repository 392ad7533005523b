//! Every shipped cell and stack nested by its path, with the widths it
//! takes: the macro, which knows their inputs, finds nothing wrong.
use nngraph::prelude::*;

graph! {
    #[recurrent(h1 = h1n, c1 = c1n, h2 = h2n, h3 = h3n, h4 = h4n, c4 = c4n, h5 = h5n, h6 = h6n, h7 = h7n, c7 = c7n, h8 = h8n, h9 = h9n)]
    pub All[n, layers](
        x: [3], h1: [4], c1: [4], h2: [4], h3: [n], h4: [n], c4: [n], h5: [n], h6: [n],
        h7: [layers * n], c7: [layers * n], h8: [layers * n], h9: [layers * n]
    ) -> (h1n, c1n, h2n, h3n, h4n, c4n, h5n, h6n, h7n, c7n, h8n, h9n, y7, y8, y9) {
        (h1n, c1n) = nngraph::cells::LstmCell<3, 4>(x, h1, c1);
        h2n = nngraph::cells::GruCell<3, 4>(x, h2).h_next;
        h3n = nngraph::cells::GruLayer[3, n](x, h3).h_next;
        (h4n, c4n) = nngraph::cells::LstmUpper[n](Linear(3, n)(x), h4, c4);
        h5n = nngraph::cells::RnnLayer[3, n](x, h5).h_next;
        h6n = nngraph::cells::RnnUpper[n](Linear(3, n)(x), h6).h_next;
        (y7, h7n, c7n) = nngraph::cells::Lstm[3, n, layers](x, h7, c7);
        (y8, h8n) = nngraph::cells::Gru[3, n, layers](x, h8);
        (y9, h9n) = nngraph::cells::Rnn[3, n, layers](x, h9);
    }
}

fn main() {
    let g = All::<f32>::zeros(5, 2).unwrap();
    assert_eq!(g.output_width("h9n").unwrap(), 10);
}
