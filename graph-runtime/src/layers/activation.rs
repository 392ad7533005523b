//! Element-wise activations of one input: Identity, Tanh, Sigmoid, ReLU.
//! Their derivatives are written in terms of the output, which the tape keeps.

use crate::layer::Layer;
use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, $kind:literal,
     forward: |$x:ident| $fwd:expr,
     derivative: |$y:ident, $xin:ident| $der:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl<F: Float> Layer<F> for $name {
            fn kind(&self) -> &'static str {
                $kind
            }

            fn output_width(&self, input_widths: &[usize]) -> Result<usize, String> {
                super::expect_inputs($kind, input_widths, 1)?;
                Ok(input_widths[0])
            }

            fn forward(&self, _: &[F], inputs: &[ArrayView2<'_, F>], output: ArrayViewMut2<'_, F>) {
                Zip::from(output).and(&inputs[0]).for_each(|o, &$x| *o = $fwd);
            }

            fn backward_input(
                &self,
                _: usize,
                _: &[F],
                inputs: &[ArrayView2<'_, F>],
                output: ArrayView2<'_, F>,
                d_output: ArrayView2<'_, F>,
                d_input: ArrayViewMut2<'_, F>,
            ) {
                Zip::from(d_input)
                    .and(&d_output)
                    .and(&output)
                    .and(&inputs[0])
                    .for_each(|di, &d, &$y, &$xin| *di += d * $der);
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
    derivative: |y, _x| F::one() - y * y
);

activation!(
    /// `y = 1 / (1 + e^-x)`; `dy/dx = y (1 - y)`.
    Sigmoid, "Sigmoid",
    forward: |x| sigmoid(x),
    derivative: |y, _x| y * (F::one() - y)
);

activation!(
    /// `y = max(0, x)`; the derivative at 0 is taken as 0, as torch does.
    ReLU, "ReLU",
    forward: |x| if x > F::zero() { x } else { F::zero() },
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
