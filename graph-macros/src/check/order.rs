//! Pass: the evaluation order, depth first, in which every node comes after
//! its inputs. A cycle is reported once, naming its whole path.

use super::names::Sources;
use super::{RawNode, Scope};
use crate::ir::Source;

pub(super) fn evaluation_order(scope: &mut Scope, raw: &[RawNode], sources: &Sources) -> Vec<usize> {
    let errors = &mut scope.errors;
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; raw.len()];
    let mut order = Vec::with_capacity(raw.len());
    for start in 0..raw.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next input to visit).
        let mut stack = vec![(start, 0usize)];
        marks[start] = Mark::Active;
        while let Some(&mut (k, ref mut next)) = stack.last_mut() {
            let deps = sources[k].as_deref().unwrap_or(&[]);
            if let Some((src, _)) = deps.get(*next) {
                *next += 1;
                if let Source::Node(j) = *src {
                    match marks[j] {
                        Mark::New => {
                            marks[j] = Mark::Active;
                            stack.push((j, 0));
                        }
                        Mark::Active => {
                            let pos = stack
                                .iter()
                                .position(|&(n, _)| n == j)
                                .expect("active node on stack");
                            // Data-flow order: j feeds the deepest node, which feeds
                            // the one that pushed it, ... back to j.
                            let mut path = vec![raw[j].name.to_string()];
                            path.extend(
                                stack[pos + 1..]
                                    .iter()
                                    .rev()
                                    .map(|&(n, _)| raw[n].name.to_string()),
                            );
                            path.push(raw[j].name.to_string());
                            errors.push(syn::Error::new(
                                raw[j].name.span(),
                                format!(
                                    "cycle: {}; a node cannot depend on its own output\n\
                                     = help: to carry a value to the next step, use `#[recurrent(input = output)]`",
                                    path.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" -> ")
                                ),
                            ));
                            // Break the cycle for the rest of the walk.
                            marks[j] = Mark::Done;
                        }
                        Mark::Done => {}
                    }
                }
            } else {
                if marks[k] == Mark::Active {
                    marks[k] = Mark::Done;
                    order.push(k);
                }
                stack.pop();
            }
        }
    }
    order
}
