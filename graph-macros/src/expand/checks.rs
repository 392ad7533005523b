//! What the macro could not decide, checked by generated code: widths known
//! only when the graph is built (user layers' shape rules, nested graphs
//! given run-time sizes), and claims about sizes, as const assertions where
//! every size is a const generic and as constructor checks otherwise.

use super::{lit, Expander};
use crate::ir::{Arg, Claim, NodeKind, Source};
use crate::layers::ArgKind;
use crate::width::Width;
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

/// A width written in the declaration that must be at least `min`: an
/// input's, a layer argument's, a node's.
struct WrittenWidth<'g> {
    width: &'g Width,
    min: i128,
    /// The node it belongs to (`None`: an input).
    node: Option<&'g crate::ir::Node>,
    /// What it is: `the width of input `x``, `argument `out` of `Linear``.
    what: String,
    span: Span,
}

impl Expander<'_> {
    /// Every width written in the declaration, each with its rule, once.
    fn written_widths<'a>(&'a self) -> Vec<WrittenWidth<'a>> {
        let g = self.g;
        let mut out: Vec<WrittenWidth<'a>> = Vec::new();
        let mut push = |w: WrittenWidth<'a>| {
            if !out.iter().any(|o| o.width == w.width && o.min == w.min) {
                out.push(w);
            }
        };
        for input in &g.inputs {
            if let Some(width) = &input.width {
                let what = format!("the width of input `{}`", input.name);
                push(WrittenWidth {
                    width,
                    min: 1,
                    node: None,
                    what,
                    span: input.name.span(),
                });
            }
        }
        for node in &g.nodes {
            if let NodeKind::Builtin { layer, args } = &node.kind {
                for (arg, (arg_name, kind)) in args.iter().zip(layer.args) {
                    if let Arg::Width(width) = arg {
                        let min = if *kind == ArgKind::Offset { 0 } else { 1 };
                        let what = format!("argument `{arg_name}` of `{}`", layer.name);
                        push(WrittenWidth {
                            width,
                            min,
                            node: Some(node),
                            what,
                            span: node.name.span(),
                        });
                    }
                }
            }
            if node.holds_layer() && node.nested().is_none() {
                let what = "its width".to_string();
                push(WrittenWidth {
                    width: &node.width,
                    min: 1,
                    node: Some(node),
                    what,
                    span: node.name.span(),
                });
            }
        }
        out
    }

    /// In `zeros`, before any width is computed as `usize`: every width
    /// written in run-time sizes (inputs, nodes, layer arguments) is checked
    /// in `i128`, so that `H - 8` with `H = 4` is an error naming the node,
    /// not an overflow. Widths must be at least 1; offsets at least 0.
    pub(super) fn size_arithmetic_checks(&self) -> Vec<TokenStream> {
        let rt = self.rt;
        let g = self.g;
        let runtime =
            |w: &Width| w.as_const().is_none() && w.atoms().all(|a| g.runtime_sizes.iter().any(|s| s == a));
        let shown = g.runtime_sizes.iter().map(|s| {
            let text = format!("{s} = {{}}");
            let sizes = &self.sizes;
            quote!(::std::format!(#text, #sizes.#s))
        });
        let shown = quote!(#rt::__private::vec![#(#shown),*].join(", "));
        let mut checks = Vec::new();
        for WrittenWidth {
            width: w,
            min,
            node,
            what,
            ..
        } in self.written_widths()
        {
            if !runtime(w) {
                continue;
            }
            let value = w.to_checked_tokens(&|atom| self.atom_tokens(atom));
            let rule = if min == 1 { "at least 1" } else { "at least 0" };
            let message = format!("{what} `{w}` is {{}} with {{}}; it must be {{}}");
            let name_str = g.name.to_string();
            let error = match node {
                Some(node) => {
                    let (node, line) = (node.name.to_string(), node.line);
                    quote! {
                        #rt::Error::Node {
                            graph: #name_str.into(),
                            node: #node.into(),
                            file: ::core::file!().into(),
                            line: #line,
                            message,
                        }
                    }
                }
                None => quote! {
                    #rt::Error::Sizes { graph: #name_str.into(), message }
                },
            };
            // At most isize::MAX: no buffer is larger.
            checks.push(quote! {
                let value: ::core::option::Option<i128> = #value;
                if !value.is_some_and(|v| v >= #min && v <= isize::MAX as i128) {
                    let (value, rule) = match value {
                        ::core::option::Option::Some(v) if v < #min => (v.to_string(), #rule.to_string()),
                        ::core::option::Option::Some(v) => (v.to_string(), ::std::format!("at most {}", isize::MAX)),
                        ::core::option::Option::None => (::std::format!("more than {}", usize::MAX), ::std::format!("at most {}", isize::MAX)),
                    };
                    let message = ::std::format!(#message, value, #shown, rule);
                    return ::core::result::Result::Err(#error);
                }
            });
        }
        checks
    }

    /// In `zeros`: widths known when the graph is built, into the sizes
    /// struct, in evaluation order so that a width may use earlier ones.
    pub(super) fn derive_widths(&self, layers: &Ident, input_widths: &[TokenStream]) -> Vec<TokenStream> {
        let rt = self.rt;
        let g = self.g;
        let sizes = &self.sizes;
        let mut out = Vec::new();
        for &k in &g.order {
            let node = &g.nodes[k];
            // A layer whose arguments use widths known only now (a Split of
            // a nested graph's output, a user layer's) was built with them
            // zero: built again, now that the widths it reads are known.
            if node.holds_layer() && self.args_need_built_widths(node) {
                let (f, ctor) = (&node.name, self.layer_ctor(node));
                out.push(quote!(#layers.#f = #ctor;));
            }
            if let Some((_, atom)) = g.derived.iter().find(|(n, _)| *n == k) {
                let field = Ident::new(atom, Span::call_site());
                let in_widths = node.inputs.iter().map(|&src| match src {
                    Source::Input(i) => input_widths[i].clone(),
                    Source::Node(j) => self.width(&g.nodes[j].width),
                });
                let k = super::lit(k);
                out.push(quote! {
                    #sizes.#field = #rt::__private::layer_output_width::<F, Self>(&#layers, #k, &[#(#in_widths),*])?;
                });
            }
            if self.is_host(k) && self.host_is_dynamic(k) {
                let h = &node.name;
                for (i, atom) in g.atoms.iter().enumerate().filter(|(_, a)| a.host == k) {
                    let field = format_ident!("__a{}", i);
                    let j = self.select_index(k, &atom.select, atom.output);
                    // A stack's widths are its layers'.
                    let graph = match (node.nested().is_some_and(|n| n.stack.is_some()), atom.upper) {
                        (false, _) => quote!(&#layers.#h),
                        (true, false) => quote!(#layers.#h.first()),
                        (true, true) => quote!(#layers.#h.upper()),
                    };
                    let width = if atom.output {
                        quote!(#rt::__private::output_width(#graph, j))
                    } else {
                        quote!(#rt::__private::input_width(#graph, j))
                    };
                    // An unknown name is reported by a check below.
                    out.push(quote! {
                        #sizes.#field = {
                            let j = #j;
                            if j == usize::MAX { 0 } else { #width }
                        };
                    });
                }
            }
        }
        out
    }

    /// Whether `node`'s constructor arguments use a width known only once
    /// earlier layers are built: a run-time-sized nested graph's, or a user
    /// layer's.
    fn args_need_built_widths(&self, node: &crate::ir::Node) -> bool {
        let widths: Vec<&Width> = match &node.kind {
            NodeKind::Builtin { args, .. } | NodeKind::Custom { args, .. } => args
                .iter()
                .filter_map(|a| match a {
                    Arg::Width(w) => Some(w),
                    _ => None,
                })
                .collect(),
            NodeKind::Nested(nested) => nested
                .sizes
                .iter()
                .filter_map(|a| match a {
                    Arg::Width(w) => Some(w),
                    _ => None,
                })
                .collect(),
            NodeKind::Output { .. } => Vec::new(),
        };
        widths.into_iter().any(|w| self.built_width(w))
    }

    /// Whether `w` uses a width known only once earlier layers are built.
    fn built_width(&self, w: &Width) -> bool {
        let g = self.g;
        w.atoms().any(|a| {
            if g.const_sizes.iter().any(|c| c == a) || g.runtime_sizes.iter().any(|s| s == a) {
                return false;
            }
            if let Some((_, numerator, _)) = g.quotients.iter().find(|(q, _, _)| q == a) {
                return self.built_width(numerator);
            }
            match self.atom(a) {
                Some((_, atom)) => self.host_is_dynamic(atom.host),
                None => true,
            }
        })
    }

    /// A deferred claim's condition, whether it is known only when the graph
    /// is built, and the widths it names.
    fn claim_cond<'w>(&self, claim: &'w Claim) -> (TokenStream, bool, Vec<&'w Width>) {
        let rt = self.rt;
        let float = &self.float;
        match claim {
            Claim::Equal(a, b) => {
                let (ta, tb) = (self.width(a), self.width(b));
                (
                    quote!(#ta == #tb),
                    self.is_runtime(a) || self.is_runtime(b),
                    vec![a, b],
                )
            }
            Claim::Divisible { width, by } => {
                let (w, by) = (self.width(width), lit(*by as usize));
                (quote!(#w % #by == 0), self.is_runtime(width), vec![width])
            }
            Claim::AtMost(a, b) => {
                let (ta, tb) = (self.width(a), self.width(b));
                (
                    quote!(#ta <= #tb),
                    self.is_runtime(a) || self.is_runtime(b),
                    vec![a, b],
                )
            }
            Claim::Count {
                host,
                outputs,
                n,
                upper,
            } => {
                let node = &self.g.nodes[*host];
                let ty = if *upper {
                    self.upper_type(node)
                } else {
                    self.nested_type(node)
                };
                let list = if *outputs { quote!(outputs) } else { quote!(inputs) };
                let n = lit(*n);
                (
                    quote!(<#ty as #rt::Graph<#float>>::SPEC.#list.len() == #n),
                    self.host_is_dynamic(*host),
                    Vec::new(),
                )
            }
            Claim::Has { host, output, name } => {
                let ty = self.nested_type(&self.g.nodes[*host]);
                let find = if *output {
                    quote!(output_index)
                } else {
                    quote!(input_index)
                };
                (
                    quote!(#rt::__private::#find(<#ty as #rt::Graph<#float>>::SPEC, #name) != usize::MAX),
                    self.host_is_dynamic(*host),
                    Vec::new(),
                )
            }
        }
    }

    /// Deferred claims as const assertions (compile-time sizes only) and as
    /// constructor checks (anything known only when the graph is built).
    /// Each const assertion is a block of its own (the caller makes each a
    /// constant, so that every failing one is reported, not the first),
    /// and its message shows numbers: the values of the widths it names.
    pub(super) fn deferred_checks(&self) -> (Vec<TokenStream>, Vec<TokenStream>) {
        let rt = self.rt;
        let name_str = self.g.name.to_string();
        let (mut consts, mut runtime) = (Vec::new(), Vec::new());
        // A nested graph with mistakes is a stub whose widths are unknown:
        // its claims are not checked (its mistakes are reported already).
        let stubs: Vec<TokenStream> = (0..self.g.nodes.len())
            .filter(|&k| self.is_host(k))
            .map(|k| {
                let ty = self.nested_type(&self.g.nodes[k]);
                quote!(<#ty>::__STUB ||)
            })
            .collect();
        for (index, d) in self.g.deferred.iter().enumerate() {
            let (cond, at_build, widths) = self.claim_cond(&d.claim);
            let pieces = self.message_pieces(d, &widths);
            // A width of a nested graph's input or output that is not there
            // (a wrong count or name, reported by its own check) is no
            // mismatch of its own.
            let mut guards = self.missing_atoms(&widths);
            // A claim that restates another's mistake is not checked when
            // that one fails (both known at the same time).
            for &(_, other) in self.g.moot.iter().filter(|(d, _)| *d == index) {
                let (other, other_at_build, _) = self.claim_cond(&self.g.deferred[other].claim);
                if other_at_build == at_build {
                    guards.push(quote!(!(#other)));
                }
            }
            if at_build {
                let sizes = &self.sizes;
                let shown = self.g.runtime_sizes.iter().map(|s| {
                    let text = format!("{s} = {{}}");
                    quote!(::std::format!(#text, #sizes.#s))
                });
                let line = d.span.start().line;
                let (format, args) = runtime_format(&pieces);
                runtime.push(quote! {
                    if !(#(#guards ||)* #cond) {
                        let shown: #rt::__private::Vec<::std::string::String> = #rt::__private::vec![#(#shown),*];
                        let with = if shown.is_empty() {
                            ::std::string::String::new()
                        } else {
                            ::std::format!(" (with {})", shown.join(", "))
                        };
                        let message = ::std::format!(#format #(, #args)*);
                        return ::core::result::Result::Err(#rt::Error::Sizes {
                            graph: #name_str.into(),
                            message: ::std::format!("{}{}, at {}:{}", message, with, ::core::file!(), #line),
                        });
                    }
                });
            } else {
                let mut built = Vec::new();
                for piece in &pieces {
                    built.push(match piece {
                        Piece::Text(t) => quote!(.text(#t)),
                        Piece::Num(n) => quote!(.num(#n)),
                        Piece::Names(m) => quote!(.text(#m.as_str())),
                    });
                }
                // Sizes fixed at compile time: their values, at the end.
                let generics = self.const_sizes_shown(" (with ");
                let close = (!generics.is_empty()).then(|| quote!(.text(")")));
                consts.push(quote_spanned! {d.span=>
                    if !(#(#stubs)* #(#guards ||)* #cond) {
                        ::core::panic!(
                            "{}",
                            #rt::__private::Message::new() #(#built)* #(#generics)* #close .as_str()
                        );
                    }
                });
            }
        }
        consts.extend(self.const_size_checks());
        (consts, runtime)
    }

    /// Widths written in const-generic sizes (and nothing known later):
    /// each at least 1 (offsets at least 0), checked as a constant with its
    /// value and the sizes, so that `Narrow(0, H - 8)` with `H = 4` is an
    /// error when the graph is built (`cargo build`), not an overflow when
    /// it runs.
    fn const_size_checks(&self) -> Vec<TokenStream> {
        let rt = self.rt;
        let g = self.g;
        let generic =
            |w: &Width| w.as_const().is_none() && w.atoms().all(|a| g.const_sizes.iter().any(|s| s == a));
        let mut checks = Vec::new();
        for WrittenWidth {
            width: w,
            min,
            node,
            what,
            span,
        } in self.written_widths()
        {
            if !generic(w) {
                continue;
            }
            let what = match node {
                Some(node) => format!("node `{}`: {what}", node.statement),
                None => what,
            };
            let value = w.to_i128_tokens(&|atom| self.atom_tokens(atom));
            let rule = if min == 1 { "at least 1" } else { "at least 0" };
            let text = format!("{what} `{w}` is ");
            let sizes = self.const_sizes_shown(" with ");
            let tail = format!("; it must be {rule}");
            checks.push(quote_spanned! {span=>
                let value: i128 = #value;
                if value < #min {
                    ::core::panic!(
                        "{}",
                        #rt::__private::Message::new().text(#text).int(value) #(#sizes)* .text(#tail).as_str()
                    );
                }
            });
        }
        checks
    }

    /// `Message` calls appending the const-generic sizes and their values:
    /// `{lead}H = 4, I = 3`.
    fn const_sizes_shown(&self, lead: &str) -> Vec<TokenStream> {
        self.g
            .const_sizes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let text = format!("{}{c} = ", if i == 0 { lead } else { ", " });
                quote!(.text(#text).num(#c))
            })
            .collect()
    }

    /// The message of deferred claim `d` in pieces: for a count, what the
    /// nested graph declares, as numbers and names; otherwise its text,
    /// with each width it names by an internal name (`Cell.in[1]`, a user
    /// layer's width) replaced by its value.
    fn message_pieces(&self, d: &crate::ir::Deferred, widths: &[&Width]) -> Vec<Piece> {
        let rt = self.rt;
        let float = &self.float;
        if let Claim::Count {
            host,
            outputs,
            n,
            upper,
        } = &d.claim
        {
            let node = &self.g.nodes[*host];
            let ty = if *upper {
                self.upper_type(node)
            } else {
                self.nested_type(node)
            };
            if let Some((_, rest)) = node.nested().and_then(|n| n.stack.as_ref()) {
                let spec = quote!(<#ty as #rt::Graph<#float>>::SPEC);
                let layer = if *upper {
                    rest.as_ref()
                } else {
                    node.nested().expect("a stack is nested")
                };
                let (path, generics) = (&layer.path, &layer.generics);
                let graph = quote!(#path #generics).to_string().replace(' ', "");
                let (list, what) = if *outputs {
                    (quote!(outputs), "output")
                } else {
                    (quote!(inputs), "input")
                };
                let tail = if *outputs {
                    format!(
                        "), so the stack has one more (the last layer's output 0, then each output of every layer as a group), \
                         but its outputs are given to {} name(s)",
                        n + 1
                    )
                } else {
                    format!("), but the stack is given {n}")
                };
                return vec![
                    Piece::Text(format!(
                        "node `{}`: the stack's layer `{graph}` has ",
                        node.statement
                    )),
                    Piece::Num(quote!(#spec.#list.len())),
                    Piece::Text(format!(" {what}(s) (")),
                    Piece::Names(quote!(#rt::__private::names_in(#spec, #outputs))),
                    Piece::Text(tail),
                ];
            }
            let spec = quote!(<#ty as #rt::Graph<#float>>::SPEC);
            let graph = node
                .nested()
                .map(|n| {
                    let (path, generics) = (&n.path, &n.generics);
                    quote!(#path #generics).to_string().replace(' ', "")
                })
                .unwrap_or_default();
            let (list, what) = if *outputs {
                (quote!(outputs), "output")
            } else {
                (quote!(inputs), "input")
            };
            let tail = if *outputs {
                format!(
                    "), but they are given to {n} name(s)\n= help: bind as many names, or take one output by \
                     name: `{graph}(..).output`"
                )
            } else {
                format!("), but it is given {n}")
            };
            return vec![
                Piece::Text(format!("node `{}`: `{graph}` has ", node.statement)),
                Piece::Num(quote!(#spec.#list.len())),
                Piece::Text(format!(" {what}(s) (")),
                Piece::Names(quote!(#rt::__private::names_in(#spec, #outputs))),
                Piece::Text(tail),
            ];
        }
        if let Claim::Has { host, output, .. } = &d.claim {
            let ty = self.nested_type(&self.g.nodes[*host]);
            let spec = quote!(<#ty as #rt::Graph<#float>>::SPEC);
            let what = if *output { "outputs" } else { "inputs" };
            return vec![
                Piece::Text(format!("{}; its {what} are ", d.message)),
                Piece::Names(quote!(#rt::__private::names_in(#spec, #output))),
            ];
        }
        // Widths with internal names, longest text first.
        let mut named: Vec<(String, &Width)> = widths
            .iter()
            .filter(|w| {
                w.atoms().any(|a| {
                    !self
                        .g
                        .const_sizes
                        .iter()
                        .chain(&self.g.runtime_sizes)
                        .any(|s| s == a)
                })
            })
            .map(|w| (w.to_string(), *w))
            .collect();
        named.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        let mut pieces = vec![Piece::Text(d.message.clone())];
        for (text, w) in named {
            let value = self.width(w);
            let mut next = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) if t.contains(&text) => {
                        let mut parts = t.split(text.as_str()).peekable();
                        while let Some(part) = parts.next() {
                            next.push(Piece::Text(part.to_string()));
                            if parts.peek().is_some() {
                                next.push(Piece::Num(value.clone()));
                            }
                        }
                    }
                    other => next.push(other),
                }
            }
            pieces = next;
        }
        pieces
    }

    /// For each width of a nested graph's input or output that `widths`
    /// read: true when that input or output is not there.
    fn missing_atoms(&self, widths: &[&Width]) -> Vec<TokenStream> {
        let mut guards = Vec::new();
        for w in widths {
            for a in w.atoms() {
                let Some((_, atom)) = self.atom(a) else { continue };
                if self.host_is_dynamic(atom.host) {
                    continue;
                }
                let ty = self.nested_type(&self.g.nodes[atom.host]);
                let list = if atom.output {
                    quote!(OUTPUT_WIDTHS)
                } else {
                    quote!(INPUT_WIDTHS)
                };
                let j = self.select_index(atom.host, &atom.select, atom.output);
                let guard = quote!((#j >= <#ty>::#list.len()));
                if !guards
                    .iter()
                    .any(|g: &TokenStream| g.to_string() == guard.to_string())
                {
                    guards.push(guard);
                }
            }
        }
        guards
    }
}

/// A part of a check's message: text, a number, or a list of names (a
/// `Message` expression).
enum Piece {
    Text(String),
    Num(TokenStream),
    Names(TokenStream),
}

/// The pieces as a `format!` string and its arguments.
fn runtime_format(pieces: &[Piece]) -> (String, Vec<TokenStream>) {
    let mut format = String::new();
    let mut args = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => format.push_str(&t.replace('{', "{{").replace('}', "}}")),
            Piece::Num(n) => {
                format.push_str("{}");
                args.push(n.clone());
            }
            Piece::Names(m) => {
                format.push_str("{}");
                args.push(quote!(#m.as_str()));
            }
        }
    }
    (format, args)
}
