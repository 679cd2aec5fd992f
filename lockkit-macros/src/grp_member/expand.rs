//! Generates the `GrpMember` impl (the hook, the `#[grp]` field) and `join`; after an error,
//! the same items with `unreachable!()` bodies, so the user's calls to `join` and `lock` still
//! resolve and the error is the only one they see.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;

use super::parse::Member;

pub(crate) fn expand(m: &Member, fallback: bool) -> TokenStream {
    let item = stand_in(m.item);
    if fallback && m.item.generics.lifetimes().next().is_some() {
        // A member with a lifetime (reported) can be no GrpMember at all ('static): any
        // impl would be a second error.
        return item;
    }
    let krate = &m.krate;
    let name = &m.item.ident;
    let vis = &m.item.vis;
    let (impl_g, ty_g, where_g) = m.item.generics.split_for_impl();
    let on_destroy = m.hook.as_ref().filter(|_| !fallback).map(|hook| {
        // Spanned at the hook's name: a missing method or a wrong signature is reported
        // there.
        let call = quote_spanned! {hook.span()=>
            let hook: fn(&mut Self) = Self::#hook;
            hook(self)
        };
        quote! {
            fn on_destroy(&mut self) {
                #call
            }
        }
    });
    let set_group = match (m.grp, fallback) {
        (Some(grp), false) => quote!(self.#grp = group;),
        _ => quote!(let _ = group; ::core::unreachable!()),
    };
    // After an error the struct may not be Send (the supertrait); a bound that cannot hold
    // makes the stand-in impl not apply rather than add an error.
    let preds = where_g.map(|w| &w.predicates).into_iter().flatten();
    let where_all = if fallback {
        quote!(where #(#preds,)* for<'__lk> #name #ty_g: ::core::marker::Send)
    } else if m.item.generics.params.is_empty() {
        quote!(#where_g)
    } else {
        // A generic member is one when it is what every member must be: a type argument
        // that is not is reported where `join` is called with it.
        quote!(where #(#preds,)* #name #ty_g: ::core::marker::Send + 'static)
    };
    let join_doc = format!(
        "Adds this `{name}` to `group`: the returned handle holds a reference to the group; \
         the member is destroyed by the group when its last reference goes."
    );
    quote! {
            #item

            const _: () = {
                impl #impl_g #krate::grp::GrpMember for #name #ty_g #where_all {
                    #on_destroy
                    fn set_group(&mut self, group: #krate::grp::WeakGrpLock) {
                        #set_group
                    }
                }

                impl #impl_g #name #ty_g #where_all {
                    #[doc = #join_doc]
                    #[track_caller]
                    #vis fn join(self, group: &#krate::grp::GrpLock) -> #krate::grp::Member<Self> {
                        #krate::grp::Member::join(group, self)
                    }
                }
        };
    }
}

/// The struct without the `#[grp]` and `#[other_group]` markers.
pub(crate) fn stand_in(item: &DeriveInput) -> TokenStream {
    let mut item = item.clone();
    match &mut item.data {
        syn::Data::Struct(s) => s.fields.iter_mut().for_each(|f| strip(&mut f.attrs)),
        syn::Data::Enum(e) => e
            .variants
            .iter_mut()
            .flat_map(|v| v.fields.iter_mut())
            .for_each(|f| strip(&mut f.attrs)),
        syn::Data::Union(u) => u.fields.named.iter_mut().for_each(|f| strip(&mut f.attrs)),
    }
    quote!(#item)
}

fn strip(attrs: &mut Vec<syn::Attribute>) {
    attrs.retain(|a| !a.path().is_ident("grp") && !a.path().is_ident(super::parse::OTHER_GROUP));
}
