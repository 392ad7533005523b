//! Compile-time behaviour of `graph!`. Every mistake in `ui/fail` is a
//! reviewed error (the `.stderr` beside it) under `cargo check`, what
//! editors run: trybuild checks a set of compile-fail cases with `cargo
//! check` when it holds no pass case. `ui/fail_build` holds the mistakes
//! only a build can find (sizes known after monomorphisation: const
//! generics), run with the pass cases in `ui/pass`, which must build and
//! run.

#[test]
fn mistakes_under_cargo_check() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
}

#[test]
fn mistakes_found_by_a_build_and_graphs_that_build() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail_build/*.rs");
    t.pass("ui/pass/*.rs");
}
