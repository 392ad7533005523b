//! Parsing: tokens to the syntax tree of `ast`.
//!
//! Errors are phrased in the DSL's own terms ("a node is declared as
//! `name = Layer(args)(inputs);`") rather than as raw token expectations.
//! A statement that fails to parse is skipped up to its `;`, so that the
//! errors of independent statements are all reported at once.

use crate::ast::{
    Call, Expr, GraphDecl, GraphRef, InputDecl, InputKind, Invocation, ParamName, RecurrentPair, StackOf,
    Statement,
};
use crate::errors::Errors;
use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, bracketed, parenthesized, Attribute, Ident, Token, Visibility};

impl Parse for Invocation {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let runtime = parse_runtime_path(input)?;
        let mut graphs = Vec::new();
        let mut errors = Errors::default();
        while !input.is_empty() {
            match input.parse::<GraphDecl>() {
                Ok(g) => graphs.push(g),
                Err(e) => {
                    // A graph's structure is broken: later graphs cannot be
                    // found reliably, so stop here.
                    errors.push(e);
                    break;
                }
            }
        }
        if graphs.is_empty() && errors.is_empty() {
            errors.push(syn::Error::new(
                input.span(),
                "graph! needs at least one graph: `pub Name(x: [2]) -> (y) { y = Linear(2, 1)(x); }`",
            ));
        }
        errors.finish(Invocation { runtime, graphs })
    }
}

/// Where to point when something is missing: the next token, or at the end
/// of the input the last token read, rather than the whole macro call.
fn here(input: ParseStream, last: Span) -> Span {
    if input.is_empty() {
        last
    } else {
        input.span()
    }
}

/// `#![crate = path]`, inserted by the `nngraph` facade.
fn parse_runtime_path(input: ParseStream) -> syn::Result<Option<TokenStream>> {
    if !(input.peek(Token![#]) && input.peek2(Token![!])) {
        return Ok(None);
    }
    input.parse::<Token![#]>()?;
    input.parse::<Token![!]>()?;
    let content;
    bracketed!(content in input);
    content.parse::<Token![crate]>()?;
    content.parse::<Token![=]>()?;
    Ok(Some(content.parse::<TokenStream>()?))
}

impl Parse for GraphDecl {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut attrs = Vec::new();
        let mut recurrent = Vec::new();
        for attr in input.call(Attribute::parse_outer)? {
            if attr.path().is_ident("recurrent") {
                recurrent.extend(parse_recurrent(&attr)?);
            } else {
                attrs.push(attr);
            }
        }
        let vis: Visibility = input.parse()?;
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a graph declaration: `pub Name(input: [width], ...) -> (outputs) { ... }`",
            )
        })?;

        let const_sizes = if input.peek(Token![<]) {
            parse_const_sizes(input)?
        } else {
            Vec::new()
        };
        let runtime_sizes = if input.peek(syn::token::Bracket) {
            let content;
            bracketed!(content in input);
            Punctuated::<Ident, Token![,]>::parse_terminated(&content)?
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        if !input.peek(syn::token::Paren) {
            return Err(syn::Error::new(
                here(input, name.span()),
                format!(
                    "expected `(` after `{name}`: a graph declares its inputs as `{name}(x: [width], ...)`"
                ),
            ));
        }
        let content;
        let paren = parenthesized!(content in input);
        let inputs = Punctuated::<InputDecl, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect();

        if !input.peek(Token![->]) {
            return Err(syn::Error::new(
                here(input, paren.span.close()),
                format!("expected `->` and the outputs of `{name}` after its inputs: `-> (y, h)`"),
            ));
        }
        let arrow = input.parse::<Token![->]>()?;
        let outputs = parse_outputs(input, &name, arrow.spans[1])?;

        if !input.peek(syn::token::Brace) {
            let last = outputs.last().map_or(arrow.spans[1], Ident::span);
            return Err(syn::Error::new(
                here(input, last),
                format!("expected `{{` and the nodes of `{name}`: `{{ y = Linear(2, 1)(x); }}`"),
            ));
        }
        let body;
        braced!(body in input);
        let statements = parse_statements(&body)?;
        Ok(GraphDecl {
            attrs,
            recurrent,
            vis,
            name,
            const_sizes,
            runtime_sizes,
            inputs,
            outputs,
            statements,
        })
    }
}

/// `<const I: usize, const H: usize>`: the only generics a graph takes.
fn parse_const_sizes(input: ParseStream) -> syn::Result<Vec<Ident>> {
    let generics: syn::Generics = input.parse()?;
    let mut sizes = Vec::new();
    for param in &generics.params {
        match param {
            syn::GenericParam::Const(c) if matches!(&c.ty, syn::Type::Path(p) if p.path.is_ident("usize")) => {
                sizes.push(c.ident.clone())
            }
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "a graph's generic parameters are sizes: `const N: usize`",
                ))
            }
        }
    }
    Ok(sizes)
}

fn parse_recurrent(attr: &Attribute) -> syn::Result<Vec<RecurrentPair>> {
    attr.parse_args_with(|input: ParseStream| {
        comma_separated(input, "recurrent pairs", |input| {
            let input_name: Ident = input.parse()?;
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(
                    input_name.span(),
                    format!("expected `{input_name} = output`: each recurrent pair names the input and the output that feeds it at the next step"),
                ));
            }
            input.parse::<Token![=]>()?;
            let output: Ident = input.parse()?;
            Ok(RecurrentPair {
                input: input_name,
                output,
            })
        })
    })
}

/// `item, item, ...` (a trailing comma allowed) up to the end of `group`;
/// a missing comma is an error naming what the list holds.
fn comma_separated<T>(
    group: ParseStream,
    what: &str,
    mut item: impl FnMut(ParseStream) -> syn::Result<T>,
) -> syn::Result<Vec<T>> {
    let mut items = Vec::new();
    while !group.is_empty() {
        items.push(item(group)?);
        if group.is_empty() {
            break;
        }
        if !group.peek(Token![,]) {
            return Err(syn::Error::new(
                group.span(),
                format!("expected `,` between {what}"),
            ));
        }
        group.parse::<Token![,]>()?;
    }
    Ok(items)
}

fn parse_outputs(input: ParseStream, graph: &Ident, arrow: Span) -> syn::Result<Vec<Ident>> {
    if input.peek(syn::token::Paren) {
        let content;
        let paren = parenthesized!(content in input);
        let outputs: Vec<Ident> = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect();
        if outputs.is_empty() {
            return Err(syn::Error::new(
                paren.span.join(),
                format!("`{graph}` has no outputs: list at least one node, `-> (y)`"),
            ));
        }
        Ok(outputs)
    } else if input.peek(Ident) {
        Ok(vec![input.parse()?])
    } else {
        Err(syn::Error::new(
            here(input, arrow),
            format!("expected the outputs of `{graph}` after `->`: a node name or a list, `-> (y, h)`"),
        ))
    }
}

fn parse_statements(body: ParseStream) -> syn::Result<Vec<Statement>> {
    let mut statements = Vec::new();
    let mut errors = Errors::default();
    while !body.is_empty() {
        match parse_statement(body, &mut errors) {
            Ok(s) => statements.push(s),
            Err(e) => {
                errors.push(e);
                skip_past_semicolon(body);
            }
        }
    }
    errors.finish(statements)
}

fn skip_past_semicolon(input: ParseStream) {
    let _ = input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tt, next)) = rest.token_tree() {
            rest = next;
            if let TokenTree::Punct(p) = &tt {
                if p.as_char() == ';' {
                    break;
                }
            }
        }
        Ok(((), rest))
    });
}

/// Parses one statement. A missing `;` is reported into `errors` and the
/// statement kept, since the next statement starts right there.
fn parse_statement(input: ParseStream, errors: &mut Errors) -> syn::Result<Statement> {
    let (params, inline) = parse_node_attributes(input)?;
    let names = if input.peek(syn::token::Paren) {
        let content;
        let paren = parenthesized!(content in input);
        let names: Vec<Ident> = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect();
        if names.is_empty() {
            return Err(syn::Error::new(
                paren.span.join(),
                "expected node names inside `( )`",
            ));
        }
        names
    } else {
        let name: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a node declaration: `name = Layer(args)(inputs);`",
            )
        })?;
        vec![name]
    };
    let first = &names[0];
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            input.span(),
            format!("expected `=` after `{first}`: a node is declared as `{first} = Layer(args)(inputs);`"),
        ));
    }
    input.parse::<Token![=]>()?;
    let value = parse_expr(input)?;
    if let (Expr::Ref(from), true) = (&value, input.peek(Token![-])) {
        return Err(syn::Error::new(
            input.span(),
            format!(
                "nngraph's `{from} - layer` annotation is written as a call here\n\
                 = help: write `{first} = Layer(..)({from});`"
            ),
        ));
    }
    if !input.peek(Token![;]) {
        let (what, span) = match &value {
            Expr::Call(call) => (format!("`{}(..)(..)`", call.layer), call.inputs_span),
            Expr::Graph(call) => (format!("`{}(..)`", call.name), call.inputs_span),
            Expr::Ref(name) => (format!("`{name}`"), name.span()),
        };
        errors.push(syn::Error::new(
            span,
            format!("expected `;` after {what}, which ends the declaration of `{first}`"),
        ));
    } else {
        input.parse::<Token![;]>()?;
    }
    Ok(Statement {
        params,
        inline,
        names,
        value,
    })
}

/// The attributes of a node: doc comments (kept for the reader, not
/// generated) and `#[params(tensor = name, ..)]`.
fn parse_node_attributes(input: ParseStream) -> syn::Result<(Vec<ParamName>, Option<Ident>)> {
    let mut params = Vec::new();
    let mut inline = None;
    for attr in input.call(Attribute::parse_outer)? {
        if attr.path().is_ident("doc") {
            continue;
        }
        if !attr.path().is_ident("params") {
            return Err(syn::Error::new_spanned(
                attr.path(),
                "a node takes only doc comments and `#[params(tensor = name, ..)]`, which renames its parameters",
            ));
        }
        params.extend(attr.parse_args_with(|input: ParseStream| {
            comma_separated(input, "parameter names", |input| {
                let tensor: Ident = input.parse()?;
                if tensor == "inline" && !input.peek(Token![=]) {
                    inline = Some(tensor);
                    return Ok(None);
                }
                if !input.peek(Token![=]) {
                    return Err(syn::Error::new(
                        tensor.span(),
                        format!("expected `{tensor} = name`: the parameter `{tensor}` and the name it takes in the graph"),
                    ));
                }
                input.parse::<Token![=]>()?;
                let name: Ident = input.parse()?;
                Ok(Some(ParamName { tensor, name }))
            })
        })?
        .into_iter()
        .flatten());
    }
    Ok((params, inline))
}

fn parse_expr(input: ParseStream) -> syn::Result<Expr> {
    torch_habits(input)?;
    if input.peek(Ident) && input.fork().parse::<Ident>().is_ok_and(|i| i == "Stack") && {
        let ahead = input.fork();
        let _ = ahead.parse::<Ident>();
        ahead.peek(syn::token::Paren)
    } {
        return parse_stack(input);
    }
    let GraphRef {
        path,
        name,
        generics,
        sizes,
        dynamic,
    } = parse_graph_ref(input)?;
    let graph_like = generics.is_some() || dynamic;
    if !input.peek(syn::token::Paren) {
        if graph_like || path.segments.len() > 1 {
            return Err(syn::Error::new(
                here(input, name.span()),
                format!("expected the inputs of `{name}` in parentheses: `{name}(..)(inputs)` for a layer, `{name}(inputs)` for a graph"),
            ));
        }
        return Ok(Expr::Ref(name));
    }
    let first;
    let first_paren = parenthesized!(first in input);
    if !graph_like && input.peek(syn::token::Paren) {
        // `Layer(args)(inputs)`
        let args: Vec<syn::Expr> = Punctuated::<syn::Expr, Token![,]>::parse_terminated(&first)?
            .into_iter()
            .collect();
        let inputs_group;
        let inputs_paren = parenthesized!(inputs_group in input);
        let inputs = parse_inputs(&inputs_group, &name)?;
        return Ok(Expr::Call(Call {
            path,
            layer: name,
            args,
            args_span: first_paren.span.join(),
            inputs,
            inputs_span: inputs_paren.span.join(),
        }));
    }
    // `Graph(inputs)` or `Graph(input = value, ..)`, possibly `.output`.
    let (input_names, inputs) = parse_graph_inputs(&first, &name)?;
    let output = if input.peek(Token![.]) {
        input.parse::<Token![.]>()?;
        Some(input.parse::<Ident>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected the name of an output of `{name}` after `.`"),
            )
        })?)
    } else {
        None
    };
    Ok(Expr::Graph(crate::ast::GraphCall {
        path,
        name,
        generics,
        sizes,
        dynamic,
        inputs,
        input_names,
        inputs_span: first_paren.span.join(),
        output,
        stack: None,
    }))
}

/// `Stack(depth, First, Rest)(inputs)`, `Rest` optional: a stack of
/// `depth` layers, each a graph; its inputs by position.
fn parse_stack(input: ParseStream) -> syn::Result<Expr> {
    let keyword: Ident = input.parse()?;
    let args;
    let args_paren = parenthesized!(args in input);
    let depth: syn::Expr = args.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected `Stack(depth, Layer[..])` or `Stack(depth, First[..], Rest[..])`: the number of layers first",
        )
    })?;
    let mut graphs = Vec::new();
    while !args.is_empty() {
        args.parse::<Token![,]>()?;
        if args.is_empty() {
            break;
        }
        graphs.push(parse_graph_ref(&args)?);
    }
    let (first, rest) = match graphs.len() {
        1 => (graphs[0].clone(), graphs.remove(0)),
        2 => {
            let rest = graphs.pop().expect("two graphs");
            (graphs.pop().expect("two graphs"), rest)
        }
        n => {
            return Err(syn::Error::new(
                if n == 0 {
                    args_paren.span.join()
                } else {
                    graphs[2].name.span()
                },
                format!(
                    "`Stack` takes the number of layers and one or two graphs: `Stack(depth, Layer[..])`, \
                     or `Stack(depth, First[..], Rest[..])` when the first layer differs; found {n} graph(s)"
                ),
            ))
        }
    };
    if !input.peek(syn::token::Paren) {
        return Err(syn::Error::new(
            here(input, args_paren.span.join()),
            "expected the inputs of the stack in parentheses: `Stack(depth, Layer[..])(x, h, ..)`",
        ));
    }
    let group;
    let inputs_paren = parenthesized!(group in input);
    let inputs = parse_inputs(&group, &keyword)?;
    Ok(Expr::Graph(crate::ast::GraphCall {
        path: first.path,
        name: first.name,
        generics: first.generics,
        sizes: first.sizes,
        dynamic: first.dynamic,
        input_names: vec![None; inputs.len()],
        inputs,
        inputs_span: inputs_paren.span.join(),
        output: None,
        stack: Some(Box::new(StackOf { keyword, depth, rest })),
    }))
}

/// A graph or layer named, with its const sizes (`<..>`) or run-time sizes
/// (`[..]`), before its arguments.
fn parse_graph_ref(input: ParseStream) -> syn::Result<GraphRef> {
    let path = parse_path(input)?;
    let name = path
        .segments
        .last()
        .map(|s| s.ident.clone())
        .expect("a path has a segment");
    let turbofish = input.peek(Token![::]) && {
        let ahead = input.fork();
        ahead.parse::<Token![::]>().is_ok() && ahead.peek(Token![<])
    };
    let generics = if turbofish {
        input.parse::<Token![::]>()?;
        Some(input.parse::<syn::AngleBracketedGenericArguments>()?)
    } else if input.peek(Token![<]) {
        Some(input.parse::<syn::AngleBracketedGenericArguments>()?)
    } else {
        None
    };
    let dynamic = input.peek(syn::token::Bracket);
    let sizes: Vec<syn::Expr> = if dynamic {
        let content;
        bracketed!(content in input);
        Punctuated::<syn::Expr, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    Ok(GraphRef {
        path,
        name,
        generics,
        sizes,
        dynamic,
    })
}

/// What Torch users write out of habit, met where an expression starts:
/// `nn.Linear(2, 4)(x)`, `nn.gModule({x}, {y})`, a table `{a, b}`.
fn torch_habits(input: ParseStream) -> syn::Result<()> {
    if input.peek(syn::token::Brace) {
        let content;
        let brace = braced!(content in input);
        let inside = content.parse::<proc_macro2::TokenStream>()?;
        return Err(syn::Error::new(
            brace.span.join(),
            format!(
                "a table `{{..}}` is not needed here: give the inputs as a list\n\
                 = help: write `{inside}` without braces, as in `CAdd()(a, b)`"
            ),
        ));
    }
    let ahead = input.fork();
    let Ok(module) = ahead.parse::<Ident>() else {
        return Ok(());
    };
    if module != "nn" || !ahead.peek(Token![.]) {
        return Ok(());
    }
    ahead.parse::<Token![.]>()?;
    let layer = ahead.parse::<Ident>().map(|l| l.to_string()).unwrap_or_default();
    let message = if layer == "gModule" {
        "`nn.gModule` is not needed: graph! declares the module itself\n\
         = help: its inputs and outputs are in its signature, `pub Name(x: [2]) -> (y) { .. }`"
            .to_string()
    } else {
        format!("drop the `nn.` prefix\n= help: layers are called by name: `{layer}(..)(inputs)`")
    };
    Err(syn::Error::new(module.span(), message))
}

/// `a::b::C`: identifiers separated by `::`, stopping before `::<`.
fn parse_path(input: ParseStream) -> syn::Result<syn::Path> {
    let path_keyword = input.peek(Token![self]) || input.peek(Token![super]) || input.peek(Token![crate]);
    let keyword_path = path_keyword && {
        let ahead = input.fork();
        ahead.call(Ident::parse_any).is_ok() && ahead.peek(Token![::])
    };
    if keyword_path {
        let first = input.call(Ident::parse_any)?;
        return parse_path_rest(input, first);
    }
    let first: Ident = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a layer call `Layer(args)(inputs)`, a graph call `Graph(inputs)` or the name of an input or node",
        )
    })?;
    parse_path_rest(input, first)
}

fn parse_path_rest(input: ParseStream, first: Ident) -> syn::Result<syn::Path> {
    let mut segments = Punctuated::<syn::PathSegment, Token![::]>::new();
    segments.push(first.into());
    while input.peek(Token![::]) && followed_by_ident(input) {
        segments.push_punct(input.parse::<Token![::]>()?);
        segments.push(input.parse::<Ident>()?.into());
    }
    Ok(syn::Path {
        leading_colon: None,
        segments,
    })
}

/// The inputs of a graph call: all by position, or all `name = value`.
fn parse_graph_inputs(group: ParseStream, graph: &Ident) -> syn::Result<(Vec<Option<Ident>>, Vec<Expr>)> {
    let pairs = comma_separated(group, &format!("the inputs of `{graph}`"), |group| {
        let named = group.peek(Ident) && {
            let ahead = group.fork();
            ahead.parse::<Ident>().is_ok() && ahead.peek(Token![=]) && !ahead.peek(Token![==])
        };
        let name = if named {
            let name: Ident = group.parse()?;
            group.parse::<Token![=]>()?;
            Some(name)
        } else {
            None
        };
        Ok((name, parse_expr(group)?))
    })?;
    let (names, inputs): (Vec<Option<Ident>>, Vec<Expr>) = pairs.into_iter().unzip();
    if names.iter().any(Option::is_none) {
        if let Some(first_named) = names.iter().flatten().next() {
            return Err(syn::Error::new(
                first_named.span(),
                format!("give the inputs of `{graph}` all by position or all by name (`input = value`)"),
            ));
        }
    }
    Ok((names, inputs))
}

/// Whether `::` is followed by an identifier (a path goes on) rather than
/// `<` (generic arguments).
fn followed_by_ident(input: ParseStream) -> bool {
    let ahead = input.fork();
    ahead.parse::<Token![::]>().is_ok() && ahead.peek(Ident)
}

fn parse_inputs(group: ParseStream, name: &Ident) -> syn::Result<Vec<Expr>> {
    comma_separated(group, &format!("the inputs of `{name}`"), parse_expr)
}

impl Parse for InputDecl {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), "expected an input declaration: `name: [width]`"))?;
        if !input.peek(Token![:]) {
            return Err(syn::Error::new(
                input.span(),
                format!("expected `:` and a width after input `{name}`: `{name}: [width]`"),
            ));
        }
        input.parse::<Token![:]>()?;
        if input.peek(Ident) && input.fork().parse::<Ident>()? == "usize" {
            input.parse::<Ident>()?;
            return Ok(InputDecl {
                name,
                kind: InputKind::Ids,
            });
        }
        if !input.peek(syn::token::Bracket) {
            return Err(syn::Error::new(
                input.span(),
                format!("expected the width of `{name}` in brackets, `{name}: [width]`, or `{name}: usize` for integer ids"),
            ));
        }
        let content;
        bracketed!(content in input);
        let width: syn::Expr = content.parse()?;
        if !content.is_empty() {
            return Err(syn::Error::new(
                content.span(),
                format!("`{name}` takes one width per sample, `[width]`; the batch dimension is implicit"),
            ));
        }
        Ok(InputDecl {
            name,
            kind: InputKind::Values(Box::new(width)),
        })
    }
}
