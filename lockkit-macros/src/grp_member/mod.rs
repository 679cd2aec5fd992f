//! `#[grp_member]`: parse the struct and its hook, check them, expand them.

mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::ctxt::with_stand_in;

pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::DeriveInput = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => return with_stand_in(e, input),
    };
    match parse::Member::from_syn(args, &item) {
        Ok(m) => expand::expand(&m),
        Err(e) => with_stand_in(e, expand::stand_in(&item)),
    }
}
