//! Expands `locked!` into a block that owns the guard. The guard's binding has a
//! macro-private (mixed-site) name, so the user's block cannot name, move or forget it; the
//! block gets the lent data at most.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Expr, Ident};

use super::parse::Locked;

fn guard_ident() -> Ident {
    Ident::new("__lockkit_guard", Span::mixed_site())
}

/// `let name = lend(&mut guard);`, or nothing for an unnamed guard.
fn lend(name: &Option<Ident>, guard: &Ident) -> TokenStream {
    match name {
        Some(n) => quote! {
            #[allow(unused_mut)]
            let mut #guard = #guard;
            let #n = ::lockkit::__private::Lend::lend(&mut #guard);
        },
        None => quote!(),
    }
}

fn body(b: &Block) -> TokenStream {
    quote!(#b)
}

pub(crate) fn expand(l: &Locked) -> TokenStream {
    let guard = guard_ident();
    match l {
        Locked::One {
            name,
            lock,
            body: b,
        } => {
            let take = take(lock, quote!(lock));
            let lend = lend(name, &guard);
            let b = body(b);
            quote! {{
                let #guard = #take;
                #lend
                #b
            }}
        }
        Locked::Try {
            name,
            lock,
            body: b,
            otherwise,
        } => {
            let take = take(lock, quote!(try_lock));
            let lend = lend(name, &guard);
            let b = body(b);
            quote! {
                match #take {
                    ::core::option::Option::Some(#guard) => {
                        #lend
                        #b
                    }
                    ::core::option::Option::None => #otherwise,
                }
            }
        }
        Locked::Many { locks, body: b } => {
            let each = locks.iter().map(|lock| {
                quote_spanned! {lock.span()=> ::lockkit::__private::as_chain(&(#lock))}
            });
            let b = body(b);
            quote! {{
                let #guard = ::lockkit::__private::lock_all([#(#each),*]);
                #b
            }}
        }
    }
}

/// The call that takes the lock, spanned at the user's expression so that "not a lock"
/// errors point at it.
fn take(lock: &Expr, f: TokenStream) -> TokenStream {
    quote_spanned! {lock.span()=> ::lockkit::__private::#f(&(#lock))}
}
