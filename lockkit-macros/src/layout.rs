//! The `ShmSafe` impl with its `LAYOUT`, for the structs `#[shared_locked]` generates and
//! those `#[derive(ShmSafe)]` is put on.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::Ident;

/// A field of a generated struct as it is laid out: its `#[cfg]`s, name and final type.
pub(crate) struct LaidOut<'a> {
    pub(crate) cfgs: &'a [&'a syn::Attribute],
    /// The field's name, or its index in a tuple struct.
    pub(crate) member: syn::Member,
    pub(crate) ty: TokenStream,
}

/// The `ShmSafe` impl of a `#[repr(C)]` struct `name` laid out as `fields`: its `LAYOUT`
/// lists every field at its `offset_of!`.
///
/// One mistake must give one error. A non-generic struct's fields are asserted `ShmSafe`
/// where they are declared (the caller does that), so the impl carries no bound of its own
/// (a bound would report a bad field again wherever the struct is used) and reads each
/// field's layout through a local probe of the real trait, which falls back to a constant
/// that fails only when evaluated instead of failing at type-check when the field is not
/// `ShmSafe` (the program does not compile then anyway). A
/// generic struct's fields cannot be asserted on their own, so there each field's `ShmSafe`
/// is a bound of the impl. `extra` holds more (deferred) bounds: `for<'__lk> T: Trait,`.
pub(crate) fn shm_safe_impl(
    krate: &TokenStream,
    name: &Ident,
    generics: &syn::Generics,
    fields: &[LaidOut],
    extra: &[TokenStream],
) -> TokenStream {
    shm_safe_impl_marked(krate, name, generics, fields, extra, &[])
}

/// [`shm_safe_impl`], with `markers` (more `FieldLayout` expressions, evaluated inside the
/// impl, where `Self` is the struct) listed after the fields.
pub(crate) fn shm_safe_impl_marked(
    krate: &TokenStream,
    name: &Ident,
    generics: &syn::Generics,
    fields: &[LaidOut],
    extra: &[TokenStream],
    markers: &[TokenStream],
) -> TokenStream {
    let generic = !generics.params.is_empty();
    let (impl_g, ty_g, where_g) = generics.split_for_impl();
    let preds = where_g.map(|w| {
        let p = &w.predicates;
        quote!(#p,)
    });
    let bounds = fields
        .iter()
        .filter(|_| generic)
        .map(|f| {
            let ty = &f.ty;
            quote!(#ty: #krate::ShmSafe,)
        })
        .collect::<Vec<_>>();
    let entries = fields.iter().map(|f| {
        let (cfgs, id, ty) = (f.cfgs, &f.member, &f.ty);
        let field_name = match id {
            syn::Member::Named(n) => n.unraw().to_string(),
            syn::Member::Unnamed(i) => i.index.to_string(),
        };
        let layout = if generic {
            quote!(<#ty as #krate::ShmSafe>::LAYOUT)
        } else {
            quote!(__LkFieldProof::<#ty>::LAYOUT)
        };
        quote! {
            #(#cfgs)*
            #krate::layout::FieldLayout {
                name: #field_name,
                offset: ::core::mem::offset_of!(Self, #id),
                layout: #layout,
            }
        }
    });
    let type_name = name.unraw().to_string();
    // A local probe, so each field's layout is asked of lockkit's own trait whatever `krate`
    // names; a field that is not `ShmSafe` (reported by its assertion) gets a placeholder,
    // so it is not reported a second time here.
    let proof = (!generic).then(|| {
        quote! {
            struct __LkFieldProof<T: ?::core::marker::Sized>(::core::marker::PhantomData<T>);
            impl<T: #krate::ShmSafe> __LkFieldProof<T> {
                const LAYOUT: &'static #krate::layout::TypeLayout =
                    <T as #krate::ShmSafe>::LAYOUT;
            }
            trait __LkNotShmSafe {
                const LAYOUT: &'static #krate::layout::TypeLayout =
                    &#krate::layout::TypeLayout::opaque::<()>("not ShmSafe", "");
            }
            impl<T: ?::core::marker::Sized> __LkNotShmSafe for __LkFieldProof<T> {}
        }
    });
    // The struct rustc compiles must be the one checked: an attribute macro placed after
    // lockkit's could add a field or change a field's type once the checks were written.
    // An exhaustive pattern (no `..`) fails if a field was added, removed or renamed, and
    // each binding's annotation fails if its type changed.
    let bindings: Vec<syn::Ident> = (0..fields.len())
        .map(|i| quote::format_ident!("__lk_field_{}", i))
        .collect();
    let pattern = fields.iter().zip(&bindings).map(|(f, b)| {
        let (cfgs, id) = (f.cfgs, &f.member);
        quote!(#(#cfgs)* #id: #b)
    });
    // The type is inferred from the binding alone, then compared: with the expected type
    // given to the call, `&&T` would coerce to `&T` and pass.
    let annotated = fields.iter().zip(&bindings).map(|(f, b)| {
        let (cfgs, ty) = (f.cfgs, &f.ty);
        quote! {
            #(#cfgs)*
            {
                let found = __lk_type_of(#b);
                let _: ::core::marker::PhantomData<#ty> = found;
            }
        }
    });
    let fields_as_declared = quote! {
        const _: () = {
            #[allow(dead_code, unused_variables, clippy::all)]
            fn __lk_fields_are_as_declared #impl_g (value: &#name #ty_g) #where_g {
                fn __lk_type_of<T: ?::core::marker::Sized>(
                    _: &T,
                ) -> ::core::marker::PhantomData<T> {
                    ::core::marker::PhantomData
                }
                let #name { #(#pattern),* } = value;
                #(#annotated)*
            }
        };
    };
    quote! {
        #fields_as_declared
        // SAFETY: the caller's (every field is ShmSafe and stored inline, repr(C)); the
        // LAYOUT lists every field at its real offset.
        unsafe impl #impl_g #krate::ShmSafe for #name #ty_g
        where
            #preds
            for<'__lk> Self: ::core::marker::Sync,
            #(#bounds)*
            #(#extra)*
        {
            const LAYOUT: &'static #krate::layout::TypeLayout = {
                #proof
                &#krate::layout::TypeLayout::of_fields::<Self>(
                    #type_name,
                    &[#(#entries,)* #(#markers,)*],
                )
            };
        }
    }
}
