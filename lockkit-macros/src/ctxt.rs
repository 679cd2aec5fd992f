//! Collects every error found in one pass, so users see all their mistakes at once.
//!
//! A [`Ctxt`] must be consumed by [`Ctxt::check`]: dropping one unchecked is a bug in this
//! crate (its errors would be lost and a broken item expanded as if it were fine), so `Drop`
//! panics, as serde_derive's `Ctxt` does.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

pub(crate) struct Ctxt {
    /// `None` once checked.
    errors: Option<Vec<syn::Error>>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: Some(Vec::new()),
        }
    }

    /// An error at the tokens of `at`.
    pub(crate) fn error(&mut self, at: impl ToTokens, msg: impl Display) {
        self.push(syn::Error::new_spanned(at, msg));
    }

    pub(crate) fn push(&mut self, e: syn::Error) {
        self.errors.as_mut().expect("Ctxt used after check").push(e);
    }

    /// Every error recorded, combined; consumes the context.
    pub(crate) fn check(mut self) -> Result<(), syn::Error> {
        let mut errors = self.errors.take().expect("Ctxt checked twice").into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut all) => {
                all.extend(errors);
                Err(all)
            }
        }
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if self.errors.is_some() && !std::thread::panicking() {
            panic!("lockkit-macros: a Ctxt was dropped without check(); its errors would be lost");
        }
    }
}

/// The errors, followed by `fallback`: stand-in items (the struct, its impls, its accessors
/// with `unreachable!()` bodies) so the rest of the user's code still resolves and the user
/// sees these errors, not a cascade of "no method" and "trait not satisfied" after them.
pub(crate) fn with_fallback(e: syn::Error, fallback: TokenStream) -> TokenStream {
    let mut out = e.to_compile_error();
    out.extend(fallback);
    out
}

/// `crate = "name"`: the name lockkit has in this crate (a renamed dependency), which the
/// generated code reaches it through, as `::name`.
///
/// Only a crate's name, never a module path: the generated `unsafe impl`s rely on the checks
/// they call through this path (`__private`'s assertions and layouts), and a module of the
/// user's that re-exported lockkit's traits beside checks of its own would make a type that
/// cannot live in shared memory `ShmSafe` without a line of `unsafe`. `::name` is always an
/// extern crate, never a module in scope.
pub(crate) fn crate_path(lit: &syn::LitStr) -> syn::Result<TokenStream> {
    let path: syn::Path = lit
        .parse()
        .map_err(|_| syn::Error::new(lit.span(), crate::msg::CRATE_PATH))?;
    let name = match path.segments.iter().collect::<Vec<_>>().as_slice() {
        [seg] if seg.arguments.is_none() && seg.ident != "crate" && seg.ident != "self" => {
            seg.ident.clone()
        }
        _ => return Err(syn::Error::new(lit.span(), crate::msg::CRATE_NOT_A_CRATE)),
    };
    // Respan so errors about the path point at the user's string.
    let path = crate::ctxt::respan(quote::quote!(::#name), lit.span());
    Ok(path)
}

/// `tokens` with every span set to `span`.
pub(crate) fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut ng = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                ng.set_span(span);
                tt = proc_macro2::TokenTree::Group(ng);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "dropped without check()")]
    fn an_unchecked_context_panics_when_dropped() {
        let mut cx = Ctxt::new();
        cx.error(quote::quote!(x), "lost");
        drop(cx);
    }

    #[test]
    fn a_checked_context_returns_every_error() {
        let mut cx = Ctxt::new();
        cx.error(quote::quote!(a), "first");
        cx.error(quote::quote!(b), "second");
        let e = cx.check().unwrap_err();
        assert_eq!(e.into_iter().count(), 2);
        assert!(Ctxt::new().check().is_ok());
    }
}
