//! Element-wise combinations of several inputs of one width: CAdd (nngraph's
//! CAddTable), CSub (CSubTable), CMul (CMulTable), CDiv (CDivTable); and
//! the constant maps MulConstant and AddConstant.

use crate::layer::{Backward, Forward, Input, Layer, LayerResult};
use crate::Float;
use ndarray::{ArrayViewMut2, Zip};

/// Sum of two or more inputs, as `nn.CAddTable()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CAdd;

impl<F: Float> Layer<F> for CAdd {
    fn kind(&self) -> &'static str {
        "CAdd"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::element_wise("CAdd", input_widths, 2, true)
    }

    fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
        output.assign(&cx.inputs[0].values()?);
        for x in &cx.inputs[1..] {
            output += &x.values()?;
        }
        Ok(())
    }

    fn backward_input(
        &self,
        _: usize,
        cx: &Backward<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        d_input += &cx.d_output;
        Ok(())
    }
}

/// Difference of two inputs, `a - b`, as `nn.CSubTable()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CSub;

impl<F: Float> Layer<F> for CSub {
    fn kind(&self) -> &'static str {
        "CSub"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::element_wise("CSub", input_widths, 2, false)
    }

    fn forward(&self, cx: Forward<'_, F>, output: ArrayViewMut2<'_, F>) -> LayerResult {
        Zip::from(output)
            .and(&cx.inputs[0].values()?)
            .and(&cx.inputs[1].values()?)
            .for_each(|o, &a, &b| *o = a - b);
        Ok(())
    }

    fn backward_input(
        &self,
        index: usize,
        cx: &Backward<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        if index == 0 {
            d_input += &cx.d_output;
        } else {
            d_input -= &cx.d_output;
        }
        Ok(())
    }
}

/// Element-wise product of two or more inputs, as `nn.CMulTable()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CMul;

impl<F: Float> Layer<F> for CMul {
    fn kind(&self) -> &'static str {
        "CMul"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::element_wise("CMul", input_widths, 2, true)
    }

    fn forward(&self, cx: Forward<'_, F>, mut output: ArrayViewMut2<'_, F>) -> LayerResult {
        output.assign(&cx.inputs[0].values()?);
        for x in &cx.inputs[1..] {
            output *= &x.values()?;
        }
        Ok(())
    }

    fn backward_input(
        &self,
        index: usize,
        cx: &Backward<'_, F>,
        d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        if cx.inputs.len() == 2 {
            // The common case, without the per-element loop over inputs.
            Zip::from(d_input)
                .and(&cx.d_output)
                .and(&cx.inputs[1 - index].values()?)
                .for_each(|di, &d, &other| *di += d * other);
            return Ok(());
        }
        // Product of the other inputs, recomputed rather than divided out so
        // that a zero input does not turn the gradient into NaN. Kinds are
        // checked first, so that the loop cannot meet ids.
        for x in cx.inputs {
            x.values()?;
        }
        Zip::indexed(d_input)
            .and(&cx.d_output)
            .for_each(|(r, c), di, &d| {
                let mut p = d;
                for (j, x) in cx.inputs.iter().enumerate() {
                    if let (true, Input::Values(x)) = (j != index, x) {
                        p *= x[[r, c]];
                    }
                }
                *di += p;
            });
        Ok(())
    }
}

/// Element-wise quotient `a / b`, as `nn.CDivTable()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CDiv;

impl<F: Float> Layer<F> for CDiv {
    fn kind(&self) -> &'static str {
        "CDiv"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::element_wise("CDiv", input_widths, 2, false)
    }

    fn forward(&self, cx: Forward<'_, F>, output: ArrayViewMut2<'_, F>) -> LayerResult {
        Zip::from(output)
            .and(&cx.inputs[0].values()?)
            .and(&cx.inputs[1].values()?)
            .for_each(|o, &a, &b| *o = a / b);
        Ok(())
    }

    /// `d/da = 1/b`, `d/db = -a/b²`.
    fn backward_input(
        &self,
        index: usize,
        cx: &Backward<'_, F>,
        d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        let (a, b) = (cx.inputs[0].values()?, cx.inputs[1].values()?);
        let zip = Zip::from(d_input).and(&cx.d_output).and(&a).and(&b);
        if index == 0 {
            zip.for_each(|di, &d, _, &b| *di += d / b);
        } else {
            zip.for_each(|di, &d, &a, &b| *di -= d * a / (b * b));
        }
        Ok(())
    }
}

/// `y = factor · x`, as `nn.MulConstant(factor)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MulConstant {
    /// The factor.
    pub factor: f64,
}

impl MulConstant {
    /// Multiplies by `factor`.
    pub const fn new(factor: f64) -> Self {
        MulConstant { factor }
    }
}

impl<F: Float> Layer<F> for MulConstant {
    fn kind(&self) -> &'static str {
        "MulConstant"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::same_as_input("MulConstant", input_widths)
    }

    fn forward(&self, cx: Forward<'_, F>, output: ArrayViewMut2<'_, F>) -> LayerResult {
        let k = F::from_f64(self.factor);
        Zip::from(output)
            .and(&cx.inputs[0].values()?)
            .for_each(|o, &x| *o = k * x);
        Ok(())
    }

    fn backward_input(&self, _: usize, cx: &Backward<'_, F>, d_input: ArrayViewMut2<'_, F>) -> LayerResult {
        let k = F::from_f64(self.factor);
        Zip::from(d_input)
            .and(&cx.d_output)
            .for_each(|di, &d| *di += k * d);
        Ok(())
    }
}

/// `y = x + constant`, as `nn.AddConstant(constant)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AddConstant {
    /// The constant added.
    pub constant: f64,
}

impl AddConstant {
    /// Adds `constant`.
    pub const fn new(constant: f64) -> Self {
        AddConstant { constant }
    }
}

impl<F: Float> Layer<F> for AddConstant {
    fn kind(&self) -> &'static str {
        "AddConstant"
    }

    fn rows_independent(&self) -> bool {
        true
    }

    fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
        super::same_as_input("AddConstant", input_widths)
    }

    fn forward(&self, cx: Forward<'_, F>, output: ArrayViewMut2<'_, F>) -> LayerResult {
        let c = F::from_f64(self.constant);
        Zip::from(output)
            .and(&cx.inputs[0].values()?)
            .for_each(|o, &x| *o = x + c);
        Ok(())
    }

    fn backward_input(
        &self,
        _: usize,
        cx: &Backward<'_, F>,
        mut d_input: ArrayViewMut2<'_, F>,
    ) -> LayerResult {
        d_input += &cx.d_output;
        Ok(())
    }
}
