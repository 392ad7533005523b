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
fn expanded_a_nested_graph_is_a_cluster_holding_its_own_nodes() {
    let g = Tagger::<f64>::zeros().unwrap();
    let svg = g.svg_expanded();
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

graph! {
    /// char_rnn's model: an embedding, the shipped LSTM stack, the scores
    /// and the loss.
    #[recurrent(h = h_n, c = c_n)]
    pub CharModel[vocab, hidden, layers](x: usize, h: [layers * hidden], c: [layers * hidden], target: usize)
        -> (loss, logits, h_n, c_n)
    {
        (y, h_n, c_n) = nngraph::cells::Lstm[hidden, hidden, layers](Embedding(vocab, hidden)(x), h, c);
        logits = Linear(hidden, vocab)(Dropout(0.0)(y));
        loss = CrossEntropy()(logits, target);
    }

    /// A stack of GRU layers written with `Stack`, a second input read by
    /// the scores (a long edge past the stack's column).
    #[recurrent(h = h_n)]
    pub GruModel[vocab, hidden](x: usize, h: [3 * hidden], bias: [hidden], target: usize) -> (loss, h_n) {
        (y, h_n) = Stack(3, nngraph::cells::GruLayer[hidden, hidden], nngraph::cells::GruUpper[hidden])(
            Embedding(vocab, hidden)(x), h);
        loss = CrossEntropy()(Linear(hidden, vocab)(CAdd()(Tanh()(y), bias)), target);
    }
}

/// A rectangle `(x, y, w, h)` from an element's attributes.
fn rect(n: &Node) -> (f64, f64, f64, f64) {
    let a = |k: &str| n.attribute(k).unwrap().parse::<f64>().unwrap();
    (a("x"), a("y"), a("width"), a("height"))
}

/// The points of an `M x,y L x,y ...` path.
fn points(d: &str) -> Vec<(f64, f64)> {
    d.split(['M', 'L'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

/// Whether the segment from `a` to `b` (horizontal or vertical) passes
/// through the inside of the rectangle `r`, shrunk by a pixel on each side.
fn crosses(a: (f64, f64), b: (f64, f64), r: (f64, f64, f64, f64)) -> bool {
    let (x0, y0, x1, y1) = (r.0 + 1.0, r.1 + 1.0, r.0 + r.2 - 1.0, r.1 + r.3 - 1.0);
    let (lo_x, hi_x) = (a.0.min(b.0), a.0.max(b.0));
    let (lo_y, hi_y) = (a.1.min(b.1), a.1.max(b.1));
    lo_x < x1 && hi_x > x0 && lo_y < y1 && hi_y > y0
}

/// The boxes of a picture: every node, input, output and collapsed
/// nested graph (text is drawn inside them).
fn boxes<'a>(doc: &'a Document) -> Vec<(Node<'a, 'a>, (f64, f64, f64, f64))> {
    doc.descendants()
        .filter(|n| {
            ["node", "input", "output", "nested"]
                .iter()
                .any(|c| has_class(n, c))
        })
        .filter_map(|g| {
            g.children()
                .find(|c| c.has_tag_name("rect"))
                .map(|r| (g, rect(&r)))
        })
        .collect()
}

/// Every straight run of every edge and recurrent edge misses every box,
/// except where it starts and ends (at the box's side).
fn assert_no_edge_crosses_a_box(doc: &Document) {
    let boxes = boxes(doc);
    for path in doc
        .descendants()
        .filter(|n| has_class(n, "edge") || has_class(n, "recurrent"))
    {
        let p = points(path.attribute("d").unwrap());
        assert!(p.len() >= 2);
        for pair in p.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(
                a.0 == b.0 || a.1 == b.1,
                "a straight run across or along: {a:?} {b:?}"
            );
            for (node, r) in &boxes {
                assert!(
                    !crosses(a, b, *r),
                    "the edge {:?} runs through {:?} at {a:?}-{b:?}",
                    path.attribute("d"),
                    texts(*node).first()
                );
            }
        }
    }
}

#[test]
fn the_char_model_is_a_few_boxes_with_ports_and_no_edge_crosses_a_box() {
    let g = CharModel::<f32>::zeros(65, 128, 2).unwrap();
    let svg = g.svg();
    save("char_model.svg", &svg);
    let doc = Document::parse(&svg).expect("well-formed XML");
    let width: f64 = doc.root_element().attribute("width").unwrap().parse().unwrap();
    assert!(width <= 1200.0, "{width} px wide");
    // One box for the LSTM stack, saying what it is.
    let nested: Vec<Node> = doc.descendants().filter(|n| has_class(n, "nested")).collect();
    assert_eq!(nested.len(), 1);
    let lines = texts(nested[0]);
    for want in [
        "y_lstm",
        "Lstm",
        "hidden = 128",
        "layers = 2",
        "2 layers",
        "264,192 params",
    ] {
        assert!(lines.contains(&want), "{want} in {lines:?}");
    }
    assert_eq!(count(&doc, "cluster"), 0);
    // Each input enters at its own port, labelled with the LSTM's names.
    let ports: Vec<&str> = nested[0]
        .descendants()
        .filter(|n| has_class(n, "in"))
        .filter_map(|n| n.attribute("data-name"))
        .collect();
    assert_eq!(ports, ["x", "h", "c"]);
    let at = |c: Node, k: &str| c.attribute(k).unwrap().parse::<f64>().unwrap();
    let port_points: Vec<(f64, f64)> = nested[0]
        .descendants()
        .filter(|n| n.has_tag_name("circle") && n.parent().is_some_and(|p| has_class(&p, "in")))
        .map(|c| (at(c, "cx"), at(c, "cy")))
        .collect();
    let ends: Vec<(f64, f64)> = doc
        .descendants()
        .filter(|n| has_class(n, "edge"))
        .map(|e| *points(e.attribute("d").unwrap()).last().unwrap())
        .collect();
    let near = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 0.05 && (a.1 - b.1).abs() < 0.05;
    for &p in &port_points {
        assert_eq!(
            ends.iter().filter(|&&e| near(e, p)).count(),
            1,
            "one edge at the port at {p:?}"
        );
    }
    let distinct: std::collections::BTreeSet<i64> = port_points.iter().map(|p| (p.1 * 10.0) as i64).collect();
    assert_eq!(distinct.len(), 3, "three ports, three heights");
    // Boxes: 4 inputs, embedding, LSTM, dropout, logits, loss, h_n, c_n.
    assert_eq!(
        boxes(&doc).len(),
        11,
        "{:?}",
        boxes(&doc).iter().map(|b| texts(b.0)[0]).collect::<Vec<_>>()
    );
    assert_no_edge_crosses_a_box(&doc);
    assert_eq!(count(&doc, "recurrent"), 2);
    // Expanded, the LSTM's own graph is drawn inside, with its stack.
    let expanded = g.svg_expanded();
    save("char_model_expanded.svg", &expanded);
    let doc = Document::parse(&expanded).expect("well-formed XML");
    assert!(count(&doc, "cluster") >= 1);
}

#[test]
fn a_stack_is_one_box_and_long_edges_go_around_boxes() {
    let g = GruModel::<f32>::zeros(20, 16).unwrap();
    let svg = g.svg();
    save("gru_model.svg", &svg);
    let doc = Document::parse(&svg).expect("well-formed XML");
    let nested: Vec<Node> = doc.descendants().filter(|n| has_class(n, "nested")).collect();
    assert_eq!(nested.len(), 1, "one box for the stack");
    let lines = texts(nested[0]);
    assert!(lines.contains(&"Stack ×3"), "{lines:?}");
    assert!(
        lines.contains(&"then GruUpper") && lines.contains(&"hidden = 16"),
        "{lines:?}"
    );
    assert_no_edge_crosses_a_box(&doc);
}

#[test]
fn the_char_models_summary_is_a_row_per_layer_and_its_total_adds_up() {
    let g = CharModel::<f32>::zeros(65, 128, 2).unwrap();
    let table = g.summary();
    eprintln!("{table}");
    let lstm: Vec<&str> = table.lines().filter(|l| l.starts_with("y_lstm ")).collect();
    assert_eq!(lstm.len(), 1, "{table}");
    assert!(
        lstm[0].contains("Lstm[input=128, hidden=128, layers=2]") && lstm[0].contains("264192"),
        "{table}"
    );
    assert!(
        table.ends_with(&format!("nodes, {} parameters", g.num_params())),
        "{table}"
    );
    assert!(table.lines().count() < 20, "{table}");
    let expanded = g.summary_expanded();
    eprintln!("{expanded}");
    // The stack inside, layer by layer, the rows with their file.
    for layer in ["[0]", "[1]"] {
        assert!(
            expanded.lines().any(|l| l.trim_start().starts_with(layer)),
            "{expanded}"
        );
    }
    assert!(expanded.contains("cells.rs:"), "{expanded}");
    assert!(
        expanded.ends_with(&format!("{} parameters", g.num_params())),
        "{expanded}"
    );
}

#[test]
fn a_failure_inside_a_stack_is_drawn_on_its_node_in_the_expanded_picture() {
    let mut g = GruModel::<f64>::zeros(20, 4).unwrap();
    g.set_checked(true);
    let mut tape = g.tape();
    let xs = Array2::<usize>::zeros((2, 1));
    let mut h = Array2::<f64>::zeros((1, 12));
    h[[0, 5]] = f64::NAN; // layer 1's block
    let bias = Array3::<f64>::zeros((2, 1, 4));
    let err = g.forward_seq(&mut tape, &xs, &h, &bias, &xs).unwrap_err();
    let svg = g.svg_with_error(&err);
    save("gru_model_failed.svg", &svg);
    let doc = Document::parse(&svg).expect("well-formed XML");
    let failed: Vec<Node> = doc.descendants().filter(|n| has_class(n, "failed")).collect();
    assert_eq!(failed.len(), 1, "{err}");
    assert!(failed[0].ancestors().any(|a| has_class(&a, "cluster")), "{err}");
}
