//! Built-in layers, one file per family. Each layer's forward and backward
//! sit side by side; generated graphs call them through [`Layer`](crate::Layer).

use crate::layer::LayerResult;

mod activation;
mod dropout;
mod elementwise;
mod embedding;
mod linear;
mod shape;
mod softmax;

pub use activation::{Identity, ReLU, Sigmoid, Tanh};
pub use dropout::Dropout;
pub use elementwise::{AddConstant, CAdd, CDiv, CMul, CSub, MulConstant};
pub use embedding::Embedding;
pub use linear::Linear;
pub use shape::{Concat, Narrow};
pub use softmax::{LogSoftMax, SoftMax};

pub(crate) use softmax::log_sum_exp as row_log_sum_exp;

/// Checks that every input has the same width and returns it; the rule for
/// element-wise layers.
pub(crate) fn same_widths(kind: &str, widths: &[usize]) -> LayerResult<usize> {
    match widths.split_first() {
        None => Err(format!("{kind} needs at least one input")),
        Some((&first, rest)) => match rest.iter().position(|&w| w != first) {
            Some(i) => Err(format!(
                "{kind} is element-wise: input 1 has width {first} but input {} has width {}",
                i + 2,
                rest[i]
            )),
            None => Ok(first),
        },
    }
}

/// Checks the number of inputs.
pub(crate) fn expect_inputs(kind: &str, widths: &[usize], n: usize) -> LayerResult {
    if widths.len() == n {
        Ok(())
    } else {
        Err(format!("{kind} takes {n} input(s), got {}", widths.len()))
    }
}
