//! Built-in layers, one file per family. Each layer's forward and backward
//! sit side by side; generated graphs call them through [`Layer`](crate::Layer).

mod activation;
mod elementwise;
mod linear;

pub use activation::{Identity, ReLU, Sigmoid, Tanh};
pub use elementwise::{CAdd, CMul, CSub};
pub use linear::Linear;

/// Checks that every input has the same width and returns it; the rule for
/// element-wise layers.
pub(crate) fn same_widths(kind: &str, widths: &[usize]) -> Result<usize, String> {
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
pub(crate) fn expect_inputs(kind: &str, widths: &[usize], n: usize) -> Result<(), String> {
    if widths.len() == n {
        Ok(())
    } else {
        Err(format!("{kind} takes {n} input(s), got {}", widths.len()))
    }
}
