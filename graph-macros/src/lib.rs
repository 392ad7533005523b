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
    graph_impl(input.into())
        .unwrap_or_else(|e| e.to_compile_error())
        .into()
}

/// The whole macro on `proc_macro2` tokens: parse, check, expand.
fn graph_impl(input: TokenStream) -> syn::Result<TokenStream> {
    let invocation: ast::Invocation = syn::parse2(input)?;
    let checked = check::check(invocation)?;
    Ok(expand::expand(&checked))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod expansion_size;
