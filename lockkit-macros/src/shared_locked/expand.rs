//! Generates the `#[repr(C)]` struct, the structs of guarded fields, the shared-memory trait
//! impls and the accessors; after an error, a fallback with the same accessors and
//! `unreachable!()` bodies, so the error the macro reported is the only one the user sees.
//!
//! The output is assembled from an [`Expansion`]: another generated impl is one more entry in
//! `Expansion::impls` (see [`trait_impls`]).
//!
//! Every path in generated code is absolute (`::core::..`, the lockkit path given by
//! `crate = ".."`), so a user type called `usize` or `Option` changes nothing.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Ident, Type, Visibility};

use super::parse::{same_name, Field, Input, Kind, Role, MARKERS};
use crate::layout::{shm_safe_impl, shm_safe_impl_marked, LaidOut};

/// The pieces of the expansion, assembled by [`Expansion::into_tokens`].
struct Expansion {
    /// The struct itself.
    item: TokenStream,
    /// The structs of guarded fields, beside the struct.
    extra_structs: Vec<TokenStream>,
    /// Compile-time assertions on the fields, inside `const _: () = { .. };`.
    asserts: Vec<TokenStream>,
    /// Trait impls for the struct, inside `const _: () = { .. };`.
    impls: Vec<TokenStream>,
    /// Inherent methods: `new` and the accessors.
    methods: Vec<TokenStream>,
    /// Bounds of the impl holding `methods`.
    method_bounds: Vec<TokenStream>,
}

impl Expansion {
    fn into_tokens(self, name: &Ident) -> TokenStream {
        let Expansion {
            item,
            extra_structs,
            asserts,
            impls,
            methods,
            method_bounds,
        } = self;
        quote! {
            #item
            #(#extra_structs)*
            const _: () = {
                #(#asserts)*
                #(#impls)*
                impl #name where #(#method_bounds)* {
                    #(#methods)*
                }
            };
        }
    }
}

/// `calls_lock` → `CallsLock`.
fn camel(id: &Ident) -> String {
    id.unraw()
        .to_string()
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

/// The name of the struct of fields guarded by `lock`: `<Struct><Lock>Fields`.
pub(crate) fn fields_struct_name(input: &Input, lock: &Ident) -> String {
    format!("{}{}Fields", input.item.ident.unraw(), camel(lock))
}

fn fields_struct(input: &Input, lock: &Ident) -> Ident {
    Ident::new(&fields_struct_name(input, lock), lock.span())
}

/// `prefix<field>suffix`, raw identifiers unwrapped (`r#loop` → `lock_loop`).
fn method(prefix: &str, id: &Ident, suffix: &str) -> Ident {
    format_ident!("{prefix}{}{suffix}", id.unraw(), span = id.span())
}

fn guarded_by<'i, 'a>(input: &'i Input<'a>, lock: &Ident) -> Vec<&'i Field<'a>> {
    input
        .fields
        .iter()
        .filter(|f| matches!(&f.role, Role::Guarded(l) if same_name(l, lock)))
        .collect()
}

/// A lock field that gets accessors: a lock (exclusive or reader-writer) guarding fields.
fn is_guarding_lock(input: &Input, f: &Field) -> bool {
    f.kind.is_single() && matches!(f.role, Role::Plain) && !guarded_by(input, f.ident).is_empty()
}

/// `for<'__lk> T: Trait` keeps a bound on a concrete type from being checked eagerly, so
/// an impl whose bound fails simply does not apply (rather than being an error).
fn zeroable_bounds<'a>(
    krate: &TokenStream,
    this: &Ident,
    tys: impl Iterator<Item = &'a Type>,
) -> TokenStream {
    let bounds = tys.map(|ty| quote!(for<'__lk> #ty: #krate::ShmZeroable,));
    quote!(where for<'__lk> #this: #krate::ShmSafe, #(#bounds)*)
}

/// The visibility of the generated `new`: that of the most private field, so code that
/// cannot name every field cannot build the struct either.
fn new_vis(input: &Input) -> TokenStream {
    let vis = &input.item.vis;
    let mut restricted: Option<&Visibility> = None;
    for f in &input.fields {
        match f.vis {
            Visibility::Public(_) => {}
            Visibility::Inherited => return quote!(),
            r @ Visibility::Restricted(_) => match restricted {
                None => restricted = Some(r),
                Some(prev) if quote!(#prev).to_string() == quote!(#r).to_string() => {}
                Some(_) => return quote!(),
            },
        }
    }
    match restricted {
        Some(r) => quote!(#r),
        None => quote!(#vis),
    }
}

/// The assertion that a field can live in shared memory, with the message its written type
/// suggests; nothing for references and pointers, which `check` already rejected.
fn shm_assert(input: &Input, f: &Field) -> Option<TokenStream> {
    let ty = f.ty;
    // At the field's type: a failed const evaluation points at the call's first token.
    let krate = &crate::ctxt::respan(input.krate.clone(), ty.span());
    let shm = crate::types::shm_assertion(krate, ty)?;
    let cfgs = &f.cfgs;
    let kind = match f.kind {
        // A lock that guards fields is checked where its backend is named, at its type.
        Kind::Lock if is_guarding_lock(input, f) => None,
        Kind::Lock => Some(quote_spanned! {ty.span()=>
            const _: () = #krate::__private::Checked::assert_lock::<#ty>();
        }),
        Kind::LockSet => Some(quote_spanned! {ty.span()=>
            const _: () = #krate::__private::Checked::assert_lock_set::<#ty>();
        }),
        // A guarding one is stored as an `RwLock` of its fields: its type is named nowhere
        // else, so this is its only check.
        Kind::RwLock => Some(quote_spanned! {ty.span()=>
            const _: () = #krate::__private::Checked::assert_rw_lock::<#ty>();
        }),
        Kind::RwLockSet => Some(quote_spanned! {ty.span()=>
            const _: () = #krate::__private::Checked::assert_rw_lock_set::<#ty>();
        }),
        Kind::Data => None,
    };
    Some(quote_spanned! {ty.span()=>
        #(#cfgs)*
        #shm
        #(#cfgs)*
        #kind
    })
}

/// `for<'__lk> Lock: LockKind` for each lock that guards fields. A `#[lock]` field whose type
/// is not a lock is reported once, at its type (where the struct names its backend); these
/// (deferred) bounds keep the impls that name the backend again (`LAYOUT`'s `offset_of!`,
/// `new`) from reporting it a second time, at the attribute. Likewise
/// `for<'__lk> Set: RwLockSetKind` for each set of reader-writer locks, which the stripe
/// accessors name.
fn lock_kind_bounds(input: &Input) -> Vec<TokenStream> {
    let krate = &input.krate;
    input
        .fields
        .iter()
        .filter_map(|f| {
            let ty = f.ty;
            match f.kind {
                Kind::Lock if is_guarding_lock(input, f) => {
                    Some(quote!(for<'__lk> #ty: #krate::__private::LockKind,))
                }
                Kind::RwLockSet if matches!(f.role, Role::Plain) => {
                    Some(quote!(for<'__lk> #ty: #krate::__private::RwLockSetKind,))
                }
                _ => None,
            }
        })
        .collect()
}

/// The trait impls of the struct: `ShmSafe`, and `ShmZeroable` when every field is.
fn trait_impls(input: &Input, laid_out: &[LaidOut]) -> Vec<TokenStream> {
    let (krate, name) = (&input.krate, &input.item.ident);
    let bounds = zeroable_bounds(krate, name, input.fields.iter().map(|f| f.ty));
    // SAFETY (of the impl): every field is asserted ShmSafe above; locks and guarded data
    // are stored inline (repr(C)), and guarded data is reached only through guards.
    let lock_bounds = lock_kind_bounds(input);
    // Which set stripes each striped field is part of the layout (see
    // `TypeLayout::lock_set_at`).
    let markers: Vec<TokenStream> = input
        .fields
        .iter()
        .filter_map(|f| match &f.role {
            Role::Striped(set) => {
                let (cfgs, id) = (&f.cfgs, f.ident);
                let set = input.field(set).expect("checked").ident;
                Some(quote! {
                    #(#cfgs)*
                    #krate::layout::FieldLayout {
                        name: "#striped-by",
                        offset: ::core::mem::offset_of!(Self, #id),
                        layout: &#krate::layout::TypeLayout::lock_set_at(
                            ::core::mem::offset_of!(Self, #set),
                        ),
                    }
                })
            }
            _ => None,
        })
        .collect();
    let shm_safe = shm_safe_impl_marked(
        krate,
        name,
        &input.item.generics,
        laid_out,
        &lock_bounds,
        &markers,
    );
    vec![quote! {
        #shm_safe
        // SAFETY: applies only when every field is ShmZeroable: zero bytes are then
        // unlocked locks around zeroed data.
        unsafe impl #krate::ShmZeroable for #name #bounds {}
    }]
}

/// `new`, taking every field that is not a lock, in declaration order.
fn constructor(input: &Input, inits: Vec<TokenStream>, fallback: bool) -> Option<TokenStream> {
    if input.no_new {
        return None;
    }
    let name = &input.item.ident;
    let vis = new_vis(input);
    let params = input.fields.iter().filter(|f| takes_value(f)).map(|f| {
        let (cfgs, id, ty) = (&f.cfgs, f.ident, f.ty);
        quote!(#(#cfgs)* #id: #ty)
    });
    let doc = format!(
        "A `{}` with every lock unlocked and the given values, in declaration order.",
        name.unraw()
    );
    let body = if fallback {
        quote!(::core::unreachable!())
    } else {
        quote!(#name { #(#inits,)* })
    };
    Some(quote! {
        #[doc = #doc]
        #[allow(clippy::too_many_arguments, unused_variables)]
        #vis const fn new(#(#params),*) -> Self {
            #body
        }
    })
}

/// Whether `new` takes the field's value (locks start unlocked instead).
fn takes_value(f: &Field) -> bool {
    !(matches!(f.role, Role::Plain) && (f.kind != Kind::Data || f.standalone.is_some()))
}

/// The accessors of a lock `id` guarding `data`, returning `ret` (a guard of the fields
/// struct, or the fallback); `body(call)` is the body for `self.#id.#call`.
fn lock_accessors(
    id: &Ident,
    vis: &Visibility,
    names: &str,
    ret: &TokenStream,
    body: impl Fn(TokenStream) -> TokenStream,
) -> TokenStream {
    let lock_fn = method("lock_", id, "");
    let try_fn = method("try_lock_", id, "");
    let try_for_fn = method("try_lock_", id, "_for");
    let lock_name = id.unraw();
    let doc = format!("Takes `{lock_name}` and lends the fields it guards: {names}.");
    let try_doc = format!("Takes `{lock_name}` if it is free.");
    let try_for_doc = format!("Takes `{lock_name}`, waiting at most `timeout`.");
    let (b_lock, b_try, b_for) = (
        body(quote!(lock())),
        body(quote!(try_lock())),
        body(quote!(try_lock_for(timeout))),
    );
    quote! {
        #[doc = #doc]
        #[inline]
        #[track_caller]
        #vis fn #lock_fn(&self) -> #ret {
            #b_lock
        }
        #[doc = #try_doc]
        #[inline]
        #[track_caller]
        #vis fn #try_fn(&self) -> ::core::option::Option<#ret> {
            #b_try
        }
        #[doc = #try_for_doc]
        #[inline]
        #[track_caller]
        #vis fn #try_for_fn(&self, timeout: ::core::time::Duration)
            -> ::core::option::Option<#ret>
        {
            #b_for
        }
    }
}

/// The accessors of a reader-writer lock `id` guarding `data`: `read_`, `write_` and their
/// `try` forms, returning `read_ret` / `write_ret` (guards of the fields struct, or the
/// fallback); `body(call)` is the body for `self.#id.#call`. Also the `lock_` forms, which
/// do not compile and say to use those (`stub`: their body and return type).
fn rw_accessors(
    id: &Ident,
    vis: &Visibility,
    names: &str,
    (read_ret, write_ret): (&TokenStream, &TokenStream),
    stub: (&TokenStream, &TokenStream),
    body: impl Fn(TokenStream) -> TokenStream,
) -> TokenStream {
    let lock_name = id.unraw();
    let mut out = TokenStream::new();
    for (side, ret, what) in [
        ("read", read_ret, "as a reader (with other readers)"),
        ("write", write_ret, "as its only writer"),
    ] {
        let plain = method(&format!("{side}_"), id, "");
        let tried = method(&format!("try_{side}_"), id, "");
        let timed = method(&format!("try_{side}_"), id, "_for");
        let doc = format!("Takes `{lock_name}` {what} and lends the fields it guards: {names}.");
        let try_doc = format!("Like [`{plain}`](Self::{plain}), but `None` if it would wait.");
        let for_doc =
            format!("Like [`{plain}`](Self::{plain}), but waits at most `timeout`, or `None`.");
        let call = Ident::new(side, id.span());
        let try_call = format_ident!("try_{side}");
        let for_call = format_ident!("try_{side}_for");
        let (b, b_try, b_for) = (
            body(quote!(#call())),
            body(quote!(#try_call())),
            body(quote!(#for_call(timeout))),
        );
        out.extend(quote! {
            #[doc = #doc]
            #[inline]
            #[track_caller]
            #vis fn #plain(&self) -> #ret {
                #b
            }
            #[doc = #try_doc]
            #[inline]
            #[track_caller]
            #vis fn #tried(&self) -> ::core::option::Option<#ret> {
                #b_try
            }
            #[doc = #for_doc]
            #[inline]
            #[track_caller]
            #vis fn #timed(&self, timeout: ::core::time::Duration)
                -> ::core::option::Option<#ret>
            {
                #b_for
            }
        });
    }
    out.extend(rw_lock_stubs(
        id,
        vis,
        &[],
        stub,
        "UseReadOrWriteLock",
        quote!(),
    ));
    out
}

/// `lock_<id>`, `try_lock_<id>` and `try_lock_<id>_for` of a reader-writer lock or of a field
/// striped by one: hidden, and bound by `__private::<never>`, which no type implements and
/// whose message says to call `read_<id>` or `write_<id>`. `index` is the stripe accessors'
/// extra parameter.
fn rw_lock_stubs(
    id: &Ident,
    vis: &Visibility,
    cfgs: &[&syn::Attribute],
    (krate, ret): (&TokenStream, &TokenStream),
    never: &str,
    index: TokenStream,
) -> TokenStream {
    let never = Ident::new(never, id.span());
    let (plain, tried, timed) = (
        method("lock_", id, ""),
        method("try_lock_", id, ""),
        method("try_lock_", id, "_for"),
    );
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(unused_variables)]
        #vis fn #plain(&self, #index) -> #ret
        where
            for<'__lk> Self: #krate::__private::#never,
        {
            ::core::unreachable!()
        }
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(unused_variables)]
        #vis fn #tried(&self, #index) -> ::core::option::Option<#ret>
        where
            for<'__lk> Self: #krate::__private::#never,
        {
            ::core::unreachable!()
        }
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(unused_variables)]
        #vis fn #timed(&self, #index timeout: ::core::time::Duration)
            -> ::core::option::Option<#ret>
        where
            for<'__lk> Self: #krate::__private::#never,
        {
            ::core::unreachable!()
        }
    }
}

/// The accessors of a field `id` striped by reader-writer locks: `read_`, `write_` and their
/// `try` forms (`rets`: the read and the write guard); `body(f, extra)` is the body calling
/// runtime function `f` with extra arguments. With the `lock_` stubs, returning `stub_ret`.
fn rw_stripe_accessors(
    (id, set): (&Ident, &Ident),
    vis: &Visibility,
    cfgs: &[&syn::Attribute],
    (read_ret, write_ret): (&TokenStream, &TokenStream),
    stub: (&TokenStream, &TokenStream),
    body: impl Fn(&str, TokenStream) -> TokenStream,
) -> TokenStream {
    let (field, set) = (id.unraw(), set.unraw());
    let mut out = TokenStream::new();
    for (side, ret, what) in [
        ("read", read_ret, "as a reader (with other readers)"),
        ("write", write_ret, "as its only writer"),
    ] {
        let plain = method(&format!("{side}_"), id, "");
        let tried = method(&format!("try_{side}_"), id, "");
        let timed = method(&format!("try_{side}_"), id, "_for");
        let doc = format!(
            "Takes stripe `index % N` of `{set}` {what} and lends element `index` of \
             `{field}`.\n\n# Panics\nIf `index` is out of range, naming both."
        );
        let try_doc = format!("Like [`{plain}`](Self::{plain}), but `None` if it would wait.");
        let for_doc =
            format!("Like [`{plain}`](Self::{plain}), but waits at most `timeout`, or `None`.");
        let (b, b_try, b_for) = (
            body(&format!("{side}_stripe"), quote!()),
            body(&format!("try_{side}_stripe"), quote!()),
            body(&format!("try_{side}_stripe_for"), quote!(timeout,)),
        );
        out.extend(quote! {
            #(#cfgs)*
            #[doc = #doc]
            #[inline]
            #[track_caller]
            #vis fn #plain(&self, index: ::core::primitive::usize) -> #ret {
                #b
            }
            #(#cfgs)*
            #[doc = #try_doc]
            #[inline]
            #[track_caller]
            #vis fn #tried(&self, index: ::core::primitive::usize)
                -> ::core::option::Option<#ret>
            {
                #b_try
            }
            #(#cfgs)*
            #[doc = #for_doc]
            #[inline]
            #[track_caller]
            #vis fn #timed(
                &self,
                index: ::core::primitive::usize,
                timeout: ::core::time::Duration,
            ) -> ::core::option::Option<#ret> {
                #b_for
            }
        });
    }
    out.extend(rw_lock_stubs(
        id,
        vis,
        cfgs,
        stub,
        "UseReadOrWriteStripe",
        quote!(index: ::core::primitive::usize,),
    ));
    out
}

/// The accessors of a striped field `id`, returning `ret`; `body(f, extra)` is the body
/// calling runtime function `f` with extra arguments. Each carries the field's `#[cfg]`s:
/// where the field does not exist, neither do they.
fn stripe_accessors(
    id: &Ident,
    set: &Ident,
    vis: &Visibility,
    cfgs: &[&syn::Attribute],
    (ret, lend_ret, guard_ty): (&TokenStream, &TokenStream, &TokenStream),
    body: impl Fn(&str, TokenStream) -> TokenStream,
) -> TokenStream {
    let lend_fn = method("lend_", id, "");
    let lend_doc = format!(
        "Lends element `index` of `{field}` through the guard of a group whose chain (or a \
         chained group's) holds stripe `index % N` of `{set}` (a `grp::FieldLock` of it): the \
         stripe's own accessor cannot, as this thread holds the stripe.\n\n\
         # Panics\nIf `index` is out of range, if the group's chain does not hold the stripe, \
         or if the element is lent already on this thread.",
        field = id.unraw(),
        set = set.unraw()
    );
    let b_lend = body("lend_stripe", quote!(guard,));
    let lock_fn = method("lock_", id, "");
    let try_fn = method("try_lock_", id, "");
    let try_for_fn = method("try_lock_", id, "_for");
    let (field, set) = (id.unraw(), set.unraw());
    let doc = format!(
        "Locks stripe `index % N` of `{set}` and lends element `index` of `{field}`.\n\n\
         # Panics\nIf `index` is out of range, naming both."
    );
    let try_doc = format!("Like [`{lock_fn}`](Self::{lock_fn}), but `None` if the stripe is busy.");
    let try_for_doc = format!(
        "Like [`{lock_fn}`](Self::{lock_fn}), but `None` if the stripe stays busy for \
         `timeout`."
    );
    let (b_lock, b_try, b_for) = (
        body("lock_stripe", quote!()),
        body("try_lock_stripe", quote!()),
        body("try_lock_stripe_for", quote!(timeout,)),
    );
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[inline]
        #[track_caller]
        #vis fn #lock_fn(&self, index: ::core::primitive::usize) -> #ret {
            #b_lock
        }
        #(#cfgs)*
        #[doc = #try_doc]
        #[inline]
        #[track_caller]
        #vis fn #try_fn(&self, index: ::core::primitive::usize) -> ::core::option::Option<#ret> {
            #b_try
        }
        #(#cfgs)*
        #[doc = #try_for_doc]
        #[inline]
        #[track_caller]
        #vis fn #try_for_fn(
            &self,
            index: ::core::primitive::usize,
            timeout: ::core::time::Duration,
        ) -> ::core::option::Option<#ret> {
            #b_for
        }
        #(#cfgs)*
        #[doc = #lend_doc]
        #[inline]
        #[track_caller]
        #vis fn #lend_fn<'__lk_g>(
            &'__lk_g self,
            guard: &'__lk_g #guard_ty,
            index: ::core::primitive::usize,
        ) -> #lend_ret {
            #b_lend
        }
    }
}

/// `` `a`, `b` ``: the names of the fields a lock guards, for its accessors' docs.
fn guarded_names(guarded: &[&Field]) -> String {
    guarded
        .iter()
        .map(|g| format!("`{}`", g.ident.unraw()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The struct `data` of the fields guarded by lock `lock`, with its `ShmSafe` impl (and
/// `ShmZeroable`, when every field is).
fn fields_struct_item(
    input: &Input,
    krate: &TokenStream,
    lock: &Ident,
    data: &Ident,
    guarded: &[&Field],
) -> TokenStream {
    let vis = &input.item.vis;
    let g_fields = guarded.iter().map(|g| {
        let (a, v, i, t) = (&g.attrs, g.vis, g.ident, g.ty);
        quote!(#(#a)* #v #i: #t)
    });
    let (name, lock_name) = (input.item.ident.unraw(), lock.unraw());
    let reach = match input.field(lock).map(|l| l.kind) {
        Some(Kind::RwLock) => format!(
            "[`{name}::read_{lock_name}`] (shared) and [`{name}::write_{lock_name}`] (exclusive)"
        ),
        _ => format!("[`{name}::lock_{lock_name}`]"),
    };
    let doc = format!(
        "The fields of [`{name}`] guarded by its lock `{lock_name}`; reach them through {reach}."
    );
    let bounds = zeroable_bounds(krate, data, guarded.iter().map(|g| g.ty));
    let data_fields: Vec<LaidOut> = guarded
        .iter()
        .map(|g| {
            let ty = g.ty;
            LaidOut {
                cfgs: &g.cfgs,
                member: syn::Member::Named(g.ident.clone()),
                ty: quote!(#ty),
            }
        })
        .collect();
    // SAFETY (of the impl): every field is asserted ShmSafe where the struct is declared.
    let data_shm_safe = shm_safe_impl(krate, data, &syn::Generics::default(), &data_fields, &[]);
    quote! {
        #[doc = #doc]
        #[repr(C)]
        #vis struct #data { #(#g_fields,)* }
        const _: () = {
            #data_shm_safe
            // SAFETY: applies only when every field is ShmZeroable.
            unsafe impl #krate::ShmZeroable for #data #bounds {}
        };
    }
}

fn elem_type(ty: &Type) -> &Type {
    match ty {
        Type::Array(a) => &a.elem,
        _ => ty,
    }
}

/// The declaration, layout entry and proof of a field stored in one of lockkit's wrappers:
/// declared in the struct as `declared`, laid out as `wrapper` (the same type, perhaps spelled
/// at another span), which `Checked::<is>::<args>` proves lockkit's own (see
/// `types::wrapper_is_lockkits`).
struct Wrapped<'t> {
    declared: TokenStream,
    wrapper: TokenStream,
    is: &'t str,
    args: TokenStream,
}

fn push_wrapped<'a>(
    krate: &TokenStream,
    f: &'a Field<'a>,
    w: Wrapped<'_>,
    struct_fields: &mut Vec<TokenStream>,
    laid_out: &mut Vec<LaidOut<'a>>,
    asserts: &mut Vec<TokenStream>,
) {
    let (fattrs, fvis, id, declared) = (&f.attrs, f.vis, f.ident, &w.declared);
    struct_fields.push(quote!(#(#fattrs)* #fvis #id: #declared));
    laid_out.push(LaidOut {
        cfgs: &f.cfgs,
        member: syn::Member::Named(id.clone()),
        ty: w.wrapper.clone(),
    });
    asserts.push(crate::types::wrapper_is_lockkits(
        krate, &f.cfgs, &w.wrapper, w.is, &w.args,
    ));
}

pub(crate) fn expand(input: &Input) -> TokenStream {
    let krate = &input.krate;
    let item = input.item;
    let name = &item.ident;
    let vis = &item.vis;
    let attrs = &input.attrs;
    let reprs = &input.reprs;

    let mut struct_fields = Vec::new();
    let mut laid_out = Vec::new();
    let mut extra_structs = Vec::new();
    let mut methods = Vec::new();
    let mut inits = Vec::new();
    let mut asserts: Vec<TokenStream> =
        std::iter::once(crate::types::checks_are_lockkits(&input.krate))
            .chain(input.fields.iter().filter_map(|f| shm_assert(input, f)))
            .collect();

    for f in &input.fields {
        let (fattrs, fvis, id, ty, cfgs) = (&f.attrs, f.vis, f.ident, f.ty, &f.cfgs);
        match &f.role {
            Role::Guarded(_) => {}
            Role::Striped(set) if input.field(set).is_some_and(|s| s.kind.is_rw()) => {
                let elem = elem_type(ty);
                let set = input.field(set).expect("checked").ident;
                let striped = quote!(#krate::__private::Striped<#ty>);
                let w = Wrapped {
                    declared: striped.clone(),
                    wrapper: striped,
                    is: "is_striped",
                    args: quote!(#ty),
                };
                push_wrapped(krate, f, w, &mut struct_fields, &mut laid_out, &mut asserts);
                inits.push(quote!(#(#cfgs)* #id: #krate::__private::Striped::new(#id)));
                let field_name = id.unraw().to_string();
                let rets = (
                    &quote!(#krate::StripeReadGuard<'_, #elem>),
                    &quote!(#krate::StripeWriteGuard<'_, #elem>),
                );
                let stub_ret = quote!(#krate::__private::Fallback<'_, #elem>);
                let stub = (krate, &stub_ret);
                methods.push(rw_stripe_accessors(
                    (id, set),
                    fvis,
                    cfgs,
                    rets,
                    stub,
                    |f, extra| {
                        let f = Ident::new(f, id.span());
                        quote! {
                            // SAFETY: `set` is the set this field is #[striped_by], and a
                            // Striped field is reachable only through its accessors.
                            unsafe {
                                #krate::__private::Checked::#f(
                                    &self.#set, &self.#id, index, #extra #field_name,
                                )
                            }
                        }
                    },
                ));
            }
            Role::Striped(set) => {
                let elem = elem_type(ty);
                let set_ty = input.field(set).expect("checked").ty;
                let set = input.field(set).expect("checked").ident;
                // `BackendOf`, a documented alias, so the accessors' docs show no hidden trait.
                let raw = quote!(#krate::BackendOf<#set_ty>);
                let striped = quote!(#krate::__private::Striped<#ty>);
                let w = Wrapped {
                    declared: striped.clone(),
                    wrapper: striped,
                    is: "is_striped",
                    args: quote!(#ty),
                };
                push_wrapped(krate, f, w, &mut struct_fields, &mut laid_out, &mut asserts);
                inits.push(quote!(#(#cfgs)* #id: #krate::__private::Striped::new(#id)));
                let field_name = id.unraw().to_string();
                let ret = quote!(#krate::StripeGuard<'_, #elem, #raw>);
                let lend_ret = quote!(#krate::grp::GrpLent<'__lk_g, #elem>);
                let guard_ty = quote!(#krate::grp::GrpGuard<'_>);
                let rets = (&ret, &lend_ret, &guard_ty);
                methods.push(stripe_accessors(id, set, fvis, cfgs, rets, |f, extra| {
                    let f = Ident::new(f, id.span());
                    quote! {
                        // SAFETY: `set` is the set this field is #[striped_by], and a
                        // Striped field is reachable only through its accessors.
                        unsafe {
                            #krate::__private::Checked::#f(
                                &self.#set, &self.#id, index, #extra #field_name,
                            )
                        }
                    }
                }));
            }
            Role::Plain if is_guarding_lock(input, f) && f.kind.is_rw() => {
                let data = fields_struct(input, id);
                let guarded = guarded_by(input, id);
                extra_structs.push(fields_struct_item(input, krate, id, &data, &guarded));
                let rw = quote!(#krate::RwLock<#data>);
                let w = Wrapped {
                    declared: rw.clone(),
                    wrapper: rw,
                    is: "is_rw_lock",
                    args: quote!(#data),
                };
                push_wrapped(krate, f, w, &mut struct_fields, &mut laid_out, &mut asserts);
                let g_inits = guarded.iter().map(|g| {
                    let (c, i) = (&g.cfgs, g.ident);
                    quote!(#(#c)* #i)
                });
                inits.push(quote! {
                    #id: #krate::RwLock::<#data>::new(#data { #(#g_inits,)* })
                });
                let rets = (
                    &quote!(#krate::ReadGuard<'_, #data>),
                    &quote!(#krate::WriteGuard<'_, #data>),
                );
                let stub_ret = quote!(#krate::__private::Fallback<'_, #data>);
                methods.push(rw_accessors(
                    id,
                    fvis,
                    &guarded_names(&guarded),
                    rets,
                    (krate, &stub_ret),
                    |call| quote!(self.#id.#call),
                ));
            }
            Role::Plain if is_guarding_lock(input, f) => {
                // Paths at the lock's type: a `#[lock]` field that is not a lock is reported
                // there, however many places name its backend.
                let krate = &crate::ctxt::respan(krate.clone(), ty.span());
                let data = fields_struct(input, id);
                // At the lock's type, so a `#[lock]` field that is not a lock is reported
                // there, once.
                let raw = quote_spanned!(ty.span()=> #krate::BackendOf<#ty>);
                let guarded = guarded_by(input, id);
                let g_inits = guarded.iter().map(|g| {
                    let (c, i) = (&g.cfgs, g.ident);
                    quote!(#(#c)* #i)
                });
                extra_structs.push(fields_struct_item(input, krate, id, &data, &guarded));
                // Laid out at the macro's own span: a `#[lock]` field that is not a lock is
                // already reported at the lock's type (the same error, which rustc gives once).
                let raw_here = quote!(#krate::BackendOf<#ty>);
                let w = Wrapped {
                    declared: quote!(#krate::ShmMutex<#data, #raw>),
                    wrapper: quote!(#krate::ShmMutex<#data, #raw_here>),
                    is: "is_shm_mutex",
                    args: quote!(#data, #raw_here),
                };
                push_wrapped(krate, f, w, &mut struct_fields, &mut laid_out, &mut asserts);
                inits.push(quote! {
                    #id: #krate::ShmMutex::<#data, #raw>::with_backend(#data { #(#g_inits,)* })
                });
                let ret = quote!(#krate::ShmMutexGuard<'_, #data, #raw>);
                methods.push(lock_accessors(
                    id,
                    fvis,
                    &guarded_names(&guarded),
                    &ret,
                    |call| quote!(self.#id.#call),
                ));
            }
            Role::Plain => {
                struct_fields.push(quote!(#(#fattrs)* #fvis #id: #ty));
                laid_out.push(LaidOut {
                    cfgs,
                    member: syn::Member::Named(id.clone()),
                    ty: quote!(#ty),
                });
                if takes_value(f) {
                    inits.push(quote!(#(#cfgs)* #id));
                } else if f.kind.is_rw() {
                    inits.push(quote!(#id: <#ty>::new()));
                } else {
                    inits.push(quote!(#id: <#ty>::with_backend()));
                }
            }
        }
    }
    methods.splice(0..0, constructor(input, inits, false));

    Expansion {
        item: quote! {
            #(#attrs)*
            #[repr(C)]
            #(#[repr(#reprs)])*
            #vis struct #name { #(#struct_fields,)* }
        },
        extra_structs,
        asserts,
        impls: trait_impls(input, &laid_out),
        methods,
        method_bounds: lock_kind_bounds(input),
    }
    .into_tokens(name)
}

/// After an error: the struct as written (minus lockkit's markers), its trait impls where
/// they can hold, and every accessor the user's code may call, with `unreachable!()`
/// bodies. The accessors lend a `Fallback`, which derefs to the struct as written (or the
/// striped element), so `reg.lock_calls().active += 1` still type-checks.
pub(crate) fn fallback(input: &Input) -> TokenStream {
    let krate = &input.krate;
    let name = &input.item.ident;
    let mut methods = Vec::new();
    let unreachable = |_| quote!(::core::unreachable!());
    for f in &input.fields {
        let named_by_marker = input
            .fields
            .iter()
            .any(|g| matches!(&g.role, Role::Guarded(l) if same_name(l, f.ident)));
        let ret = quote!(#krate::__private::Fallback<'_, Self>);
        if f.kind == Kind::RwLock && matches!(f.role, Role::Plain) {
            let rets = (&ret, &ret);
            methods.push(rw_accessors(
                f.ident,
                f.vis,
                "",
                rets,
                (krate, &ret),
                unreachable,
            ));
        } else if (f.kind == Kind::Lock && matches!(f.role, Role::Plain)) || named_by_marker {
            methods.push(lock_accessors(f.ident, f.vis, "", &ret, unreachable));
        }
        let rw_set = |set: &Ident| input.field(set).is_some_and(|s| s.kind.is_rw());
        if let Role::Striped(set) = &f.role {
            if rw_set(set) {
                let elem = elem_type(f.ty);
                let ret = quote!(#krate::__private::Fallback<'_, #elem>);
                methods.push(rw_stripe_accessors(
                    (f.ident, set),
                    f.vis,
                    &f.cfgs,
                    (&ret, &ret),
                    (krate, &ret),
                    |_, _| quote!(::core::unreachable!()),
                ));
                continue;
            }
            let elem = elem_type(f.ty);
            let ret = quote!(#krate::__private::Fallback<'_, #elem>);
            let lend_ret = quote!(#krate::__private::Fallback<'__lk_g, #elem>);
            let guard_ty = quote!(#krate::grp::GrpGuard<'_>);
            let rets = (&ret, &lend_ret, &guard_ty);
            methods.push(stripe_accessors(
                f.ident,
                set,
                f.vis,
                &f.cfgs,
                rets,
                |_, _| quote!(::core::unreachable!()),
            ));
        }
    }
    methods.splice(0..0, constructor(input, Vec::new(), true));
    // Two fields whose accessors share a name (reported): one method of each name.
    let methods = one_of_each_name(methods);
    let impls = quote! {
        // SAFETY: never used: the macro reported an error, so the program does not compile.
        unsafe impl #krate::ShmSafe for #name where for<'__lk> #name: ::core::marker::Sync {
            const LAYOUT: &'static #krate::layout::TypeLayout =
                &#krate::layout::TypeLayout::opaque::<Self>("fallback", "");
        }
        // SAFETY: as above.
        unsafe impl #krate::ShmZeroable for #name where for<'__lk> #name: #krate::ShmSafe {}
    };
    if !matches!(input.item.data, syn::Data::Struct(_)) {
        return stand_in(input.item);
    }
    if !input.item.generics.params.is_empty() {
        // A generic (rejected) struct: `new` and the accessors, with its parameters, so
        // that calls to them are not a second error; no trait impls (nothing calls them).
        let (impl_g, ty_g, where_g) = input.item.generics.split_for_impl();
        let item = stand_in(input.item);
        return quote! {
            #item
            const _: () = {
                impl #impl_g #name #ty_g #where_g {
                    #(#methods)*
                }
            };
        };
    }
    Expansion {
        item: stand_in(input.item),
        extra_structs: Vec::new(),
        asserts: Vec::new(),
        impls: vec![impls],
        methods,
        method_bounds: Vec::new(),
    }
    .into_tokens(name)
}

/// `methods` with every method after the first of its name left out.
fn one_of_each_name(methods: Vec<TokenStream>) -> Vec<TokenStream> {
    use syn::parse::Parser;
    let mut seen = std::collections::HashSet::new();
    let items = |input: syn::parse::ParseStream| {
        let mut v = Vec::new();
        while !input.is_empty() {
            v.push(input.parse::<syn::ImplItem>()?);
        }
        Ok(v)
    };
    methods
        .into_iter()
        .flat_map(|m| items.parse2(m).expect("generated methods parse"))
        .filter(|it| match it {
            syn::ImplItem::Fn(f) => seen.insert(f.sig.ident.to_string()),
            _ => true,
        })
        .map(|it| quote!(#it))
        .collect()
}

/// The item as written, minus lockkit's markers (and `cfg_attr`s that hide one), a second
/// `#[shared_locked]` and `ShmSafe` in a derive (all reported).
pub(crate) fn stand_in(item: &syn::DeriveInput) -> TokenStream {
    let mut item = item.clone();
    item.attrs = item
        .attrs
        .iter()
        .filter(|a| !super::parse::is_shared_locked(a))
        .filter_map(|a| super::parse::without_derived_shm_safe(a).0)
        .collect();
    let strip = |attrs: &mut Vec<syn::Attribute>| {
        attrs.retain(|a| {
            // `#[lockkit::guarded_by(..)]` too (reported as written with a path).
            let last = a.path().segments.last().map(|s| &s.ident);
            let marker = last.is_some_and(|l| MARKERS.iter().any(|m| l == m));
            !(marker || a.path().is_ident("cfg_attr") && hides_marker(a))
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

fn hides_marker(a: &syn::Attribute) -> bool {
    let text = quote!(#a).to_string();
    MARKERS.iter().any(|m| text.contains(m))
}
