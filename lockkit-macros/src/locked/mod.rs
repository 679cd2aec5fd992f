//! `locked!`: parse the invocation, expand it.

mod expand;
mod parse;

use proc_macro2::TokenStream;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<parse::Locked>(input) {
        Ok(l) => expand::expand(&l),
        Err(e) => e.to_compile_error(),
    }
}
