//! Widths as polynomials over the graph's size parameters.
//!
//! `Linear(I, 4 * H)` has output width `4·H`; `H * 4`, `2 * H + 2 * H` and
//! `(H + H) * 2` normalise to the same polynomial, so the macro can compare
//! widths symbolically. What it cannot decide (`I` against `H`) becomes a
//! check in the generated code: a const assertion for const-generic sizes,
//! a check in the constructor for run-time sizes.

use proc_macro2::TokenStream;
use quote::quote;
use std::collections::BTreeMap;
use std::fmt;

/// `Σ coefficient · Π atoms`, with monomials kept sorted.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Width {
    terms: BTreeMap<Vec<String>, i64>,
}

impl Width {
    pub fn constant(c: i64) -> Self {
        let mut w = Width::default();
        if c != 0 {
            w.terms.insert(Vec::new(), c);
        }
        w
    }

    pub fn atom(name: &str) -> Self {
        let mut w = Width::default();
        w.terms.insert(vec![name.to_string()], 1);
        w
    }

    fn insert(&mut self, monomial: Vec<String>, c: i64) {
        let entry = self.terms.entry(monomial).or_insert(0);
        *entry = entry.saturating_add(c);
        self.terms.retain(|_, c| *c != 0);
    }

    pub fn add(&self, other: &Width) -> Width {
        let mut w = self.clone();
        for (m, &c) in &other.terms {
            w.insert(m.clone(), c);
        }
        w
    }

    pub fn sub(&self, other: &Width) -> Width {
        self.add(&other.scale(-1))
    }

    pub fn scale(&self, k: i64) -> Width {
        let mut w = Width::default();
        for (m, &c) in &self.terms {
            w.insert(m.clone(), c.saturating_mul(k));
        }
        w
    }

    pub fn mul(&self, other: &Width) -> Width {
        let mut w = Width::default();
        for (ma, &ca) in &self.terms {
            for (mb, &cb) in &other.terms {
                let mut m: Vec<String> = ma.iter().chain(mb).cloned().collect();
                m.sort();
                w.insert(m, ca.saturating_mul(cb));
            }
        }
        w
    }

    /// The polynomial with each atom replaced by `f`'s width for it (atoms
    /// `f` does not know stay).
    pub fn substitute(&self, f: &dyn Fn(&str) -> Option<Width>) -> Width {
        let mut out = Width::default();
        for (monomial, &c) in &self.terms {
            let mut term = Width::constant(c);
            for atom in monomial {
                term = term.mul(&f(atom).unwrap_or_else(|| Width::atom(atom)));
            }
            out = out.add(&term);
        }
        out
    }

    /// `self / k` when every coefficient is divisible by `k`.
    pub fn div_exact(&self, k: i64) -> Option<Width> {
        if k == 0 || self.terms.values().any(|c| c % k != 0) {
            return None;
        }
        let mut w = Width::default();
        for (m, &c) in &self.terms {
            w.insert(m.clone(), c / k);
        }
        Some(w)
    }

    /// Whether the width is a multiple of `k` for no value of the sizes:
    /// every term but the constant one is, and the constant is not.
    pub fn never_divisible(&self, k: i64) -> bool {
        let constant = self.terms.get(&Vec::new()).copied().unwrap_or(0);
        k != 0 && constant % k != 0 && self.terms.iter().all(|(m, c)| m.is_empty() || c % k == 0)
    }

    /// The value, if the width does not depend on any size.
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    /// The size parameters the width depends on.
    pub fn atoms(&self) -> impl Iterator<Item = &String> {
        self.terms.keys().flatten()
    }

    /// A Rust expression of type `usize`; `atom` spells each size.
    pub fn to_tokens(&self, atom: &dyn Fn(&str) -> TokenStream) -> TokenStream {
        if self.terms.is_empty() {
            return quote!(0usize);
        }
        let mut plus = Vec::new();
        let mut minus = Vec::new();
        for (m, &c) in &self.terms {
            let factors = m.iter().map(|a| atom(a));
            let magnitude = proc_macro2::Literal::usize_unsuffixed(c.unsigned_abs() as usize);
            let term = quote!((#magnitude #(* #factors)*));
            if c > 0 {
                plus.push(term);
            } else {
                minus.push(term);
            }
        }
        // Subtracting last keeps intermediate values non-negative when the
        // width is.
        quote!((0usize #(+ #plus)* #(- #minus)*))
    }
}

impl Width {
    /// The width as an expression of type `Option<i128>` that can neither
    /// underflow nor overflow: what constructors check before computing
    /// widths as `usize`. `None` when a term, or the sum of the positive
    /// terms (which the `usize` form adds before it subtracts), does not
    /// fit a `usize`.
    pub fn to_checked_tokens(&self, atom: &dyn Fn(&str) -> TokenStream) -> TokenStream {
        let terms = self.terms.iter().map(|(m, &c)| {
            let factors = m.iter().map(|a| {
                let a = atom(a);
                quote!(.checked_mul(#a as i128)?)
            });
            let magnitude = proc_macro2::Literal::i128_unsuffixed(c.unsigned_abs() as i128);
            let sum = if c > 0 { quote!(plus) } else { quote!(minus) };
            quote! {
                let term: i128 = (#magnitude as i128) #(#factors)*;
                if term > usize::MAX as i128 {
                    return ::core::option::Option::None;
                }
                #sum = #sum.checked_add(term)?;
            }
        });
        quote! {
            (|| -> ::core::option::Option<i128> {
                let (mut plus, mut minus) = (0i128, 0i128);
                #(#terms)*
                if plus > usize::MAX as i128 {
                    return ::core::option::Option::None;
                }
                ::core::option::Option::Some(plus - minus)
            })()
        }
    }
}

impl Width {
    /// The width as an `i128` expression for constant evaluation (sizes
    /// fixed at compile time, far below `i128`'s range).
    pub fn to_i128_tokens(&self, atom: &dyn Fn(&str) -> TokenStream) -> TokenStream {
        let terms = self.terms.iter().map(|(m, &c)| {
            let factors = m.iter().map(|a| {
                let a = atom(a);
                quote!((#a as i128))
            });
            let c = proc_macro2::Literal::i128_unsuffixed(c as i128);
            quote!((#c #(* #factors)*))
        });
        quote!((0i128 #(+ #terms)*))
    }
}

/// How two widths compare, as far as the macro can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Yes,
    No,
    Unknown,
}

impl Width {
    /// Equal for every value of the sizes, for none, or it depends.
    pub fn equals(&self, other: &Width) -> Decision {
        match self.sub(other).sign() {
            Some(std::cmp::Ordering::Equal) => Decision::Yes,
            Some(_) => Decision::No,
            None => Decision::Unknown,
        }
    }

    /// `self <= other` for every value of the sizes, for none, or it depends.
    pub fn at_most(&self, other: &Width) -> Decision {
        let d = other.sub(self);
        match d.sign() {
            Some(std::cmp::Ordering::Less) => Decision::No,
            Some(_) => Decision::Yes,
            // Never below 0 when every coefficient is at least 0.
            None if d.terms.values().all(|&c| c >= 0) => Decision::Yes,
            None => Decision::Unknown,
        }
    }

    /// The sign the width has for every value of its atoms, if it has one.
    /// Every atom (a size, a nested graph's width, a part of a split) is at
    /// least 1, so each monomial is at least its coefficient: with every
    /// coefficient of one sign, the width has that sign (`4·H - 3·H = H`
    /// is positive; `2·H - I` depends).
    fn sign(&self) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering;
        if self.terms.is_empty() {
            return Some(Ordering::Equal);
        }
        let sum: i64 = self.terms.values().fold(0i64, |a, &c| a.saturating_add(c));
        if self.terms.values().all(|&c| c >= 0) && sum > 0 {
            Some(Ordering::Greater)
        } else if self.terms.values().all(|&c| c <= 0) && sum < 0 {
            Some(Ordering::Less)
        } else {
            None
        }
    }
}

impl fmt::Display for Width {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return write!(f, "0");
        }
        // Constants last, as people write them: `4 * H + 1`.
        let mut terms: Vec<(&Vec<String>, i64)> = self.terms.iter().map(|(m, &c)| (m, c)).collect();
        terms.sort_by_key(|(m, _)| m.is_empty());
        for (i, (m, c)) in terms.into_iter().enumerate() {
            let sign = if c < 0 { "-" } else { "+" };
            if i == 0 {
                if c < 0 {
                    write!(f, "-")?;
                }
            } else {
                write!(f, " {sign} ")?;
            }
            let abs = c.unsigned_abs();
            let factors = m.join(" * ");
            match (abs, m.is_empty()) {
                (_, true) => write!(f, "{abs}")?,
                (1, false) => write!(f, "{factors}")?,
                (_, false) => write!(f, "{abs} * {factors}")?,
            }
        }
        Ok(())
    }
}

/// Reads a width expression: integer literals, size names, `+`, `-`, `*`
/// and parentheses. `sizes` are the names the graph declares.
pub fn parse(expr: &syn::Expr, sizes: &[String]) -> Result<Width, String> {
    match expr {
        syn::Expr::Group(g) => parse(&g.expr, sizes),
        syn::Expr::Paren(p) => parse(&p.expr, sizes),
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(int),
            ..
        }) => match int.base10_parse::<u32>() {
            Ok(v) => Ok(Width::constant(v as i64)),
            Err(_) => Err(format!("`{int}` is not a width (a positive integer below 2^32)")),
        },
        syn::Expr::Lit(syn::ExprLit { lit, .. }) => Err(format!(
            "expected a width (a positive integer), found `{}`",
            quote!(#lit)
        )),
        syn::Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
            let name = p.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            if sizes.contains(&name) {
                Ok(Width::atom(&name))
            } else if sizes.is_empty() {
                Err(format!(
                    "`{name}` is not a width; to use a size, declare it: `Name<const {name}: usize>(..)` \
                     or `Name[{name}](..)`"
                ))
            } else {
                Err(format!(
                    "`{name}` is not a size of this graph; its sizes are {}\n\
                     = help: to use `{name}`, declare it beside them",
                    sizes.join(", ")
                ))
            }
        }
        syn::Expr::Binary(b) => {
            let (l, r) = (parse(&b.left, sizes)?, parse(&b.right, sizes)?);
            match b.op {
                syn::BinOp::Add(_) => Ok(l.add(&r)),
                syn::BinOp::Sub(_) => Ok(l.sub(&r)),
                syn::BinOp::Mul(_) => Ok(l.mul(&r)),
                _ => Err("a width may use `+`, `-` and `*` only".to_string()),
            }
        }
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            ..
        }) => Err("a width must be a positive integer, found a negative number".to_string()),
        _ => Err("expected a width: a positive integer, a size, or `+`, `-`, `*` of those".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(src: &str) -> Width {
        parse(&syn::parse_str(src).unwrap(), &["H".into(), "I".into()]).unwrap()
    }

    #[test]
    fn normalises_sums_and_products() {
        assert_eq!(w("4 * H"), w("H * 4"));
        assert_eq!(w("2 * H + 2 * H"), w("(H + H) * 2"));
        assert_eq!(w("I * H + H"), w("(I + 1) * H"));
        assert_eq!(w("H - H + 3").as_const(), Some(3));
        assert_eq!(w("4 * H").to_string(), "4 * H");
        assert_eq!(w("I + 1").to_string(), "I + 1");
        assert_eq!(w("4 * H").div_exact(4), Some(w("H")));
        assert_eq!(w("4 * H + 2").div_exact(4), None);
    }

    #[test]
    fn decides_what_it_can() {
        assert_eq!(w("H").equals(&w("H + 1")), Decision::No);
        assert_eq!(w("H").equals(&w("I")), Decision::Unknown);
        assert_eq!(w("H + 2").at_most(&w("H + 3")), Decision::Yes);
        assert_eq!(w("H + 4").at_most(&w("H + 3")), Decision::No);
        // Sizes are at least 1: widths that differ for every value.
        assert_eq!(w("4 * H").equals(&w("3 * H")), Decision::No);
        assert_eq!(w("2 * H").equals(&w("H")), Decision::No);
        assert_eq!(w("I * H + 1").equals(&w("I * H")), Decision::No);
        assert_eq!(w("2 * H").equals(&w("I")), Decision::Unknown);
        assert_eq!(w("H * H").equals(&w("2 * H")), Decision::Unknown);
        assert_eq!(w("4 * H").at_most(&w("3 * H")), Decision::No);
        assert_eq!(w("H").at_most(&w("4 * H")), Decision::Yes);
        assert_eq!(w("H").at_most(&w("I + H")), Decision::Yes);
        assert_eq!(w("I").at_most(&w("H")), Decision::Unknown);
    }

    #[test]
    fn rejects_what_is_not_a_width() {
        let sizes = ["H".to_string()];
        for bad in ["Q", "H / 2", "2.5", "-1"] {
            assert!(parse(&syn::parse_str(bad).unwrap(), &sizes).is_err(), "{bad}");
        }
    }
}
