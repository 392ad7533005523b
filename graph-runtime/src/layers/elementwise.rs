//! Element-wise combinations of several inputs of one width: CAdd (nngraph's
//! CAddTable), CSub (CSubTable), CMul (CMulTable).

use crate::layer::Layer;
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// Sum of two or more inputs, as `nn.CAddTable()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CAdd;

impl<F: Float> Layer<F> for CAdd {
    fn kind(&self) -> &'static str {
        "CAdd"
    }

    fn output_width(&self, input_widths: &[usize]) -> Result<usize, String> {
        if input_widths.len() < 2 {
            return Err(format!(
                "CAdd takes two or more inputs, got {}",
                input_widths.len()
            ));
        }
        super::same_widths("CAdd", input_widths)
    }

    fn forward(&self, _: &[F], inputs: &[ArrayView2<'_, F>], mut output: ArrayViewMut2<'_, F>) {
        output.assign(&inputs[0]);
        for x in &inputs[1..] {
            output += x;
        }
    }

    fn backward_input(
        &self,
        _: usize,
        _: &[F],
        _: &[ArrayView2<'_, F>],
        _: ArrayView2<'_, F>,
        d_output: ArrayView2<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) {
        d_input += &d_output;
    }
}

/// Difference of two inputs, `a - b`, as `nn.CSubTable()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CSub;

impl<F: Float> Layer<F> for CSub {
    fn kind(&self) -> &'static str {
        "CSub"
    }

    fn output_width(&self, input_widths: &[usize]) -> Result<usize, String> {
        super::expect_inputs("CSub", input_widths, 2)?;
        super::same_widths("CSub", input_widths)
    }

    fn forward(&self, _: &[F], inputs: &[ArrayView2<'_, F>], output: ArrayViewMut2<'_, F>) {
        Zip::from(output)
            .and(&inputs[0])
            .and(&inputs[1])
            .for_each(|o, &a, &b| *o = a - b);
    }

    fn backward_input(
        &self,
        index: usize,
        _: &[F],
        _: &[ArrayView2<'_, F>],
        _: ArrayView2<'_, F>,
        d_output: ArrayView2<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) {
        if index == 0 {
            d_input += &d_output;
        } else {
            d_input -= &d_output;
        }
    }
}

/// Element-wise product of two or more inputs, as `nn.CMulTable()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CMul;

impl<F: Float> Layer<F> for CMul {
    fn kind(&self) -> &'static str {
        "CMul"
    }

    fn output_width(&self, input_widths: &[usize]) -> Result<usize, String> {
        if input_widths.len() < 2 {
            return Err(format!(
                "CMul takes two or more inputs, got {}",
                input_widths.len()
            ));
        }
        super::same_widths("CMul", input_widths)
    }

    fn forward(&self, _: &[F], inputs: &[ArrayView2<'_, F>], mut output: ArrayViewMut2<'_, F>) {
        output.assign(&inputs[0]);
        for x in &inputs[1..] {
            output *= x;
        }
    }

    fn backward_input(
        &self,
        index: usize,
        _: &[F],
        inputs: &[ArrayView2<'_, F>],
        _: ArrayView2<'_, F>,
        d_output: ArrayView2<'_, F>,
        d_input: ArrayViewMut2<'_, F>,
    ) {
        if inputs.len() == 2 {
            // The common case, without the per-element loop over inputs.
            Zip::from(d_input)
                .and(&d_output)
                .and(&inputs[1 - index])
                .for_each(|di, &d, &other| *di += d * other);
            return;
        }
        // Product of the other inputs, recomputed rather than divided out so
        // that a zero input does not turn the gradient into NaN.
        Zip::indexed(d_input).and(&d_output).for_each(|(r, c), di, &d| {
            let mut p = d;
            for (j, x) in inputs.iter().enumerate() {
                if j != index {
                    p *= x[[r, c]];
                }
            }
            *di += p;
        });
    }
}
