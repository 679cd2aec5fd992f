//! Collects every error found in one pass, so users see all their mistakes at once.

use proc_macro2::TokenStream;
use quote::ToTokens;
use std::fmt::Display;

#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Option<syn::Error>,
}

impl Ctxt {
    pub(crate) fn error(&mut self, at: impl ToTokens, msg: impl Display) {
        self.push(syn::Error::new_spanned(at, msg));
    }

    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.errors {
            Some(all) => all.combine(e),
            None => self.errors = Some(e),
        }
    }

    pub(crate) fn check(self) -> Result<(), syn::Error> {
        self.errors.map_or(Ok(()), Err)
    }
}

/// The errors, followed by a stand-in for the item so the rest of the user's code still
/// resolves and the user sees these errors, not a cascade.
pub(crate) fn with_stand_in(e: syn::Error, stand_in: TokenStream) -> TokenStream {
    let mut out = e.to_compile_error();
    out.extend(stand_in);
    out
}
