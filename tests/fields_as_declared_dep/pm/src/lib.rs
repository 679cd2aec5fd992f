//! A safe attribute macro: replaces every `u64` token in the item with `&'static u64`.
#![forbid(unsafe_code)]
use proc_macro::{TokenStream, TokenTree, Group};

fn rewrite(ts: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    for tt in ts {
        match tt {
            TokenTree::Ident(ref i) if i.to_string() == "u64" => {
                let s: TokenStream = "&'static u64".parse().unwrap();
                out.extend(s);
            }
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), rewrite(g.stream()));
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

#[proc_macro_attribute]
pub fn pointerise(_: TokenStream, item: TokenStream) -> TokenStream {
    rewrite(item)
}
