//! Pass: `#[params(tensor = name)]` on a node. The node must be a built-in
//! layer with that tensor; each tensor is renamed once, and no two tensors
//! of the graph take the same name. A renamed tensor's full name is `name`
//! instead of `node.tensor`, which is how a graph's parameters get the names
//! of a torch module's state dict (`weight_ih` in `torch.nn.LSTMCell`).
//! `#[params(inline)]` on a nested graph or stack names its tensors
//! without the node's name (`weight_ih_l0` in `torch.nn.LSTM`).

use super::{RawKind, RawNode, Scope};
use crate::ast::{Expr, ParamName};
use crate::ir::NodeKind;
use std::collections::HashMap;

/// Per node: `(tensor, name)` for each tensor renamed by `#[params]`.
pub(super) fn rename(
    scope: &mut Scope,
    raw: &[RawNode],
    kinds: &[Option<NodeKind>],
) -> Vec<Vec<(String, String)>> {
    let mut param_names = vec![Vec::new(); raw.len()];
    // New name -> the tensor that took it, for messages.
    let mut taken: HashMap<String, String> = HashMap::new();
    for statement in &scope.decl.statements {
        if let Some(inline) = &statement.inline {
            match &statement.value {
                Expr::Graph(call) => {
                    // The host node of this call.
                    let host = raw
                        .iter()
                        .position(|n| matches!(&n.kind, RawKind::Host(c, _) if std::ptr::eq(*c, call)));
                    if let Some(k) = host {
                        param_names[k].push(("*".to_string(), String::new()));
                    }
                }
                _ => scope.errors.push(syn::Error::new(
                    inline.span(),
                    "`#[params(inline)]` names the tensors of a nested graph or stack as the graph's own \
                     (`weight_ih_l0`, not `node.weight_ih_l0`); this node is a layer: rename its tensors \
                     with `#[params(tensor = name)]`",
                )),
            }
        }
        let Some(first) = statement.params.first() else {
            continue;
        };
        let node_name = &statement.names[0];
        if let Expr::Graph(call) = &statement.value {
            scope.errors.push(syn::Error::new(
                first.tensor.span(),
                format!(
                    "`#[params]` renames the parameters of a layer; the nested graph `{}` keeps its own names, under its node's name",
                    call.name
                ),
            ));
            continue;
        }
        if statement.names.len() > 1 {
            scope.errors.push(syn::Error::new(
                first.tensor.span(),
                "`#[params]` renames the parameters of one layer, and the parts of a split have none",
            ));
            continue;
        }
        let Some(k) = raw.iter().position(|n| !n.generated && n.name == *node_name) else {
            continue;
        };
        let layer = match &kinds[k] {
            // Already reported.
            None => continue,
            Some(NodeKind::Builtin { layer, .. }) => *layer,
            Some(NodeKind::Custom { path, .. }) => {
                let name = path
                    .segments
                    .last()
                    .map(|s| s.ident.to_string())
                    .unwrap_or_default();
                scope.errors.push(syn::Error::new(
                    first.tensor.span(),
                    format!(
                        "`#[params]` renames the parameters of built-in layers; graph! does not know those of `{name}`\n\
                         = note: its tensors are called `{node_name}.` and the names its `Layer::param_shapes` gives"
                    ),
                ));
                continue;
            }
            // A nested graph is reported above.
            Some(_) => continue,
        };
        let known = layer.params();
        let mut renamed: Vec<(String, String)> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for ParamName { tensor, name } in &statement.params {
            let (tensor_str, name_str) = (tensor.to_string(), name.to_string());
            if !known.contains(&tensor_str.as_str()) {
                let has = match known {
                    [] => format!("`{}` has no parameters", layer.name),
                    _ => format!(
                        "`{}` has no parameter `{tensor_str}`; its parameters are {}",
                        layer.name,
                        known
                            .iter()
                            .map(|p| format!("`{p}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                scope.errors.push(syn::Error::new(tensor.span(), has));
                continue;
            }
            if seen.contains(&tensor_str) {
                scope.errors.push(syn::Error::new(
                    tensor.span(),
                    format!("`{tensor_str}` of `{node_name}` is renamed twice"),
                ));
                continue;
            }
            seen.push(tensor_str.clone());
            if let Some(other) = taken.get(&name_str) {
                scope.errors.push(syn::Error::new(
                    name.span(),
                    format!("the parameter name `{name_str}` is already given to `{other}`"),
                ));
                continue;
            }
            taken.insert(name_str.clone(), format!("{node_name}.{tensor_str}"));
            renamed.push((tensor_str, name_str));
        }
        param_names[k] = renamed;
    }
    param_names
}
