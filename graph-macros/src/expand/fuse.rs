//! Groups of nodes the runtime may compute as one fused unit, found in the
//! checked graph and emitted in the `GraphSpec`. Today one pattern: the
//! gate arithmetic of an LSTM cell, as `nngraph::cells::LstmCell` and
//! char_rnn write it,
//!
//! ```text
//! (i, f, g, o) = Split(4)(CAdd()(ih, hh));
//! c_next = CAdd()(CMul()(Sigmoid()(f), c), CMul()(Sigmoid()(i), Tanh()(g)));
//! h_next = CMul()(Sigmoid()(o), Tanh()(c_next));
//! ```
//!
//! fourteen nodes that a step runs as one pass over its rows instead of
//! fourteen. Every node keeps its slot on the tape, so its value and
//! gradient stay readable by name. A group is fused only when its inner
//! nodes are read by nothing else and are no outputs (`c_next` and
//! `h_next` may be both).

use super::{lit, Expander};
use crate::ir::{Arg, Graph, NodeKind, Source};
use crate::width::{Decision, Width};
use proc_macro2::TokenStream;
use quote::quote;

/// The nodes of one LSTM gate group, by index.
struct LstmGates {
    sum: usize,
    parts: [usize; 4],
    sig_i: usize,
    sig_f: usize,
    tanh_g: usize,
    sig_o: usize,
    f_c: usize,
    i_g: usize,
    c_next: usize,
    tanh_c: usize,
    h_next: usize,
    /// The cell state `f` multiplies.
    c: Source,
}

impl Expander<'_> {
    /// The `fusions` of the graph's spec.
    pub(super) fn fusions(&self) -> TokenStream {
        let rt = self.rt;
        let groups = lstm_groups(self.g).into_iter().map(|l| {
            let [p0, p1, p2, p3] = l.parts.map(lit);
            let (sum, sig_i, sig_f, tanh_g, sig_o) = (lit(l.sum), lit(l.sig_i), lit(l.sig_f), lit(l.tanh_g), lit(l.sig_o));
            let (f_c, i_g, c_next, tanh_c, h_next) = (lit(l.f_c), lit(l.i_g), lit(l.c_next), lit(l.tanh_c), lit(l.h_next));
            let c = lit(self.slot(l.c));
            quote! {
                #rt::__private::Fusion::LstmGates(#rt::__private::LstmGates {
                    sum: #sum, parts: [#p0, #p1, #p2, #p3], sig_i: #sig_i, sig_f: #sig_f, tanh_g: #tanh_g,
                    sig_o: #sig_o, f_c: #f_c, i_g: #i_g, c_next: #c_next, tanh_c: #tanh_c, h_next: #h_next, c: #c,
                })
            }
        });
        quote!(&[#(#groups),*])
    }
}

/// The name of node `k`'s built-in layer, if it is one.
fn layer(g: &Graph, k: usize) -> Option<&'static str> {
    match &g.nodes[k].kind {
        NodeKind::Builtin { layer, .. } => Some(layer.name),
        _ => None,
    }
}

/// Every LSTM gate group of `g` (see the module's documentation).
fn lstm_groups(g: &Graph) -> Vec<LstmGates> {
    let n = g.nodes.len();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, node) in g.nodes.iter().enumerate() {
        for src in &node.inputs {
            if let Source::Node(j) = *src {
                readers[j].push(k);
            }
        }
    }
    let is_output = |k: usize| g.outputs.iter().any(|&(_, o)| o == k);
    // The only reader of `k`, which must be an inner node of a group.
    let only = |k: usize| match readers[k].as_slice() {
        [r] if !is_output(k) => Some(*r),
        _ => None,
    };
    let is = |k: usize, name: &str| layer(g, k) == Some(name);
    // The input of a two-input node `k` other than `known`.
    let other = |k: usize, known: usize| match g.nodes[k].inputs.as_slice() {
        [Source::Node(a), b] if *a == known => Some(*b),
        [a, Source::Node(b)] if *b == known => Some(*a),
        _ => None,
    };
    let mut groups = Vec::new();
    for sum in 0..n {
        let found = (|| {
            if !is(sum, "CAdd") || g.nodes[sum].inputs.len() != 2 || is_output(sum) {
                return None;
            }
            // Four Narrow parts of equal length L covering the sum, in order.
            let mut parts = [usize::MAX; 4];
            let mut length: Option<Width> = None;
            if readers[sum].len() != 4 {
                return None;
            }
            for &p in &readers[sum] {
                let NodeKind::Builtin { layer, args } = &g.nodes[p].kind else {
                    return None;
                };
                let (Some(Arg::Width(offset)), Some(Arg::Width(len))) = (args.first(), args.get(1)) else {
                    return None;
                };
                if layer.name != "Narrow" || g.nodes[p].inputs.len() != 1 {
                    return None;
                }
                let l = length.get_or_insert_with(|| len.clone());
                if l.equals(len) != Decision::Yes {
                    return None;
                }
                let slot = (0..4usize).find(|&j| offset.equals(&l.scale(j as i64)) == Decision::Yes)?;
                if parts[slot] != usize::MAX {
                    return None;
                }
                parts[slot] = p;
            }
            if g.nodes[sum].width.equals(&length?.scale(4)) != Decision::Yes {
                return None;
            }
            let [p_i, p_f, p_g, p_o] = parts;
            let (sig_i, sig_f, tanh_g, sig_o) = (only(p_i)?, only(p_f)?, only(p_g)?, only(p_o)?);
            if !(is(sig_i, "Sigmoid") && is(sig_f, "Sigmoid") && is(tanh_g, "Tanh") && is(sig_o, "Sigmoid")) {
                return None;
            }
            let (i_g, f_c, h_next) = (only(sig_i)?, only(sig_f)?, only(sig_o)?);
            if only(tanh_g)? != i_g || !is(i_g, "CMul") || other(i_g, sig_i)? != Source::Node(tanh_g) {
                return None;
            }
            if !is(f_c, "CMul") {
                return None;
            }
            let c = other(f_c, sig_f)?;
            let c_next = only(f_c)?;
            if only(i_g)? != c_next || !is(c_next, "CAdd") || other(c_next, f_c)? != Source::Node(i_g) {
                return None;
            }
            // The one Tanh of c_next inside the group; c_next may have other readers.
            let tanh_c = *readers[c_next]
                .iter()
                .find(|&&r| is(r, "Tanh") && only(r) == Some(h_next))?;
            if !is(h_next, "CMul") || other(h_next, sig_o)? != Source::Node(tanh_c) {
                return None;
            }
            let inner = [
                sum, p_i, p_f, p_g, p_o, sig_i, sig_f, tanh_g, sig_o, f_c, i_g, tanh_c,
            ];
            if let Source::Node(ck) = c {
                if inner.contains(&ck) || ck == c_next || ck == h_next {
                    return None;
                }
            }
            Some(LstmGates {
                sum,
                parts,
                sig_i,
                sig_f,
                tanh_g,
                sig_o,
                f_c,
                i_g,
                c_next,
                tanh_c,
                h_next,
                c,
            })
        })();
        groups.extend(found);
    }
    groups
}
