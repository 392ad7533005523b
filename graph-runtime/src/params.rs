//! The flat parameter and gradient buffers of a graph, and named views into
//! them (torch's `getParameters()`).
//!
//! Parameters sit in declaration order of the nodes, each node's tensors in
//! the order its layer lists them (`Linear`: `weight` `(out, in)` row-major,
//! then `bias`). Optimizers, gradient checking and save/load work on the flat
//! buffers; people look things up by name.

use crate::error::{Error, Result};
use crate::layer::{Layer, ParamShape};
use crate::Float;
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn};
use std::ops::Range;

/// Where one named parameter tensor sits in the flat buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Full name, `node.tensor`: `x2h.weight`.
    pub name: String,
    /// Dimensions, row-major.
    pub shape: Vec<usize>,
    /// Index of the first element in the flat buffer.
    pub offset: usize,
}

impl ParamSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The range of the flat buffer this tensor occupies.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// A graph's parameters and gradients: two flat buffers of equal length, and
/// the table of names.
#[derive(Debug, Clone)]
pub struct ParamStore<F> {
    graph: &'static str,
    values: Vec<F>,
    grads: Vec<F>,
    specs: Vec<ParamSpec>,
    /// The slice of the buffers each node owns, by node index.
    nodes: Vec<Range<usize>>,
    /// A fingerprint of the names and shapes, so that an optimizer's state
    /// can tell the store it belongs to from another of the same length.
    layout: u64,
    /// Counts the times the values were handed out writable (an optimizer
    /// step, a load, an initialisation), so that a tape can tell that its
    /// forward saw other weights than its backward would use.
    generation: u64,
}

/// Equal names, shapes, values and gradients.
impl<F: PartialEq> PartialEq for ParamStore<F> {
    fn eq(&self, other: &Self) -> bool {
        (self.graph, &self.values, &self.grads, &self.specs, &self.nodes)
            == (
                other.graph,
                &other.values,
                &other.grads,
                &other.specs,
                &other.nodes,
            )
    }
}

impl<F: Float> ParamStore<F> {
    /// Lays out the parameters of `nodes` (name and parameter tensors, in
    /// declaration order), all zero.
    pub fn new(graph: &'static str, nodes: &[(&str, Vec<ParamShape>)]) -> Self {
        let named: Vec<Vec<ParamShape>> = nodes
            .iter()
            .map(|(node, shapes)| {
                shapes
                    .iter()
                    .map(|p| ParamShape {
                        name: format!("{node}.{}", p.name).into(),
                        shape: p.shape.clone(),
                    })
                    .collect()
            })
            .collect();
        Self::from_tensors(graph, &named)
    }

    /// Lays out the parameters of each node (its tensors under their full
    /// names, in declaration order), all zero. The names must be distinct:
    /// `param(name)` finds only the first tensor of a name. (`graph!` checks
    /// this for the stores it builds.)
    ///
    /// # Panics
    ///
    /// If the parameters cannot be counted in a `usize` or allocated;
    /// [`try_from_tensors`](Self::try_from_tensors) returns an error instead.
    pub fn from_tensors(graph: &'static str, nodes: &[Vec<ParamShape>]) -> Self {
        Self::try_from_tensors(graph, nodes).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`from_tensors`](Self::from_tensors), with an error naming the
    /// tensor whose size cannot be counted, or the count that cannot be
    /// allocated. The generated constructors of graphs with sizes known
    /// only when built call this.
    pub fn try_from_tensors(graph: &'static str, nodes: &[Vec<ParamShape>]) -> Result<Self> {
        let too_many = |message: String| Error::Sizes {
            graph: graph.to_string(),
            message,
        };
        let mut specs = Vec::new();
        let mut ranges = Vec::with_capacity(nodes.len());
        let mut offset = 0usize;
        for shapes in nodes {
            let start = offset;
            for p in shapes {
                let len = p.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
                let Some(end) = len.and_then(|len| offset.checked_add(len)) else {
                    return Err(too_many(format!(
                        "tensor `{}` of shape {:?} takes the parameter count past {}",
                        p.name,
                        p.shape,
                        usize::MAX
                    )));
                };
                specs.push(ParamSpec {
                    name: p.name.to_string(),
                    shape: p.shape.clone(),
                    offset,
                });
                offset = end;
            }
            ranges.push(start..offset);
        }
        let zeros = || -> Option<Vec<F>> {
            let mut v = Vec::new();
            v.try_reserve_exact(offset).ok()?;
            v.resize(offset, F::zero());
            Some(v)
        };
        let (Some(values), Some(grads)) = (zeros(), zeros()) else {
            return Err(too_many(format!(
                "{offset} parameters (and as many gradients) cannot be allocated"
            )));
        };
        // FNV-1a over every name and dimension, with separators.
        let mut layout = 0xcbf2_9ce4_8422_2325u64;
        let mut mix = |bytes: &[u8]| {
            for &b in bytes {
                layout = (layout ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for spec in &specs {
            mix(spec.name.as_bytes());
            for &d in &spec.shape {
                mix(&[0xff]);
                mix(&(d as u64).to_le_bytes());
            }
            mix(&[0xfe]);
        }
        Ok(ParamStore {
            graph,
            values,
            grads,
            specs,
            nodes: ranges,
            layout,
            generation: 0,
        })
    }

    /// Lays out the parameters of layers (name and layer, in declaration order).
    pub fn of_layers(graph: &'static str, nodes: &[(&str, &dyn Layer<F>)]) -> Self {
        let shapes: Vec<(&str, Vec<ParamShape>)> =
            nodes.iter().map(|(n, l)| (*n, l.param_shapes())).collect();
        Self::new(graph, &shapes)
    }

    /// The parameters of node `node` (by index), writable, for initialisation.
    pub fn node_values_mut(&mut self, node: usize) -> &mut [F] {
        self.generation += 1;
        &mut self.values[self.nodes[node].clone()]
    }

    /// The slice of the buffers each node owns, by node index.
    pub fn node_ranges(&self) -> &[Range<usize>] {
        &self.nodes
    }

    /// Node ranges and the parameters, writable (for initialisation).
    pub fn ranges_and_values_mut(&mut self) -> (&[Range<usize>], &mut [F]) {
        self.generation += 1;
        (&self.nodes, &mut self.values)
    }

    /// Node ranges, parameters and writable gradients (for backward).
    pub fn split_mut(&mut self) -> (&[Range<usize>], &[F], &mut [F]) {
        (&self.nodes, &self.values, &mut self.grads)
    }

    /// Every tensor as a [`ParamShape`] named by its full name, for a graph
    /// nested in another (whose node name is then prefixed).
    pub fn param_shapes(&self) -> Vec<ParamShape> {
        self.specs
            .iter()
            .map(|s| ParamShape {
                name: s.name.clone().into(),
                shape: s.shape.clone(),
            })
            .collect()
    }

    /// A fingerprint of the tensors' names and shapes: equal for stores of
    /// the same layout.
    pub(crate) fn layout(&self) -> u64 {
        self.layout
    }

    /// How many times the values have been handed out writable; a tape
    /// records it at forward, and backward refuses a store that moved on.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Name of the graph these parameters belong to.
    pub fn graph(&self) -> &'static str {
        self.graph
    }

    /// Total number of parameters.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the graph has no parameters.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// All parameters, flat.
    pub fn values(&self) -> &[F] {
        &self.values
    }

    /// All parameters, flat and writable. Every use of the graph sees writes.
    pub fn values_mut(&mut self) -> &mut [F] {
        self.generation += 1;
        &mut self.values
    }

    /// All accumulated gradients, flat, in the layout of [`values`](Self::values).
    pub fn grads(&self) -> &[F] {
        &self.grads
    }

    /// All accumulated gradients, writable.
    pub fn grads_mut(&mut self) -> &mut [F] {
        &mut self.grads
    }

    /// Both buffers at once, for optimizers: `(values, grads)`.
    pub fn values_and_grads_mut(&mut self) -> (&mut [F], &mut [F]) {
        self.generation += 1;
        (&mut self.values, &mut self.grads)
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        let grads = &mut self.grads[..];
        crate::kernels::for_each_run(grads.len(), 1, [grads], |_, [g]| g.fill(F::zero()));
    }

    /// Names, shapes and offsets of every tensor, in buffer order.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// The parameters of node `node` (by index), for the generated forward.
    #[inline]
    pub fn node_values(&self, node: usize) -> &[F] {
        &self.values[self.nodes[node].clone()]
    }

    /// The parameters and gradients of node `node`, for the generated backward.
    #[inline]
    pub fn node_values_and_grads(&mut self, node: usize) -> (&[F], &mut [F]) {
        let range = self.nodes[node].clone();
        (&self.values[range.clone()], &mut self.grads[range])
    }

    /// Looks a tensor up by name.
    pub fn spec(&self, name: &str) -> Result<&ParamSpec> {
        self.specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::UnknownParam {
                graph: self.graph.to_string(),
                name: name.to_string(),
                hint: name_hint(name, self.specs.iter().map(|s| s.name.as_str())),
            })
    }

    /// A view of the named parameter tensor, e.g. `"x2h.weight"`.
    pub fn param(&self, name: &str) -> Result<ArrayViewD<'_, F>> {
        let spec = self.spec(name)?;
        Ok(view(&self.values, spec))
    }

    /// A writable view of the named parameter tensor.
    pub fn param_mut(&mut self, name: &str) -> Result<ArrayViewMutD<'_, F>> {
        let spec = self.spec(name)?.clone();
        self.generation += 1;
        Ok(
            ArrayViewMutD::from_shape(IxDyn(&spec.shape), &mut self.values[spec.range()])
                .expect("spec fits buffer"),
        )
    }

    /// A view of the accumulated gradient of the named tensor.
    pub fn grad(&self, name: &str) -> Result<ArrayViewD<'_, F>> {
        let spec = self.spec(name)?;
        Ok(view(&self.grads, spec))
    }
}

fn view<'a, F>(buffer: &'a [F], spec: &ParamSpec) -> ArrayViewD<'a, F> {
    ArrayViewD::from_shape(IxDyn(&spec.shape), &buffer[spec.range()]).expect("spec fits buffer")
}

/// `"; did you mean `x`?"` for the closest known name, or the list of names.
pub(crate) fn name_hint<'a>(name: &str, known: impl Iterator<Item = &'a str> + Clone) -> String {
    let best = known
        .clone()
        .map(|k| (strsim::levenshtein(name, k), k))
        .min_by_key(|&(d, _)| d);
    match best {
        Some((d, k)) if d <= name.len().max(k.len()) / 3 + 1 => format!("; did you mean `{k}`?"),
        Some(_) => {
            let all: Vec<&str> = known.collect();
            format!("; the parameters are {}", all.join(", "))
        }
        None => "; this graph has no parameters".to_string(),
    }
}
