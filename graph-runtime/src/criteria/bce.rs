//! Binary cross-entropy, as `nn.BCECriterion()`:
//! `-(t ln p + (1 - t) ln(1 - p))` per element, with each log clamped at
//! -100 as torch does, so that `p = 0` or `1` gives a finite loss.

use super::elementwise::{self, element_criterion, ElementLoss};
use super::Reduction;
use crate::error::Result;
use crate::feed::AsBatch;
use crate::layer::{Backward, Forward, Layer, LayerResult};
use crate::Float;
use ndarray::ArrayViewMut2;

/// Binary cross-entropy of probabilities against targets in `[0, 1]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bce {
    /// Mean (torch's default) or sum over elements.
    pub reduction: Reduction,
}

const LOG_FLOOR: f64 = -100.0;

struct CrossEntropyOfBits;

impl ElementLoss for CrossEntropyOfBits {
    const NAME: &'static str = "Bce";

    fn loss<F: Float>(p: F, t: F) -> F {
        let floor = F::from_f64(LOG_FLOOR);
        let (lp, lq) = (p.ln().max(floor), (F::one() - p).ln().max(floor));
        -(t * lp + (F::one() - t) * lq)
    }

    /// `dL/dp = (p - t) / (p (1 - p))`, with `p (1 - p)` kept away from zero.
    fn d_input<F: Float>(p: F, t: F) -> F {
        let denom = (p * (F::one() - p)).max(F::from_f64(1e-12));
        (p - t) / denom
    }

    /// Probabilities and targets in `[0, 1]`, as torch requires (NaN is
    /// outside).
    fn check<F: Float>(p: F, t: F) -> std::result::Result<(), String> {
        let unit = |v: F| v >= F::zero() && v <= F::one();
        match (unit(p), unit(t)) {
            (true, true) => Ok(()),
            (false, _) => Err(format!("the prediction {p} is not a probability in [0, 1]")),
            (true, false) => Err(format!("the target {t} is not in [0, 1]")),
        }
    }

    /// `dL/dt = ln(1 - p) - ln(p)`.
    fn d_target<F: Float>(p: F, _t: F) -> F {
        let floor = F::from_f64(LOG_FLOOR);
        (F::one() - p).ln().max(floor) - p.ln().max(floor)
    }
}

element_criterion!(Bce, CrossEntropyOfBits, "binary cross-entropy");
