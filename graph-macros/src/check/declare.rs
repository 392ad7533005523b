//! Pass: the graph's sizes (each declared once) and its inputs with their
//! widths (positive, written in terms of the sizes).

use super::Scope;
use crate::ast::InputKind;
use crate::ir::Input;
use crate::width::Width;

pub(super) fn sizes_and_inputs(scope: &mut Scope) -> (Vec<String>, Vec<Input>) {
    let decl = scope.decl;
    let (mut sizes, mut inputs) = (Vec::new(), Vec::new());
    for size in decl.const_sizes.iter().chain(&decl.runtime_sizes) {
        let key = size.to_string();
        if sizes.contains(&key) {
            scope.errors.push(syn::Error::new(
                size.span(),
                format!("size `{key}` is declared twice"),
            ));
        }
        sizes.push(key);
    }
    for input in &decl.inputs {
        let width = match &input.kind {
            InputKind::Ids => None,
            InputKind::Values(expr) => match super::calls::positive_width(expr, &sizes) {
                Ok(w) => Some(w),
                Err(msg) => {
                    scope.errors.push(syn::Error::new_spanned(
                        expr,
                        format!("input `{}`: {msg}", input.name),
                    ));
                    Some(Width::constant(1))
                }
            },
        };
        inputs.push(Input {
            name: input.name.clone(),
            width,
        });
    }
    (sizes, inputs)
}
