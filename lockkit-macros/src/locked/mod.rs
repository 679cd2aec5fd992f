//! `locked!`: parse the invocation, expand it.

mod expand;
mod flow;
mod parse;

use proc_macro2::TokenStream;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    match syn::parse2::<parse::Locked>(input) {
        Ok(l) => match expand::first_await(&l) {
            // Written in the block itself: said in lockkit's words. (One that a macro writes
            // is E0728, from the closure the block runs in.)
            Some(at) => syn::Error::new(at, crate::msg::LOCKED_AWAIT).to_compile_error(),
            None => expand::expand(&l),
        },
        Err(e) => e.to_compile_error(),
    }
}
