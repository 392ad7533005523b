//! One description of a graph instance, which the presentation modules
//! (`svg`, `summary`, `pytorch`) read instead of each walking the graph: the
//! spec, the instance's slot widths, each node's parameter count, the
//! values of its sizes, and the same of every nested graph.

use crate::engine::plan::{Plan, SpecTree};
use crate::graph::{Graph, Visit};
use crate::layer::Layer;
use crate::spec::GraphSpec;
use crate::{Float, Result};

/// A graph instance, as pictures, tables and exports show it.
#[derive(Debug, Clone)]
pub(crate) struct Description {
    pub spec: &'static GraphSpec,
    /// Per slot (inputs, then nodes): its width.
    pub widths: Vec<usize>,
    /// Per node: its number of parameters (a nested graph's all of them).
    pub params: Vec<usize>,
    /// The values of the sizes, in the order of `spec.sizes`.
    pub sizes: Vec<usize>,
    /// Per node: the nested graphs' descriptions (one for a nested graph,
    /// one per layer for a stack).
    pub nested: Vec<Vec<Description>>,
}

impl Description {
    /// The description of `graph` and the graphs nested in it.
    pub fn of<F: Float, G: Graph<F>>(graph: &G) -> Description {
        struct Nested {
            found: Vec<Vec<Description>>,
        }
        impl<F: Float> Visit<F> for Nested {
            fn layer<L: Layer<F>, const N: usize>(&mut self, _: usize, _: &L) -> Result<()> {
                Ok(())
            }
            fn nested_at<G: Graph<F>>(&mut self, k: usize, _: usize, graph: &G) -> Result<()> {
                self.found[k].push(Description::of(graph));
                Ok(())
            }
        }
        let spec = G::SPEC;
        let (layers, core) = graph.parts();
        let mut nested = Nested {
            found: vec![Vec::new(); spec.nodes.len()],
        };
        for (k, node) in spec.nodes.iter().enumerate() {
            if crate::instance::is_host(node.kind) {
                // Describing cannot fail.
                let _ = G::node(layers, k, &mut nested);
            }
        }
        Description {
            spec,
            widths: core.widths.clone(),
            params: core.store.node_ranges().iter().map(|r| r.len()).collect(),
            sizes: graph.size_values(),
            nested: nested.found,
        }
    }

    /// The specs of this graph and its nested graphs.
    pub fn spec_tree(&self) -> SpecTree {
        SpecTree {
            spec: self.spec,
            nested: self
                .nested
                .iter()
                .map(|n| n.iter().map(Description::spec_tree).collect())
                .collect(),
        }
    }

    /// The plan passes over this instance follow.
    pub fn plan(&self) -> Plan {
        Plan::of(&self.spec_tree())
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.iter().sum()
    }

    /// A slot's width as shown: `ids` for an ids input, nothing for a host
    /// node (a nested graph holds no value of its own), else the number.
    pub fn width_text(&self, slot: usize) -> String {
        let spec = self.spec;
        match spec.inputs.get(slot) {
            Some(i) if i.ids => "ids".to_string(),
            Some(_) => self.widths[slot].to_string(),
            None if crate::instance::is_host(spec.nodes[slot - spec.inputs.len()].kind) => String::new(),
            None => self.widths[slot].to_string(),
        }
    }

    /// The width of output `o`.
    pub fn output_width(&self, o: usize) -> usize {
        self.widths[self.spec.output_slot(o)]
    }
}

/// The Graphviz picture of the graph (made at compile time), with the plan
/// as clusters where it has loops: the top-level nodes each segment
/// computes, once over all steps or step by step.
pub(crate) fn dot(d: &Description) -> String {
    let plan = d.plan();
    let body = d.spec.dot.trim_end().strip_suffix('}').unwrap_or(d.spec.dot);
    let mut s = body.to_string();
    if (0..plan.segments()).any(|seg| plan.is_loop(seg)) {
        let mut loops = 0;
        for seg in 0..plan.segments() {
            let nodes = plan.top_nodes(seg);
            if nodes.is_empty() {
                continue;
            }
            let label = if plan.is_loop(seg) {
                loops += 1;
                format!("loop {loops}, step by step")
            } else {
                "once over all steps".to_string()
            };
            let names: Vec<String> = nodes
                .iter()
                .map(|&k| format!("\"{}\"", d.spec.nodes[k].name))
                .collect();
            s += &format!(
                "  subgraph cluster_{seg} {{ label=\"{label}\"; style=dashed; {}; }}\n",
                names.join("; ")
            );
        }
    }
    s += "}\n";
    s
}
