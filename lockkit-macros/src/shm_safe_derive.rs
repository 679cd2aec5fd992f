//! `#[derive(ShmSafe)]`: `ShmSafe` (with its `LAYOUT`) and, where zero bytes are a value,
//! `ShmZeroable`, for `#[repr(C)]` structs of shared-memory-safe fields and for fieldless
//! enums with an integer `repr`. After an error, an impl whose `LAYOUT` is never used, so
//! that the error is the only one reported.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident};

use crate::ctxt::{with_fallback, Ctxt};
use crate::layout::{shm_safe_impl, LaidOut};
use crate::msg::{self, fill};
use crate::types::{non_shm, NonShm};

/// Integer representations an enum may have in shared memory.
const INT_REPRS: &[&str] = &[
    "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "usize", "isize",
];

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let item: DeriveInput = match syn::parse2(input) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let mut cx = Ctxt::new();
    let (krate, alias) = match crate_arg(&item, &mut cx) {
        Some(given) => crate_alias(&item, given),
        None => (quote!(::lockkit), TokenStream::new()),
    };
    let reprs = reprs(&item, &mut cx);
    let out = match &item.data {
        Data::Struct(s) => derive_struct(&item, &s.fields, &krate, &reprs, &mut cx),
        Data::Enum(e) => derive_enum(&item, e, &krate, &reprs, &mut cx),
        Data::Union(u) => {
            cx.error(u.union_token, msg::SD_UNION);
            TokenStream::new()
        }
    };
    let out = match cx.check() {
        Ok(()) => out,
        Err(e) => with_fallback(e, fallback(&item, &krate)),
    };
    quote!(#alias #out)
}

/// With `crate = "lk"`, the generated code reaches lockkit through one `use ::lk as ..;`
/// beside the type, so a name that is not a crate's (a typo) is one unresolved import rather
/// than an error at every path that names it (as `#[shared_locked]` does).
fn crate_alias(item: &DeriveInput, krate: TokenStream) -> (TokenStream, TokenStream) {
    let at = krate
        .clone()
        .into_iter()
        .next()
        .map_or_else(proc_macro2::Span::call_site, |t| t.span());
    let alias = quote::format_ident!("__lockkit_crate_{}", item.ident, span = at);
    let use_item = quote::quote_spanned! {at=>
        #[doc(hidden)]
        #[allow(unused_imports, non_camel_case_types, non_snake_case)]
        use #krate as #alias;
    };
    (quote!(#alias), use_item)
}

/// `#[shm_safe(crate = "lk")]`, if given.
fn crate_arg(item: &DeriveInput, cx: &mut Ctxt) -> Option<TokenStream> {
    let mut krate = None;
    for attr in item.attrs.iter().filter(|a| a.path().is_ident("shm_safe")) {
        let parsed = attr.parse_nested_meta(|m| {
            if m.path.is_ident("crate") {
                let value: syn::Expr = m.value()?.parse()?;
                if krate.is_some() {
                    return Err(m.error(msg::CRATE_TWICE));
                }
                krate = Some(crate::types::crate_arg(&value)?);
                Ok(())
            } else {
                Err(m.error(msg::SD_ARG))
            }
        });
        if let Err(e) = parsed {
            cx.push(e);
        }
    }
    krate
}

/// The item's `repr` hints, by name (`C`, `u8`, `packed`, `align`, ..).
fn reprs(item: &DeriveInput, cx: &mut Ctxt) -> Vec<(String, proc_macro2::Span)> {
    let mut out = Vec::new();
    for attr in item.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let parsed = attr.parse_nested_meta(|m| {
            let name = m.path.get_ident().map(Ident::to_string).unwrap_or_default();
            out.push((name, m.path.span()));
            // `align(8)`, `packed(2)`: skip the argument.
            if m.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in m.input);
                let _: TokenStream = content.parse()?;
            }
            Ok(())
        });
        if let Err(e) = parsed {
            cx.push(e);
        }
    }
    out
}

fn derive_struct(
    item: &DeriveInput,
    fields: &Fields,
    krate: &TokenStream,
    reprs: &[(String, proc_macro2::Span)],
    cx: &mut Ctxt,
) -> TokenStream {
    if let Some((_, span)) = reprs.iter().find(|(r, _)| r == "packed") {
        cx.error(quote_spanned!(*span=> packed), msg::SD_PACKED);
    } else if !reprs.iter().any(|(r, _)| r == "C" || r == "transparent") {
        cx.error(&item.ident, msg::SD_STRUCT_REPR);
    }
    let generic = !item.generics.params.is_empty();
    let mut asserts = Vec::new();
    for f in fields {
        match non_shm(&f.ty) {
            Some((bad, NonShm::Reference)) => cx.error(bad, msg::SL_REFERENCE),
            Some((bad, NonShm::Pointer)) => cx.error(bad, msg::SL_POINTER),
            // A generic struct's fields may name its parameters, which a free-standing
            // assertion cannot: the impl's bounds carry them instead.
            _ if generic => {}
            _ => asserts.extend(crate::types::shm_assertion(krate, &f.ty)),
        }
    }
    // Tuple fields are named by index: `offset_of!(Self, 0)`.
    let laid_out: Vec<LaidOut> = fields
        .members()
        .zip(fields)
        .map(|(member, f)| {
            let ty = &f.ty;
            LaidOut {
                cfgs: &[],
                member,
                ty: quote!(#ty),
            }
        })
        .collect();
    // SAFETY (of the impl): every field is ShmSafe (asserted above, and a bound of the impl),
    // stored inline in a repr(C) struct; LAYOUT lists each at its offset.
    let shm_safe = shm_safe_impl(krate, &item.ident, &item.generics, &laid_out, &[]);
    let (impl_g, ty_g, where_g) = item.generics.split_for_impl();
    let preds = where_g.map(|w| {
        let p = &w.predicates;
        quote!(#p,)
    });
    let name = &item.ident;
    let zero_bounds = fields.iter().map(|f| {
        let ty = &f.ty;
        quote!(for<'__lk> #ty: #krate::ShmZeroable,)
    });
    let checks = crate::types::checks_are_lockkits(krate);
    quote! {
        const _: () = {
            #checks
            #(#asserts)*
            #shm_safe
            // SAFETY: applies only when every field is ShmZeroable; zero bytes for the
            // struct are then zero bytes for each field (padding holds no value).
            unsafe impl #impl_g #krate::ShmZeroable for #name #ty_g
            where
                #preds
                for<'__lk> Self: #krate::ShmSafe,
                #(#zero_bounds)*
            {}
        };
    }
}

fn derive_enum(
    item: &DeriveInput,
    e: &syn::DataEnum,
    krate: &TokenStream,
    reprs: &[(String, proc_macro2::Span)],
    cx: &mut Ctxt,
) -> TokenStream {
    let repr = reprs
        .iter()
        .map(|(r, _)| r.as_str())
        .find(|r| INT_REPRS.contains(r));
    if let Some(v) = e.variants.iter().find(|v| !v.fields.is_empty()) {
        cx.error(
            &v.fields,
            fill(msg::SD_ENUM_FIELDS, &[("variant", &v.ident)]),
        );
    } else if repr.is_none() {
        cx.error(&item.ident, msg::SD_ENUM_REPR);
    }
    // A fieldless enum with parameters, or with no variants and an integer repr, is
    // already an error of rustc's; nothing is generated, so it is the only one.
    let Some(repr) = repr.filter(|_| item.generics.params.is_empty()) else {
        return TokenStream::new();
    };
    let name = &item.ident;
    let scalar = Ident::new(&capitalised(repr), name.span());
    let variants = e.variants.iter().map(|v| {
        let vname = v.ident.to_string();
        let id = &v.ident;
        quote! {
            #krate::layout::VariantLayout {
                name: #vname,
                value: #name::#id as ::core::primitive::i128,
            }
        }
    });
    let type_name = name.to_string();
    // Zero bytes are a value if a variant's discriminant is 0: the first one without an
    // explicit discriminant, or one written as the literal 0.
    let zero_variant = e.variants.first().is_some_and(|v| v.discriminant.is_none())
        || e.variants.iter().any(|v| {
            matches!(&v.discriminant, Some((_, syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Int(i), ..
            }))) if i.base10_digits() == "0")
        });
    let ids: Vec<&Ident> = e.variants.iter().map(|v| &v.ident).collect();
    // The claim above reads tokens; an attribute macro placed after this derive could
    // renumber the variants once the impl is written. So the impl comes with a check of
    // the discriminants rustc computed.
    let zeroable = zero_variant.then(|| {
        quote! {
            const _: () = ::core::assert!(
                #((#name::#ids as ::core::primitive::i128) == 0)||*,
                "ShmZeroable: no variant's discriminant is 0 (the enum was changed after \
                 #[derive(ShmSafe)] read it)"
            );
            // SAFETY: a variant's discriminant is 0 (asserted above, on rustc's values), so
            // zero bytes are that variant.
            unsafe impl #krate::ShmZeroable for #name {}
        }
    });
    let repr_ty = Ident::new(repr, name.span());
    let checks = crate::types::checks_are_lockkits(krate);
    // The enum rustc compiles must be the one read, as for structs (`layout.rs`): a match
    // with no wildcard fails if a variant was added, removed or renamed, if one gained
    // fields, or if the item is no longer an enum; the size check, if its repr changed.
    let as_declared = quote! {
        #[allow(dead_code, clippy::all)]
        const _: fn(&#name) = |value: &#name| match *value {
            #(#name::#ids => {})*
        };
        const _: () = ::core::assert!(
            ::core::mem::size_of::<#name>() == ::core::mem::size_of::<::core::primitive::#repr_ty>(),
            "ShmSafe: the enum's size is not its repr's (the enum was changed after \
             #[derive(ShmSafe)] read it)"
        );
    };
    quote! {
        const _: () = {
            #checks
            #as_declared
            // SAFETY: a fieldless enum with an integer repr is that integer: no pointers, the
            // same size in every program; LAYOUT lists every variant's value, so a program
            // whose enum has other variants is told apart.
            unsafe impl #krate::ShmSafe for #name {
                const LAYOUT: &'static #krate::layout::TypeLayout =
                    &#krate::layout::TypeLayout::sized::<Self>(
                        #type_name,
                        #krate::layout::Shape::Enum {
                            repr: #krate::layout::Scalar::#scalar,
                            variants: &[#(#variants),*],
                        },
                    );
            }
            #zeroable
        };
    }
}

/// `u8` → `U8`, `usize` → `Usize`.
fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// After an error: `ShmSafe` for the item as it is (never used: the program does not
/// compile), so uses of it elsewhere are not reported again.
fn fallback(item: &DeriveInput, krate: &TokenStream) -> TokenStream {
    if !item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let name = &item.ident;
    quote! {
        const _: () = {
            // SAFETY: never used: the derive reported an error, so the program does not
            // compile.
            unsafe impl #krate::ShmSafe for #name
            where
                for<'__lk> #name: ::core::marker::Sync,
            {
                const LAYOUT: &'static #krate::layout::TypeLayout =
                    &#krate::layout::TypeLayout::opaque::<Self>("fallback", "");
            }
        };
    }
}
