//! `#[shared_locked]`: parse the struct, check it, expand it.

mod check;
mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::ctxt::with_stand_in;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::DeriveInput = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => return with_stand_in(e, input),
    };
    let result = parse::Input::from_syn(args, &item).and_then(|ast| {
        check::check(&ast)?;
        Ok(expand::expand(&ast))
    });
    match result {
        Ok(tokens) => tokens,
        Err(e) => with_stand_in(e, expand::stand_in(&item)),
    }
}
