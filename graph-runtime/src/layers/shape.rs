//! Layers that move columns around: Concat (nngraph's JoinTable) puts its
//! inputs side by side; Narrow takes a run of columns. `Split(n)` in
//! `graph!` is made of `n` Narrows.

use crate::layer::{Backward, Forward, Layer, LayerResult};
use crate::Float;
use ndarray::{s, ArrayViewMut2};

/// Inputs side by side along the width, as `nn.JoinTable(2)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Concat;

impl<F: Float> Layer<F> for Concat {
    fn kind(&self) -> &'static str {
        "Concat"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        if input_widths.is_empty() {
            return Err("Concat needs at least one input".to_string());
        }
        Ok(input_widths.iter().sum())
    }

    fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
        let mut start = 0;
        for x in cx.inputs {
            let x = x.values()?;
            let w = x.ncols();
            output.slice_mut(s![.., start..start + w]).assign(&x);
            start += w;
        }
        Ok(())
    }

    fn backward_input(
        &self,
        index: usize,
        cx: &Backward<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        let start: usize = cx.inputs[..index].iter().map(|x| x.width()).sum();
        let w = cx.inputs[index].width();
        d_input += &cx.d_output.slice(s![.., start..start + w]);
        Ok(())
    }
}

/// Columns `offset..offset + length` of the input (0-based, as
/// `torch.narrow`; torch7's `nn.Narrow` counted from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Narrow {
    /// First column taken.
    pub offset: usize,
    /// Number of columns taken.
    pub length: usize,
}

impl Narrow {
    /// Columns `offset..offset + length`.
    pub const fn new(offset: usize, length: usize) -> Self {
        Narrow { offset, length }
    }
}

impl<F: Float> Layer<F> for Narrow {
    fn kind(&self) -> &'static str {
        "Narrow"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::expect_inputs("Narrow", input_widths, 1)?;
        if self.offset + self.length > input_widths[0] {
            return Err(format!(
                "Narrow({}, {}) takes columns {}..{}, but the input has width {}",
                self.offset,
                self.length,
                self.offset,
                self.offset + self.length,
                input_widths[0]
            ));
        }
        Ok(self.length)
    }

    fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
        output.assign(
            &cx.inputs[0]
                .values()?
                .slice(s![.., self.offset..self.offset + self.length]),
        );
        Ok(())
    }

    fn backward_input(
        &self,
        _: usize,
        cx: &Backward<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        let mut cols = d_input.slice_mut(s![.., self.offset..self.offset + self.length]);
        cols += &cx.d_output;
        Ok(())
    }
}
