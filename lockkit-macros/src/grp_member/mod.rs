//! `#[grp_member]`: parse the struct and its hook (checking them as they are read), expand
//! them; after an error, expand a stand-in so that the error is the only one.

mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::ctxt::with_fallback;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::DeriveInput = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => return with_fallback(e, input),
    };
    let (member, cx) = parse::Member::from_syn(args, &item);
    match cx.check() {
        Ok(()) => expand::expand(&member, false),
        Err(e) => with_fallback(e, expand::expand(&member, true)),
    }
}
