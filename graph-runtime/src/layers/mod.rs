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

pub(crate) use activation::sigmoid;
pub(crate) use softmax::{for_each_exp, log_softmax_of, normaliser};

/// The shape rule of a layer of one input whose output has its width.
pub(crate) fn same_as_input(kind: &str, widths: &[usize]) -> LayerResult<usize> {
    expect_inputs(kind, widths, 1)?;
    Ok(widths[0])
}

/// The shape rule of element-wise layers: `inputs` inputs (or, with
/// `or_more`, at least that many) of one width, which the output has.
pub(crate) fn element_wise(kind: &str, widths: &[usize], inputs: usize, or_more: bool) -> LayerResult<usize> {
    if widths.len() < inputs || (!or_more && widths.len() > inputs) {
        let count = if or_more {
            format!("{inputs} or more")
        } else {
            inputs.to_string()
        };
        return Err(format!("{kind} takes {count} inputs, got {}", widths.len()));
    }
    let first = widths[0];
    match widths.iter().position(|&w| w != first) {
        Some(i) => Err(format!(
            "{kind} is element-wise: input 1 has width {first} but input {} has width {}",
            i + 1,
            widths[i]
        )),
        None => Ok(first),
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
