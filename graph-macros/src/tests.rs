//! Tests of the macro on `proc_macro2` tokens, without a compiler: what it
//! accepts, where its errors point, and that no input makes it panic.

use crate::graph_impl;
use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn run(src: &str) -> syn::Result<TokenStream> {
    graph_impl(src.parse().expect("lexes"))
}

fn errors(src: &str) -> Vec<String> {
    match run(src) {
        Ok(_) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    }
}

/// A real token has a non-empty range in the source; `Span::call_site()`
/// (the whole macro call) has an empty one.
fn points_at_a_token(span: Span) -> bool {
    span.start() != span.end()
}

const SEED_CELL: &str = "
    /// The seed's cell.
    #[recurrent(h = new_h)]
    pub RnnCell(x: [2], h: [4]) -> (y, new_h) {
        x2h   = Linear(2, 4)(x);
        h2h   = Linear(4, 4)(h);
        new_h = Tanh()(CAdd()(x2h, h2h));
        y     = Sigmoid()(Linear(4, 1)(new_h));
    }";

const VALID: &[&str] = &[
    SEED_CELL,
    "pub A(x1: [3], x2: [2]) -> (out, add) {
        l1 = Linear(3, 2)(x1); l2 = Linear(2, 2)(x2); add = CAdd()(l1, l2);
        out = Linear(2, 1)(Tanh()(add));
    }
    B(a: [4], b: [4]) -> y { y = CMul()(ReLU()(a), CSub()(a, b), Identity()(b)); }",
    // Widths known only when the graph is built: run-time-sized nested
    // graphs with sizes as expressions, two levels deep, read by Split,
    // Narrow and Concat.
    "pub Inner[n, m](x: [n]) -> (y) { y = Tanh()(Linear(n, m)(x)); }
    pub Twice[n](x: [n]) -> (y) { y = Identity()(Inner[2 * n, 4 * n](Inner[n, 2 * n](x).y).y); }
    pub Reader[n](x: [n]) -> (p, z) {
        (p, q) = Split(2)(Inner[n, n * 2 + 2](x).y);
        z = Linear(5 * n + 1, 3)(Concat()(Narrow(1, n)(Twice[n](x).y), q, Identity()(Inner[n, 3 * n](x).y)));
    }
    pub Fixed<const N: usize>(x: [N]) -> (p, q) { (p, q) = Split(2)(Inner[N, 2 * N](x).y); }",
    // Stacks: run-time depth, a first layer of its own, states grouped,
    // tensors inline.
    "#[recurrent(h = new_h)]
    pub Layer[i, n](x: [i], h: [n]) -> (new_h) { new_h = Tanh()(CAdd()(Linear(i, n)(x), Linear(n, n)(h))); }
    #[recurrent(h = h_n)]
    pub Deep[n, layers](x: [3], h: [layers * n]) -> (y, h_n) {
        #[params(inline)]
        (top, h_n) = Stack(layers, Layer[3, n], Layer[n, n])(x, h);
        y = Linear(n, 2)(top);
    }
    pub Two(x: [4], h: [8]) -> (y, h_n) { (y, h_n) = Stack(2, Layer[4, 4])(x, h); }",
];

#[test]
fn valid_graphs_expand() {
    for src in VALID {
        let out = run(src).unwrap_or_else(|e| panic!("{e}"));
        let text = out.to_string();
        assert!(text.contains("impl < F : :: graph_runtime :: Float > :: graph_runtime :: Graph < F >"));
    }
}

#[test]
fn nested_calls_get_documented_names_in_declaration_order() {
    /// The node names of the graph's spec, in order.
    fn node_names(src: &str) -> Vec<String> {
        let out = run(src).unwrap().to_string();
        out.split("NodeSpec { name : \"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_string())
            .collect()
    }
    assert_eq!(
        node_names(SEED_CELL),
        ["x2h", "h2h", "new_h_cadd", "new_h", "y_linear", "y"]
    );
    assert_eq!(
        node_names("pub R(a: [2]) -> y { y = CAdd()(Tanh()(a), Tanh()(a)); }"),
        ["y_tanh", "y_tanh_2", "y"]
    );
}

#[test]
fn errors_are_combined_not_one_per_rebuild() {
    let errs = errors(
        "pub Cell(x: [2], h: [4]) -> (y) {
            x2h = Linear(3, 4)(x);
            h2h = Linaer(4, 4)(h);
            y = Sigmoid()(Linear(4, 1)(CAdd()(x2h, hh)));
        }",
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs
        .iter()
        .any(|e| e.contains("expects an input of width 3, but `x` has width 2")));
    assert!(errs.iter().any(|e| e.contains("unknown layer `Linaer`")));
    assert!(errs.iter().any(|e| e.contains("`hh` is not an input or a node")));
}

#[test]
fn broken_statements_do_not_hide_later_ones() {
    let errs = errors(
        "pub Cell(x: [2]) -> (y) {
            a = Linear(2, 2)(x)
            b = 3;
            y = Linear(2, 1)(x);
        }",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
}

#[test]
fn element_wise_mismatch_names_both_widths() {
    let errs = errors("pub G(a: [3], b: [4]) -> y { y = CMul()(a, b); }");
    assert_eq!(
        errs,
        ["node `y`: `CMul` is element-wise, so its inputs must have one width, but `a` has width 3 and `b` has width 4"]
    );
}

#[test]
fn sizes_in_the_wrong_brackets_or_of_the_wrong_count_are_spanned_errors() {
    let errs = errors(
        "pub Inner<const H: usize>(x: [H]) -> y { y = Tanh()(x); }
         pub Outer[n](x: [3]) -> (a, b, c, d) {
             a = Inner[3](x);
             b = Inner<3, 4>(x);
             c = GruCell[3, 4](x, x).h_next;
             d = nngraph::cells::Rnn<3, 4, 1>(x, x).y;
         }",
    );
    assert_eq!(
        errs,
        [
            "`Inner` takes its sizes as const generics, in `<..>`: `Inner<H>`\n= help: write `Inner<3>`",
            "`Inner` takes 1 size(s) (H), but it is given 2\n= help: write `Inner<H>`",
            "`GruCell` takes its sizes as const generics, in `<..>`: `GruCell<I, H>`\n= help: write `GruCell<3, 4>`",
            "`Rnn` takes its sizes when the graph is built, in `[..]`: `Rnn[input, hidden, layers]`\n= help: write `Rnn[3, 4, 1]`",
        ]
    );
    // A graph of the block with the name of a shipped cell is that graph.
    let errs = errors(
        "pub GruCell[n](x: [n]) -> y { y = Tanh()(x); }
         pub Outer(x: [3]) -> a { a = GruCell[3](x); }",
    );
    assert!(errs.is_empty(), "{errs:#?}");
}

/// The macro's table of the shipped cells names every graph `cells.rs`
/// declares: a name missing from it would be reported as a misspelling.
#[test]
fn the_table_of_shipped_cells_names_every_shipped_graph() {
    let source = include_str!("../../graph-runtime/src/cells.rs");
    let declared: Vec<&str> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        .filter_map(|rest| rest.split(['<', '[', '(']).next())
        .collect();
    assert!(declared.len() >= 11, "{declared:?}");
    let table = crate::check::shipped_names();
    for name in &declared {
        assert!(
            table.iter().any(|t| t == name),
            "`{name}` is shipped but not in the macro's table"
        );
    }
    assert_eq!(table.len(), 2 * declared.len(), "{table:?} against {declared:?}");
}

/// Every compile-fail case of the UI suite, run through the macro: each
/// diagnostic must point at a token of the user's input.
#[test]
fn ui_diagnostics_point_into_the_input() {
    let mut checked = 0;
    let dirs = ["/../tests/ui/fail", "/../tests/ui/fail_build"];
    let entries = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(format!("{}{d}", env!("CARGO_MANIFEST_DIR"))).expect("the UI cases"));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let file = syn::parse_file(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for item in file.items {
            let syn::Item::Macro(m) = item else { continue };
            // An empty invocation has no token to point at but the call.
            if !m.mac.path.is_ident("graph") || m.mac.tokens.is_empty() {
                continue;
            }
            if let Err(err) = graph_impl(m.mac.tokens.clone()) {
                for e in err {
                    assert!(
                        points_at_a_token(e.span()),
                        "{}: `{e}` is spanned over the whole macro call",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} diagnostics found");
}

// ---- Fuzzing -------------------------------------------------------------

/// xorshift64*: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A token stream flattened so that tokens can be dropped or moved across
/// group boundaries; `rebuild` turns it back into a stream when the
/// delimiters still balance.
#[derive(Clone)]
enum Flat {
    Open(Delimiter),
    Close(Delimiter),
    Leaf(TokenTree),
}

fn flatten(stream: TokenStream, out: &mut Vec<Flat>) {
    for tt in stream {
        match tt {
            TokenTree::Group(g) => {
                out.push(Flat::Open(g.delimiter()));
                flatten(g.stream(), out);
                out.push(Flat::Close(g.delimiter()));
            }
            leaf => out.push(Flat::Leaf(leaf)),
        }
    }
}

fn rebuild(flat: &[Flat]) -> Option<TokenStream> {
    let mut stack: Vec<(Delimiter, Vec<TokenTree>)> = vec![(Delimiter::None, Vec::new())];
    for f in flat {
        match f {
            Flat::Open(d) => stack.push((*d, Vec::new())),
            Flat::Close(d) => {
                let (open, inner) = stack.pop()?;
                if open != *d || stack.is_empty() {
                    return None;
                }
                let group = Group::new(open, inner.into_iter().collect());
                stack.last_mut()?.1.push(TokenTree::Group(group));
            }
            Flat::Leaf(t) => stack.last_mut()?.1.push(t.clone()),
        }
    }
    if stack.len() != 1 {
        return None;
    }
    Some(stack.pop()?.1.into_iter().collect())
}

const NAMES: &[&str] = &[
    "x",
    "h",
    "y",
    "new_h",
    "x2h",
    "zz",
    "_q",
    "Linear",
    "Tanh",
    "CAdd",
    "CMul",
    "Split",
    "recurrent",
    "pub",
    "crate",
    "self",
    "F",
    "Linaer",
];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "4",
    "3",
    "18446744073709551615",
    "99999999999",
    "2.5",
    "-1",
    "1e3",
    "'c'",
];
const PUNCTS: &[&str] = &[";", ",", "=", "->", ":", "#", "!", "::", "."];

fn mutate(flat: &mut Vec<Flat>, rng: &mut Rng) {
    let n = flat.len();
    let i = rng.below(n);
    let parse_leaf = |s: &str| -> Flat {
        let tt = s.parse::<TokenStream>().unwrap().into_iter().next().unwrap();
        Flat::Leaf(tt)
    };
    match rng.below(7) {
        0 => {
            flat.remove(i);
        }
        1 => {
            let j = rng.below(n);
            flat.swap(i, j);
        }
        2 => {
            let t = flat[i].clone();
            flat.insert(rng.below(n), t);
        }
        3 => {
            if let Some(k) = (0..n)
                .map(|d| (i + d) % n)
                .find(|&k| matches!(&flat[k], Flat::Leaf(TokenTree::Literal(_))))
            {
                flat[k] = parse_leaf(NUMBERS[rng.below(NUMBERS.len())]);
            }
        }
        4 => {
            if let Some(k) = (0..n)
                .map(|d| (i + d) % n)
                .find(|&k| matches!(&flat[k], Flat::Leaf(TokenTree::Ident(_))))
            {
                flat[k] = parse_leaf(NAMES[rng.below(NAMES.len())]);
            }
        }
        5 => {
            let p = PUNCTS[rng.below(PUNCTS.len())];
            for tt in p.parse::<TokenStream>().unwrap() {
                flat.insert(i, Flat::Leaf(tt));
            }
        }
        _ => {
            // Drop a balanced group's contents: `Linear(2, 4)` -> `Linear()`.
            if let Some(k) = (i..n).find(|&k| matches!(&flat[k], Flat::Open(_))) {
                let mut depth = 0;
                let mut end = k;
                for (m, f) in flat.iter().enumerate().skip(k) {
                    match f {
                        Flat::Open(_) => depth += 1,
                        Flat::Close(_) => depth -= 1,
                        Flat::Leaf(_) => {}
                    }
                    if depth == 0 {
                        end = m;
                        break;
                    }
                }
                if end > k {
                    flat.drain(k + 1..end);
                }
            }
        }
    }
}

#[test]
fn fuzz_mutated_graphs_never_panic_and_errors_point_into_the_input() {
    let seeds: Vec<Vec<Flat>> = VALID
        .iter()
        .map(|src| {
            let mut flat = Vec::new();
            flatten(src.parse().unwrap(), &mut flat);
            flat
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ran, mut failed) = (0, 0);
    while ran < 10_000 {
        let mut flat = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(3) {
            if !flat.is_empty() {
                mutate(&mut flat, &mut rng);
            }
        }
        let Some(stream) = rebuild(&flat) else { continue };
        ran += 1;
        let text = stream.to_string();
        // Re-lex so that every token has a location in a fresh source.
        let Ok(stream) = text.parse::<TokenStream>() else {
            continue;
        };
        let result = catch_unwind(AssertUnwindSafe(|| graph_impl(stream)));
        match result {
            Err(_) => panic!("the macro panicked on:\n{text}"),
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                failed += 1;
                for e in err {
                    assert!(
                        points_at_a_token(e.span()),
                        "error `{e}` does not point into the input:\n{text}"
                    );
                }
            }
        }
    }
    assert!(
        failed > 5_000,
        "mutations should mostly break the graph ({failed} of {ran} did)"
    );
}
