//! What a graph costs in generated code, measured: the expansion formatted
//! by `rustfmt` (as a reader of `cargo expand` would see it), in non-blank
//! lines. Compile time follows this volume, so it has a budget:
//!
//! - the seed notebook's RNN cell: at most 350 lines;
//! - each node added to a chain: at most 25 lines.
//!
//! `cargo test -p graph-macros expansion -- --nocapture` prints the numbers.

use crate::graph_impl;
use std::io::Write;
use std::process::{Command, Stdio};

/// Non-blank lines of `src`'s expansion after `rustfmt`.
fn expanded_lines(src: &str) -> usize {
    let tokens = graph_impl(src.parse().expect("lexes")).expect("expands");
    let mut rustfmt = Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()))
        .args([
            "--edition",
            "2021",
            "--emit",
            "stdout",
            "--config",
            "max_width=100",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("rustfmt runs (it ships with the toolchain)");
    rustfmt
        .stdin
        .take()
        .expect("piped")
        .write_all(tokens.to_string().as_bytes())
        .expect("rustfmt reads");
    let out = rustfmt.wait_with_output().expect("rustfmt finishes");
    assert!(out.status.success(), "rustfmt failed on the expansion");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// A chain of `n` nodes alternating `Linear(8, 8)` and `Tanh()`.
fn chain(n: usize) -> String {
    let mut body = String::new();
    let mut prev = "x".to_string();
    for k in 0..n {
        let name = if k + 1 == n {
            "y".to_string()
        } else {
            format!("n{k}")
        };
        let layer = if k % 2 == 0 { "Linear(8, 8)" } else { "Tanh()" };
        body += &format!("{name} = {layer}({prev});\n");
        prev = name;
    }
    format!("pub Chain(x: [8]) -> (y) {{\n{body}}}")
}

#[test]
fn expansion_stays_within_its_line_budget() {
    let seed = expanded_lines(
        "#[recurrent(h = new_h)]
        pub RnnCell(x: [2], h: [4]) -> (y, new_h) {
            x2h   = Linear(2, 4)(x);
            h2h   = Linear(4, 4)(h);
            new_h = Tanh()(CAdd()(x2h, h2h));
            y     = Sigmoid()(Linear(4, 1)(new_h));
        }",
    );
    let (short, long) = (expanded_lines(&chain(2)), expanded_lines(&chain(102)));
    let per_node = (long - short) as f64 / 100.0;
    eprintln!(
        "seed RnnCell: {seed} lines; chain: {short} lines at 2 nodes, {long} at 102: {per_node:.1} per node"
    );
    assert!(seed <= 350, "the seed cell expands to {seed} lines (budget 350)");
    assert!(per_node <= 25.0, "{per_node:.1} lines per node (budget 25)");
}
