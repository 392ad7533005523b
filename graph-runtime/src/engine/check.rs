//! What passes check and how they name what they find: errors that name the
//! node (by its path through nested graphs, with the outer source line) and
//! the step; checked mode's search for NaN and infinity.

use super::plan::Hop;
use crate::error::{Error, Pass, Result};
use crate::spec::{GraphSpec, NodeKind};
use crate::tape::Record;
use crate::Float;
use ndarray::ArrayView2;

/// A layer's message as an error naming the graph, the node and its line.
pub(crate) fn node_error(spec: &GraphSpec, k: usize, message: String) -> Error {
    let node = &spec.nodes[k];
    Error::Node {
        graph: spec.name.to_string(),
        node: node.name.to_string(),
        file: spec.file.to_string(),
        line: node.line,
        message,
    }
}

/// How a nested graph is named in a path: its host node (`layer1`), and a
/// stack's layer by its index (`lstm[1]`).
pub(crate) fn hop_name(spec: &GraphSpec, hop: Hop) -> String {
    let host = &spec.nodes[hop.node];
    match host.kind {
        NodeKind::Stack => format!("{}[{}]", host.name, hop.layer),
        _ => host.name.to_string(),
    }
}

/// An error from inside the nested graph at `hop`, as seen from the
/// outer graph: the path `host.inner` and the host's own source line.
pub(crate) fn nested_error(spec: &GraphSpec, hop: Hop, error: Error) -> Error {
    let host = &spec.nodes[hop.node];
    let name = hop_name(spec, hop);
    let (graph, file, line) = (spec.name.to_string(), spec.file.to_string(), host.line);
    match error {
        Error::NonFinite {
            node,
            pass,
            step,
            index,
            value,
            ..
        } => Error::NonFinite {
            graph,
            node: format!("{name}.{node}"),
            file,
            line,
            pass,
            step,
            index,
            value,
        },
        Error::Node { node, message, .. } => Error::Node {
            graph,
            node: format!("{name}.{node}"),
            file,
            line,
            message,
        },
        other => other,
    }
}

/// An error about a node of the graph at `path` (host nodes from `root`),
/// named as seen from the top-level graph.
pub(crate) fn from_path<F: Float>(root: &Record<F>, path: &[Hop], mut error: Error) -> Error {
    for depth in (0..path.len()).rev() {
        error = nested_error(root.at(&path[..depth]).spec, path[depth], error);
    }
    error
}

/// Names the step of an error: `step` in a loop; over all `T·B` rows, the
/// step of the offending row (and its row within the step).
pub(crate) fn at_step(e: Error, step: Option<usize>, batch: usize) -> Error {
    match (step, e) {
        (Some(t), e) => e.at_step(t),
        (
            None,
            Error::NonFinite {
                graph,
                node,
                file,
                line,
                pass,
                step: None,
                index,
                value,
            },
        ) if batch > 0 => Error::NonFinite {
            graph,
            node,
            file,
            line,
            pass,
            step: Some(index.0 / batch),
            index: (index.0 % batch, index.1),
            value,
        },
        (None, e) => e,
    }
}

/// Checked mode: the first NaN or infinity in `values` as an error naming
/// the node and where it is declared.
#[cold]
pub(crate) fn check_finite<F: Float>(
    spec: &GraphSpec,
    k: usize,
    pass: Pass,
    values: ArrayView2<'_, F>,
) -> Result<()> {
    match values.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((index, v)) => Err(Error::NonFinite {
            graph: spec.name.to_string(),
            node: spec.nodes[k].name.to_string(),
            file: spec.file.to_string(),
            line: spec.nodes[k].line,
            pass,
            step: None,
            index,
            value: Float::to_f64(*v),
        }),
    }
}

/// An error for a pass whose tape holds no completed forward.
/// Backward on a tape whose forward pass read other weights than the
/// graph holds now: its gradients would belong to neither.
pub(crate) fn stale_weights(spec: &GraphSpec) -> Error {
    Error::InvalidInput {
        graph: spec.name.to_string(),
        message: "the parameters changed after the forward pass on this tape (an optimizer step, \
                  a load, a write through params_mut); run forward again before backward"
            .to_string(),
    }
}

/// Checked backward on gradients that already hold a NaN or an infinity
/// at flat index `i`, left by an earlier pass.
pub(crate) fn earlier_non_finite<F: Float>(
    spec: &GraphSpec,
    store: &crate::ParamStore<F>,
    i: usize,
) -> Error {
    let value = store.grads()[i];
    let at = match store.specs().iter().find(|s| s.range().contains(&i)) {
        Some(p) => format!("`{}` (element {})", p.name, i - p.offset),
        None => format!("parameter {i}"),
    };
    Error::InvalidInput {
        graph: spec.name.to_string(),
        message: format!(
            "the gradient of {at} is already {value:?} before this backward pass: an earlier pass \
             left it there (zero_grad() clears the gradients); nothing was added"
        ),
    }
}
