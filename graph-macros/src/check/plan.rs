//! Pass: the sequence plan. For a recurrent graph run over a sequence, a
//! node that does not depend on the state (`x2h`, an embedding) runs once
//! over all steps before the loop; a node that depends on the state but does
//! not feed it (the output layer, a loss) runs once after it; only the
//! nodes between the state and the next state run step by step.

use super::Scope;
use crate::ir::{NodeKind, Phase, Source};

pub(super) fn phases(scope: &mut Scope) {
    let n = scope.raw.len();
    let mut phases = vec![Phase::Pre; n];
    if scope.recurrent.is_empty() || scope.order.len() != n || scope.sources.iter().any(Option::is_none) {
        scope.phases = phases;
        return;
    }
    let sources = |k: usize| scope.sources[k].iter().flatten().map(|(s, _)| *s);
    // Depends on a state input, in evaluation order.
    let mut depends = vec![false; n];
    for &k in &scope.order {
        depends[k] = sources(k).any(|s| match s {
            Source::Input(i) => scope.recurrent.iter().any(|&(si, _)| si == i),
            Source::Node(j) => depends[j],
        });
    }
    // Feeds a next state, in reverse evaluation order.
    let mut feeds = vec![false; n];
    for &(_, o) in &scope.recurrent {
        feeds[scope.outputs[o].1] = true;
    }
    for &k in scope.order.iter().rev() {
        if feeds[k] {
            for s in sources(k) {
                if let Source::Node(j) = s {
                    feeds[j] = true;
                }
            }
        }
    }
    for k in 0..n {
        phases[k] = match (depends[k], feeds[k]) {
            (false, _) => Phase::Pre,
            (true, true) => Phase::Loop,
            (true, false) => Phase::Post,
        };
    }
    // An output of a nested graph runs with its graph.
    for k in 0..n {
        if let Some(NodeKind::Output { host, .. }) = &scope.kinds[k] {
            phases[k] = phases[*host];
        }
    }
    scope.phases = phases;
}
