//! The `graph!` macro of nngraph, built as a small compiler:
//!
//! 1. `parse`: tokens to the syntax tree in `ast`;
//! 2. `check`: names, evaluation order and shapes, as named passes, every
//!    mistake a spanned error; produces the checked graph in `ir`;
//! 3. `expand`: the checked graph to Rust code that calls `graph_runtime`.
//!
//! `errors` collects the mistakes of every stage, `layers` is the catalogue
//! of built-in layers and `width` the arithmetic of symbolic widths.
//!
//! All logic runs on `proc_macro2`, so `graph_impl` can be unit-tested and
//! fuzzed without a compiler. Users reach the macro through `nngraph::graph!`,
//! which documents the DSL.

mod ast;
mod check;
mod errors;
mod expand;
mod ir;
mod layers;
mod parse;
mod width;

use proc_macro2::TokenStream;

/// Declares one or more graphs; see `nngraph::graph!` for the DSL.
#[proc_macro]
pub fn graph(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let (mut code, errors) = compile(input.into());
    if let Some(errors) = errors {
        code.extend(errors.to_compile_error());
    }
    code.into()
}

/// The whole macro on `proc_macro2` tokens: parse, check, expand. Graphs
/// with mistakes expand to stubs beside the errors, so that code using
/// them shows no follow-on errors.
fn compile(input: TokenStream) -> (TokenStream, Option<syn::Error>) {
    let invocation: ast::Invocation = match syn::parse2(input) {
        Ok(invocation) => invocation,
        Err(e) => return (TokenStream::new(), Some(e)),
    };
    let (checked, errors) = check::check(invocation);
    (expand::expand(&checked), errors.finish(()).err())
}

/// [`compile`] as a `Result`: the code, or every error (for tests).
#[cfg(test)]
fn graph_impl(input: TokenStream) -> syn::Result<TokenStream> {
    let (code, errors) = compile(input);
    errors.map_or(Ok(code), Err)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod expansion_size;
