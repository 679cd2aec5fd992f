//! Generates the `#[repr(C)]` struct, the structs of guarded fields, the shared-memory trait
//! impls and the accessors.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, Type};

use super::parse::{Field, Input, Role};

/// `calls_lock` → `CallsLock`.
fn camel(id: &Ident) -> String {
    id.to_string()
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn fields_struct(input: &Input, lock: &Ident) -> Ident {
    format_ident!(
        "{}{}Fields",
        input.item.ident,
        camel(lock),
        span = lock.span()
    )
}

fn guarded_by<'i, 'a>(input: &'i Input<'a>, lock: &'i Ident) -> Vec<&'i Field<'a>> {
    input
        .fields
        .iter()
        .filter(|f| matches!(&f.role, Role::Guarded(l) if l == lock))
        .collect()
}

fn is_guarding_lock(input: &Input, f: &Field) -> bool {
    !guarded_by(input, f.ident).is_empty()
}

/// `for<'__lk> T: Trait` keeps a bound on a concrete type from being checked eagerly, so
/// an impl whose bound fails simply does not apply (rather than being an error).
fn zeroable_bounds<'a>(tys: impl Iterator<Item = &'a Type>) -> TokenStream {
    let bounds = tys.map(|ty| quote!(for<'__lk> #ty: ::lockkit::ShmZeroable,));
    quote!(where #(#bounds)*)
}

pub(crate) fn expand(input: &Input) -> TokenStream {
    let item = input.item;
    let name = &item.ident;
    let vis = &item.vis;
    let attrs = item.attrs.iter().filter(|a| !is_repr_c(a));

    let mut struct_fields = Vec::new();
    let mut extra_structs = Vec::new();
    let mut methods = Vec::new();
    let mut asserts = Vec::new();
    let mut new_params = Vec::new();
    let mut new_inits = Vec::new();
    let mut zero_tys: Vec<&Type> = Vec::new();

    for f in &input.fields {
        let (fattrs, fvis, id, ty) = (&f.attrs, f.vis, f.ident, f.ty);
        let ty_span = ty.span();
        asserts.push(quote_spanned! {ty_span=>
            const _: () = ::lockkit::__private::assert_shm_safe::<#ty>();
        });
        zero_tys.push(ty);
        match &f.role {
            Role::Guarded(_) => {
                new_params.push(quote!(#id: #ty));
            }
            Role::Striped(set) => {
                let elem = match ty {
                    Type::Array(a) => &*a.elem,
                    _ => ty,
                };
                let set_ty = input.field(set).expect("checked").ty;
                let raw = quote!(<#set_ty as ::lockkit::__private::LockKind>::Raw);
                struct_fields.push(quote! {
                    #(#fattrs)* #fvis #id: ::lockkit::__private::Striped<#ty>
                });
                new_params.push(quote!(#id: #ty));
                new_inits.push(quote!(#id: ::lockkit::__private::Striped::new(#id)));
                let lock_fn = format_ident!("lock_{}", id);
                let try_fn = format_ident!("try_lock_{}", id);
                let field_name = id.to_string();
                let doc = format!(
                    "Locks stripe `index % N` of `{set}` and lends element `index` of `{id}`.\n\n\
                     # Panics\nIf `index` is out of range, naming both."
                );
                let try_doc = format!(
                    "Like [`{lock_fn}`](Self::{lock_fn}), but `None` if the stripe is busy."
                );
                methods.push(quote! {
                    #[doc = #doc]
                    #[inline]
                    #[track_caller]
                    #fvis fn #lock_fn(&self, index: usize) -> ::lockkit::StripeGuard<'_, #elem, #raw> {
                        // SAFETY: `#set` is the set this field is #[striped_by], and a Striped
                        // field is reachable only through these two accessors.
                        unsafe {
                            ::lockkit::__private::lock_stripe(&self.#set, &self.#id, index, #field_name)
                        }
                    }
                    #[doc = #try_doc]
                    #[inline]
                    #[track_caller]
                    #fvis fn #try_fn(&self, index: usize)
                        -> ::core::option::Option<::lockkit::StripeGuard<'_, #elem, #raw>>
                    {
                        // SAFETY: as in the method above.
                        unsafe {
                            ::lockkit::__private::try_lock_stripe(&self.#set, &self.#id, index, #field_name)
                        }
                    }
                });
            }
            Role::Plain if is_guarding_lock(input, f) => {
                let data = fields_struct(input, id);
                let raw = quote!(<#ty as ::lockkit::__private::LockKind>::Raw);
                let guarded = guarded_by(input, id);
                let g_fields = guarded.iter().map(|g| {
                    let (a, v, i, t) = (&g.attrs, g.vis, g.ident, g.ty);
                    quote!(#(#a)* #v #i: #t)
                });
                let g_names: Vec<_> = guarded.iter().map(|g| g.ident).collect();
                let g_tys = guarded.iter().map(|g| g.ty);
                let doc = format!(
                    "The fields of [`{name}`] guarded by its lock `{id}`; reach them through \
                     [`{name}::lock_{id}`]."
                );
                let bounds = zeroable_bounds(g_tys);
                extra_structs.push(quote! {
                    #[doc = #doc]
                    #[repr(C)]
                    #vis struct #data { #(#g_fields,)* }
                    // SAFETY: every field is asserted ShmSafe where the struct is declared.
                    unsafe impl ::lockkit::ShmSafe for #data {}
                    // SAFETY: applies only when every field is ShmZeroable.
                    unsafe impl ::lockkit::ShmZeroable for #data #bounds {}
                });
                struct_fields.push(quote! {
                    #(#fattrs)* #fvis #id: ::lockkit::ShmMutex<#data, #raw>
                });
                new_inits.push(quote! {
                    #id: ::lockkit::ShmMutex::<#data, #raw>::with_backend(#data { #(#g_names,)* })
                });
                let lock_fn = format_ident!("lock_{}", id);
                let try_fn = format_ident!("try_lock_{}", id);
                let try_for_fn = format_ident!("try_lock_{}_for", id);
                let names = g_names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let doc = format!("Takes `{id}` and lends the fields it guards: {names}.");
                let try_doc = format!("Takes `{id}` if it is free.");
                let try_for_doc = format!("Takes `{id}`, waiting at most `timeout`.");
                methods.push(quote! {
                    #[doc = #doc]
                    #[inline]
                    #fvis fn #lock_fn(&self) -> ::lockkit::ShmMutexGuard<'_, #data, #raw> {
                        self.#id.lock()
                    }
                    #[doc = #try_doc]
                    #[inline]
                    #fvis fn #try_fn(&self) -> ::core::option::Option<::lockkit::ShmMutexGuard<'_, #data, #raw>> {
                        self.#id.try_lock()
                    }
                    #[doc = #try_for_doc]
                    #[inline]
                    #fvis fn #try_for_fn(&self, timeout: ::core::time::Duration)
                        -> ::core::option::Option<::lockkit::ShmMutexGuard<'_, #data, #raw>>
                    {
                        self.#id.try_lock_for(timeout)
                    }
                });
            }
            Role::Plain => {
                struct_fields.push(quote!(#(#fattrs)* #fvis #id: #ty));
                if f.standalone.is_some()
                    || crate::types::is_named(ty, "GenLock")
                    || crate::types::is_named(ty, "GenLockSet")
                {
                    new_inits.push(quote!(#id: <#ty>::with_backend()));
                } else {
                    new_params.push(quote!(#id: #ty));
                    new_inits.push(quote!(#id));
                }
            }
        }
    }

    let bounds = zeroable_bounds(zero_tys.into_iter());
    let new_doc =
        format!("A `{name}` with every lock unlocked and the given values, in declaration order.");
    quote! {
        #(#attrs)*
        #[repr(C)]
        #vis struct #name { #(#struct_fields,)* }

        #(#extra_structs)*

        const _: () = {
            #(#asserts)*
            // SAFETY: every field is asserted ShmSafe above; locks and guarded data are
            // stored inline (repr(C)), and guarded data is reached only through guards.
            unsafe impl ::lockkit::ShmSafe for #name {}
            // SAFETY: applies only when every field is ShmZeroable: zero bytes are then
            // unlocked locks around zeroed data.
            unsafe impl ::lockkit::ShmZeroable for #name #bounds {}

            impl #name {
                #[doc = #new_doc]
                #[allow(clippy::too_many_arguments)]
                #vis const fn new(#(#new_params),*) -> Self {
                    #name { #(#new_inits,)* }
                }
                #(#methods)*
            }
        };
    }
}

fn is_repr_c(a: &syn::Attribute) -> bool {
    a.path().is_ident("repr") && a.parse_args::<Ident>().map(|i| i == "C").unwrap_or(false)
}

/// The struct as written, minus lockkit's markers: what the user's other code sees when the
/// macro reports an error, so the error is not followed by a cascade.
pub(crate) fn stand_in(item: &DeriveInput) -> TokenStream {
    let mut item = item.clone();
    let strip = |attrs: &mut Vec<syn::Attribute>| {
        attrs.retain(|a| {
            !["guarded_by", "striped_by", "standalone"]
                .iter()
                .any(|m| a.path().is_ident(m))
        })
    };
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
