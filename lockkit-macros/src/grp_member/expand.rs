//! Generates the `GrpMember` impl (the hook, the `#[grp]` field) and `join`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;

use super::parse::Member;

pub(crate) fn expand(m: &Member) -> TokenStream {
    let item = stand_in(m.item);
    let name = &m.item.ident;
    let vis = &m.item.vis;
    let grp = m.grp;
    let (impl_g, ty_g, where_g) = m.item.generics.split_for_impl();
    let on_destroy = m.hook.as_ref().map(|hook| {
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
    let join_doc = format!(
        "Adds this `{name}` to `group`: the returned handle holds a reference to the group; \
         the member is destroyed by the group when its last reference goes."
    );
    quote! {
        #item

        const _: () = {
            impl #impl_g ::lockkit::grp::GrpMember for #name #ty_g #where_g {
                #on_destroy
                fn set_group(&mut self, group: ::lockkit::grp::WeakGrpLock) {
                    self.#grp = group;
                }
            }

            impl #impl_g #name #ty_g #where_g {
                #[doc = #join_doc]
                #[track_caller]
                #vis fn join(self, group: &::lockkit::grp::GrpLock) -> ::lockkit::grp::Member<Self> {
                    ::lockkit::grp::Member::join(group, self)
                }
            }
        };
    }
}

/// The struct without the `#[grp]` marker.
pub(crate) fn stand_in(item: &DeriveInput) -> TokenStream {
    let mut item = item.clone();
    if let syn::Data::Struct(s) = &mut item.data {
        for f in s.fields.iter_mut() {
            f.attrs.retain(|a| !a.path().is_ident("grp"));
        }
    }
    quote!(#item)
}
