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

/// The brace group of the item, rewritten by `f` (an enum's variants).
fn with_body(item: TokenStream, f: impl Fn(TokenStream) -> String) -> TokenStream {
    item.into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) if g.delimiter() == proc_macro::Delimiter::Brace => {
                let mut ng = Group::new(g.delimiter(), f(g.stream()).parse().unwrap());
                ng.set_span(g.span());
                TokenTree::Group(ng)
            }
            other => other,
        })
        .collect()
}

/// `enum E { A, B }` becomes `enum E { A = 1, B = 2 }`: zero bytes are no longer a variant.
#[proc_macro_attribute]
pub fn renumber(_: TokenStream, item: TokenStream) -> TokenStream {
    with_body(item, |body| {
        body.into_iter()
            .filter_map(|t| match t {
                TokenTree::Ident(i) => Some(i.to_string()),
                _ => None,
            })
            .enumerate()
            .map(|(n, v)| format!("{v} = {},", n + 1))
            .collect()
    })
}

/// `enum E { A, B }` becomes `enum E { A, B, Extra }`: a value the derive did not list.
#[proc_macro_attribute]
pub fn add_variant(_: TokenStream, item: TokenStream) -> TokenStream {
    with_body(item, |body| {
        format!("{}, Extra", body.to_string().trim().trim_end_matches(','))
    })
}

/// Replaces the enum with `struct NAME(pub &'static u64)` and an associated `const` per name
/// given, so that `NAME::A as i128` in the derive's output still compiles.
#[proc_macro_attribute]
pub fn enum_into_reference(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut words = item.into_iter().filter_map(|t| match t {
        TokenTree::Ident(i) => Some(i.to_string()),
        _ => None,
    });
    let name = words
        .by_ref()
        .skip_while(|w| w != "enum")
        .nth(1)
        .expect("an enum");
    let consts: String = attr
        .into_iter()
        .filter_map(|t| match t {
            TokenTree::Ident(i) => Some(format!("pub const {i}: u8 = 0;")),
            _ => None,
        })
        .collect();
    format!(
        "#[repr(C)] pub struct {name}(pub &'static u64); \
         #[allow(non_upper_case_globals)] impl {name} {{ {consts} }}"
    )
    .parse()
    .unwrap()
}
