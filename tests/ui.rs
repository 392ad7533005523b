//! Compile-time behaviour of `graph!`: every mistake in tests/ui/fail is a
//! reviewed error (the `.stderr` beside it); tests/ui/pass must build and run.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
