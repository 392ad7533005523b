//! Pictures without graphviz: the SVG is well-formed, shows every node,
//! every edge, nested graphs as clusters and recurrent pairs as dashed
//! edges; a checked-mode failure is drawn on exactly the failing node.

mod common;

use common::SeedCell;
use nngraph::prelude::*;
use roxmltree::{Document, Node};

graph! {
    /// An LSTM nested in a graph with a loss: a cluster, two recurrent pairs.
    #[recurrent(h = h1, c = c1)]
    pub Tagger(x: [12], h: [16], c: [16], tag: usize) -> (loss, h1, c1) {
        (h1, c1) = nngraph::cells::LstmCell<12, 16>(x, h, c);
        loss = CrossEntropy()(Linear(16, 5)(Dropout(0.3)(h1)), tag);
    }
}

fn has_class(n: &Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split(' ').any(|w| w == class))
}

fn count(doc: &Document, class: &str) -> usize {
    doc.descendants().filter(|n| has_class(n, class)).count()
}

/// The `<text>` contents of the element `n` and everything under it.
fn texts<'a>(n: Node<'a, 'a>) -> Vec<&'a str> {
    n.descendants()
        .filter(|d| d.has_tag_name("text"))
        .filter_map(|d| d.text())
        .collect()
}

fn save(name: &str, svg: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("pictures");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), svg).unwrap();
}

#[test]
fn the_seed_cell_is_a_well_formed_picture_of_every_node_and_edge() {
    let cell = SeedCell::<f64>::zeros();
    let svg = cell.svg();
    save("seed_cell.svg", &svg);
    let doc = Document::parse(&svg).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let all = texts(doc.root_element());
    let spec = <SeedCell<f64> as Graph<f64>>::SPEC;
    for name in spec
        .inputs
        .iter()
        .map(|i| i.name)
        .chain(spec.nodes.iter().map(|n| n.name))
    {
        assert!(all.contains(&name), "{name} is drawn");
    }
    assert!(
        all.contains(&"Linear(2, 4)") && all.contains(&"→ [4]"),
        "layers and widths"
    );
    // The plan: x2h over all steps, h2h in the loop, the output layer over
    // all steps again.
    for (node, phase) in [
        ("x2h", "over all steps"),
        ("h2h", "in loop 1"),
        ("y", "over all steps"),
    ] {
        let item = doc
            .descendants()
            .find(|n| (has_class(n, "node") || has_class(n, "output")) && texts(*n).first() == Some(&node))
            .unwrap_or_else(|| panic!("{node} is drawn"));
        assert_eq!(texts(item).last(), Some(&phase), "{node}");
    }
    let dot = cell.to_dot();
    let cluster = "label=\"loop 1, step by step\"; style=dashed; \"h2h\"; \"new_h_cadd\"; \"new_h\"; }";
    assert!(dot.contains(cluster), "{dot}");
    let edges: usize = spec.nodes.iter().map(|n| n.inputs.len()).sum();
    assert_eq!(count(&doc, "edge"), edges);
    assert_eq!(count(&doc, "recurrent"), 1);
    assert_eq!(count(&doc, "input"), 2);
    assert_eq!(count(&doc, "output"), 2);
    assert_eq!(count(&doc, "cluster"), 0);
    assert_eq!(count(&doc, "failed"), 0);
}

#[test]
fn a_nested_graph_is_a_cluster_holding_its_own_nodes() {
    let g = Tagger::<f64>::zeros().unwrap();
    let svg = g.svg();
    save("tagger.svg", &svg);
    let doc = Document::parse(&svg).expect("well-formed XML");
    let clusters: Vec<Node> = doc.descendants().filter(|n| has_class(n, "cluster")).collect();
    assert_eq!(clusters.len(), 1);
    // The cluster holds the LSTM's drawing: its nodes and its own edges.
    let inner = clusters[0]
        .children()
        .find(|n| has_class(n, "graph"))
        .expect("the nested graph's drawing");
    assert_eq!(inner.attribute("data-name"), Some("LstmCell"));
    let lstm = <nngraph::cells::LstmCell<12, 16, f64> as Graph<f64>>::SPEC;
    let inside = texts(inner);
    for node in lstm.nodes {
        assert!(inside.contains(&node.name), "{} is inside the cluster", node.name);
    }
    let inner_edges: usize = lstm.nodes.iter().map(|n| n.inputs.len()).sum();
    assert_eq!(
        inner.descendants().filter(|n| has_class(n, "edge")).count(),
        inner_edges
    );
    // Two recurrent pairs outside, two inside (the LSTM's own h and c).
    assert_eq!(count(&doc, "recurrent"), 4);
}

#[test]
fn a_checked_mode_failure_is_drawn_on_exactly_the_failing_node() {
    let mut cell = SeedCell::<f64>::zeros();
    cell.set_checked(true);
    let mut tape = cell.tape();
    let err = cell.forward(&mut tape, &[f64::NAN, 0.0], &[0.0; 4]).unwrap_err();
    let svg = cell.svg_with_error(&err);
    save("seed_cell_failed.svg", &svg);
    let doc = Document::parse(&svg).expect("well-formed XML");
    let failed: Vec<Node> = doc.descendants().filter(|n| has_class(n, "failed")).collect();
    assert_eq!(failed.len(), 1, "exactly one node is highlighted");
    assert_eq!(texts(failed[0])[0], "x2h", "the first node to see the NaN");
    let caption = doc
        .descendants()
        .find(|n| has_class(n, "caption"))
        .expect("a caption");
    assert!(
        caption.text().unwrap().starts_with("output of `x2h`"),
        "{:?}",
        caption.text()
    );
}

#[test]
fn a_failure_inside_a_nested_graph_is_drawn_inside_its_cluster_and_at_its_step() {
    let mut g = Tagger::<f64>::zeros().unwrap();
    g.set_checked(true);
    let mut tape = g.tape();
    let mut xs = Array3::zeros((3, 1, 12));
    xs[[1, 0, 4]] = f64::INFINITY;
    let tags = Array2::<usize>::zeros((3, 1));
    let err = g
        .forward_seq(&mut tape, &xs, &Absent, &Absent, &tags)
        .unwrap_err();
    let svg = g.svg_with_error(&err);
    save("tagger_failed.svg", &svg);
    let doc = Document::parse(&svg).expect("well-formed XML");
    let failed: Vec<Node> = doc.descendants().filter(|n| has_class(n, "failed")).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(texts(failed[0])[0], "ih");
    assert!(
        failed[0].ancestors().any(|a| has_class(&a, "cluster")),
        "the failing node is drawn inside the LSTM's cluster"
    );
    let caption = doc.descendants().find(|n| has_class(n, "caption")).unwrap();
    assert!(
        caption.text().unwrap().ends_with("at step 1"),
        "{:?}",
        caption.text()
    );
}
