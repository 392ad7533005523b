//! Element-wise activations of one input: Identity, Tanh, Sigmoid, ReLU.
//! Their derivatives are written in terms of the output, which the tape keeps.

use crate::layer::{Backward, Forward, Layer, LayerResult};
use crate::Float;
use ndarray::{ArrayViewMut2, Zip};

macro_rules! activation {
    // `in_place` runs on a contiguous output holding a copy of the input:
    // the float type's own kernel (vectorised for f32).
    ($(#[$doc:meta])* $name:ident, $kind:literal,
     forward: |$x:ident| $fwd:expr,
     in_place: $in_place:path,
     derivative: |$y:ident, $xin:ident| $der:expr) => {
        activation!(@layer $(#[$doc])* $name, $kind, |output, input| {
            if let (Some(out), Some(src)) = (output.as_slice_mut(), input.as_slice()) {
                out.copy_from_slice(src);
                $in_place(out);
                return Ok(());
            }
            Zip::from(output).and(&input).for_each(|o, &$x| *o = $fwd);
        }, |$y, $xin| $der);
    };
    ($(#[$doc:meta])* $name:ident, $kind:literal,
     forward: |$x:ident| $fwd:expr,
     derivative: |$y:ident, $xin:ident| $der:expr) => {
        activation!(@layer $(#[$doc])* $name, $kind, |output, input| {
            Zip::from(output).and(&input).for_each(|o, &$x| *o = $fwd);
        }, |$y, $xin| $der);
    };
    (@layer $(#[$doc:meta])* $name:ident, $kind:literal,
     |$output:ident, $input:ident| $forward:block,
     |$y:ident, $xin:ident| $der:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl<F: Float> Layer<F> for $name {
            fn kind(&self) -> &'static str {
                $kind
            }

            fn rows_independent(&self) -> bool {
                true
            }

            fn output_width(&self, input_widths: &[usize]) -> LayerResult<usize> {
                super::same_as_input($kind, input_widths)
            }

            #[allow(unused_mut)]
            fn forward(&self, cx: Forward<'_, F>, mut $output: ArrayViewMut2<'_, F>) -> LayerResult {
                let $input = cx.inputs[0].values()?;
                $forward
                Ok(())
            }

            fn backward_input(&self, _: usize, cx: &Backward<'_, F>, d_input: ArrayViewMut2<'_, F>) -> LayerResult {
                Zip::from(d_input)
                    .and(&cx.d_output)
                    .and(&cx.output)
                    .and(&cx.inputs[0].values()?)
                    .for_each(|di, &d, &$y, &$xin| *di += d * $der);
                Ok(())
            }
        }
    };
}

activation!(
    /// `y = x`, as `nn.Identity()`.
    Identity, "Identity",
    forward: |x| x,
    derivative: |_y, _x| F::one()
);

activation!(
    /// `y = tanh(x)`; `dy/dx = 1 - y²`.
    Tanh, "Tanh",
    forward: |x| x.tanh(),
    in_place: F::tanh_in_place,
    derivative: |y, _x| F::one() - y * y
);

activation!(
    /// `y = 1 / (1 + e^-x)`; `dy/dx = y (1 - y)`.
    Sigmoid, "Sigmoid",
    forward: |x| sigmoid(x),
    in_place: F::sigmoid_in_place,
    derivative: |y, _x| y * (F::one() - y)
);

activation!(
    /// `y = max(0, x)`; the derivative at 0 is taken as 0, and NaN stays
    /// NaN, as torch does.
    ReLU, "ReLU",
    forward: |x| if x > F::zero() || x.is_nan() { x } else { F::zero() },
    derivative: |_y, x| if x > F::zero() { F::one() } else { F::zero() }
);

/// The logistic function, written so that large `|x|` never overflows.
#[inline]
pub(crate) fn sigmoid<F: Float>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}
