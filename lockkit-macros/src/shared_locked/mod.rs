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
    let mut ast = parse::Input::from_syn(args, &item, &mut cx);
    check::check(&ast, &mut cx);
    let alias = crate_alias(&mut ast);
    let mut out = match cx.check() {
        Ok(()) => expand::expand(&ast),
        Err(e) => with_fallback(e, expand::fallback(&ast)),
    };
    out.extend(alias);
    out
}

/// With `crate = "lk"`, the generated code reaches lockkit through one `use ::lk as ..;`
/// beside the struct, so a name that is not a crate's (a typo) is one unresolved import
/// rather than an error at every path that names it.
fn crate_alias(ast: &mut parse::Input) -> Option<TokenStream> {
    if !ast.krate_given {
        return None;
    }
    let krate = &ast.krate;
    // At the string (where `krate`'s tokens are): the unresolved import is reported there.
    let at = krate
        .clone()
        .into_iter()
        .next()
        .map_or_else(proc_macro2::Span::call_site, |t| t.span());
    let alias = quote::format_ident!("__lockkit_crate_{}", ast.item.ident, span = at);
    let item = quote::quote_spanned! {at=>
        #[doc(hidden)]
        #[allow(unused_imports, non_camel_case_types, non_snake_case)]
        use #krate as #alias;
    };
    ast.krate = quote::quote!(#alias);
    Some(item)
}
