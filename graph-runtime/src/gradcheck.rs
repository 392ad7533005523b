//! Gradient checking by central finite differences.
//!
//! Every number the analytic backward produces (each parameter, each input,
//! the initial state of a sequence) is compared with
//! `(loss(v + eps) - loss(v - eps)) / (2 eps)`. An entry passes when
//! `|analytic - numeric| <= atol + rtol * |numeric|`, the rule of
//! `torch.autograd.gradcheck`, whose float64 defaults are the defaults here.

use crate::error::{Error, Result, Shape};
use crate::graph::Graph;
use crate::unroll::{SequenceLoss, Unroll};
use crate::Float;
use ndarray::{Array2, Array3, ArrayView2, Axis};
use std::fmt;

/// Something whose scalar loss depends on named groups of numbers (the
/// "variables"), with an analytic gradient to check.
pub trait Objective<F: Float> {
    /// Name and shape of each variable, in a fixed order.
    fn variables(&self) -> Vec<(String, Vec<usize>)>;
    /// The values of variable `v`, flat (row-major), writable.
    fn values_mut(&mut self, v: usize) -> &mut [F];
    /// The loss at the current values.
    fn loss(&mut self) -> Result<F>;
    /// The analytic gradient of the loss, one flat vector per variable.
    fn gradient(&mut self) -> Result<Vec<Vec<F>>>;
}

/// Settings of a finite-difference check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradCheck {
    /// Step of the central difference.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance, scaled by the numeric gradient.
    pub rtol: f64,
}

impl Default for GradCheck {
    /// `torch.autograd.gradcheck`'s float64 defaults: eps 1e-6, atol 1e-5, rtol 1e-3.
    fn default() -> Self {
        GradCheck {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
        }
    }
}

impl GradCheck {
    /// Defaults for `f64` (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Looser defaults for `f32`, whose 7 significant digits make a smaller
    /// step meaningless: eps 1e-2, atol 1e-2, rtol 5e-2.
    pub fn f32() -> Self {
        GradCheck {
            eps: 1e-2,
            atol: 1e-2,
            rtol: 5e-2,
        }
    }

    /// Sets the step.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets the absolute tolerance.
    pub fn atol(mut self, atol: f64) -> Self {
        self.atol = atol;
        self
    }

    /// Sets the relative tolerance.
    pub fn rtol(mut self, rtol: f64) -> Self {
        self.rtol = rtol;
        self
    }

    /// Checks every entry of every variable of `objective`. Values are
    /// restored exactly after each probe.
    pub fn run<F: Float>(&self, objective: &mut impl Objective<F>) -> Result<GradReport> {
        let analytic = objective.gradient()?;
        let mut rows = Vec::new();
        for (v, (name, shape)) in objective.variables().into_iter().enumerate() {
            let mut row = VariableReport {
                name,
                shape,
                ..VariableReport::default()
            };
            let len = objective.values_mut(v).len();
            let got = analytic.get(v).map_or(0, Vec::len);
            if got != len {
                return Err(Error::ShapeMismatch {
                    context: format!("gradient check: the analytic gradient of `{}`", row.name),
                    expected: Shape(vec![len]),
                    found: Shape(vec![got]),
                });
            }
            let mut worst_excess = f64::NEG_INFINITY;
            for (j, &a) in analytic[v].iter().enumerate().take(len) {
                let original = objective.values_mut(v)[j];
                objective.values_mut(v)[j] = original + F::from_f64(self.eps);
                let plus = objective.loss()?.to_f64();
                objective.values_mut(v)[j] = original - F::from_f64(self.eps);
                let minus = objective.loss()?.to_f64();
                objective.values_mut(v)[j] = original;
                let numeric = (plus - minus) / (2.0 * self.eps);
                let a = a.to_f64();
                let abs = (a - numeric).abs();
                let rel = abs / numeric.abs().max(f64::MIN_POSITIVE);
                row.max_abs = row.max_abs.max(abs);
                row.max_rel = row.max_rel.max(if abs == 0.0 { 0.0 } else { rel });
                let excess = abs - (self.atol + self.rtol * numeric.abs());
                if excess > 0.0 || excess.is_nan() {
                    row.failures += 1;
                }
                if excess > worst_excess || (excess.is_nan() && !worst_excess.is_nan()) {
                    worst_excess = excess;
                    row.worst = Some(Worst {
                        index: unravel(j, &row.shape),
                        analytic: a,
                        numeric,
                    });
                }
            }
            row.count = len;
            rows.push(row);
        }
        Ok(GradReport {
            settings: *self,
            variables: rows,
        })
    }

    /// Checks `graph` on one set of inputs (one `(batch, width)` array per
    /// declared input), with `loss` over its outputs (called with step 0).
    /// Clears the graph's accumulated gradients.
    pub fn check_graph<F: Float, G: Graph<F>>(
        &self,
        graph: &mut G,
        inputs: &[Array2<F>],
        loss: impl SequenceLoss<F>,
    ) -> Result<GradReport> {
        let pairs = graph.recurrent_pairs();
        let n = graph.num_inputs();
        if inputs.len() != n {
            return Err(Error::Arity {
                graph: graph.name().to_string(),
                what: "inputs",
                expected: n,
                found: inputs.len(),
            });
        }
        let initial: Vec<Array2<F>> = pairs.iter().map(|&(i, _)| inputs[i].clone()).collect();
        let sequence: Vec<Array3<F>> = (0..n)
            .filter(|i| !pairs.iter().any(|&(s, _)| s == *i))
            .map(|i| inputs[i].clone().insert_axis(Axis(0)))
            .collect();
        let mut objective = SequenceObjective::new(graph, initial, sequence, loss);
        objective.single_step = true;
        self.run(&mut objective)
    }

    /// Checks `graph` unrolled over `sequence` from `initial` (as
    /// [`Unroll::forward`] takes them), with `loss` over every step's
    /// outputs. Clears the graph's accumulated gradients.
    pub fn check_unrolled<F: Float, G: Graph<F>>(
        &self,
        graph: &mut G,
        initial: &[Array2<F>],
        sequence: &[Array3<F>],
        loss: impl SequenceLoss<F>,
    ) -> Result<GradReport> {
        let mut objective = SequenceObjective::new(graph, initial.to_vec(), sequence.to_vec(), loss);
        self.run(&mut objective)
    }
}

fn unravel(mut j: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        *slot = j % dim.max(1);
        j /= dim.max(1);
    }
    index
}

/// A graph unrolled over a sequence, as an [`Objective`]: the variables are
/// every parameter tensor, every initial state and every sequence input.
pub struct SequenceObjective<'g, F: Float, G: Graph<F>, L> {
    graph: &'g mut G,
    unroll: Unroll<F, G>,
    initial: Vec<Array2<F>>,
    sequence: Vec<Array3<F>>,
    loss: L,
    /// Name inputs plainly (`x`) rather than as sequences (`x[t]`).
    single_step: bool,
}

impl<'g, F: Float, G: Graph<F>, L: SequenceLoss<F>> SequenceObjective<'g, F, G, L> {
    /// Wraps `graph` with its inputs and loss.
    pub fn new(graph: &'g mut G, initial: Vec<Array2<F>>, sequence: Vec<Array3<F>>, loss: L) -> Self {
        let unroll = Unroll::new(graph);
        SequenceObjective {
            graph,
            unroll,
            initial,
            sequence,
            loss,
            single_step: false,
        }
    }

    fn forward(&mut self) -> Result<()> {
        let initial: Vec<ArrayView2<'_, F>> = self.initial.iter().map(|a| a.view()).collect();
        let sequence: Vec<_> = self.sequence.iter().map(|a| a.view()).collect();
        self.unroll.forward(self.graph, &initial, &sequence)
    }
}

impl<F: Float, G: Graph<F>, L: SequenceLoss<F>> Objective<F> for SequenceObjective<'_, F, G, L> {
    fn variables(&self) -> Vec<(String, Vec<usize>)> {
        let inputs = self.graph.input_names();
        let mut vars: Vec<(String, Vec<usize>)> = self
            .graph
            .store()
            .specs()
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect();
        for (k, &(i, _)) in self.graph.recurrent_pairs().iter().enumerate() {
            let name = if self.single_step {
                inputs[i].to_string()
            } else {
                format!("{} (initial)", inputs[i])
            };
            vars.push((name, self.initial[k].shape().to_vec()));
        }
        for (slot, &i) in self.unroll.sequence_inputs().iter().enumerate() {
            let seq = &self.sequence[slot];
            if self.single_step {
                vars.push((inputs[i].to_string(), seq.shape()[1..].to_vec()));
            } else {
                vars.push((format!("{} (sequence)", inputs[i]), seq.shape().to_vec()));
            }
        }
        vars
    }

    fn values_mut(&mut self, v: usize) -> &mut [F] {
        let n_params = self.graph.store().specs().len();
        let n_states = self.initial.len();
        if v < n_params {
            let range = self.graph.store().specs()[v].range();
            &mut self.graph.store_mut().values_mut()[range]
        } else if v < n_params + n_states {
            self.initial[v - n_params]
                .as_slice_mut()
                .expect("owned arrays are contiguous")
        } else {
            self.sequence[v - n_params - n_states]
                .as_slice_mut()
                .expect("owned arrays are contiguous")
        }
    }

    fn loss(&mut self) -> Result<F> {
        self.forward()?;
        self.unroll.loss_value(&mut self.loss)
    }

    fn gradient(&mut self) -> Result<Vec<Vec<F>>> {
        self.graph.store_mut().zero_grad();
        self.forward()?;
        self.unroll.loss(&mut self.loss)?;
        self.unroll.backward(self.graph)?;
        let store = self.graph.store();
        let mut grads: Vec<Vec<F>> = store
            .specs()
            .iter()
            .map(|s| store.grads()[s.range()].to_vec())
            .collect();
        for k in 0..self.initial.len() {
            grads.push(
                self.unroll
                    .initial_state_grad(self.graph, k)
                    .iter()
                    .copied()
                    .collect(),
            );
        }
        for slot in 0..self.sequence.len() {
            let mut g = Vec::new();
            for t in 0..self.unroll.steps() {
                g.extend(self.unroll.input_grad(t, slot).iter().copied());
            }
            grads.push(g);
        }
        self.graph.store_mut().zero_grad();
        Ok(grads)
    }
}

/// The worst entry of a variable: the one furthest past the tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct Worst {
    /// Multi-index of the entry.
    pub index: Vec<usize>,
    /// Gradient from backward.
    pub analytic: f64,
    /// Gradient from finite differences.
    pub numeric: f64,
}

/// How one variable fared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VariableReport {
    /// Parameter name (`x2h.weight`) or input name.
    pub name: String,
    /// Shape of the variable.
    pub shape: Vec<usize>,
    /// Number of entries checked.
    pub count: usize,
    /// Number of entries outside the tolerance.
    pub failures: usize,
    /// Largest `|analytic - numeric|`.
    pub max_abs: f64,
    /// Largest `|analytic - numeric| / |numeric|`.
    pub max_rel: f64,
    /// The worst entry, if the variable has any.
    pub worst: Option<Worst>,
}

/// The result of a gradient check: one row per variable.
#[derive(Debug, Clone, PartialEq)]
pub struct GradReport {
    /// The settings used.
    pub settings: GradCheck,
    /// One entry per parameter tensor and input.
    pub variables: Vec<VariableReport>,
}

impl GradReport {
    /// Whether every entry is within tolerance.
    pub fn passed(&self) -> bool {
        self.variables.iter().all(|v| v.failures == 0)
    }

    /// The row of the named variable.
    pub fn variable(&self, name: &str) -> Option<&VariableReport> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// Largest absolute error over all variables.
    pub fn max_abs(&self) -> f64 {
        self.variables.iter().map(|v| v.max_abs).fold(0.0, f64::max)
    }

    /// Total number of entries checked.
    pub fn count(&self) -> usize {
        self.variables.iter().map(|v| v.count).sum()
    }
}

impl fmt::Display for GradReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        let failures: usize = self.variables.iter().map(|v| v.failures).sum();
        writeln!(
            f,
            "gradient check (eps {:e}, atol {:e}, rtol {:e}): {} of {} entries {}",
            s.eps,
            s.atol,
            s.rtol,
            if failures == 0 { self.count() } else { failures },
            self.count(),
            if failures == 0 {
                "within tolerance: PASSED"
            } else {
                "outside tolerance: FAILED"
            }
        )?;
        let name_w = self
            .variables
            .iter()
            .map(|v| v.name.len())
            .max()
            .unwrap_or(0)
            .max(8);
        writeln!(
            f,
            "{:<name_w$}  {:<10}  {:>10}  {:>10}  {:<10}  {:>14}  {:>14}  result",
            "variable", "shape", "max abs", "max rel", "worst at", "analytic", "numeric"
        )?;
        for v in &self.variables {
            let shape = format!("{:?}", v.shape);
            let (at, a, n) = match &v.worst {
                Some(w) => (
                    format!("{:?}", w.index),
                    format!("{:.6e}", w.analytic),
                    format!("{:.6e}", w.numeric),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            writeln!(
                f,
                "{:<name_w$}  {:<10}  {:>10.2e}  {:>10.2e}  {:<10}  {:>14}  {:>14}  {}",
                v.name,
                shape,
                v.max_abs,
                v.max_rel,
                at,
                a,
                n,
                if v.failures == 0 {
                    "ok".to_string()
                } else {
                    format!("FAIL ({})", v.failures)
                }
            )?;
        }
        Ok(())
    }
}
