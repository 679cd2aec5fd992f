//! `#[shared_locked]`: parse the struct, check it, expand it; after an error, expand the
//! fallback so that the error is the only one the user sees.

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::ctxt::{with_fallback, Ctxt};

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::DeriveInput = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => return with_fallback(e, input),
    };
    let mut cx = Ctxt::new();
    let ast = parse::Input::from_syn(args, &item, &mut cx);
    check::check(&ast, &mut cx);
    match cx.check() {
        Ok(()) => expand::expand(&ast),
        Err(e) => with_fallback(e, expand::fallback(&ast)),
    }
}
