//! Gradient checking by central finite differences.
//!
//! Every number the analytic backward produces (each parameter, each input,
//! the initial state of a sequence) is compared with
//! `(loss(v + eps) - loss(v - eps)) / (2 eps)`. An entry passes when
//! `|analytic - numeric| <= atol + rtol * |numeric|`, the rule of
//! `torch.autograd.gradcheck`, whose float64 defaults are the defaults here.

use crate::engine::{self, load};
use crate::error::{Error, Result, Shape};
use crate::feed::Feed;
use crate::graph::Graph;
use crate::tape::{row_range, Tape};
use crate::Float;
use ndarray::{Array2, Array3, ArrayView2, ArrayViewMut2};
use std::fmt;

/// A loss over a graph's outputs: called once per step and output with the
/// output's value at that step, `(batch, width)`; returns that term of the
/// loss and, when given a gradient buffer, ADDS the term's gradient into it.
/// Return `Ok(0)` for outputs that carry no loss.
///
/// Arguments: `(step, output index, value, gradient buffer)`.
pub trait StepLoss<F>:
    FnMut(usize, usize, ArrayView2<'_, F>, Option<ArrayViewMut2<'_, F>>) -> Result<F>
{
}

impl<F, T> StepLoss<F> for T where
    T: FnMut(usize, usize, ArrayView2<'_, F>, Option<ArrayViewMut2<'_, F>>) -> Result<F>
{
}

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
        let setting = |name: &str, value: f64, ok: bool, rule: &str| {
            if ok {
                return Ok(());
            }
            Err(Error::Setting {
                owner: "GradCheck".into(),
                message: format!("{name} must be {rule}, not {value:?}"),
            })
        };
        setting(
            "eps",
            self.eps,
            self.eps > 0.0 && self.eps.is_finite(),
            "finite and above 0",
        )?;
        setting("atol", self.atol, self.atol >= 0.0, "at least 0")?;
        setting("rtol", self.rtol, self.rtol >= 0.0, "at least 0")?;
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
                let (hi, lo) = (original + F::from_f64(self.eps), original - F::from_f64(self.eps));
                if hi == lo || !(hi - lo).is_finite() {
                    return Err(Error::Setting {
                        owner: "GradCheck".into(),
                        message: format!(
                            "a step of eps = {:e} does not move `{}`{:?} = {original:?} in {}: \
                             choose a larger eps",
                            self.eps,
                            row.name,
                            unravel(j, &row.shape),
                            std::any::type_name::<F>()
                        ),
                    });
                }
                objective.values_mut(v)[j] = hi;
                let plus = objective.loss();
                objective.values_mut(v)[j] = lo;
                let minus = objective.loss();
                // Restored before any error is returned: a failed check
                // leaves the values as they were.
                objective.values_mut(v)[j] = original;
                let (plus, minus) = (plus?.to_f64(), minus?.to_f64());
                // Divided by the step actually taken in F, not the eps asked for.
                let numeric = (plus - minus) / (hi - lo).to_f64();
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

    /// Checks `graph` run on `feeds` (one per declared input, as
    /// [`Graph::forward_feeds`] takes them: one step, or a sequence with each
    /// state's initial value), with `loss` over its outputs at every step.
    /// The variables are every parameter tensor and every input given as
    /// values (a state's initial value, a sequence); ids are held fixed.
    /// Clears the graph's accumulated gradients.
    ///
    /// ```
    /// use graph_macros::graph;
    /// use graph_runtime::prelude::*;
    ///
    /// graph! {
    ///     pub Net(x: [3]) -> (y) {
    ///         y = Tanh()(Linear(3, 2)(x));
    ///     }
    /// }
    ///
    /// let mut net = Net::<f64>::new(&mut StdRng::seed_from_u64(0));
    /// let x = Array2::from_shape_fn((4, 3), |(i, j)| (i as f64 - j as f64) * 0.3);
    /// let target = Array2::<f64>::zeros((4, 2));
    /// let loss = |_t: usize, _o: usize, y: ArrayView2<f64>, g: Option<ArrayViewMut2<f64>>| {
    ///     if let Some(g) = g {
    ///         Mse::new().backward(&y, &target, g)?;
    ///     }
    ///     Mse::new().forward(&y, &target)
    /// };
    /// let report = GradCheck::new().check_graph(&mut net, &[Feed::Values(x.view())], loss)?;
    /// assert!(report.passed(), "{report}");
    /// # Ok::<(), graph_runtime::Error>(())
    /// ```
    pub fn check_graph<F: Float, G: Graph<F>>(
        &self,
        graph: &mut G,
        feeds: &[Feed<'_, F>],
        loss: impl StepLoss<F>,
    ) -> Result<GradReport> {
        let mut objective = GraphObjective::new(graph, feeds, loss);
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

/// An input of a [`GraphObjective`], owned so that its values can be probed.
#[derive(Debug, Clone)]
enum Owned<F> {
    Values(Array2<F>),
    Ids(Vec<usize>),
    Seq(Array3<F>),
    IdSeq(Array2<usize>),
    Carry,
    Absent,
}

impl<F: Float> Owned<F> {
    fn of(feed: &Feed<'_, F>) -> Self {
        match feed {
            Feed::Values(v) => Owned::Values(v.to_owned()),
            Feed::Ids(x) => Owned::Ids(x.to_vec()),
            Feed::Seq(v) => Owned::Seq(v.to_owned()),
            Feed::IdSeq(x) => Owned::IdSeq(x.to_owned()),
            Feed::Carry => Owned::Carry,
            Feed::Absent => Owned::Absent,
        }
    }

    fn feed(&self) -> Feed<'_, F> {
        match self {
            Owned::Values(v) => Feed::Values(v.view()),
            Owned::Ids(x) => Feed::Ids(x),
            Owned::Seq(v) => Feed::Seq(v.view()),
            Owned::IdSeq(x) => Feed::IdSeq(x.view()),
            Owned::Carry => Feed::Carry,
            Owned::Absent => Feed::Absent,
        }
    }

    fn values_mut(&mut self) -> Option<&mut [F]> {
        match self {
            Owned::Values(v) => v.as_slice_mut(),
            Owned::Seq(v) => v.as_slice_mut(),
            _ => None,
        }
    }
}

/// A graph run on given inputs with a loss over its outputs, as an
/// [`Objective`]: the variables are every parameter tensor and every input
/// given as values (a state's initial value, a sequence).
pub struct GraphObjective<'g, F: Float, G: Graph<F>, L> {
    graph: &'g mut G,
    tape: Tape<F>,
    inputs: Vec<Owned<F>>,
    /// The declared inputs that are variables, in order.
    variables: Vec<usize>,
    loss: L,
}

impl<F: Float, G: Graph<F>, L> fmt::Debug for GraphObjective<'_, F, G, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphObjective")
            .field("graph", &G::SPEC.name)
            .field("variables", &self.variables)
            .finish_non_exhaustive()
    }
}

impl<'g, F: Float, G: Graph<F>, L: StepLoss<F>> GraphObjective<'g, F, G, L> {
    /// Wraps `graph` with its inputs (copied) and loss.
    pub fn new(graph: &'g mut G, feeds: &[Feed<'_, F>], loss: L) -> Self {
        let tape = graph.tape();
        let inputs: Vec<Owned<F>> = feeds.iter().map(Owned::of).collect();
        let variables = (0..inputs.len())
            .filter(|&i| matches!(inputs[i], Owned::Values(_) | Owned::Seq(_)))
            .collect();
        GraphObjective {
            graph,
            tape,
            inputs,
            variables,
            loss,
        }
    }

    fn forward(&mut self) -> Result<()> {
        let feeds: Vec<Feed<'_, F>> = self.inputs.iter().map(Owned::feed).collect();
        self.graph.forward_feeds(&mut self.tape, &feeds)
    }

    /// Whether the inputs are a sequence (some given as `Seq` or `IdSeq`).
    fn is_sequence(&self) -> bool {
        self.inputs
            .iter()
            .any(|x| matches!(x, Owned::Seq(_) | Owned::IdSeq(_)))
    }
}

impl<F: Float, G: Graph<F>, L: StepLoss<F>> Objective<F> for GraphObjective<'_, F, G, L> {
    fn variables(&self) -> Vec<(String, Vec<usize>)> {
        let spec = G::SPEC;
        let mut vars: Vec<(String, Vec<usize>)> = self
            .graph
            .store()
            .specs()
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect();
        let sequence = self.is_sequence();
        for &i in &self.variables {
            let name = spec.inputs[i].name;
            let (name, shape) = match &self.inputs[i] {
                Owned::Values(v) if sequence => (format!("{name} (initial)"), v.shape().to_vec()),
                Owned::Values(v) => (name.to_string(), v.shape().to_vec()),
                Owned::Seq(v) => (format!("{name} (sequence)"), v.shape().to_vec()),
                _ => continue,
            };
            vars.push((name, shape));
        }
        vars
    }

    fn values_mut(&mut self, v: usize) -> &mut [F] {
        let n_params = self.graph.store().specs().len();
        if v < n_params {
            let range = self.graph.store().specs()[v].range();
            return &mut self.graph.store_mut().values_mut()[range];
        }
        let i = self.variables[v - n_params];
        self.inputs[i]
            .values_mut()
            .expect("variables are owned, contiguous values")
    }

    fn loss(&mut self) -> Result<F> {
        self.forward()?;
        load::each_step(&mut self.tape, false, &mut self.loss)
    }

    fn gradient(&mut self) -> Result<Vec<Vec<F>>> {
        self.graph.store_mut().zero_grad();
        self.forward()?;
        load::each_step(&mut self.tape, true, &mut self.loss)?;
        engine::backward(self.graph, &mut self.tape)?;
        let store = self.graph.store();
        let mut grads: Vec<Vec<F>> = store
            .specs()
            .iter()
            .map(|s| store.grads()[s.range()].to_vec())
            .collect();
        let spec = G::SPEC;
        let batch = self.tape.batch;
        for &i in &self.variables {
            let all = &self.tape.root.grads[i];
            let state = spec.recurrent.iter().any(|&(s, _)| s == i);
            let g: Vec<F> = if state {
                row_range(all, 0..batch).iter().copied().collect()
            } else {
                all.iter().copied().collect()
            };
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
